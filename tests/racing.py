"""Threads racing on the same documents, round after round, with a check after each round."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable


def race_in_rounds(rounds: int, work: Callable[[random.Random], None], check: Callable[[int], None],
                   threads: int = 8) -> None:
    """`threads` threads run `work` (each with a random generator seeded by round and thread) at once, `rounds`
    times, and `check(round)` runs after each round: a later round could mend what an earlier one broke. A failure
    in any thread is raised after its round."""
    failures: list[BaseException] = []

    def run(seed: int) -> None:
        try:
            work(random.Random(seed))
        except BaseException as error:  # noqa: BLE001 - raised below, in the test's thread
            failures.append(error)

    for round_ in range(rounds):
        started = [threading.Thread(target=run, args=(round_ * threads + seed,)) for seed in range(threads)]
        for thread in started:
            thread.start()
        for thread in started:
            thread.join(timeout=300)
        if failures:
            raise failures[0]
        check(round_)
