"""Which way is better for a metric: asked of the metric, never guessed from a piece of its name.

Guessing (`"acc" in name`) minimised `val_precision` and maximised nothing it did not know. Keras
metrics carry `_direction` ('up' or 'down'), and Keras' own callbacks ask it and raise, asking for
`mode=`, when they cannot tell. We do the same, with a table of the metric names Keras compiles from
strings for when no model is at hand (stored runs, sweeps, the comparison panel). One helper serves
DBLogger, checkpoints, best-parameter searches, sweeps and panels, so they always agree.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidInput

MODES = ("auto", "min", "max")
HIGHER_IS_BETTER = frozenset({
    "accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "auc", "precision", "recall",
    "f1_score", "fbeta_score", "r2_score", "iou", "mean_iou", "binary_iou", "one_hot_iou", "one_hot_mean_iou",
    "precision_at_recall", "recall_at_precision", "sensitivity_at_specificity", "specificity_at_sensitivity",
    "true_positives", "true_negatives", "cosine_similarity",
})
LOWER_IS_BETTER = frozenset({
    "loss", "mae", "mse", "rmse", "mape", "msle", "mean_absolute_error", "mean_squared_error",
    "root_mean_squared_error", "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
    "crossentropy", "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "binary_focal_crossentropy", "categorical_focal_crossentropy", "kl_divergence", "kld", "poisson", "hinge",
    "squared_hinge", "categorical_hinge", "logcosh", "log_cosh", "huber", "false_positives", "false_negatives",
    "error", "error_rate",
})
_KNOWN = sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER, key=len, reverse=True)
_PREFIXES = ("val_", "eval_", "test_", "train_")


def base_name(metric: str) -> str:
    """`val_accuracy_1` -> `accuracy`: the split prefix and Keras' de-duplicating suffix removed."""
    name = metric
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return re.sub(r"_\d+$", "", name)


def _from_model(model: Any, name: str) -> str | None:
    """What the model's own metric object says (`_direction`), searching compiled metric containers."""
    pending, seen = list(getattr(model, "metrics", None) or []), 0
    while pending and seen < 1000:
        metric = pending.pop()
        seen += 1
        if getattr(metric, "name", None) == name and getattr(metric, "_direction", None) in ("up", "down"):
            return "max" if metric._direction == "up" else "min"
        pending.extend(getattr(metric, "metrics", None) or [])
    return None


def known_direction(metric: str, model: Any = None) -> str | None:
    """'max', 'min', or None when neither the model nor the table knows the metric."""
    name = base_name(metric)
    if name == "loss":
        return "min"
    if model is not None:
        found = _from_model(model, name)
        if found:
            return found
    for known in _KNOWN:  # exact name, or a multi-output name such as `dense_2_accuracy`
        if name == known or name.endswith("_" + known):
            return "max" if known in HIGHER_IS_BETTER else "min"
    return None


def metric_direction(metric: str, mode: str = "auto", model: Any = None) -> str:
    """'max' or 'min' for `metric`: `mode` when given, else what the metric says; raises when nothing does."""
    if mode not in MODES:
        raise InvalidInput(f"Invalid value for argument `mode`: {mode!r}. Expected one of {MODES}.")
    if mode != "auto":
        return mode
    if not isinstance(metric, str) or not metric:
        raise InvalidInput(f"Invalid metric name {metric!r}: expected a non-empty string such as 'val_loss'.")
    found = known_direction(metric, model)
    if found is None:
        raise InvalidInput(f"TensorLab cannot tell whether a higher or a lower {metric!r} is better. Pass "
                           "mode='max' (higher is better) or mode='min' (lower is better).")
    return found
