"""`Model.fit(..., distribution="data_parallel")`: one fit on every local device, through Keras 3's own
`keras.distribution.DataParallel` (JAX backend), so a JAX or PyTorch-era lab is not limited to TensorFlow's
MirroredStrategy.

Why a rebuilt copy: Keras lays variables out when they are created, so a model built before the distribution
was set keeps its weights on one device and JAX refuses to mix the two ("incompatible devices"). The model is
rebuilt from its config while DataParallel is set (weights replicated on every device, each batch split across
them), given the caller's weights and compile settings, trained, and its weights copied back into the caller's
model, even after an error or a stop; the global distribution is restored. Logs, checkpoints and resume are
those of any fit: DBLogger reads the same metrics and weights.

Across processes (hosts, `multi_host.initialize`): the devices are every process's, each process feeds its slice
of every global batch (`per_process_input`), the caller's weights are the leader's, and only the leader writes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

from .errors import InvalidInput
from .multi_host import array_batches, broadcast, check_batch_size, local_batches, process_count
from .precision import copy_back, rebuilt_copy, serialised_config
from .training_input import TrainingInput

DISTRIBUTIONS = ("data_parallel",)


def _serialised(model: Any) -> dict[str, Any]:
    return serialised_config(model, "distribution='data_parallel'", "while the distribution is set",
                             "Call keras.distribution.set_distribution(keras.distribution.DataParallel()) before "
                             "building the model, and fit it without `distribution`.")


def check_distribution(distribution: Any, model: Any = None) -> None:
    """Refuse, before anything is stored, a distribution this backend (or this model) cannot run."""
    if distribution is None:
        if process_count() > 1:
            raise InvalidInput(f"This process is one of {process_count()} training together; pass "
                               "distribution='data_parallel' so they train one model (each alone would store its "
                               "own run).")
        return
    if distribution not in DISTRIBUTIONS:
        raise InvalidInput(f"Invalid value for argument `distribution`: {distribution!r:.40}. Expected None or "
                           "'data_parallel' (every local device; with TensorFlow, the worker's --distribute mirrored).")
    import keras

    if keras.config.backend() != "jax":
        raise InvalidInput(f"distribution='data_parallel' uses keras.distribution, which runs on the JAX backend; "
                           f"this process uses {keras.config.backend()!r} (set KERAS_BACKEND=jax before Keras is "
                           "imported, or train TensorFlow jobs with `tensorlab worker --distribute mirrored`).")


@contextlib.contextmanager
def distributed(model: Any, distribution: str | None) -> Iterator[Any]:
    """Yield the model to train: `model` itself, or its copy laid out data-parallel over every local device."""
    if distribution is None:
        yield model
        return
    import keras

    previous = keras.distribution.distribution()
    several = process_count() > 1
    if several and model.weights:  # each process built the caller's model from its own random state
        model.set_weights(broadcast(model.get_weights()))
    keras.distribution.set_distribution(keras.distribution.DataParallel(
        devices=keras.distribution.list_devices(), auto_shard_dataset=not several))  # several: per_process_input
    try:
        copy = rebuilt_copy(model, _serialised(model))
        try:
            yield copy
        finally:
            copy_back(copy, model)
    finally:
        keras.distribution.set_distribution(previous)


def per_process_input(inputs: TrainingInput, seed: int) -> TrainingInput:
    """`inputs` as this process's slice of every global batch when several processes train together (else
    unchanged): arrays are batched here in the seed's order, streams and generators are sliced as they come."""
    if process_count() == 1:
        return inputs
    if inputs.batch_size is not None:  # in-memory arrays, which Keras would batch
        if not hasattr(inputs.x, "shape") or (inputs.y is not None and not hasattr(inputs.y, "shape")):
            raise InvalidInput("Training across processes takes x and y as arrays, a TensorDB query or stream, or a "
                               "generator of batches (dicts or lists of arrays: pass a generator).")
        check_batch_size(inputs.batch_size)
        batches = array_batches(inputs.x, inputs.y, inputs.batch_size, inputs.shuffle, seed)
        steps = inputs.steps_per_epoch or math.ceil(len(inputs.x) / inputs.batch_size)
    else:
        check_batch_size(inputs.stream.batch_size if inputs.stream is not None else None)
        batches, steps = inputs.x, inputs.steps_per_epoch
        if steps is None:
            raise InvalidInput("Training across processes on a generator needs steps_per_epoch: every process must "
                               "stop at the same batch.")
    return TrainingInput(local_batches(batches), None, None, steps, inputs.stream)
