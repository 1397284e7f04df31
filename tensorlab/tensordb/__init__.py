"""TensorDB, the storage layer: the only package that speaks MongoDB (pymongo, gridfs, bson).

Everything above it (training, workers, widgets, magics) calls `TensorDB` (database.py, the one door) and
its stores' methods. The rooms, lowest first (each `__init__.py` says what it may import; tests/test_layout.py
checks it):

  documents/  what every store shares: Scope, `_id` helpers, index documents, markers
  server/     the managed server, its FerretDB build, URIs, connections, indexes, retries
  payloads/   array codec, content-addressed blobs (GridFS or payload files), writes in flight
  data/       samples and labels, imports, catalog, counts, query plans, the stream
  logs/       log rows, buckets, the asynchronous writer and readers
  models/     architectures, parameter versions, deployments
  runs/       run documents
  jobs/       the queue, claims, ready set, triggers, halving sweeps
  transfer/   copy, export and import of a study
  integrity/  fsck
"""

from .data.datastore import ImportResult
from .data.stream import DataStream
from .database import DEFAULT_DB, DEFAULT_STUDY, TensorDB, connect
from .server.localserver import LocalServer

__all__ = ["DEFAULT_DB", "DEFAULT_STUDY", "DataStream", "ImportResult", "LocalServer", "TensorDB", "connect"]
