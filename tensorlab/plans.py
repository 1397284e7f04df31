"""Training plans: jobs that run after others, pushed as one call.

A stage lists the stages it comes `after`; its job is claimable only once all of them are done, and
fails at once (naming the stage that failed) when one of them fails, instead of waiting forever. A stage
may start from what an earlier one trained: `warm_start={"stage": "pretrain", "metric": "val_accuracy"}`
loads the best version of that stage's run. Every job carries `tags.plan` and `tags.stage`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInput


def _order(stages: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Stages so that each comes after those it names; InvalidInput for unknown names and cycles."""
    done: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done:
            return
        if name not in stages:
            raise InvalidInput(f"Plan stage {path[-1]!r} comes after {name!r}, which is not a stage of the plan.")
        if name in visiting:
            raise InvalidInput(f"Plan stages wait for each other in a circle: {' -> '.join((*path, name))}.")
        visiting.add(name)
        for before in stages[name].get("after", ()):
            visit(before, (*path, name))
        visiting.discard(name)
        done.append(name)

    for stage in stages:
        visit(stage, ())
    return done


def push_plan(db: Any, stages: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Push every stage (`push_job` arguments plus `after` and `architecture`); returns {stage: job id}."""
    if not isinstance(stages, Mapping) or not stages:
        raise InvalidInput("A plan is a dict of stages: {'pretrain': {...}, 'finetune': {'after': ['pretrain']}}.")
    order = _order(stages)
    for name in order:  # everything checked before the first push: a refused plan pushes nothing
        warm = stages[name].get("warm_start")
        if isinstance(warm, Mapping) and "stage" in warm and warm["stage"] not in stages[name].get("after", ()):
            raise InvalidInput(f"Stage {name!r} starts from stage {warm['stage']!r}, so it must list it in `after`.")
    plan, ids = secrets.token_hex(4), {}
    for name in order:
        spec = dict(stages[name])
        after = list(spec.pop("after", ()))
        warm = spec.get("warm_start")
        if isinstance(warm, Mapping) and "stage" in warm:
            spec["warm_start"] = {"job": ids[warm["stage"]], **{k: v for k, v in warm.items() if k != "stage"}}
        spec["tags"] = {**(spec.get("tags") or {}), "plan": plan, "stage": name}
        ids[name] = db.push_job(spec.pop("architecture", None), after=[ids[before] for before in after], **spec)
    return ids
