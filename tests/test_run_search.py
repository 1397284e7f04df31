"""Run search with sort and limit answers exactly what the server's own find().sort().limit() answers."""

from __future__ import annotations

import random

import numpy as np
import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from racing import race_in_rounds

import tensorlab
from tensorlab.tensordb.documents import equality_index
from tensorlab.tensordb.documents.packed_columns import unpack
from tensorlab.tensordb.runs import run_table

LRS = [0.1, 0.01, 0.001, 1, 1.0, 3]  # 1 and 1.0 are one value to MongoDB
ACCURACIES = [None, 0.5, 0.5, 0.7, 0.9, 0.91, 1, 0.2]  # ties, ints, and runs without the metric


@pytest.fixture(scope="module")
def lab(mongo_uri):
    with pytest.MonkeyPatch.context() as patch:  # shards and packed table rows with 150 runs, not thousands
        patch.setattr(equality_index, "HEAD_CAP", 8)
        patch.setattr(run_table, "COMPACT_AT", 3)
        yield from _filled_lab(mongo_uri)


def _filled_lab(mongo_uri):
    db_name = f"t_search_{random.randrange(10 ** 9)}"
    db = tensorlab.connect(mongo_uri, db=db_name, study="search")
    rng = random.Random(29)
    for i in range(150):
        run = db.run_store.start(f"r{i}", hyper_parameters={"lr": rng.choice(LRS), "units": rng.choice([32, 64])},
                                 tags={"group": rng.choice(["a", "b", ["a", "b"]])})
        accuracy = rng.choice(ACCURACIES)
        if rng.random() < 0.8:
            db.run_store.finish(run, rng.choice(["finished", "failed"]),
                                summary={"best": {} if accuracy is None else {"accuracy": accuracy,
                                                                              "loss": rng.random()}})
    yield db
    db.client.drop_database(db_name)
    db.close()


def test_the_lab_holds_packed_rows_for_every_run(lab):
    chunks = list(lab.collection("run_table").find({"study": "search"}))
    folded = [segment for chunk in chunks for segment in (chunk.get("segments") or {}).values()]
    assert sum(len(unpack(segment["ends"], "<u4", segment["packing"])) for segment in folded) >= 50
    assert lab.run_store.ids() == {doc["_id"] for doc in lab.collection("runs").find({"study": "search"})}


def _doc(version: int = 1, status: str = "finished", **best: float) -> dict:
    """A run document as a write leaves it, for RunTable.put."""
    return {"summary": {"best": best}, "status": status, "row_version": version}


def _server_answer(db, query: dict, field: str, direction: int, limit: int) -> list:
    scoped = {"study": "search", **query}
    docs = db.collection("runs").find(scoped, sort=[(field, direction), ("_id", 1)], limit=limit)
    return [doc["_id"] for doc in docs]


QUERIES = st.sampled_from([{}, {"hyper_parameters.lr": 0.01}, {"hyper_parameters.lr": 1}, {"tags.group": "a"},
                           {"hyper_parameters.lr": 0.1, "hyper_parameters.units": 64}, {"status": "failed"},
                           {"hyper_parameters.lr": 3, "tags.group": "b"}, {"hyper_parameters.lr": 0.5},
                           {"name": "r7"}, {"hyper_parameters.lr": 0.01, "status": "finished", "tags.group": "b"}])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=QUERIES, metric=st.sampled_from(["accuracy", "loss"]), direction=st.sampled_from([1, -1]),
       limit=st.integers(1, 40))
def test_sort_and_limit_equal_the_servers_answer(lab, query, metric, direction, limit):
    got = [doc["_id"] for doc in lab.run_store.find(query, sort=[(metric, direction)], limit=limit)]
    assert got == _server_answer(lab, query, f"summary.best.{metric}", direction, limit)


def test_a_row_in_flight_and_a_changed_summary_are_read_from_their_documents(lab):
    top = lab.runs({}, sort=[("accuracy", -1)], limit=3)
    run = lab.run_store.start("late", hyper_parameters={"lr": 0.01})
    lab.run_store.table.mark(run)  # a writer died after marking the run, before its row was put
    lab.collection("runs").update_one({"_id": run}, {"$set": {"summary": {"best": {"accuracy": 2.0}}}})
    assert lab.runs({}, sort=[("accuracy", -1)], limit=1)["name"].tolist() == ["late"]
    assert lab.runs({"hyper_parameters.lr": 0.01}, sort=[("accuracy", -1)], limit=1)["name"].tolist() == ["late"]
    lab.run_store.finish(run, "finished", summary={"best": {"accuracy": 0.0}})  # now through the table
    assert lab.runs({}, sort=[("accuracy", -1)], limit=3)["name"].tolist() == top["name"].tolist()


