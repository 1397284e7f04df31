"""Fork: start a new run from any stored parameter version of another run.

Why: trying a change (a lower learning rate, more data) from epoch 5 of a good run should not mean
training the first five epochs again, nor overwriting the original. The fork's run document names its
branch point (`forked_from`: run, parameter version, epoch, step) and its epochs and steps continue from
there, so its curves start where it branched and the parent's history is shared by reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .errors import InvalidInput, NotFound


@dataclass(frozen=True)
class ForkPoint:
    run: Any
    run_name: str
    parameters: Any
    epoch: int
    step: int

    def details(self) -> dict[str, Any]:
        return {"forked_from": asdict(self)}


def parse_fork(text: str) -> tuple[str, int | None]:
    """`RUN` or `RUN@EPOCH` (the magic's `--fork`) -> (run, epoch or None for its latest version)."""
    run, _, epoch = text.partition("@")
    if not run or (epoch and not epoch.isdigit()):
        raise InvalidInput(f"--fork {text!r}: expected RUN or RUN@EPOCH, e.g. --fork mlp_small@3.")
    return run, int(epoch) if epoch else None


def fork_point(db: Any, run: Any, epoch: int | None = None) -> tuple[ForkPoint, dict[str, Any]]:
    """The branch point in `run` (id or name): its version saved at `epoch`, else its latest one."""
    parent = db.run_store.resolve(run)
    query = {"run": parent["_id"]} if epoch is None else {"run": parent["_id"], "epoch": epoch}
    try:
        version = db.parameters.find_doc(query, sort=[("epoch", -1), ("created", -1)])
    except NotFound:
        saved = sorted({d.get("epoch") for d in db.parameters.find_docs({"run": parent["_id"]})} - {None})
        raise NotFound(f"Run {parent['name']!r} has no parameters saved at epoch {epoch}; saved epochs: "
                       f"{saved or 'none'}.") from None
    point = ForkPoint(parent["_id"], parent["name"], version["_id"], int(version.get("epoch") or 0),
                      int(version.get("step") or 0))
    return point, version
