"""What killed writers leave behind is never visible, and is gone after the next save or `fsck`."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from datetime import timedelta

import numpy as np
import pytest
from bson import Binary, ObjectId
from polling import wait_for_quiet, wait_until

import tensorlab
from tensorlab.cli import main as cli_main
from tensorlab.errors import IntegrityError

SAVER = """
import sys, numpy as np, tensorlab
db = tensorlab.connect(sys.argv[1], db=sys.argv[2], study="test", payload_files=sys.argv[3] == "files")
rng = np.random.default_rng(int(sys.argv[4]))
print("saving", flush=True)
while True:  # distinct, incompressible arrays: several GridFS chunks or one file each
    db.save_parameters([rng.random(300_000, dtype=np.float32) for _ in range(4)], {"kind": "killed"})
"""


def _invariants(tdb) -> None:
    """Every visible version loads whole; every stored payload is named and every name is stored."""
    for doc in tdb.parameters.find_docs({"tags.kind": "killed"}):
        assert len(tdb.parameters.load(doc)) == 4
    assert tdb.blobs.pending.count() == 0
    assert tdb.collection("parameters").count_documents({"complete": False}) == 0
    files = {doc["_id"] for doc in tdb.collection("blobs.files").find({}, {"_id": 1})}
    assert set(tdb.collection("blobs.chunks").distinct("files_id")) <= files
    if tdb.blobs.uses_files:
        listed = {doc["_id"] for doc in tdb.collection("payload_files").find({}, {"_id": 1})}
        assert set(tdb.blobs.local_files.names()) == listed
        assert not list(tdb.blobs.local_files.folder.glob("??/.*.tmp"))
        files |= listed
    referenced = {entry["blob"] for doc in tdb.collection("parameters").find({}) for entry in doc["arrays"]}
    assert files == referenced  # no payload that no version names


def test_saves_killed_at_any_point_leave_nothing_after_the_next_save(any_tdb, mongo_uri):
    tdb, rng, kills = any_tdb, random.Random(11), 0  # kills that landed inside a save
    store = "files" if tdb.blobs.uses_files else "gridfs"
    for attempt in range(10):
        process = subprocess.Popen([sys.executable, "-c", SAVER, mongo_uri, tdb.db_name, store, str(attempt)],
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "saving"
        deadline = time.monotonic() + rng.uniform(0.02, 1.0)
        while time.monotonic() < deadline:
            for doc in tdb.parameters.find_docs({"tags.kind": "killed"}):  # never a partial version
                assert len(tdb.parameters.load(doc)) == 4
        process.kill()
        process.wait()  # reaped: its pid is gone, as after any real crash
        # counting GridFS chunks makes the server parse each 255 KB chunk (about 0.5 s per 100 here): on a busy
        # machine a few counts while the dead saver's last chunks land can take longer than the default 30 s
        assert wait_for_quiet(tdb, ("parameters", "blobs.files", "blobs.chunks", "payload_files", "payload_writes"),
                              timeout=120.0)
        kills += tdb.blobs.pending.count() > 0  # it died inside a save (the next one collects what it left)
    tdb.save_parameters([np.ones(10)], {"kind": "next"})  # the next save collects what the dead left
    assert tdb.blobs.pending.count() == 0 and tdb.collection("parameters").count_documents({"complete": False}) == 0
    # a write the dead had already sent can land after that collection; a minute later the next one sweeps again
    a_while_ago = tensorlab.clock.utc_now() - timedelta(minutes=2)
    tdb.collection("payload_writes").update_many({"swept": {"$exists": True}}, {"$set": {"swept": a_while_ago}})
    tdb.parameters.collect_dead_saves()
    assert tdb.collection("payload_writes").count_documents({}) == 0
    _invariants(tdb)
    report = tdb.fsck(repair=False)
    assert report.clean, report.lines()
    assert kills >= 3  # kills did land mid-save


def _plant_leftovers(tdb) -> dict:
    """Leftovers of writers from before the ledgers: nothing records them."""
    chunks = tdb.collection("blobs.chunks")
    chunks.insert_many([{"_id": ObjectId(), "files_id": ObjectId(), "n": n, "data": Binary(b"x" * 10)}
                        for n in range(3)])
    version = tdb.save_parameters([np.arange(1000, dtype=np.float64)], {"kind": "incomplete"})
    tdb.collection("parameters").update_one({"_id": version}, {"$set": {"complete": False}})
    planted = {"version": version}
    if tdb.blobs.uses_files:
        store = tdb.blobs.local_files
        store.write("deadbeef" * 8, b"orphan bytes")
        temporary = store.path("cafe" * 16).with_name(f".{'cafe' * 16}.x.tmp")
        temporary.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(b"half")
        os.utime(temporary, (time.time() - 7200, time.time() - 7200))
        big = np.random.default_rng(3).random(20_000)  # 160 KB: large enough to be a file
        kept = tdb.save_parameters([big], {"kind": "damaged"})
        digest = tdb.parameters.find_doc({"_id": kept})["arrays"][0]["blob"]
        store.path(digest).unlink()
        planted.update(missing=digest, temporary=temporary)
    return planted


def test_fsck_reports_then_removes_leftovers_and_names_missing_files(any_tdb, mongo_uri, capsys):
    tdb = any_tdb
    planted = _plant_leftovers(tdb)
    found = tdb.fsck(repair=False)
    assert found.orphan_chunks == 3 and found.incomplete_versions == 1
    assert tdb.collection("blobs.chunks").count_documents({}) >= 3  # a dry run changes nothing
    if tdb.blobs.uses_files:
        assert found.orphan_files == 1 and found.temporaries == 1 and found.missing_files == [planted["missing"]]
    argv = ["db", "fsck", "--uri", mongo_uri, "--db", tdb.db_name, "--study", "test"]
    assert cli_main([*argv, "--dry-run"]) == 1
    assert "GridFS chunks no file names: 3" in capsys.readouterr().out
    assert cli_main(argv) == 0
    again = tdb.fsck(repair=False)
    assert again.orphan_chunks == again.incomplete_versions == again.orphan_files == again.temporaries == 0
    assert tdb.collection("parameters").find_one({"_id": planted["version"]}) is None
    if tdb.blobs.uses_files:
        assert again.missing_files == [planted["missing"]] and not planted["temporary"].exists()
        with pytest.raises(IntegrityError, match="is missing"):
            tdb.find_parameters({"tags.kind": "damaged"})


IMPORTER = """
import sys, numpy as np, tensorlab
db = tensorlab.connect(sys.argv[1], db=sys.argv[2], study="test", payload_files=sys.argv[3] == "files")
X = np.random.default_rng(int(sys.argv[4])).random((6000, 784), dtype=np.float32)  # 18 MB: payloads of 4 MB
print("importing", flush=True)
while True:
    db.data.import_data(X, np.arange(6000) % 10, {"kind": "killed"}, chunk_bytes=2 * 1024 * 1024)
