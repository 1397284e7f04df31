"""One writer of the stress test: does what the driver asks, prints a line before and after each operation.

Usage: python worker.py URI DB OWNER INCARNATION SEED. Reads `go N` lines from stdin; for each, performs N
random operations on study `stress` and prints `start {...}` / `ack {...}` (JSON) around every one, then
`idle`. The driver SIGKILLs it at random moments; an operation with a `start` but no `ack` was in flight.
"""

from __future__ import annotations

import json
import sys

import numpy as np

import tensorlab

LABELS = 4


def main() -> None:
    uri, db_name, owner, incarnation, seed = sys.argv[1:6]
    rng = np.random.default_rng(int(seed))
    db = tensorlab.connect(uri, db=db_name, study="stress")
    run = db.run_store.start(f"{owner}-{incarnation}")
    imports: list[int] = []
    state = {"k": 0, "step": 0}
    print("idle", flush=True)
    for line in sys.stdin:
        for _ in range(int(line.split()[1])):
            _one_operation(db, rng, owner, incarnation, run, imports, state)
        print("idle", flush=True)


def _say(kind: str, **fields) -> None:
    print(kind, json.dumps(fields), flush=True)


def _one_operation(db, rng, owner: str, incarnation: str, run, imports: list[int], state: dict) -> None:
    op = rng.choice(["import", "import", "delete", "retag", "save", "log"]) if imports else "import"
    base = {"tags.owner": owner, "tags.inc": incarnation}
    if op == "import":
        k, size = state["k"], int(rng.integers(20, 200))
        state["k"] += 1
        _say("start", op=op, k=k, size=size)
        db.import_data(rng.normal(size=(size, 3)).astype("float32"), np.arange(size) % LABELS,
                       tags={"owner": owner, "inc": incarnation, "k": k})
        imports.append(k)
        _say("ack", op=op, k=k, size=size)
    elif op in ("delete", "retag"):
        k, label = int(rng.choice(imports)), int(rng.integers(LABELS))
        _say("start", op=op, k=k, label=label)
        query = {**base, "tags.k": k, "label": label}
        count = db.delete_data(query) if op == "delete" else db.update_data_tags(query, {"flag": "x"})
        _say("ack", op=op, k=k, label=label, count=count)
    elif op == "save":
        k = int(rng.choice(imports))
        _say("start", op=op, k=k)
        version = db.save_parameters([rng.normal(size=(32, 32)).astype("float32")], tags={**_tags(base), "k": k})
        _say("ack", op=op, k=k, version=str(version))
    else:
        first, rows = state["step"], int(rng.integers(10, 100))
        _say("start", op=op, first=first, rows=rows)
        for step in range(first, first + rows):
            db.train_log(run=run, step=step, loss=1.0 / (step + 1))
        assert db.flush_logs(timeout_s=60)
        state["step"] += rows
        _say("ack", op=op, first=first, rows=rows)


def _tags(query: dict) -> dict:
    return {key.split(".", 1)[1]: value for key, value in query.items()}


if __name__ == "__main__":
    main()
