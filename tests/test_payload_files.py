"""Payloads as files beside the managed server: where they go, what reads them, and what is refused."""

from __future__ import annotations

import os

import lz4.frame
import numpy as np
import pytest

import tensorlab
from tensorlab.errors import IntegrityError, TensorLabError
from tensorlab.tensordb.payloads import codec
from tensorlab.tensordb.payloads.blobstore import BlobStore
from tensorlab.tensordb.payloads.payload_files import StoreAdvert, discover
from tensorlab.tensordb.server.payload_advert import ADVERT, ADVERT_ID, SERVER_DB, TOKEN_FILE


def _file_of(tdb, name: str):
    return tdb.blobs.local_files.path(str(name))


def _read_with_standard_tools(path, meta) -> np.ndarray:
    """What any program can do with a payload file and its document: lz4 (or nothing), then numpy."""
    data = path.read_bytes()
    raw = np.frombuffer(lz4.frame.decompress(data) if meta["codec"] == "lz4frame" else data, np.uint8)
    if meta["shuffled"]:
        raw = raw.reshape(np.dtype(meta["dtype"]).itemsize, -1).T.copy()
    return raw.view(meta["dtype"]).reshape(meta["shape"])


def test_the_managed_server_advertises_a_file_store_its_clients_use(tdb):
    assert tdb.blobs.uses_files
    advert = tdb.client[SERVER_DB][ADVERT].find_one({"_id": ADVERT_ID})
    assert (tdb.blobs.local_files.root / TOKEN_FILE).read_text() == advert["token"]
    weights = [np.random.default_rng(0).normal(size=(300, 200)).astype(np.float32),  # incompressible: raw
               np.linspace(0, 1, 600_000, dtype=np.float32).reshape(3000, 200)]  # compressible: lz4, shuffled
    version = tdb.parameters.find_doc({"_id": tdb.save_parameters(weights)})
    assert tdb.collection("blobs.files").count_documents({}) == 0  # nothing went to GridFS
    codecs = []
    for entry, array in zip(version["arrays"], weights, strict=True):
        doc = tdb.collection("payload_files").find_one({"_id": entry["blob"]})
        path = _file_of(tdb, entry["blob"])
        assert path.parent.parent == tdb.blobs.local_files.root / tdb.db_name
        assert path.stat().st_size == doc["length"]
        np.testing.assert_array_equal(_read_with_standard_tools(path, doc["metadata"]), array)
        codecs.append(doc["metadata"]["codec"])
    assert codecs == ["raw", "lz4frame"]
    for stored, array in zip(tdb.find_parameters(), weights, strict=True):
        np.testing.assert_array_equal(stored, array)


def test_sample_chunks_stream_from_files_and_deletes_remove_them(tdb):
    rng = np.random.default_rng(1)
    X = rng.random((3000, 784), dtype=np.float32)  # incompressible: about 9 MB over three chunks
    y = rng.integers(0, 10, 3000)
    tdb.data.import_data(X, y, {"split": "train"}, chunk_bytes=4 * 1024 * 1024)
    names = [str(doc["x"]["file"]) for doc in tdb.collection("sample_chunk_data").find({}, {"x.file": 1})]
    assert len(names) == 3 and all(_file_of(tdb, name).exists() for name in names)
    streamed = [xb for xb, _ in tdb.data_generator({"tags.split": "train"}, batch_size=500, shuffle=False)]
    np.testing.assert_array_equal(np.concatenate(streamed), X)
    tdb.delete_data({"tags.split": "train"})
    assert not any(_file_of(tdb, name).exists() for name in names)
    assert tdb.collection("payload_files").count_documents({}) == 0


