"""Reads and writes addressed by `_id` alone: the one filter every MongoDB-protocol server answers from an
index (FerretDB 1.x pushes down nothing else), so these cost the documents touched, never the collection."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

WRITE_BATCH = 64  # operations per bulk command (bulk_in_batches)
PARALLEL_FROM = 4  # fewer lookups than this run one after another
LOOKUP_THREADS = 8
_pools: dict[tuple[int, str], ThreadPoolExecutor] = {}  # per process (threads do not survive a fork) and use
_pools_lock = threading.Lock()


def _pool(use: str) -> ThreadPoolExecutor:
    """This process's threads for `use`, started once: a pool made per call cost more in thread starts (about
    2 ms a search on a busy machine) than the lookups it ran in parallel. Writes and lookups have pools of their
    own: a write may wait on lookups, and a pool whose threads wait on its own queue could deadlock."""
    key = (os.getpid(), use)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            for inherited in [k for k in _pools if k[0] != key[0]]:  # a parent's, through fork: no threads here
                del _pools[inherited]
            pool = _pools[key] = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix=f"tensorlab-{use}")
        return pool


def id_key(*parts: Any, separator: str = ":") -> str:
    """An `_id` built from parts, some of them user strings: each part has `%` and the separator escaped, so two
    different part lists never give one key (study 'p' + key 'q:k' vs study 'p:q' + key 'k'). Parts holding
    neither character are kept as they are, so keys written before the escaping read the same."""
    return separator.join(str(part).replace("%", "%25").replace(separator, f"%{ord(separator):02X}")
                          for part in parts)


def derived_id(key: str, prefix: bytes = b"") -> ObjectId:
    """An `_id` every process derives alike from `key` (SHA-256, after an optional prefix): the same write made
    by two processes, or retried after a crash, lands once, the second refused by the unique `_id`."""
    return ObjectId(prefix + hashlib.sha256(key.encode()).digest()[: 12 - len(prefix)])


def upsert_by_id(collection: Any, identifier: Any, change: dict[str, Any]) -> None:
    """An upsert by `_id` that survives a racing first insert (upserts are not atomic on every server)."""
    try:
        collection.update_one({"_id": identifier}, change, upsert=True)
    except DuplicateKeyError:
        collection.update_one({"_id": identifier}, change)


def find_and_upsert_by_id(collection: Any, identifier: Any, change: dict[str, Any]) -> dict[str, Any]:
    """The document after an upsert by `_id` (findAndModify), surviving a racing first insert like upsert_by_id.
    Filtered by `_id` alone: FerretDB answers any further condition on a write with a scan of the collection."""
    try:
        return collection.find_one_and_update({"_id": identifier}, change, upsert=True,
                                              return_document=ReturnDocument.AFTER)
    except DuplicateKeyError:
        return collection.find_one_and_update({"_id": identifier}, change, return_document=ReturnDocument.AFTER)


def bulk_in_batches(collection: Any, operations: list[Any], ordered: bool = False) -> None:
    """`bulk_write` in commands of at most WRITE_BATCH operations. FerretDB 1.24 (SQLite) holds one of a
    database's 100 connections per update that matches a document until the command ends: the 101st update of
    one command waited for a connection while holding the catalog's lock, and the whole server stopped
    answering, every client and database, until restarted. Each command's BulkWriteError is raised as it comes."""
    for start in range(0, len(operations), WRITE_BATCH):
        collection.bulk_write(operations[start:start + WRITE_BATCH], ordered=ordered)


def find_by_ids(collection: Any, ids: Iterable[Any]) -> list[dict[str, Any]]:
    """The documents with these ids, one lookup each, in the order given; ids with no document are skipped.
    Many lookups run a few at a time: each waits mostly on the server's reply, so the panel polling 50
    jobs costs about a quarter of 50 round trips."""
    ids = list(ids)

    def lookup(identifier: Any) -> dict[str, Any] | None:
        return collection.find_one({"_id": identifier})

    if len(ids) < PARALLEL_FROM:
        found = [lookup(identifier) for identifier in ids]
    else:
        found = list(_pool("lookup").map(lookup, ids))
    return [doc for doc in found if doc is not None]


def find_in_pairs(collection: Any, pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Per pair of ids, the first document read, then the second (None where there is none); pairs in
    parallel. For a reader that must see one document before another (a run table's pending rows before its
    segments) and need wait for no other pair."""
    def both(pair: tuple[Any, Any]) -> tuple[Any, Any]:
        return collection.find_one({"_id": pair[0]}), collection.find_one({"_id": pair[1]})

    return list(_pool("lookup").map(both, pairs))


def warm_up(client: Any) -> None:
    """Open, in the background, the connections parallel lookups will use: a fresh process's first search
    otherwise opens them as it goes (about 3 ms each, two at a time) and took 15 ms longer than the next."""
    together = threading.Barrier(LOOKUP_THREADS, timeout=5.0)

    def ping() -> None:  # all at once, so each opens a connection of its own instead of reusing one
        with contextlib.suppress(Exception):  # nothing waits for these: a closed client just drops them
            together.wait()
            client.admin.command("ping")

    # threads of their own, one per ping: on a shared pool, two clients' pings could fill it and each wait on
    # parties queued behind the other until the barrier's timeout
    for _ in range(LOOKUP_THREADS):
        threading.Thread(target=ping, name="tensorlab-warm-up", daemon=True).start()


def at_once(*reads: Callable[[], Any]) -> list[Any]:
    """Independent reads at once (each may look up many documents itself, so on a pool of their own); their
    answers in order, the first failure raised."""
    futures = [_pool("read-together").submit(read) for read in reads]
    return [future.result() for future in futures]


def run_together(writes: list[Callable[[], None]], use: str = "write") -> None:
    """Independent writes (to different documents) at once: one round trip of waiting instead of one each.
    Every write is waited for, and the first failure raised, so a caller's order around them still holds.
    A write that itself runs writes together names a pool of its own (`use`), never the one it runs on."""
    if len(writes) < 2:
        for write in writes:
            write()
        return
    futures = [_pool(use).submit(write) for write in writes]
    wait(futures)
    for future in futures:
        future.result()
