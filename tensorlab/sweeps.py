"""Hyper-parameter sweeps as jobs: a grid (Cartesian product) or random samples, and a one-call summary."""

from __future__ import annotations

import itertools
import random
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from .architecture_save import check_pushable
from .errors import InvalidInput
from .metric_direction import metric_direction
from .table_rows import flat_row


def grid(space: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the values in `space`, e.g. {'lr': [0.1, 0.01], 'units': [32, 64]} -> 4 dicts."""
    for name, values in space.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise InvalidInput(f"Grid values for {name!r} must be a non-empty list; got {values!r}.")
    names = list(space)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(space[n] for n in names))]


def random_samples(space: Mapping[str, Sequence[Any]], n: int, seed: int | None = None) -> list[dict[str, Any]]:
    """`n` random picks from each list in `space` (reproducible with `seed`)."""
    if n < 1:
        raise InvalidInput(f"Invalid value for argument `n`: {n!r}. Expected an int >= 1.")
    rng = random.Random(seed)
    return [{name: rng.choice(list(values)) for name, values in space.items()} for _ in range(n)]


def push_sweep(db: Any, architecture: Any = None, *, grid_space: Mapping[str, Sequence[Any]] | None = None,
               random_space: Mapping[str, Sequence[Any]] | None = None, n: int = 10, seed: int | None = None,
               base: Mapping[str, Any] | None = None, **job: Any) -> tuple[str, list[Any]]:
    """Push one job per hyper-parameter set; returns (sweep id, job ids)."""
    if (grid_space is None) == (random_space is None):
        raise InvalidInput("Pass exactly one of grid_space={...} or random_space={...}.")
    settings = grid(grid_space) if grid_space is not None else random_samples(random_space, n, seed)
    sweep = secrets.token_hex(12)  # 24 hex characters, like the ids of everything else it groups
    return sweep, push_jobs(db, architecture, [{**(base or {}), **hp} for hp in settings], sweep=sweep, **job)


def push_jobs(db: Any, architecture: Any, settings: Sequence[Mapping[str, Any]], *, model: Any = None,
              **job: Any) -> list[Any]:
    """One job per hyper-parameter set, every one checked before the first is stored: a bad value in the last
    set never leaves the first ones queued. `model`: a Keras model whose architecture is saved (after the
    checks) and trained by every job."""
    if model is not None and not (hasattr(model, "to_json") and hasattr(model, "get_weights")):
        raise InvalidInput(f"`model` must be a Keras model; got {type(model).__name__}.")
    if model is not None:
        check_pushable(model)  # a worker rebuilds it from its stored architecture: refuse what it could not
    if not settings:
        raise InvalidInput("No hyper-parameter sets to push; pass at least one (e.g. [{}]).")
    placeholder = {"name": "(saved when pushed)"} if model is not None else architecture
    for hp in settings:
        db.jobs.push(placeholder, check_only=True, hyper_parameters=hp, **job)
    if model is not None:
        architecture = db.save_model_architecture(model)
    return [db.push_job(architecture, hyper_parameters=hp, **job) for hp in settings]


def sweep_summary(db: Any, sweep: str, metric: str = "val_accuracy", mode: str = "auto") -> Any:
    """One row per job of the sweep: status, hyper-parameters and final metrics, best first."""
    import pandas as pd

    mode = metric_direction(metric, mode)
    rows = []
    for job in db.jobs.find({"sweep": sweep}):
        final = (job.get("result") or {}).get("final", {})
        columns = {"job": str(job["_id"]), "status": "pruned" if job.get("pruned") else job["status"],
                   "attempts": job["attempts"]}
        if "halving_rung" in (job.get("tags") or {}):  # a successive-halving sweep: one row per rung trained
            columns["rung"] = job["tags"]["halving_rung"]
        rows.append(flat_row(columns, job["hyper_parameters"], final))
    frame = pd.DataFrame(rows)
    if len(frame) and metric in frame.columns:
        frame = frame.sort_values(metric, ascending=mode == "min", na_position="last").reset_index(drop=True)
    return frame