"""


def test_imports_killed_at_any_point_leave_no_payload_behind(tdb, mongo_uri):
    rng = random.Random(5)
    for attempt in range(8):
        process = subprocess.Popen([sys.executable, "-c", IMPORTER, mongo_uri, tdb.db_name, "files", str(attempt)],
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "importing"
        deadline = time.monotonic() + rng.uniform(0.1, 2.0)
        while time.monotonic() < deadline:
            assert tdb.data_count({"tags.kind": "killed"}) % 6000 == 0  # never part of an import
        if attempt == 7:  # the last one is killed only once an import of it committed, however busy the machine
            assert wait_until(lambda: tdb.data_count({"tags.kind": "killed"}) > 0, timeout=600)
        process.kill()
        process.wait()
        assert wait_for_quiet(tdb, ("sample_imports", "sample_chunk_data", "payload_files", "payload_writes"))
    tdb.data.import_data(np.zeros((10, 784), np.float32), np.zeros(10), {"kind": "next"})  # collects the dead
    committed = {m["_id"] for m in tdb.collection("sample_imports").find({"committed": True})}
    named = {doc["_id"] for doc in tdb.collection("payload_files").find({})}
    assert all(doc["metadata"]["import_id"] in committed for doc in tdb.collection("payload_files").find({}))
    assert set(tdb.blobs.local_files.names()) == {str(name) for name in named}
    assert tdb.blobs.pending.count() == 0
    assert len(tdb.find_data({"tags.kind": "killed"})[0]) == tdb.data_count({"tags.kind": "killed"})
    assert tdb.fsck(repair=False).clean
    assert tdb.collection("sample_imports").count_documents({"rolled_back": {"$exists": True}}) >= 1  # kills landed
