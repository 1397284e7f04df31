"""The logger of a process that trains beside the leader of a multi-process fit (multi_host.py): it writes
nothing, so the store holds one run, one row per step and one checkpoint per epoch, all from the leader."""

from __future__ import annotations

from typing import Any

import keras


class FollowerLogger(keras.callbacks.Callback):
    """Answers what `Model.fit` and the worker ask of a DBLogger, without a run."""

    def __init__(self) -> None:
        super().__init__()
        self.run_id: Any = None
        self.architecture: Any = None
        self.stop_event: Any = None
        self.watch_fit = False

    def end_run(self, status: str, error: str | None = None) -> None:
        """Nothing to end: the leader ends the run."""

    def final_checkpoint(self) -> None:
        """Nothing to store: the leader stores the checkpoint."""