def test_other_sorts_and_bad_arguments(lab):
    by_start = lab.runs({"hyper_parameters.units": 32}, sort=[("started", -1)], limit=5)
    expected = _server_answer(lab, {"hyper_parameters.units": 32}, "started", -1, 5)
    assert by_start["run"].tolist() == expected
    for kwargs in ({"sort": "accuracy"}, {"sort": [("accuracy", 0)]}, {"limit": 0}, {"limit": 2.5}):
        with pytest.raises(tensorlab.InvalidInput):
            lab.runs({}, **kwargs)


def test_a_study_written_before_the_table_gets_its_rows_once(lab, mongo_uri):
    old = tensorlab.connect(mongo_uri, db=lab.db_name, study="search")
    old.collection("run_table").delete_many({"study": "search"})
    old.collection("tensorlab_state").delete_many({"_id": {"$regex": "^run_table"}})
    got = [doc["_id"] for doc in old.run_store.find({}, sort=[("accuracy", -1)], limit=10)]
    assert got == _server_answer(old, {}, "summary.best.accuracy", -1, 10)
    old.close()


def test_an_earlier_formats_documents_are_deleted_when_the_table_is_rebuilt(lab, mongo_uri):
    """A study last written by a TensorLab of 16-chunk `table4` documents (hot, cold and entries) is rebuilt in
    this format once; nothing reads the old documents, so the rebuild deletes them."""
    old = tensorlab.connect(mongo_uri, db=lab.db_name, study="search")
    table = old.collection("run_table")
    stale = [f"table4:search:{chunk}" for chunk in range(16)] + [f"table4:search:{chunk}:hot" for chunk in range(16)]
    stale += ["table4:search:key:tags.group=s%3A61", "table4:search:key:hyper_parameters.lr=n%3A3",
              "table4:search:key:\U0001f680=s%3A1"]  # any key, even one beginning past U+FFFF (UTF-8 byte order)
    table.insert_many([{"_id": key, "study": "search", "segments": {}} for key in stale])
    other = {"_id": "table4:search-other:3", "study": "search-other"}  # another study's: kept
    table.insert_one(other)
    old.collection("tensorlab_state").delete_one({"_id": f"{run_table.BUILT}-built:search"})
    got = [doc["_id"] for doc in old.run_store.find({}, sort=[("accuracy", -1)], limit=10)]
    assert got == _server_answer(old, {}, "summary.best.accuracy", -1, 10)
    assert table.count_documents({"_id": {"$in": stale}}) == 0
    assert table.find_one({"_id": other["_id"]}) == other
    table.delete_one({"_id": other["_id"]})
    old.close()


def test_a_newer_row_of_a_run_takes_its_older_pending_row_out(lab, monkeypatch):
    """Start and finish leave one pending row per run, not two: a chunk folds half as often."""
    monkeypatch.setattr(run_table, "COMPACT_AT", 10 ** 6)  # no fold here: the pending rows stay to be seen
    table = lab.run_store.table
    run_id = ObjectId()
    table.put(run_id, _doc(0, newer_rows=1.0))
    table.put(run_id, _doc(1, newer_rows=2.0))
    hot = lab.collection("run_table").find_one({"_id": table._hot_id(run_table._chunk_of(run_id))})
    mine = [key for key in hot.get("pending", {}) if key.startswith(str(run_id))]
    assert mine == [f"{run_id}_1"]
    table.put(run_id, _doc(0, newer_rows=3.0))  # an older put landing late: the newer row still wins
    assert _value(table, run_id, "newer_rows") == 2.0


def _value(table, run_id: ObjectId, metric: str) -> float:
    read = table.read()
    return float(read.column(metric)[[bytes(x).ljust(12, b"\0") for x in read.ids].index(run_id.binary)])


def test_rows_of_ids_ending_in_zero_bytes_keep_their_values(lab):
    """numpy's S12 drops trailing zero bytes: a pending row must still replace its packed row, not add one."""
    table = lab.run_store.table
    ids = [ObjectId(bytes(9) + bytes([7, n, 0])) for n in range(1, 6)]
    ids += [ObjectId(bytes(10) + bytes([n, 0])) for n in (1, 2)]
    for number, run_id in enumerate(ids):  # COMPACT_AT is 3 here: most of these are packed into columns
        table.put(run_id, _doc(zero_bytes=float(number)))
    table.put(ids[0], _doc(2, zero_bytes=10.0))  # a pending row over a packed one
    read = table.read()
    column = read.column("zero_bytes")
    got = {bytes(x).ljust(12, b"\0"): column[i] for i, x in enumerate(read.ids) if not np.isnan(column[i])}
    assert got == {run_id.binary: (10.0 if number == 0 else float(number)) for number, run_id in enumerate(ids)}
    assert len(read.ids) == len(set(read.ids.tolist()))


