"""Moving a lab without corrupting it (#26): a damaged export is refused before anything is written; a copy
or import killed half-way (or whose server dies) leaves a study nobody can read, and a re-run finishes it
exactly, whatever a reader did meanwhile; `db fsck` names every damaged payload; the CLI says what is wrong
in one line, never with a traceback."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import bson
import numpy as np
import pytest

import tensorlab
from tensorlab import IntegrityError, InvalidInput, StudyNotReady
from tensorlab.tensordb.server.localserver import LocalServer
from tensorlab.tensordb.transfer import study_export
from tensorlab.tensordb.transfer.export_check import MANIFEST
from tensorlab.tensordb.transfer.study_copy import DERIVED, PRIMARY, document_hash
from tensorlab.tensordb.transfer.study_export import export_study, import_study

STUDY = "moving"
PER_IMPORT = 4_000
SPLITS = ("a", "b", "c")
TOTAL = PER_IMPORT * len(SPLITS) + 1_000  # each split a payload file, the last import inline
TRANSFER_ID = f"transfer:{STUDY}"


def _fill(db) -> None:
    rng = np.random.default_rng(26)
    for split in SPLITS:
        db.import_data(rng.normal(size=(PER_IMPORT, 16)).astype("float32"), rng.integers(0, 10, PER_IMPORT),
                       {"split": split})
    db.import_data(rng.random((1_000, 16), dtype=np.float32), np.zeros(1_000, "int64"), {"split": "noise"})
    db.save_parameters([rng.random(100_000, dtype=np.float32), np.ones((10, 10), "float32")], {"kind": "w"})
    run = db.run_store.start("r1", hyper_parameters={"lr": 0.1})
    for step in range(50):
        db.train_log(step=step, run=run, loss=1.0 / (step + 1))
    db.flush_logs()
    db.run_store.finish(run, "finished")
    assert db.data_count() == TOTAL and db.runs({"name": "r1"})["name"].tolist() == ["r1"]  # builds derived lists


def _snapshot(db) -> dict:
    """What a complete copy of the study must read and hold."""
    return {"count": db.data_count(), "by_split": {s: db.data_count({"tags.split": s}) for s in SPLITS},
            "found": len(db.find_data({})[0]), "index": db.collection("samples").count_documents({"study": STUDY}),
            "docs": {name: {d["_id"]: document_hash(d) for d in db.collection(name).find({"study": STUDY})}
                     for name in (*PRIMARY, *DERIVED)}}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, mongo_uri):
    """A filled source study on the session's server, and its export (both shared by the module's tests)."""
    db = tensorlab.connect(mongo_uri, db=f"t_src_{uuid.uuid4().hex[:10]}", study=STUDY)
    _fill(db)
    _snapshot(db)  # whatever these reads build is built before the export
    folder = tmp_path_factory.mktemp("export") / STUDY
    export_study(db, folder, progress=False)
    yield SimpleNamespace(db_name=db.db_name, folder=folder, expected=_snapshot(db))
    db.client.drop_database(db.db_name)
    db.close()


@pytest.fixture
def target_db(mongo_uri):
    name = f"t_dst_{uuid.uuid4().hex[:10]}"
    yield name
    client = tensorlab.connect(mongo_uri, db=name, ignore_transfer=True)
    client.client.drop_database(name)
    client.close()


def _assert_nothing_written(mongo_uri, name):
    db = tensorlab.connect(mongo_uri, db=name, study=STUDY, ignore_transfer=True)
    held = {c: db.collection(c).count_documents({}) for c in (*PRIMARY, *DERIVED, "blobs.files", "blobs.chunks",
                                                            "payload_files", "tensorlab_state")}
    db.close()
    assert not any(held.values()), held


def _assert_complete(mongo_uri, name, expected):
    db = tensorlab.connect(mongo_uri, db=name, study=STUDY)  # no longer hidden
    assert db.data_count() == expected["count"]
    assert {s: db.data_count({"tags.split": s}) for s in SPLITS} == expected["by_split"]
    assert len(db.find_data({})[0]) == expected["found"]
    assert db.collection("samples").count_documents({"study": STUDY}) == expected["index"]  # per-sample index
    for collection, hashes in expected["docs"].items():  # derived lists too: replaced, never kept partial
        assert {d["_id"]: document_hash(d) for d in db.collection(collection).find({"study": STUDY})} == hashes
    db.close()


def _copy_of(lab, tmp_path, manifest_format=3) -> Path:
    folder = tmp_path / STUDY
    shutil.copytree(lab.folder, folder)
    if manifest_format == 2:  # as exports before file hashes: the digest pre-pass alone
        manifest = json.loads((folder / MANIFEST).read_text())
        manifest.pop("files")
        (folder / MANIFEST).write_text(json.dumps({**manifest, "format": 2}))
    return folder


def _flip(path: Path, fraction: float) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * fraction)] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path, by: int) -> None:
    path.write_bytes(path.read_bytes()[:-by])


def _edit_run(path: Path) -> None:
    docs = list(bson.decode_file_iter(path.open("rb")))
    docs[0]["name"] = "edited"
    path.write_bytes(b"".join(bson.encode(doc) for doc in docs))


DAMAGES = {
    "flipped byte in samples.bson": ("samples.bson", lambda f: _flip(f / "samples.bson", 0.61)),
    "flipped byte near the start of samples.bson": ("samples.bson", lambda f: _flip(f / "samples.bson", 0.0001)),
    "truncated parameters.bson": ("parameters.bson", lambda f: _truncate(f / "parameters.bson", 7)),
    "edited document in runs.bson": ("runs.bson", lambda f: _edit_run(f / "runs.bson")),
    "flipped byte in a payload": ("blobs.chunks.bson", lambda f: _flip(f / "blobs.chunks.bson", 0.5)),
}


@pytest.mark.parametrize("manifest_format", [3, 2])
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_export_is_refused_before_anything_is_written(lab, tmp_path, mongo_uri, target_db, damage,
                                                                manifest_format):
    folder = _copy_of(lab, tmp_path, manifest_format)
    named, apply = DAMAGES[damage]
    apply(folder)
    target = tensorlab.connect(mongo_uri, db=target_db, study=STUDY)
    with pytest.raises(IntegrityError, match=f"{named}|blobs.files.bson") as raised:
        import_study(folder, target, progress=False)
    assert "Nothing was imported" in str(raised.value)
    target.close()
    _assert_nothing_written(mongo_uri, target_db)


def test_an_export_of_the_previous_format_still_imports_verified(lab, tmp_path, mongo_uri, target_db):
    folder = _copy_of(lab, tmp_path, manifest_format=2)
    report = import_study(folder, tensorlab.connect(mongo_uri, db=target_db, study=STUDY), progress=False)
    assert report.ok, report.lines()
    _assert_complete(mongo_uri, target_db, lab.expected)
    manifest = json.loads((lab.folder / MANIFEST).read_text())
    assert manifest["format"] == 3 and manifest["files"]["samples.bson"]["bytes"] == \
        (lab.folder / "samples.bson").stat().st_size and len(manifest["files"]["samples.bson"]["sha256"]) == 64


def _cli(*argv, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tensorlab.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **options)


def _kill_once_inserting(process, db, collection="samples") -> int:
    """SIGKILL `process` once the target holds a random number of `collection` documents (not all of them).
    The count is polled with the server's cheap estimate (a full count scans, and on a quiet machine the
    transfer could finish inserting between the check and the kill)."""
    threshold = random.Random().randint(1, PER_IMPORT * len(SPLITS) // 2)
    deadline = time.monotonic() + 300
    while db.collection(collection).estimated_document_count() < threshold:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the transfer never started inserting"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return db.collection(collection).count_documents({})


def _kill_half_way(argv, reader, mongo_uri, target_db, total: int) -> int:
    """Start the transfer and kill it while `samples` is partly written; a kill that landed after the last
    sample (the machine outran the poll) is tried again on an emptied target, up to three times."""
    for _ in range(3):
        killed_at = _kill_once_inserting(_cli(*argv), reader)
        if killed_at < total:
            return killed_at
        reader.client.drop_database(target_db)
    return killed_at


def _assert_hidden(mongo_uri, target_db, reader, kind):
    with pytest.raises(StudyNotReady, match=f"being {kind}.* by .* pid .* since .*Re-running the same"):
        tensorlab.connect(mongo_uri, db=target_db, study=STUDY)
    with pytest.raises(StudyNotReady):  # a reader connected before the transfer builds nothing from it
        reader.data_count()
    assert reader.collection("sample_catalog").count_documents({}) == 0


def _race_a_reader(mongo_uri, target_db):
    """What a reader that checked just before the marker was written may do: build the catalog, counts and
    indexes from the partial study (as the reads of #26 did), then the marker is there again."""
    hidden = tensorlab.connect(mongo_uri, db=target_db, study=STUDY, ignore_transfer=True)
    state = hidden.collection("tensorlab_state")
    marker = state.find_one({"_id": TRANSFER_ID})
    state.delete_one({"_id": TRANSFER_ID})
    racing = tensorlab.connect(mongo_uri, db=target_db, study=STUDY)
    partial = racing.data_count()
    racing.runs({"name": "r1"})
    racing.close()
    state.insert_one(marker)
    hidden.close()
    return partial


def test_a_killed_import_stays_hidden_and_a_rerun_finishes_it_whatever_was_read(lab, mongo_uri, target_db):
    reader = tensorlab.connect(mongo_uri, db=target_db, study=STUDY)  # connected before the import began
    argv = ("import", str(lab.folder), "--uri", mongo_uri, "--db", target_db)
    killed_at = _kill_half_way(argv, reader, mongo_uri, target_db, lab.expected["index"])
    assert killed_at < lab.expected["index"], "the kill must land half-way through the import"
    _assert_hidden(mongo_uri, target_db, reader, "imported")
    _race_a_reader(mongo_uri, target_db)
    rerun = _cli(*argv)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out + err
    assert "verified: every document and payload matches" in out
    _assert_complete(mongo_uri, target_db, lab.expected)
    assert reader.data_count() == lab.expected["count"]  # the early reader now sees it all
    reader.close()


def test_a_killed_copy_stays_hidden_and_a_rerun_finishes_it(lab, mongo_uri, target_db):
    reader = tensorlab.connect(mongo_uri, db=target_db, study=STUDY)
    argv = ("copy", "--from", mongo_uri, "--to", mongo_uri, "--db", lab.db_name, "--to-db", target_db,
            "--study", STUDY)
    killed_at = _kill_half_way(argv, reader, mongo_uri, target_db, lab.expected["index"])
    assert killed_at < lab.expected["index"], "the kill must land half-way through the copy"
    _assert_hidden(mongo_uri, target_db, reader, "copied")
    rerun = _cli(*argv)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out + err
    _assert_complete(mongo_uri, target_db, lab.expected)
    again = _cli(*argv)  # a re-run after a complete copy: allowed, nothing to do, verified
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0 and "verified" in out and "(0 copied now)" in out, out + err
    reader.close()


def test_a_reader_that_built_from_a_partial_import_does_not_poison_the_rerun(lab, mongo_uri, target_db,
                                                                             monkeypatch):
    original = study_export.insert_missing

    def killed_in_chunks(target, docs, query, bar=None):  # dies after the first chunk description
        if target.name == "sample_chunks":
            original(target, list(docs)[:1], query)
            raise KeyboardInterrupt("killed")
        return original(target, docs, query, bar)

    monkeypatch.setattr(study_export, "insert_missing", killed_in_chunks)
    target = tensorlab.connect(mongo_uri, db=target_db, study=STUDY)
    with pytest.raises(KeyboardInterrupt):
        import_study(lab.folder, target, progress=False)
    monkeypatch.undo()
    assert 0 < _race_a_reader(mongo_uri, target_db) < TOTAL  # as in #26: a catalog of part of the imports
    report = import_study(lab.folder, target, progress=False)
    assert report.ok, report.lines()
    _assert_complete(mongo_uri, target_db, lab.expected)
    target.close()


def test_a_study_holding_other_documents_is_refused_unless_merging(lab, mongo_uri, target_db):
    target = tensorlab.connect(mongo_uri, db=target_db, study=STUDY)
    target.import_data(np.zeros((7, 16), "float32"), np.zeros(7, "int64"), {"split": "own"})
    with pytest.raises(InvalidInput, match="already holds documents.*--merge"):
        import_study(lab.folder, target, progress=False)
    assert target.collection("samples").count_documents({}) == 7
    assert target.collection("tensorlab_state").find_one({"_id": TRANSFER_ID}) is None
    report = import_study(lab.folder, target, progress=False, merge=True)
    assert report.ok, report.lines()
    merged = tensorlab.connect(mongo_uri, db=target_db, study=STUDY)
    assert merged.data_count() == lab.expected["count"] + 7  # lists rebuilt from both
    assert merged.data_count({"tags.split": "own"}) == 7 and len(merged.find_data({})[0]) == TOTAL + 7
    merged.close()
    target.close()


def _flip_document(collection, doc_id, path):
    doc = collection.find_one({"_id": doc_id})
    value = doc
    for key in path[:-1]:
        value = value[key]
    data = bytearray(value[path[-1]])
    data[len(data) // 2] ^= 0xFF
    collection.update_one({"_id": doc_id}, {"$set": {".".join(path): bson.Binary(bytes(data))}})


def test_fsck_names_every_damaged_payload_and_keeps_it(tdb, mongo_uri):
    rng = np.random.default_rng(3)
    tdb.import_data(rng.random((1_000, 300), dtype=np.float32), np.zeros(1_000), {"k": "file"})  # a payload file
    tdb.import_data(np.zeros((10, 4), "float32"), np.zeros(10), {"k": "inline"})
    tdb.save_parameters([rng.random(50_000, dtype=np.float32), np.arange(20, dtype="float32")])
    assert tdb.fsck(repair=False).clean
    chunks = list(tdb.collection("sample_chunk_data").find({}))
    file_chunk = next(d["x"]["file"] for d in chunks if "file" in d["x"])
    inline_chunk = next(d["_id"] for d in chunks if "payload" in d["x"])
    big_blob, small_blob = (entry["blob"] for entry in tdb.collection("parameters").find_one({})["arrays"])
    for name in (file_chunk, big_blob):
        _flip(tdb.blobs.local_files.path(str(name)), 0.5)
    gridfs_chunk = tdb.collection("blobs.chunks").find_one({"files_id": small_blob})
    _flip_document(tdb.collection("blobs.chunks"), gridfs_chunk["_id"], ["data"])
    _flip_document(tdb.collection("sample_chunk_data"), inline_chunk, ["x", "payload"])

    report = tdb.fsck(repair=False)
    damaged = "\n".join(report.damaged)
    assert len(report.damaged) == 4 and not report.clean
    for name in (file_chunk, big_blob, small_blob, inline_chunk):
        assert str(name) in damaged
    argv = ["db", "fsck", "--uri", mongo_uri, "--db", tdb.db_name, "--study", "test"]
    dry = subprocess.run([sys.executable, "-m", "tensorlab.cli", *argv, "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 1 and "payloads damaged (kept" in dry.stdout and str(big_blob) in dry.stdout
    repaired = subprocess.run([sys.executable, "-m", "tensorlab.cli", *argv], capture_output=True, text=True)
    assert "Traceback" not in repaired.stderr and "damaged or missing payloads" in repaired.stdout
    assert tdb.blobs.local_files.path(str(big_blob)).exists() and tdb.blobs.is_stored(small_blob)  # never deleted
    assert len(tdb.fsck(repair=False).damaged) == 4


def _assert_one_line_error(result, status, *words):
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("tensorlab: error: "), result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def _run(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tensorlab.cli", *argv], capture_output=True, text=True,
                          timeout=300)


def test_cli_export_errors_are_one_line(lab, tmp_path, mongo_uri):
    source = ("--uri", mongo_uri, "--db", lab.db_name)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    _assert_one_line_error(_run("export", "--to", str(a_file), *source, "--study", STUDY), 2, "existing file")
    if os.geteuid() == 0:  # root writes through permissions: use a folder no one may create anything in
        read_only = Path("/sys/tensorlab-export")
    else:
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o555)
    _assert_one_line_error(_run("export", "--to", str(read_only), *source, "--study", STUDY), 2, "Cannot create")
    _assert_one_line_error(_run("export", "--to", str(tmp_path / "out"), *source, "--study", "nosuch"), 2,
                           "No study 'nosuch'", f"'{STUDY}'")
    assert not (tmp_path / "out").exists()


def test_cli_import_errors_are_one_line(lab, tmp_path, mongo_uri, target_db):
    target = ("--uri", mongo_uri, "--db", target_db)
    folder = _copy_of(lab, tmp_path)
    manifest = (folder / MANIFEST).read_text()
    (folder / MANIFEST).write_text(manifest[: len(manifest) // 2])
    _assert_one_line_error(_run("import", str(folder), *target), 2, "is not JSON")
    (folder / MANIFEST).write_text(json.dumps({k: v for k, v in json.loads(manifest).items() if k != "study"}))
    _assert_one_line_error(_run("import", str(folder), *target), 2, "lacks study")
    (folder / MANIFEST).write_text(manifest)
    chunks = folder / "blobs.chunks.bson"
    chunks.write_bytes(chunks.read_bytes()[: chunks.stat().st_size // 3])
    _assert_one_line_error(_run("import", str(folder), *target), 1, "blobs.chunks.bson", "Nothing was imported")
    _assert_nothing_written(mongo_uri, target_db)


def test_cli_import_whose_server_dies_says_rerun_and_the_rerun_finishes(lab, tmp_path):
    server = LocalServer(tmp_path / "server")
    info = server.start()
    try:
        target = tensorlab.connect(info.uri, db="lab", study=STUDY)
        importing = _cli("import", str(lab.folder), "--uri", info.uri, "--db", "lab")
        while target.collection("samples").count_documents({}) == 0:
            assert importing.poll() is None, importing.communicate()
        os.kill(info.pid, signal.SIGKILL)  # the server dies under the import
        out, err = importing.communicate(timeout=120)
        assert importing.returncode == 2 and "Traceback" not in err, (out, err)
        last = err.strip().splitlines()[-1]  # after the progress bars
        assert last.startswith("tensorlab: error: ") and "re-run the same command" in last, err
        target.close()
        info = server.start()
        rerun = _run("import", str(lab.folder), "--uri", info.uri, "--db", "lab")
        assert rerun.returncode == 0 and "verified" in rerun.stdout, (rerun.stdout, rerun.stderr)
        _assert_complete(info.uri, "lab", lab.expected)
    finally:
        server.stop()
