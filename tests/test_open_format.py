"""The storage format is open (#14): docs/FORMAT.md is enough to read a lab with pymongo, gridfs,
lz4.frame and numpy. The reader runs in a process that never imports tensorlab."""

from __future__ import annotations

import json
import subprocess
import sys

import gridfs
import numpy as np
import pytest

pytest.importorskip("keras")

READER = r"""
import json, sys
from pathlib import Path

import gridfs, lz4.frame, numpy as np, pymongo

uri, name, study = sys.argv[1:4]
client = pymongo.MongoClient(uri)
db = client[name]
codecs = []

def decode(payload, meta):                       # FORMAT.md, "Arrays"
    codecs.append(meta["codec"])
    data = lz4.frame.decompress(payload) if meta["codec"] == "lz4frame" else bytes(payload)
    raw = np.frombuffer(data, np.uint8)
    if meta["shuffled"]:
        raw = raw.reshape(np.dtype(meta["dtype"]).itemsize, -1).T.copy()
    return raw.view(meta["dtype"]).reshape(meta["shape"])

def payload(file_id):                            # FORMAT.md, "Payloads"
    doc = db["payload_files"].find_one({"_id": file_id})
    if doc is not None:
        root = client["tensorlab_server"]["payload_store"].find_one({"_id": "files"})["root"]
        return (Path(root) / name / str(file_id)[:2] / str(file_id)).read_bytes(), doc["metadata"]
    doc = db["blobs.files"].find_one({"_id": file_id})
    return gridfs.GridFSBucket(db, bucket_name="blobs").open_download_stream(file_id).read(), doc["metadata"]

def column(bucket, group, name, dtype):         # FORMAT.md, "Runs and logs"
    data = bytes(bucket[group][name])
    if bucket.get("packing") == "shuffle-lz4":
        raw = np.frombuffer(lz4.frame.decompress(data), np.uint8)
        return raw.reshape(np.dtype(dtype).itemsize, -1).T.copy().view(dtype).reshape(-1)
    return np.frombuffer(data, dtype)

def array(description):                          # inline, or a payload; described in the chunk document
    data = description["payload"] if "payload" in description else payload(description["file"])[0]
    return decode(data, description)

version = db["parameters"].find_one({"study": study, "complete": True, "tags.kind": "open"})
weights = [decode(*payload(entry["blob"])) for entry in version["arrays"]]

sample = db["samples"].find_one({"study": study, "tags.split": "open", "row": 3})
chunk = db["sample_chunk_data"].find_one({"_id": sample["chunk"]})
x, y = array(chunk["x"]), array(chunk["y"])

run = db["runs"].find_one({"study": study, "name": "open-run"})
index = db["log_index"].find_one({"_id": f"{study}:{run['_id']}"})
steps, losses = [], []
for stream in index["streams"].values():
    if stream["kind"] == "train":
        for seq in range(stream["buckets"]):
            bucket = db["log_buckets"].find_one({"_id": f"{study}:{run['_id']}:train:{stream['writer']}:{seq}"})
            steps += column(bucket, "columns", "step", "<i8").tolist()
            losses += column(bucket, "metrics", "loss", "<f8").tolist()

print(json.dumps({"tensorlab_imported": any(m.split(".")[0] == "tensorlab" for m in sys.modules),
                  "weights": [w.tolist() for w in weights], "sample": x[sample["row"]].tolist(),
                  "label": int(y[sample["row"]]), "steps": steps, "losses": losses, "codecs": codecs}))
"""


def test_a_lab_reads_with_pymongo_gridfs_lz4_frame_and_numpy_only(any_tdb, mongo_uri):
    tdb = any_tdb
    rng = np.random.default_rng(3)
    X = (rng.integers(-4, 5, size=(3000, 200)) / 8).astype("float32")  # compressible: an lz4 frame, shuffled
    y = rng.integers(0, 10, 3000)
    tdb.import_data(X, y, {"split": "open"})
    weights = [np.linspace(0, 1, 50_000, dtype="float32").reshape(250, 200),  # compressible
               rng.normal(size=(300, 200)).astype("float32")]  # noise: stored raw
    tdb.save_parameters(weights, {"kind": "open"})
    run = tdb.run_store.start("open-run")
    for step in range(1200):  # three buckets
        tdb.train_log(step=step, run=run, loss=1.0 / (step + 1))
    assert tdb.flush_logs()
    out = subprocess.run([sys.executable, "-c", READER, mongo_uri, tdb.db_name, tdb.study], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    read = json.loads(out.stdout)
    assert read["tensorlab_imported"] is False
    for got, want in zip(read["weights"], weights, strict=True):
        np.testing.assert_array_equal(np.asarray(got, dtype="float32"), want)
    np.testing.assert_array_equal(np.asarray(read["sample"], dtype="float32"), X[3])
    assert read["label"] == y[3]
    assert read["steps"] == list(range(1200)) and read["losses"] == [1.0 / (s + 1) for s in range(1200)]
    assert "lz4frame" in read["codecs"] and "raw" in read["codecs"]


def test_a_blob_reuploaded_by_a_standard_gridfs_client_still_loads(gridfs_tdb):
    """Readers trusted `metadata.chunk_ids`; a file re-uploaded with GridFSBucket (metadata kept) failed."""
    tdb = gridfs_tdb
    weights = np.linspace(-1, 1, 400_000, dtype="float32")  # over one GridFS chunk
    digest = tdb.parameters.find_doc({"_id": tdb.save_parameters([weights])})["arrays"][0]["blob"]
    bucket = gridfs.GridFSBucket(tdb.db, bucket_name="blobs")
    doc = tdb.collection("blobs.files").find_one({"_id": digest})
    payload = bucket.open_download_stream(digest).read()
    bucket.delete(digest)
    bucket.upload_from_stream_with_id(digest, doc["filename"], payload, metadata=doc["metadata"])
    assert tdb.collection("blobs.chunks").count_documents({"_id": {"$in": doc["metadata"]["chunk_ids"]}}) == 0
    np.testing.assert_array_equal(tdb.find_parameters()[0], weights)