def test_a_damaged_file_is_detected_and_a_missing_one_is_named(tdb):
    weights = [np.random.default_rng(2).random((200, 200), dtype=np.float32)]
    version = tdb.parameters.find_doc({"_id": tdb.save_parameters(weights)})
    path = _file_of(tdb, version["arrays"][0]["blob"])
    original = path.read_bytes()
    for position in (0, 100, len(original) - 1):
        damaged = bytearray(original)
        damaged[position] ^= 0x01
        path.write_bytes(bytes(damaged))
        with pytest.raises(IntegrityError, match="Parameter blob"):
            tdb.find_parameters()
    path.write_bytes(original[:-10])  # truncated
    with pytest.raises(IntegrityError, match="10 bytes short|of .* bytes"):
        tdb.find_parameters()
    path.unlink()
    with pytest.raises(IntegrityError, match="is missing"):
        tdb.find_parameters()
    path.write_bytes(original)
    np.testing.assert_array_equal(tdb.find_parameters()[0], weights[0])


def test_a_failed_write_leaves_no_file_and_no_name(tdb, monkeypatch):
    real_fsync = os.fsync

    def failing_fsync(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(tensorlab.StorageFull, match="is full"):  # a TensorLab error, not a raw OSError
        tdb.save_parameters([np.random.default_rng(4).random(20_000)])
    monkeypatch.setattr(os, "fsync", real_fsync)
    folder = tdb.blobs.local_files.folder
    assert not folder.exists() or not any(path.is_file() for path in folder.rglob("*"))  # no temporary left
    assert tdb.collection("payload_files").count_documents({}) == 0
    with pytest.raises(tensorlab.NotFound):
        tdb.find_parameters()  # the half-saved version never became visible


def test_a_store_this_process_cannot_reach_is_never_written_and_reads_say_why(tdb):
    weights = np.random.default_rng(5).random(40_000, dtype=np.float32)
    tdb.save_parameters([weights])
    digest = codec.content_hash(weights)
    elsewhere = StoreAdvert(str(tdb.blobs.local_files.root), "another-machine", None)
    blobs = BlobStore(tdb.db, elsewhere)
    assert not blobs.uses_files
    with pytest.raises(TensorLabError, match="another-machine.*cannot read"):
        blobs.get_array(digest)
    other = np.random.default_rng(6).random(40_000, dtype=np.float32)
    blobs.put_array(other)  # a process that cannot reach the files writes to GridFS instead
    assert tdb.collection("blobs.files").count_documents({"_id": codec.content_hash(other)}) == 1
    np.testing.assert_array_equal(tdb.blobs.get_array(codec.content_hash(other)), other)  # and both read it


def test_a_folder_without_the_servers_token_is_not_taken_for_the_store(tdb, tmp_path):
    root = tdb.blobs.local_files.root
    advert = tdb.client[SERVER_DB][ADVERT].find_one({"_id": ADVERT_ID})
    assert discover(tdb.client, "x").files is not None
    (tmp_path / TOKEN_FILE).write_text("a copy's old token")
    fake = {**advert, "root": str(tmp_path)}
    tdb.client[SERVER_DB]["fake_advert"].insert_one(fake)
    try:
        found = discover(tdb.client, "x", adverts="fake_advert")
        assert found is not None and found.files is None and found.root == str(tmp_path)
    finally:
        tdb.client[SERVER_DB]["fake_advert"].drop()
    assert (root / TOKEN_FILE).read_text() == advert["token"]


def test_names_from_documents_cannot_leave_the_store(tdb):
    with pytest.raises(IntegrityError, match="not a store name"):
        tdb.blobs.local_files.path("../../etc/passwd")


def test_small_payloads_stay_in_gridfs_beside_the_file_store(tdb):
    tdb.save_parameters([np.zeros(10), np.random.default_rng(7).random(20_000)])
    assert tdb.collection("blobs.files").count_documents({}) == 1  # 80 bytes: one document, no file and fsync
    assert tdb.collection("payload_files").count_documents({}) == 1  # 160 KB: a file
    assert len(tdb.find_parameters()[1]) == 20_000


def test_payload_files_can_be_turned_off(gridfs_tdb):
    assert not gridfs_tdb.blobs.uses_files and gridfs_tdb.blobs.local_files is not None
    gridfs_tdb.save_parameters([np.random.default_rng(8).random(20_000)])
    assert gridfs_tdb.collection("blobs.files").count_documents({}) == 1
    assert gridfs_tdb.collection("payload_files").count_documents({}) == 0
