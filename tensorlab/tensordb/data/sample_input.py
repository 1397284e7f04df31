"""What an import accepts: arrays with samples along the first axis and one label per sample, checked
before anything is written so a bad call leaves the study as it was."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InvalidInput
from ...validation_values import INT64_MAX, short
from ..payloads import codec


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
    _check_label_kinds(y)
    y = codec.as_plain_array(y, "y")
    if y.ndim == 0 or len(y) != len(X):
        raise InvalidInput(f"`X` has {len(X)} samples but `y` has {0 if y.ndim == 0 else len(y)} labels; "
                           "pass one label per sample (or y=None).")
    if scalar_labels(y) is not None:
        _check_stored_labels(y)
    return X, y


def _check_label_kinds(y: Any) -> None:
    """Labels given as a list must be all text or all numbers: numpy would turn [1, 'a', 2.5] into the strings
    '1', 'a', '2.5', and they would be read back as strings."""
    if not isinstance(y, (list, tuple)):
        return
    is_text = [isinstance(v, (str, bytes, np.str_, np.bytes_)) for v in y]
    if any(is_text) and not all(is_text):
        text, number = is_text.index(True), is_text.index(False)
        raise InvalidInput(f"`y` mixes text and numbers (y[{text}] = {short(y[text])}, y[{number}] = "
                           f"{short(y[number])}); they would be stored as strings. Use one kind for every label, "
                           "e.g. y = [str(v) for v in y] or a mapping of names to class numbers.")


def _check_stored_labels(y: np.ndarray) -> None:
    """One label per sample goes into each sample's index document: what a document cannot hold is refused."""
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        index = int(np.flatnonzero(~np.isfinite(y))[0])
        raise InvalidInput(f"`y[{index}]` is {y[index]!r}; labels are stored in each sample's index document and "
                           "not every MongoDB-protocol server stores NaN or inf there. Drop those samples or give "
                           "them a real label (or import the targets as a 2-D y, stored with the arrays).")
    if y.dtype.kind == "u" and y.dtype.itemsize == 8 and len(y) and int(y.max()) > INT64_MAX:
        index = int(np.argmax(y))
        raise InvalidInput(f"`y[{index}]` is {int(y[index])}, past the 64-bit signed range MongoDB stores "
                           f"(at most 2**63-1). Use smaller class numbers, or strings.")
