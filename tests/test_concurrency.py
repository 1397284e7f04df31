"""Several processes writing one study at once: every count and read equals what was acknowledged.

The managed server had lost updates of shared documents (a catalog, a count) when two processes wrote them
at the same moment: 2 importers x 12 imports read back 4,900-5,800 of 6,000 samples. These tests run real
processes against the real server and compare every way of reading the study with what the writers were
told had succeeded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

WRITER = r"""
import json, sys, numpy as np, tensorlab
uri, db_name, name, rounds, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
db = tensorlab.connect(uri, db=db_name, study="shared")
print("ready", flush=True)
sys.stdin.readline()  # everyone starts together
rng = np.random.default_rng(abs(hash(name)) % 2**32)
for r in range(rounds):
    if "import" in sys.argv[6:]:
        db.import_data(rng.normal(size=(size, 3)).astype("float32"), np.arange(size) % 5,
                       tags={"owner": name, "round": r, "split": "train"})
        print(json.dumps({"op": "import", "round": r, "count": size}), flush=True)
    if "retag" in sys.argv[6:] and r:
        changed = db.update_data_tags({"tags.owner": name, "tags.round": r - 1, "label": 0}, {"split": "valid"})
        print(json.dumps({"op": "retag", "round": r - 1, "count": changed}), flush=True)
    if "delete" in sys.argv[6:] and r:
        gone = db.delete_data({"tags.owner": name, "tags.round": r - 1, "label": 1})
        print(json.dumps({"op": "delete", "round": r - 1, "count": gone}), flush=True)
    if "save" in sys.argv[6:]:
        db.save_parameters([rng.normal(size=(64, 64)).astype("float32")], tags={"owner": name, "round": r})
        print(json.dumps({"op": "save", "round": r}), flush=True)
db.close()
print("done", flush=True)
"""


def _run_together(mongo_uri: str, db_name: str, writers: dict[str, tuple[int, int, list[str]]]) -> dict[str, list]:
    """Start one process per writer, release them at once, and return what each was told had succeeded."""
    processes = {name: subprocess.Popen([sys.executable, "-c", WRITER, mongo_uri, db_name, name, str(rounds),
                                         str(size), *ops], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for name, (rounds, size, ops) in writers.items()}
    for process in processes.values():
        assert process.stdout.readline().strip() == "ready"
    for process in processes.values():
        process.stdin.write("go\n")
        process.stdin.flush()
    acknowledged = {}
    for name, process in processes.items():
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, f"writer {name} failed"
        lines = out.splitlines()
        assert lines[-1] == "done"
        acknowledged[name] = [json.loads(line) for line in lines[:-1]]
    return acknowledged


def _assert_every_read_agrees(db, expected_total: int, tag_values: dict[str, list]) -> None:
    X, y = db.find_data({})
    assert db.data_count({}) == len(X) == len(y) == expected_total
    assert db.collection("samples").count_documents({"study": "shared"}) == expected_total  # the per-sample index
    queries = [{}, *({"label": label} for label in range(5)),
               *({f"tags.{key}": value} for key, values in tag_values.items() for value in values)]
    for query in queries:  # a count document either answers exactly or is not trusted
        exact = db.collection("samples").count_documents({"study": "shared", **query})
        assert db.data.count_from_documents(query) in (None, exact), query
        assert db.data_count(query) == exact, query


def test_two_importers_and_a_saver_at_once_lose_nothing(mongo_uri, db_name):
    import tensorlab

    size = 250
    acknowledged = _run_together(mongo_uri, db_name, {"a": (12, size, ["import"]), "b": (12, size, ["import"]),
                                                      "saver": (12, size, ["save"])})
    db = tensorlab.connect(mongo_uri, db=db_name, study="shared")
    try:
        _assert_every_read_agrees(db, 24 * size, {"owner": ["a", "b"], "round": list(range(12))})
        for name in ("a", "b"):
            assert db.data_count({"tags.owner": name}) == 12 * size
            assert len(db.find_data({"tags.owner": name})[0]) == 12 * size
            for r in (0, 11):
                assert db.data_count({"tags.owner": name, "tags.round": r}) == size
        assert db.data_count({"tags.split": "train"}) == 24 * size
        assert db.data_count({"label": 3}) == 24 * size // 5
        assert len(acknowledged["a"]) == len(acknowledged["b"]) == 12
    finally:
        db.client.drop_database(db_name)
        db.close()


def test_three_writers_importing_retagging_deleting_and_saving_agree_with_what_was_acknowledged(mongo_uri, db_name):
    import tensorlab

    rounds, size, ops = 10, 100, ["import", "retag", "delete", "save"]
    acknowledged = _run_together(mongo_uri, db_name, {name: (rounds, size, ops) for name in ("p", "q", "r")})
    db = tensorlab.connect(mongo_uri, db=db_name, study="shared")
    try:
        total = 0
        for name, events in acknowledged.items():
            imported = sum(e["count"] for e in events if e["op"] == "import")
            deleted = sum(e["count"] for e in events if e["op"] == "delete")
            retagged = sum(e["count"] for e in events if e["op"] == "retag")
            assert imported == rounds * size and deleted == (rounds - 1) * size // 5 == retagged
            total += imported - deleted
            assert db.data_count({"tags.owner": name}) == imported - deleted
            assert db.data_count({"tags.owner": name, "tags.split": "valid"}) == retagged
            assert db.data_count({"tags.owner": name, "label": 1}) == size // 5  # the last round's only
            assert len(db.find_all_parameters({"tags.owner": name})) == rounds
        _assert_every_read_agrees(db, total, {"owner": ["p", "q", "r"], "split": ["train", "valid"],
                                              "round": list(range(rounds))})
        assert db.data_count({"tags.split": "valid"}) == 3 * (rounds - 1) * size // 5
        assert len(db.find_data({"tags.split": "valid"})[0]) == 3 * (rounds - 1) * size // 5
        assert db.data_count({"label": 0}) == 3 * rounds * size // 5
        assert np.all(db.find_data({"label": 1})[1] == 1)
    finally:
        db.client.drop_database(db_name)
        db.close()


INCREMENTER = r"""
import sys, tensorlab
db = tensorlab.connect(sys.argv[1], db=sys.argv[2], study="shared")
for k in range(200):
    db.collection("counters").update_one({"_id": "c"}, {"$inc": {"n": 1}, "$set": {f"seen.{sys.argv[3]}_{k}": 1}},
                                         upsert=True)
"""


def test_the_server_applies_concurrent_updates_of_one_document_atomically(tdb, mongo_uri):
    """MongoDB's single-document atomicity, which FerretDB 1.24 lacks unpatched (4 x 300 $inc kept 347)."""
    processes = [subprocess.Popen([sys.executable, "-c", INCREMENTER, mongo_uri, tdb.db_name, str(i)])
                 for i in range(4)]
    assert all(process.wait(timeout=300) == 0 for process in processes)  # no upsert lost to DuplicateKeyError
    doc = tdb.collection("counters").find_one({"_id": "c"})
    assert doc["n"] == 800 and len(doc["seen"]) == 800
    info = tdb.client.admin.command("buildInfo")
    assert "ferretdbVersion" not in info or info.get("tensorlabAtomicWrites") is True