def test_rows_put_by_many_threads_at_once_keep_each_runs_latest_values(lab, monkeypatch):
    """Eight threads put rows for their own runs at once, into chunks folded every 2 pending rows: folds race
    puts and other folds of the same documents, without any compare-and-swap. The table then holds, for every
    run, exactly the last values put (a fold that dropped or revived a row would differ)."""
    import threading

    monkeypatch.setattr(run_table, "COMPACT_AT", 2)
    table = lab.run_store.table
    runs = [ObjectId() for _ in range(48)]
    last: dict[bytes, float] = {}
    lock = threading.Lock()

    def put_rows(mine: list, seed: int) -> None:
        local = random.Random(seed)
        for step in range(30):
            run = local.choice(mine)
            value = float(step * 100 + seed)
            table.put(run, _doc(step + 1, race=value))  # versions rise, as the run's writes count them
            with lock:
                last[run.binary] = value

    threads = [threading.Thread(target=put_rows, args=(runs[i::8], i)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    read = table.read()
    column = read.column("race")
    got = {bytes(x).ljust(12, b"\0"): column[i] for i, x in enumerate(read.ids) if not np.isnan(column[i])}
    assert got == last
    chunks = lab.collection("run_table").find({"study": "search"})
    assert sum(len(chunk.get("pending") or {}) for chunk in chunks) < len(last)  # most rows were folded


def test_a_fold_from_an_older_read_never_brings_back_an_old_value(lab, monkeypatch):
    """Two folds of one chunk at once, the one that read it first writing last: its segment holds the run's older
    row, yet the newer one is read (the highest version wins), and a row put later wins over both."""
    monkeypatch.setattr(run_table, "COMPACT_AT", 10**6)  # folds only when the test says
    table, run = lab.run_store.table, ObjectId()
    number = run_table._chunk_of(run)
    find = lab.collection("run_table").find_one

    def hot() -> dict:
        return find({"_id": table._hot_id(number)})

    def cold() -> dict:
        return find({"_id": table._chunk_id(number)}) or {}

    def value() -> float:
        read = table.read()
        return float(read.column("folded")[[bytes(x).ljust(12, b"\0") for x in read.ids].index(run.binary)])

    table.put(run, _doc(1, folded=1.0))
    first_hot, first_cold = hot(), cold()  # a fold reads the chunk now...
    table.put(run, _doc(2, folded=2.0))
    table._fold(number, hot())  # ...another folds both rows meanwhile...
    table._fold(number, first_hot, first_cold)  # ...and the first lands last, with a segment of the older row
    assert len(cold()["segments"]) >= 2 and value() == 2.0
    table.put(run, _doc(3, folded=3.0))
    assert value() == 3.0
    table._fold(number, hot())
    assert value() == 3.0 and len(cold()["segments"]) == 1


def test_racing_writers_of_the_same_runs_leave_each_row_equal_to_its_document(lab, monkeypatch):
    """Eight threads change the same six runs' summary, status and tags at once, and puts are held back at random
    (a slow process): rows land out of order, yet each run's row is the one of its document's last write (the
    highest row_version), no mark is left, and searches equal the server's answers."""
    import time

    monkeypatch.setattr(run_table, "COMPACT_AT", 3)
    table = lab.run_store.table
    put = table.put
    monkeypatch.setattr(table, "put", lambda *args: (time.sleep(random.random() * 0.01), put(*args))[1])
    runs = [lab.run_store.start(f"race-{i}", tags={"side": "a"}) for i in range(6)]

    def write(local: random.Random) -> None:
        for _ in range(3):
            lab.run_store.update(local.choice(runs), summary={"best": {"race": local.random()}},
                                 status=local.choice(["finished", "failed"]), tags={"side": local.choice("ab")})

    def check(round_: int) -> None:
        read = table.read({"tags.side": "b"})
        rows = {bytes(x).ljust(12, b"\0"): i for i, x in enumerate(read.ids)}
        for doc in lab.collection("runs").find({"_id": {"$in": runs}}):
            row = rows.get(doc["_id"].binary)
            assert row is not None or "summary" not in doc or not doc["summary"], round_
            if row is not None:
                assert read.column("race")[row] == doc["summary"]["best"]["race"], round_
                assert read.match[row] == (doc["tags"]["side"] == "b"), round_
            assert doc["_id"].binary not in read.inflight

    race_in_rounds(6, write, check)
    names = {"$in": [f"race-{i}" for i in range(6)]}
    for query in ({"tags.side": "a"}, {"tags.side": "b", "status": "failed"}, {"status": "finished"}):
        got = [doc["_id"] for doc in lab.run_store.find({**query, "name": names})]
        assert sorted(got) == sorted(doc["_id"] for doc in lab.collection("runs").find(
            {"study": "search", "name": names, **query}))
        top = [doc["_id"] for doc in lab.run_store.find(query, sort=[("race", -1)], limit=3)]
        assert top == _server_answer(lab, query, "summary.best.race", -1, 3)
