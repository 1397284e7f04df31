"""TensorLab: a notebook-first lab for deep-learning experiments, with everything logged to MongoDB.

`import tensorlab` stays light: Keras is imported only when a training class is first used.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    AuthenticationFailed,
    ConnectionFailed,
    IntegrityError,
    InvalidInput,
    JobError,
    NotFound,
    ServerError,
    StorageFull,
    StudyNotReady,
    TensorLabError,
    UnsafeOperation,
)
from .tensordb import LocalServer, TensorDB, connect

__version__ = "0.1.0"

# Training classes import Keras, so they load on first use; they are public all the same.
_LAZY = {"DBLogger": ".db_logger", "Model": ".model", "dblogger": ".model", "train_in_background": ".background",
         "TrainingHandle": ".background", "train_cell": ".cell_training", "rerun": ".reruns",
         "push_rerun": ".reruns"}
_LAZY_MODULES = ("continuous", "datasets", "devices", "sweeps", "plans", "worker", "widgets", "magics")

__all__ = [
    "AuthenticationFailed",
    "ConnectionFailed",
    "DBLogger",
    "IntegrityError",
    "InvalidInput",
    "JobError",
    "LocalServer",
    "Model",
    "NotFound",
    "ServerError",
    "StorageFull",
    "StudyNotReady",
    "TensorDB",
    "TensorLabError",
    "TrainingHandle",
    "UnsafeOperation",
    "connect",
    "dblogger",
    "load_ipython_extension",
    "push_rerun",
    "rerun",
    "train_cell",
    "train_in_background",
]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_LAZY_MODULES})


def __getattr__(name: str) -> Any:
    """Import heavy (Keras) classes and submodules on first use only."""
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tensorlab' has no attribute {name!r}")


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the built front end of the lab extension lies in the package (`jupyter labextension develop .`
    links it into JupyterLab; wheels carry a copy under share/jupyter/labextensions/tensorlab)."""
    return [{"src": "lab/labextension", "dest": "tensorlab"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The server half of the lab extension lives in tensorlab.lab (`jupyter server extension enable tensorlab`)."""
    return [{"module": "tensorlab.lab"}]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tensorlab` registers the TensorLab magics."""
    from .magics import load_ipython_extension as register

    register(ipython)
