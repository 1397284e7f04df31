"""One fit across several processes (hosts): Keras 3's `keras.distribution.initialize` on the JAX backend,
one process per node (or per GPU group), all training the same model on their slice of every global batch.

Why these rules:
- Every process sees the same global batches: the data order comes from the run's seed, which the leader
  (process 0) broadcasts, and each process keeps its contiguous slice of each batch, so the global batch is
  the one a single process would train on (`local_batches`).
- Only the leader writes (the run, its rows, checkpoints, the job's lease and result); the others train
  silently. A store written by N processes would hold N copies of every row.
- A stop (SIGTERM, a lost lease) must be agreed: a process that leaves the step loop alone would leave the
  others waiting in a collective forever, so all processes are asked together (`agreed_stop`).
- Initial weights are the leader's (`broadcast`): a model built before the fit is built on every process
  from its own random state.
On Slurm, `initialize()` with no arguments reads the job step (SLURM_NTASKS, SLURM_PROCID, and the first node of
SLURM_STEP_NODELIST as coordinator, at its NodeAddr: JAX's own detection uses the node's name, which need not
resolve), and a task alone on its node keeps all the GPUs Slurm gave it; elsewhere KERAS_DISTRIBUTION_* or the
arguments say where the coordinator is. CPU collectives go through gloo, so the same code runs on CPU hosts.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import InvalidInput

_started = False
STOP_CHECK_BATCHES = 16


def slurm_step_present() -> bool:
    """Inside a Slurm job step with more than one task (srun): the peers are its tasks (slurm_coordinator)."""
    return int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_STEP_NODELIST" in os.environ


def _scontrol(*args: str) -> str | None:
    try:
        done = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def slurm_coordinator() -> str | None:
    """host:port of process 0 in this Slurm step: the first node's NodeAddr (the address Slurm itself reaches it
    at; a node's name need not resolve) and JAX's port for the job. None when scontrol cannot say."""
    names = _scontrol("show", "hostnames", os.environ["SLURM_STEP_NODELIST"])
    if not names or not names.split():
        return None
    first = names.split()[0]
    node = _scontrol("show", "node", "-o", first) or ""
    address = next((field.split("=", 1)[1] for field in node.split() if field.startswith("NodeAddr=")), first)
    port = os.environ.get("JAX_COORDINATOR_PORT") or int(os.environ["SLURM_JOB_ID"]) % 2**12 + (65535 - 2**12 + 1)
    return f"{address}:{port}"


def _devices_of_one_process_per_node() -> None:
    """One task per node owns all the GPUs Slurm gave it (CUDA_VISIBLE_DEVICES); JAX would show it only the one
    its local rank names (its default for several tasks per node)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if os.environ.get("SLURM_NTASKS_PER_NODE") == "1" and visible and "JAX_LOCAL_DEVICE_IDS" not in os.environ:
        os.environ["JAX_LOCAL_DEVICE_IDS"] = ",".join(str(i) for i in range(len(visible.split(","))))


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Join the process group (once per process): before Keras or JAX touches a device."""
    global _started
    if _started:
        return
    import keras

    if keras.config.backend() != "jax":
        raise InvalidInput(f"Training across processes uses keras.distribution on the JAX backend; this process "
                           f"uses {keras.config.backend()!r}. Set KERAS_BACKEND=jax before Keras is imported.")
    coordinator = coordinator or os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
    if coordinator is None and not slurm_step_present():
        raise InvalidInput("Training across processes needs to know its peers: run it under `srun` in a Slurm job "
                           "of several tasks, or set KERAS_DISTRIBUTION_JOB_ADDRESSES (the coordinator's "
                           "host:port), KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID.")
    if coordinator is None:  # a Slurm step: the peers are its tasks
        coordinator = slurm_coordinator()
        num_processes = num_processes or int(os.environ["SLURM_NTASKS"])
        process_id = int(os.environ["SLURM_PROCID"]) if process_id is None else process_id
        _devices_of_one_process_per_node()
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts; GPUs use NCCL regardless
    keras.distribution.initialize(coordinator, num_processes, process_id)
    _started = True


def process_count() -> int:
    """How many processes train together (1 unless `initialize` joined a group)."""
    if not _started:
        return 1
    import jax

    return jax.process_count()


def process_index() -> int:
    if not _started:
        return 0
    import jax

    return jax.process_index()


def is_leader() -> bool:
    """Process 0: the one that writes."""
    return process_index() == 0


def broadcast(value: Any) -> Any:
    """The leader's `value` (numpy arrays, or a list of them) on every process."""
    if process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return multihost_utils.broadcast_one_to_all(value)


