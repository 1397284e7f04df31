"""TensorLab: a notebook-first lab for deep-learning experiments, with everything logged to MongoDB.

`import tensorlab` stays light: Keras is imported only when a training class is first used.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    AuthenticationFailed,
    ConnectionFailed,
    InvalidInput,
    JobError,
    NotFound,
    ServerError,
    TensorLabError,
    UnsafeOperation,
)
from .localserver import LocalServer
from .tensordb import TensorDB, connect

__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailed",
    "ConnectionFailed",
    "InvalidInput",
    "JobError",
    "LocalServer",
    "NotFound",
    "ServerError",
    "TensorDB",
    "TensorLabError",
    "UnsafeOperation",
    "connect",
    "load_ipython_extension",
]

_LAZY = {"DBLogger": ".db_logger", "Model": ".model", "dblogger": ".model", "train_in_background": ".background",
         "TrainingHandle": ".background"}


_LAZY_MODULES = {"continuous", "datasets", "devices", "sweeps", "worker", "widgets", "magics"}


def __getattr__(name: str) -> Any:
    """Import heavy (Keras) classes and submodules on first use only."""
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tensorlab' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tensorlab` registers the TensorLab magics."""
    from .magics import load_ipython_extension as register

    register(ipython)
