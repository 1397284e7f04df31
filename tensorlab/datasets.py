"""Real small datasets that need no download: scikit-learn's digits always; MNIST when its file is local."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import NotFound

MNIST_FILE = "mnist.npz"


def load_digits(validation_fraction: float = 0.2, seed: int = 0, flat: bool = True):
    """((x_train, y_train), (x_valid, y_valid)) from scikit-learn's digits, scaled to [0, 1] float32."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    X = (digits.images / 16.0).astype(np.float32)
    X = X.reshape(len(X), -1) if flat else X[..., None]
    order = np.random.default_rng(seed).permutation(len(X))
    X, y = X[order], digits.target[order].astype(np.int64)
    cut = int(len(X) * (1 - validation_fraction))
    return (X[:cut], y[:cut]), (X[cut:], y[cut:])


def mnist_path() -> Path:
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return keras_home / "datasets" / MNIST_FILE


def load_mnist(path: str | os.PathLike | None = None):
    """MNIST via Keras' loader, only from a file already on disk (no download at run time)."""
    target = Path(path) if path else mnist_path()
    if not target.is_file():
        raise NotFound(f"MNIST is not on this machine ({target} is missing). Copy mnist.npz there (Keras' "
                       "format), pass path=..., or use tensorlab.datasets.load_digits(), which ships with "
                       "scikit-learn.")
    import keras

    return keras.datasets.mnist.load_data(path=str(target.resolve()))
