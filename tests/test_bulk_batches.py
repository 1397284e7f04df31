"""Bulk writes go in commands small enough for FerretDB 1.24, which froze on one of over 100 updates of present
documents (each held one of the database's 100 SQLite connections until the command ended)."""

from __future__ import annotations

import pymongo
from pymongo import ReplaceOne, UpdateOne

from tensorlab.tensordb.documents.by_id import WRITE_BATCH, bulk_in_batches
from tensorlab.tensordb.transfer.study_copy import replace_all


def test_hundreds_of_updates_of_present_documents_complete(mongo_uri):
    client = pymongo.MongoClient(mongo_uri, socketTimeoutMS=60_000)  # a frozen server fails the test, not hangs it
    try:
        collection = client.t_bulk_batches.updates
        collection.insert_many([{"_id": i, "value": 0} for i in range(250)])
        assert WRITE_BATCH <= 100
        bulk_in_batches(collection, [UpdateOne({"_id": i}, {"$set": {"value": i}}) for i in range(250)])
        assert {doc["_id"]: doc["value"] for doc in collection.find()} == {i: i for i in range(250)}
        assert client.t_bulk_batches.command("ping")["ok"] == 1.0  # the server still answers
    finally:
        client.drop_database("t_bulk_batches")
        client.close()


def test_a_copy_rerun_over_its_own_derived_documents_completes(mongo_uri):
    """replace_all (a copy's derived lists) into a target that already holds them: a copy resumed after an
    interruption. In one bulk of 500 replaces it froze the server."""
    client = pymongo.MongoClient(mongo_uri, socketTimeoutMS=60_000)
    try:
        target = client.t_bulk_batches.derived
        docs = [{"_id": f"entry-{i}", "study": "s", "ids": [i]} for i in range(300)]
        assert replace_all(target, docs, {"study": "s"}) == 300
        changed = [{**doc, "ids": [0, *doc["ids"]]} for doc in docs]
        assert replace_all(target, changed, {"study": "s"}) == 300
        assert sorted(target.find({"study": "s"}), key=lambda d: d["_id"]) == sorted(changed, key=lambda d: d["_id"])
        bulk_in_batches(target, [ReplaceOne({"_id": doc["_id"]}, doc) for doc in docs])
        assert target.count_documents({"ids": 0}) == 1  # only entry-0 holds 0 once more
    finally:
        client.drop_database("t_bulk_batches")
        client.close()
