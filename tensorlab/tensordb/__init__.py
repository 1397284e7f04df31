"""TensorDB, the storage layer: the only package that speaks MongoDB (pymongo, gridfs, bson).

Everything above it (training, workers, widgets, magics) calls `TensorDB` and its stores' methods.
"""

from .database import DEFAULT_DB, DEFAULT_STUDY, TensorDB, connect
from .datastore import ImportResult
from .localserver import LocalServer
from .stream import DataStream

__all__ = ["DEFAULT_DB", "DEFAULT_STUDY", "DataStream", "ImportResult", "LocalServer", "TensorDB", "connect"]