def any_process(flag: bool) -> bool:
    """Whether `flag` is true on any process (every process must call it at the same point)."""
    if process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.asarray(multihost_utils.process_allgather(np.array([int(bool(flag))], np.int32))).any())


def agreed_stop(flag: bool, batch: int) -> bool:
    """Whether the fit stops before `batch`: at once on one process; in a group, asked of all every
    STOP_CHECK_BATCHES batches (the question costs a collective, ~2 ms between two CPU processes here)."""
    if process_count() == 1:
        return bool(flag)
    return batch % STOP_CHECK_BATCHES == 0 and any_process(flag)


def agreed_seed(seed: int) -> int:
    """The leader's seed: the data order and any fresh initial weights must be the same everywhere."""
    return int(broadcast(np.array([seed], np.int64))[0]) if process_count() > 1 else seed


def check_batch_size(batch_size: int | None) -> None:
    """Refuse, before training, a global batch the processes cannot split evenly."""
    count = process_count()
    if count > 1 and batch_size is not None and batch_size % count:
        raise InvalidInput(f"batch_size={batch_size} cannot be split across {count} processes: each process trains "
                           f"an equal slice of every batch. Use a multiple of {count}.")


def _local_slice(batch: Any, index: int, count: int) -> Any:
    if isinstance(batch, (tuple, list)):
        return type(batch)(_local_slice(part, index, count) for part in batch)
    if isinstance(batch, dict):
        return {key: _local_slice(part, index, count) for key, part in batch.items()}
    if batch is None:
        return None
    share = len(batch) // count  # the last batch of a pass: a remainder under `count` is left out
    return batch[index * share:(index + 1) * share]


def _rows(batch: Any) -> int:
    """The rows of a batch: of its first array (x, or x's first input)."""
    while isinstance(batch, (tuple, list, dict)) and batch:
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return len(batch) if hasattr(batch, "__len__") else 0


def local_batches(batches: Iterator[Any]) -> Iterator[Any]:
    """This process's contiguous slice of each global batch (a batch of B rows: rows [i*B/N, (i+1)*B/N)).

    A batch the processes cannot split evenly is refused unless it is smaller than a batch before it (the
    tail of a pass over the data, as the last batch of an epoch of arrays): its remainder, under N rows, is left
    out, with a warning. Left out of every batch, it would silently drop data all along (30-row batches on 4
    processes: 1 row in 15)."""
    index, count = process_index(), process_count()
    largest, warned = 0, False
    for batch in batches:
        rows = _rows(batch)
        if rows % count and rows >= largest:
            raise InvalidInput(f"A training batch of {rows} rows cannot be split across {count} processes: each "
                               f"process trains an equal slice of every batch. Yield batches of a multiple of {count} "
                               "rows (only the last batch of a pass over the data may be shorter).")
        if rows % count and not warned:
            warnings.warn(f"TensorLab: the last batch of a pass has {rows} rows; {rows % count} of them are left out "
                          f"so that each of the {count} processes trains an equal slice.", RuntimeWarning, stacklevel=2)
            warned = True
        largest = max(largest, rows)
        yield _local_slice(batch, index, count)


def array_batches(x: Any, y: Any, batch_size: int, shuffle: bool, seed: int) -> Iterator[Any]:
    """Global (x, y) batches of in-memory arrays, epoch after epoch, shuffled by `seed` (the same on every
    process): the generator a multi-process fit slices, as Keras' array adapter would batch them."""
    count = len(x)
    for epoch in itertools.count():
        order = np.random.default_rng([seed, epoch]).permutation(count) if shuffle else np.arange(count)
        for start in range(0, count, batch_size):
            rows = order[start:start + batch_size]
            yield (x[rows], y[rows]) if y is not None else (x[rows],)
