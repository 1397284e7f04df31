"""The study's data for the lab extension: imports grouped by tags, counts, a label histogram, a few samples.

Counts and labels come from the sample catalog (one document per study: every import with its tags, sample
count and count per label), so the summary costs one lookup however many samples the study holds; the
preview reads the first samples of one group (`find_data(limit=...)`: the first chunk or so).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .json_values import plain

PREVIEW_VALUES = 16  # what a sample that is not an image shows of itself
MAX_IMAGE_SIDE = 64


def _group_key(tags: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))


def data_summary(db: Any) -> dict[str, Any]:
    """Imports grouped by their tags (samples, imports, dtype, shape, labels) and the study's label histogram."""
    groups: dict[str, dict[str, Any]] = {}
    labels: dict[str, int] = {}
    total = 0
    for entry in db.data.catalog.entries():
        tags = entry.get("tags") or {}
        group = groups.setdefault(_group_key(tags), {"key": _group_key(tags), "tags": tags, "samples": 0,
                                                     "imports": 0, "dtype": entry.get("dtype"),
                                                     "sample_shape": list(entry.get("sample_shape") or []),
                                                     "labels": {}})
        group["samples"] += entry.get("count", 0)
        group["imports"] += 1
        total += entry.get("count", 0)
        for item in entry.get("label_counts") or []:
            label = str(item.get("label"))
            group["labels"][label] = group["labels"].get(label, 0) + item.get("count", 0)
            labels[label] = labels.get(label, 0) + item.get("count", 0)
    return plain({"samples": total, "groups": sorted(groups.values(), key=lambda g: g["key"]),
                  "labels": dict(sorted(labels.items(), key=lambda item: _label_order(item[0])))})


def _label_order(label: str) -> tuple[int, Any]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def _image(sample: np.ndarray) -> np.ndarray | None:
    """A 2-D grey image from a sample (a square vector, HxW, HxWx1 or HxWx3 averaged), or None."""
    array = np.asarray(sample, dtype=np.float64)
    if array.ndim == 1:
        side = int(round(math.sqrt(array.size)))
        if side * side != array.size or side < 4:
            return None
        array = array.reshape(side, side)
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        array = array[..., :3].mean(axis=-1)
    if array.ndim != 2 or max(array.shape) > MAX_IMAGE_SIDE * 4:
        return None
    step = max(1, math.ceil(max(array.shape) / MAX_IMAGE_SIDE))
    return array[::step, ::step]


def _preview(sample: np.ndarray) -> dict[str, Any]:
    image = _image(sample)
    if image is None:
        flat = np.asarray(sample, dtype=np.float64).ravel()
        return {"values": plain([round(float(v), 4) for v in flat[:PREVIEW_VALUES]]), "size": int(flat.size)}
    finite = image[np.isfinite(image)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = np.nan_to_num((image - low) / ((high - low) or 1.0)) * 255
    return {"image": {"height": int(image.shape[0]), "width": int(image.shape[1]),
                      "grey": scaled.clip(0, 255).astype(np.uint8).ravel().tolist()}}


def data_samples(db: Any, tags: dict[str, Any] | None, count: int) -> dict[str, Any]:
    """The first `count` samples of one tag group (or of the study), as small grey images or a few values."""
    query = {f"tags.{k}": v for k, v in (tags or {}).items()}
    X, y = db.find_data(query, limit=count)
    labels = [None] * len(X) if y is None else plain(list(y))
    return {"shape": list(X.shape[1:]), "dtype": str(X.dtype),
            "samples": [{"label": label, **_preview(x)} for x, label in zip(X, labels, strict=False)]}
