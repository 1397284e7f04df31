"""A full disk under the managed server: a clear TensorLab error, nothing partial visible, the lab still works.

The server's home is put on a small tmpfs (we run as root here and in CI), so both the payload files and
the server's own SQLite files really run out of space.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

import tensorlab
from tensorlab import StorageFull
from tensorlab.tensordb.server.localserver import LocalServer


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill_attempt(db, tag: str) -> None:
    rng = np.random.default_rng(0)
    db.import_data(rng.random((14_000, 784), dtype=np.float32), np.arange(14_000) % 10, tags={"k": tag})


def _assert_intact(db, expected: int) -> None:
    """What is visible is exactly the committed data, and the count documents agree with the catalog."""
    assert db.data_count() == expected == len(db.find_data({})[0])
    assert db.data_count({"tags.k": "too-big"}) == 0 and db.data_count({"tags.k": "too-big-gridfs"}) == 0
    assert db.data.counts.refresh(db.data.catalog.entries, write=False) == 0
    assert db.find_all_parameters({}) == []


def test_a_full_disk_is_a_clear_error_and_nothing_partial_stays(small_disk):
    server = LocalServer(small_disk / "home")
    info = server.start()
    files = tensorlab.connect(info.uri, db="full", study="s")
    gridfs = tensorlab.connect(info.uri, db="full", study="s", payload_files=False)
    try:
        files.import_data(np.ones((1000, 784), np.float32), np.arange(1000) % 10, tags={"k": "kept"})
        with pytest.raises(StorageFull, match="is full.*Nothing partial"):
            _fill_attempt(files, "too-big")  # the payload files run out of space; the rollback frees it again
        with pytest.raises(StorageFull):
            files.save_parameters([np.random.default_rng(1).random((12_000, 1000), dtype=np.float32)])
        _assert_intact(files, 1000)
        assert files.delete_data({"tags.k": "kept", "label": 0}) == 100  # space came back: deletes work
        _assert_intact(files, 900)
        with pytest.raises(StorageFull, match="is full"):
            _fill_attempt(gridfs, "too-big-gridfs")  # now the server's own files run out of space
        _assert_intact(files, 900)
        try:
            files.delete_data({"tags.k": "kept", "label": 1})
        except StorageFull:
            pass  # the server may need space to delete too: refused whole or done whole, never half-counted
        remaining = files.data_count()
        assert remaining in (800, 900)
        _assert_intact(files, remaining)
    finally:
        files.close()
        gridfs.close()
        server.stop()
