"""Putting stored parameter arrays into a Keras model, refusing arrays of another architecture."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInput


def apply_weights(model: Any, arrays: list[np.ndarray]) -> None:
    """Set a Keras model's weights, or InvalidInput naming the first mismatch (nothing is changed then)."""
    expected = [tuple(v.shape) for v in model.weights]
    if len(expected) != len(arrays):
        raise InvalidInput(f"The parameters hold {len(arrays)} arrays but model {model.name!r} has "
                           f"{len(expected)} weights; they belong to another architecture.")
    for index, (shape, array) in enumerate(zip(expected, arrays, strict=False)):
        if tuple(array.shape) != shape:
            raise InvalidInput(f"Weight {index} of model {model.name!r} has shape {shape} but the stored array has "
                               f"{tuple(array.shape)}; the parameters belong to another architecture.")
    model.set_weights(arrays)
