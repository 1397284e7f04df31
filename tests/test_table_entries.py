"""Equalities on rare keys are answered from the pending rows and the key's entry, exactly, while folds race."""

from __future__ import annotations

import random
import threading
from collections import defaultdict

import pytest
from bson import ObjectId

import tensorlab
from tensorlab.tensordb.runs import run_table, table_entries


@pytest.fixture
def lab(mongo_uri, monkeypatch):
    monkeypatch.setattr(run_table, "COMPACT_AT", 2)  # folds all the time: rows move from hot documents to entries
    db_name = f"t_entries_{random.randrange(10 ** 9)}"
    db = tensorlab.connect(mongo_uri, db=db_name, study="entries")
    yield db
    db.client.drop_database(db_name)
    db.close()


def _server_ids(db, query: dict) -> set[ObjectId]:
    return {doc["_id"] for doc in db.collection("runs").find({"study": "entries", **query}, {"_id": 1})}


def test_rare_keys_are_answered_from_entries_and_common_ones_from_the_table(lab, monkeypatch):
    monkeypatch.setattr(table_entries, "RARE_IN_CHUNK", 1)
    runs = [lab.run_store.start(f"r{i}", tags={"common": 1, "own": i}, hyper_parameters={"seed": i * 0.5})
            for i in range(40)]
    for run in runs[::2]:
        lab.run_store.finish(run, summary={"best": {"accuracy": 0.5}})
    store = lab.run_store
    for i in (0, 7, 39):
        found = store.table.candidates({"tags.own": i})
        assert found is not None and runs[i] in found and len(found) <= 2  # its entry (or its pending row)
        assert store.table.candidates({"hyper_parameters.seed": i * 0.5, "tags.common": 1}) is not None
        assert {doc["_id"] for doc in store.find({"tags.own": i})} == {runs[i]}
        assert {doc["_id"] for doc in store.find({"tags.own": i, "status": "finished"})} == (
            {runs[i]} if i % 2 == 0 else set())
    assert store.table.candidates({"tags.common": 1}) is None  # more than one row of a chunk holds it: broad
    assert store.table.candidates({"status": "running"}) is None  # status is never filed
    assert {doc["_id"] for doc in store.find({"tags.common": 1})} == set(runs) == _server_ids(lab, {"tags.common": 1})
    assert store.table.candidates({"tags.own": 1000}) == set()  # no run holds it: no entry, no pending row


def test_rare_key_searches_racing_folds_never_miss_an_acknowledged_run(lab, monkeypatch):
    """Four writers start and finish runs under rare tags while their folds (slowed at random before they file
    entries) move rows out of the hot documents and into entries; three readers meanwhile ask for tags. Every run
    acknowledged before a read began is in its answer (a reader that read the entries before the pending rows, or
    a fold that filed them after taking its rows out, would miss rows folded in between), and every answer holds
    only runs of that tag."""
    import time

    file = lab.run_store.table.entries.file
    monkeypatch.setattr(lab.run_store.table.entries, "file",
                        lambda *args: (time.sleep(random.random() * 0.004), file(*args))[1])
    acknowledged: dict[str, set[ObjectId]] = defaultdict(set)
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()
    failures: list[str] = []
    tags = [f"w{writer}-{slot}" for writer in range(4) for slot in range(4)]
    recent = tags[::4]  # the tag each writer wrote last: readers ask for those, whose rows folds are moving

    def write(writer: int) -> None:
        try:
            for i in range(16):
                tag = f"w{writer}-{i % 4}"
                run = lab.run_store.start(None, tags={"rare": tag})
                with lock:
                    acknowledged[tag].add(run)
                    recent[writer] = tag
                lab.run_store.finish(run, summary={"best": {"accuracy": i / 16}})
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(repr(error))

    def read(seed: int) -> None:
        local = random.Random(seed)
        try:
            while writing.is_set():
                with lock:
                    tag = local.choice(recent)
                    before = set(acknowledged[tag])
                docs = lab.run_store.find({"tags.rare": tag})
                got = {doc["_id"] for doc in docs}
                if not before <= got:
                    failures.append(f"{tag}: missed {before - got}")
                if any(doc["tags"]["rare"] != tag for doc in docs):
                    failures.append(f"{tag}: answered another tag's run")
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(repr(error))

    writers = [threading.Thread(target=write, args=(writer,)) for writer in range(4)]
    readers = [threading.Thread(target=read, args=(seed,)) for seed in range(3)]
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join(timeout=300)
    writing.clear()
    for thread in readers:
        thread.join(timeout=300)
    assert not failures, failures[:5]
    for tag in tags:
        assert {doc["_id"] for doc in lab.run_store.find({"tags.rare": tag})} == acknowledged[tag] == _server_ids(
            lab, {"tags.rare": tag})
    assert lab.collection("run_table").count_documents({"study": "entries", "ids": {"$exists": True}}) >= len(tags)


def _entry_writes(lab, run_ids, finish_each) -> int:
    """Runs started (and finished) while the table's entry writes are counted."""
    entries = lab.run_store.table.entries
    write, written = entries._write, []
    entries._write = lambda changes: (written.extend(changes), write(changes))[1]
    try:
        for run in run_ids:
            finish_each(run)
    finally:
        entries._write = write
    return written.count(entries.entry_id("tags.common=n:1"))


def test_a_key_once_broad_is_not_filed_again_and_a_dropped_study_files_it_anew(lab, monkeypatch):
    """The cold document lists the keys its folds marked broad, so later folds write no entry for them; a study
    dropped and recreated under the same name starts without that list, and its searches stay exact."""
    monkeypatch.setattr(table_entries, "RARE_IN_CHUNK", 1)
    store = lab.run_store

    def start_and_finish(i: int) -> None:
        run = store.start(f"r{i}", tags={"common": 1})
        store.finish(run, summary={"best": {"accuracy": i / 100}})

    first = _entry_writes(lab, range(40), start_and_finish)
    later = _entry_writes(lab, range(40, 120), start_and_finish)
    listed = [doc.get("broad") or [] for doc in lab.collection("run_table").find(
        {"study": "entries", "segments": {"$exists": True}})]
    assert listed and all("tags.common=n:1" in keys for keys in listed)  # every chunk has folded it as broad
    assert first >= len(listed) and later == 0  # each chunk marked it broad once, then never wrote it again
    assert store.table.candidates({"tags.common": 1}) is None
    assert len(store.find({"tags.common": 1})) == 120

    store.drop_study()
    assert lab.collection("run_table").count_documents({"study": "entries"}) == 0
    runs = [store.start(f"again{i}", tags={"common": 1, "own": i}) for i in range(30)]
    assert {doc["_id"] for doc in store.find({"tags.common": 1})} == set(runs) == _server_ids(lab, {"tags.common": 1})
    assert {doc["_id"] for doc in store.find({"tags.own": 3})} == {runs[3]}
