"""`Model.fit(..., distribution="data_parallel")`: one fit on every local device, through Keras 3's own
`keras.distribution.DataParallel` (JAX backend), so a JAX or PyTorch-era lab is not limited to TensorFlow's
MirroredStrategy.

Why a rebuilt copy: Keras lays variables out when they are created, so a model built before the distribution
was set keeps its weights on one device and JAX refuses to mix the two ("incompatible devices"). The model is
rebuilt from its config while DataParallel is set (weights replicated on every device, each batch split across
them), given the caller's weights and compile settings, trained, and its weights copied back into the caller's
model, even after an error or a stop; the global distribution is restored. Logs, checkpoints and resume are
those of any fit: DBLogger reads the same metrics and weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .errors import InvalidInput
from .precision import copy_back, rebuilt_copy, serialised_config

DISTRIBUTIONS = ("data_parallel",)


def _serialised(model: Any) -> dict[str, Any]:
    return serialised_config(model, "distribution='data_parallel'", "while the distribution is set",
                             "Call keras.distribution.set_distribution(keras.distribution.DataParallel()) before "
                             "building the model, and fit it without `distribution`.")


def check_distribution(distribution: Any, model: Any = None) -> None:
    """Refuse, before anything is stored, a distribution this backend (or this model) cannot run."""
    if distribution is None:
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
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=keras.distribution.list_devices()))
    try:
        copy = rebuilt_copy(model, _serialised(model))
        try:
            yield copy
        finally:
            copy_back(copy, model)
    finally:
        keras.distribution.set_distribution(previous)
