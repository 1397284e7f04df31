"""Sweeps that learn: successive halving on the job queue.

Every configuration trains `min_epochs`; when a rung has finished, the best 1/eta of its configurations
(by the sweep's metric, read from each job's final epoch) continue from their own last parameters for
eta times as many epochs, and the rest are marked `pruned`. Any worker promotes as it polls: the next
rung's jobs have `_id`s derived from (sweep, rung, configuration), so a promotion done twice, or
finished by another worker after one died half-way, pushes each job once. The decision reads only the
jobs' stored results, so it can be recomputed from the logs at any time.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidInput
from .metric_direction import metric_direction
from .sweeps import grid, random_samples
from .tensordb.documents.query_text import query_from_text
from .tensordb.jobs.halving_store import halving_job_id

RUNG, CONFIG = "halving_rung", "halving_config"


def rung_epochs(plan: Mapping[str, Any], rung: int) -> int:
    """Epochs a configuration has trained in total once rung `rung` is done."""
    return int(plan["min_epochs"]) * int(plan["eta"]) ** rung


def push_halving(db: Any, architecture: Any = None, *, grid_space: Mapping[str, Sequence[Any]] | None = None,
                 random_space: Mapping[str, Sequence[Any]] | None = None, n: int = 8, seed: int | None = None,
                 metric: str = "val_loss", mode: str = "auto", min_epochs: int = 1, eta: int = 2,
                 rungs: int | None = None, base: Mapping[str, Any] | None = None, **job: Any) -> str:
    """Push rung 0 of a successive-halving sweep (one job per configuration); returns the sweep id."""
    if (grid_space is None) == (random_space is None):
        raise InvalidInput("Pass exactly one of grid_space={...} or random_space={...}.")
    if not isinstance(eta, int) or eta < 2 or not isinstance(min_epochs, int) or min_epochs < 1:
        raise InvalidInput(f"eta must be an int >= 2 and min_epochs an int >= 1; got eta={eta!r}, "
                           f"min_epochs={min_epochs!r}.")
    settings = grid(grid_space) if grid_space is not None else random_samples(random_space, n, seed)
    rungs = rungs or int(math.floor(math.log(len(settings), eta) + 1e-9)) + 1  # until one configuration is left
    plan = {"metric": metric, "mode": metric_direction(metric, mode), "eta": eta, "min_epochs": min_epochs,
            "rungs": rungs, "configs": len(settings)}
    sweep = secrets.token_hex(12)
    db.halving.register(sweep, plan)
    tags = dict(job.pop("tags", None) or {})
    for index, hp in enumerate(settings):
        db.push_job(architecture, hyper_parameters={**(base or {}), **hp}, sweep=sweep, epochs=min_epochs,
                    tags={**tags, RUNG: 0, CONFIG: index}, job_id=halving_job_id(db.study, sweep, 0, index), **job)
    return sweep


def _score(job: Mapping[str, Any], metric: str) -> float | None:
    value = ((job.get("result") or {}).get("final") or {}).get(metric)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def promoted(plan: Mapping[str, Any], rung_jobs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The jobs of a finished rung whose configurations go on: the best ceil(n / eta) by the metric."""
    scored = [(score, job) for job in rung_jobs if (score := _score(job, plan["metric"])) is not None]
    scored.sort(key=lambda pair: (-pair[0] if plan["mode"] == "max" else pair[0], pair[1]["tags"][CONFIG]))
    return [job for _, job in scored[: math.ceil(len(rung_jobs) / plan["eta"])]]


def _next_rung_job(db: Any, plan: Mapping[str, Any], job: Mapping[str, Any], rung: int) -> None:
    """The same configuration, starting from its last parameters, for the epochs the next rung adds."""
    config = job["tags"][CONFIG]
    architecture = job.get("architecture")
    if isinstance(architecture, str) and architecture.startswith("{"):  # a query, stored as JSON text
        architecture = query_from_text(architecture)
    db.push_job(architecture, code=job.get("code"), data=query_from_text(job["data_query"]),
                validation_data=query_from_text(job["validation_query"]) if job.get("validation_query") else None,
                hyper_parameters=job.get("hyper_parameters"), batch_size=job["batch_size"], sweep=job["sweep"],
                epochs=rung_epochs(plan, rung) - rung_epochs(plan, rung - 1), max_attempts=job["max_attempts"],
                priority=job["priority"] + 1, queue=job.get("queue", "default"), warm_start={"job": job["_id"]},
                tags={**job["tags"], RUNG: rung, CONFIG: config},
                job_id=halving_job_id(db.study, job["sweep"], rung, config))


def promote(db: Any) -> int:
    """Promote every finished rung of this study's active sweeps (idempotent; workers call it as they poll).
    Returns how many configurations were promoted now or before."""
    count = 0
    for plan in db.halving.active():
        jobs = db.jobs.find({"sweep": plan["sweep"]})
        by_rung: dict[int, list[dict]] = {}
        for job in jobs:
            by_rung.setdefault(int(job["tags"][RUNG]), []).append(job)
        for rung in range(plan["rungs"]):
            current = by_rung.get(rung, [])
            if not current or any(job["status"] in ("queued", "running") for job in current):
                break
            if rung == plan["rungs"] - 1:
                db.halving.finish(plan["sweep"])
                break
            winners = {job["_id"] for job in promoted(plan, current)}
            if not winners:  # every configuration of the rung failed: nothing can go on
                db.halving.finish(plan["sweep"])
                break
            pushed = {job["tags"][CONFIG] for job in by_rung.get(rung + 1, [])}
            for job in current:
                if job["_id"] in winners:
                    if job["tags"][CONFIG] not in pushed:  # pushed already (here or by another worker): skip
                        _next_rung_job(db, plan, job, rung + 1)
                    count += 1
                elif not job.get("pruned"):
                    db.jobs.mark_pruned(job["_id"])
    return count
