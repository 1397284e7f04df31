"""A worker made of several processes (hosts) that train each job together (`tensorlab worker --multi-host`,
or `tensorlab slurm submit --hosts N`): one claim, one lease, one run, every process's devices.

Why the leader decides everything: the queue's claim is one atomic write, so only the leader (process 0)
claims, heartbeats, and completes or fails the job; it tells the others what to do through the same
collectives the training uses. The processes move in lock step: each turn they agree whether any of them was
asked to stop (SIGTERM reaches each task of a Slurm step), then the leader says one of IDLE, JOB <id> or EXIT.
A process that dies leaves the others waiting in a collective until JAX's coordination service ends the group;
the job's lease then expires and another worker resumes it from its last checkpoint, as for any lost worker.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .multi_host import any_process, broadcast, is_leader, process_index
from .worker import Worker, WorkerStats

logger = logging.getLogger("tensorlab.worker")
IDLE, JOB, EXIT = 0, 1, 2


def _say(kind: int, job_id: Any = None) -> tuple[int, str | None]:
    """Every process calls this at the same turn; all return the leader's (kind, job id as hex)."""
    message = np.zeros(13, np.uint8)
    message[0] = kind
    if job_id is not None:
        message[1:] = np.frombuffer(bytes.fromhex(str(job_id)), np.uint8)  # an ObjectId: 12 bytes
    heard = np.asarray(broadcast(message), np.uint8)
    return int(heard[0]), bytes(heard[1:].tolist()).hex() if heard[0] == JOB else None


class GroupWorker(Worker):
    """A `Worker` on every process of a group that `multi_host.initialize` joined; jobs train data-parallel."""

    def __init__(self, db: Any, name: str | None = None, **options: Any) -> None:
        options["distribute"] = "data_parallel"
        super().__init__(db, name, **options)
        self._agreed_stop = False

    def _stopping(self) -> bool:
        """A turn's first step, on every process."""
        self._agreed_stop, self._said = any_process(self._stop.is_set()), False
        return self._agreed_stop

    def _claim(self) -> dict | None:
        """The leader's claim, and the turn's second step: what it got, said to the others."""
        job = super()._claim()
        _say(JOB if job is not None else IDLE, job["_id"] if job is not None else None)
        self._said = True
        return job

    def run(self) -> WorkerStats:
        if not is_leader():
            return self._follow()
        self._agreed_stop, self._said = False, False
        try:
            return super().run()
        finally:
            self._tell_the_others_to_leave()

    def _tell_the_others_to_leave(self) -> None:
        """The leader left the loop for its own reason (idle, max jobs, time limit): finish the turn the others
        are in with EXIT (after a new turn's first step if this one's message was already said)."""
        if self._agreed_stop or (self._said and self._stopping()):
            return  # every process is leaving on the agreed stop
        _say(EXIT)

    def _follow(self) -> WorkerStats:
        self.warm_up()
        while not self._stopping():
            kind, job_id = _say(IDLE)  # what this process says is not heard: the leader's message is
            if kind == EXIT:
                break
            if kind == JOB:
                self._train_beside(self.db.jobs.get(job_id))
        return self.stats

    def _train_beside(self, job: dict) -> None:
        """The leader's job, trained on this process's devices; nothing is written from here."""
        self._begin_job(job)
        try:
            self._fit(self._job_model(job), job)
        except Exception as error:  # noqa: BLE001 - the leader records the failure; this process goes on
            logger.warning("job %s on process %d: %s", job["_id"], process_index(), error)
        finally:
            self._training_stop = None
