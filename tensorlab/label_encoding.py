"""Text class labels (`np.array(["cat", "dog", ...])`) for Keras, which only takes numbers.

TensorDB imports text labels, and Keras then failed mid-setup with `ValueError: Invalid dtype: str96`.
We chose to encode them rather than refuse them at import: the classes, sorted, become 0..n-1 (what
`sparse_categorical_crossentropy` wants), the list is stored with the run (`classes`), and
`Model.from_db(...).predict_labels(x)` gives the text back. A query's classes come from the data catalog
(the label counts of the imports it selects), so a stream is encoded batch by batch, never loaded whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .data_imports import catalog_entries, selected_imports
from .errors import InvalidInput


def is_text(labels: Any) -> bool:
    """True for an array of str/bytes labels (numpy 'U'/'S', or objects that are all strings)."""
    if not hasattr(labels, "dtype"):
        return False
    if labels.dtype.kind in "US":
        return True
    return labels.dtype.kind == "O" and labels.size > 0 and all(isinstance(v, (str, bytes)) for v in labels.flat)


class LabelMap:
    """Sorted class names <-> indices 0..n-1."""

    def __init__(self, classes: Iterable[Any]) -> None:
        self.classes = sorted({str(c) for c in classes})
        self._lookup = np.array(self.classes)

    def encode(self, labels: Any, what: str = "y") -> np.ndarray:
        values = np.asarray(labels).astype(str)
        index = np.searchsorted(self._lookup, values)
        index = np.clip(index, 0, max(len(self.classes) - 1, 0))
        unknown = values[self._lookup[index] != values] if len(self.classes) else values
        if unknown.size:
            raise InvalidInput(f"`{what}` holds the label {str(unknown.flat[0])!r}, which is not one of the classes "
                               f"{self.classes[:20]} the model is trained on; encode it or leave it out.")
        return index.astype("int64")

    def decode(self, indices: Any) -> np.ndarray:
        return self._lookup[np.asarray(indices, dtype="int64")]

    def class_weight(self, weights: Mapping[Any, float] | None) -> Mapping[Any, float] | None:
        """`class_weight={'cat': 2.0}` as Keras needs it ({0: 2.0})."""
        if not weights or not any(isinstance(k, str) for k in weights):
            return weights
        return {int(self.encode([k], "class_weight")[0]): v for k, v in weights.items()}


def _has_text(entry: Mapping[str, Any]) -> bool:
    return any(isinstance(item["label"], str) for item in entry.get("label_counts") or [])


def query_classes(db: Any, query: Mapping[str, Any]) -> list[Any] | None:
    """The labels of the imports a query selects, from the catalog's label counts (no sample is read); None when
    the study holds no text label (numbers, vectors): nothing to encode, and no import is counted."""
    entries = catalog_entries(db)
    if not any(_has_text(entry) for entry in entries):
        return None
    labels: set[Any] = set()
    for entry in selected_imports(db, query, entries):
        counts = entry.get("label_counts")
        if counts is None and entry.get("labelled", True):
            raise InvalidInput(f"The labels of import {entry['import_id']} are not listed in the data catalog, so "
                               "TensorLab cannot encode the text labels of this query before training; import integer "
                               "labels (e.g. np.unique(y, return_inverse=True)[1]) instead.")
        labels |= {item["label"] for item in counts or []}
    return sorted(labels, key=str)


def _encoded_batches(batches: Iterator[Any], label_map: LabelMap) -> Iterator[Any]:
    for batch in batches:
        if isinstance(batch, tuple) and len(batch) >= 2:
            yield (batch[0], label_map.encode(batch[1]), *batch[2:])
        else:
            yield batch


def encode_stream(batches: Iterator[Any], label_map: LabelMap) -> Iterator[Any]:
    """A stream's (x, y) batches with y encoded."""
    return _encoded_batches(iter(batches), label_map)


def text_label_classes(y: Any, validation: Any, stream_query: Mapping[str, Any] | None, db: Any) -> list[Any] | None:
    """The classes to encode, or None when the labels are numbers (nothing to do)."""
    arrays = [v for v in (y, validation) if is_text(v)]
    if stream_query is not None:
        classes = query_classes(db, stream_query) or []
        if not any(isinstance(c, str) for c in classes) and not arrays:
            return None
        for values in arrays:
            classes = [*classes, *np.unique(np.asarray(values).astype(str))]
        return sorted({str(c) for c in classes})
    if not arrays:
        return None
    return sorted({str(v) for values in arrays for v in np.unique(np.asarray(values).astype(str))})


def check_same_classes(stored: Sequence[str] | None, classes: Sequence[str] | None, run: str) -> None:
    """A resumed run must keep its label map: the same text labels in the same order."""
    if stored and classes and list(stored) != list(classes):
        raise InvalidInput(f"Run {run!r} was trained with classes {list(stored)[:20]} but this data has "
                           f"{list(classes)[:20]}; resume it with data holding the same classes, or start a new run.")


def encode_training_labels(db: Any, inputs: Any, validation_data: Any, keras_args: dict[str, Any]
                           ) -> tuple[Any, list[str] | None]:
    """Encode text labels of a fit's inputs in place (arrays, a stream, validation data, `class_weight`);
    returns (validation data, the classes or None when the labels are numbers)."""
    val_y = validation_data[1] if isinstance(validation_data, (tuple, list)) and len(validation_data) >= 2 else None
    query = inputs.stream.query if inputs.stream is not None else None
    classes = text_label_classes(inputs.y, val_y, query, db)
    if classes is None:
        return validation_data, None
    label_map = LabelMap(classes)
    if inputs.stream is not None:
        inputs.x = encode_stream(inputs.x, label_map)
    elif inputs.y is not None:
        inputs.y = label_map.encode(inputs.y, "y")
    if val_y is not None:
        validation_data = (validation_data[0], label_map.encode(val_y, "validation y"), *validation_data[2:])
    if keras_args.get("class_weight"):
        keras_args["class_weight"] = label_map.class_weight(keras_args["class_weight"])
    return validation_data, label_map.classes
