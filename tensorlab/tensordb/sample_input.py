"""What an import accepts: arrays with samples along the first axis and one label per sample, checked
before anything is written so a bad call leaves the study as it was."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInput
from . import codec


def scalar_labels(y: np.ndarray) -> list[Any] | None:
    if y.ndim == 1 and y.dtype.kind in "biufUS":
        return y.tolist()
    return None


def validate_samples(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray | None]:  # noqa: N803 - ML convention
    """Arrays for X and y, or InvalidInput before anything is written."""
    X = codec.as_plain_array(X, "X")
    if X.ndim == 0:
        raise InvalidInput("`X` must hold samples along its first axis; got a scalar.")
    if len(X) == 0:
        raise InvalidInput("`X` is empty; nothing to import.")
    if y is None:
        return X, None
    y = codec.as_plain_array(y, "y")
    if y.ndim == 0 or len(y) != len(X):
        raise InvalidInput(f"`X` has {len(X)} samples but `y` has {0 if y.ndim == 0 else len(y)} labels; "
                           "pass one label per sample (or y=None).")
    return X, y
