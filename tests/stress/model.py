"""Model-based stress test: writers SIGKILLed at random, every read checked against what was acknowledged.

The driver runs writer processes (worker.py) against one study, each told to do a few random operations
(imports, deletes, retags, parameter saves, logging) per round; in every round one writer is SIGKILLed at a
random moment and replaced. When the survivors are idle, every way of reading the study is compared with a
model built only from the operations the writers acknowledged. An operation in flight when its writer died
may or may not have happened (imports all or nothing; a delete or retag partly), so what it touched is
checked for agreement between read paths, not against the model.
"""

from __future__ import annotations

import json
import queue
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("worker.py")
LABELS = 4
QUIET_COLLECTIONS = ("sample_imports", "sample_chunks", "sample_chunk_data", "samples", "parameters",
                     "payload_writes", "log_buckets")


def label_counts(size: int) -> dict[int, int]:
    """Labels are `arange(size) % 4`: how many samples carry each."""
    return {label: (size - label + LABELS - 1) // LABELS for label in range(LABELS)}


@dataclass
class ImportState:
    size: int
    deleted: set[int] = field(default_factory=set)
    retagged: set[int] = field(default_factory=set)
    uncertain: bool = False  # an operation on it was in flight when its writer died

    def count(self, label: int | None = None) -> int:
        counts = label_counts(self.size)
        return sum(n for lab, n in counts.items() if lab not in self.deleted and label in (None, lab))

    def flagged(self) -> int:
        counts = label_counts(self.size)
        return sum(counts[lab] for lab in self.retagged if lab not in self.deleted)


@dataclass
class Acknowledged:
    """What writers were told had succeeded, and what was in flight when one died."""

    imports: dict[tuple[str, str, int], ImportState] = field(default_factory=dict)
    saves: dict[tuple[str, str, int], int] = field(default_factory=dict)
    unsure_saves: set[tuple[str, str, int]] = field(default_factory=set)
    log_rows: dict[tuple[str, str], int] = field(default_factory=dict)
    unsure_rows: dict[tuple[str, str], int] = field(default_factory=dict)
    operations: int = 0

    def acknowledge(self, owner: str, inc: str, event: dict[str, Any]) -> None:
        self.operations += 1
        op, key = event["op"], (owner, inc, event.get("k"))
        if op == "import":
            self.imports[key] = ImportState(event["size"])
        elif op == "delete":
            self.imports[key].deleted.add(event["label"])
        elif op == "retag":
            self.imports[key].retagged.add(event["label"])
        elif op == "save":
            self.saves[key] = self.saves.get(key, 0) + 1
        elif op == "log":
            self.log_rows[(owner, inc)] = event["first"] + event["rows"]

    def in_flight(self, owner: str, inc: str, event: dict[str, Any]) -> None:
        op, key = event["op"], (owner, inc, event.get("k"))
        if op == "import":
            self.imports[key] = ImportState(event["size"], uncertain=True)
        elif op in ("delete", "retag"):
            self.imports[key].uncertain = True
        elif op == "save":
            self.unsure_saves.add(key)
        elif op == "log":
            self.unsure_rows[(owner, inc)] = event["rows"]


class Writer:
    """One worker.py process and a thread that queues its output lines."""

    def __init__(self, uri: str, db_name: str, owner: str, inc: int, seed: int) -> None:
        self.owner, self.inc = owner, str(inc)
        self.process = subprocess.Popen([sys.executable, str(WORKER), uri, db_name, owner, self.inc, str(seed)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.last_start: dict[str, Any] | None = None

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def order(self, operations: int) -> None:
        self.process.stdin.write(f"go {operations}\n")
        self.process.stdin.flush()

    def follow(self, model: Acknowledged, timeout: float = 600.0) -> bool:
        """Apply this writer's lines to the model until it is idle (True) or its output ends (False)."""
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                if self.last_start is not None:
                    model.in_flight(self.owner, self.inc, self.last_start)
                return False
            kind, _, payload = line.partition(" ")
            if kind == "idle":
                return True
            event = json.loads(payload)
            if kind == "start":
                self.last_start = event
            else:
                model.acknowledge(self.owner, self.inc, event)
                self.last_start = None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def run_stress(uri: str, db_name: str, *, writers: int = 3, rounds: int = 6, operations: int = 6,
               seed: int = 1, check: Any = None, log: Any = print) -> dict[str, Any]:
    """Run the rounds, calling `check(model)` after each one; returns the totals."""
    rng, model, kills, started = random.Random(seed), Acknowledged(), 0, time.monotonic()
    incarnations = {f"w{i}": 0 for i in range(writers)}
    live = {owner: Writer(uri, db_name, owner, 0, rng.randrange(2 ** 31)) for owner in incarnations}
    try:
        for writer in live.values():
            assert writer.follow(model)
        for round_number in range(rounds):
            victim = rng.choice(sorted(live))
            for writer in live.values():
                writer.order(operations)
            time.sleep(rng.uniform(0.05, 1.5))  # a random moment to kill at (randomness, not synchronisation)
            live[victim].kill()
            for owner, writer in live.items():
                idle = writer.follow(model)
                assert idle or owner == victim, f"writer {owner} died on its own"
            kills += 1
            incarnations[victim] += 1
            live[victim] = Writer(uri, db_name, victim, incarnations[victim], rng.randrange(2 ** 31))
            assert live[victim].follow(model)
            if check is not None:
                check(model)
            log(f"round {round_number + 1}/{rounds}: {model.operations} operations acknowledged, {kills} kills")
    finally:
        for writer in live.values():
            writer.kill()
    return {"operations": model.operations, "kills": kills, "seconds": round(time.monotonic() - started, 1),
            "imports": len(model.imports), "uncertain_imports": sum(s.uncertain for s in model.imports.values())}
