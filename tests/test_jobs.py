"""The job queue: atomic claims across processes, priorities, leases, retries, transitions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from tensorlab import InvalidInput, JobError, NotFound

POPPER = """
import json, sys, tensorlab
uri, db_name, worker = sys.argv[1:4]
db = tensorlab.connect(uri, db=db_name, study="test")
claimed = []
while True:
    job = db.pop_job(worker)
    if job is None:
        break
    claimed.append(str(job["_id"]))
    db.jobs.complete(job, worker, result={"by": worker})
print(json.dumps(claimed))
"""


def test_eight_processes_pop_500_jobs_each_exactly_once(tdb, mongo_uri):
    pushed = {str(tdb.push_job("arch", data={"tags.split": "train"}, priority=i % 3)) for i in range(500)}
    procs = [subprocess.Popen([sys.executable, "-c", POPPER, mongo_uri, tdb.db_name, f"w{i}"],
                              stdout=subprocess.PIPE, text=True) for i in range(8)]
    claims = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    flat = [job for claim in claims for job in claim]
    assert len(flat) == 500 and set(flat) == pushed  # none lost, none claimed twice
    assert sum(1 for claim in claims if claim) >= 2  # the work really was shared
    jobs = tdb.jobs.find()
    assert all(job["status"] == "done" and job["attempts"] == 1 for job in jobs)


def test_priority_then_age(tdb):
    low = tdb.push_job("a", priority=0)
    high = tdb.push_job("a", priority=5)
    low2 = tdb.push_job("a", priority=0)
    order = [tdb.pop_job("w")["_id"] for _ in range(3)]
    assert order == [high, low, low2] and tdb.pop_job("w") is None


def test_expired_lease_is_claimed_again(tdb):
    job = tdb.push_job("a", max_attempts=3)
    first = tdb.pop_job("dead-worker", lease_s=0.3)
    assert first["_id"] == job and tdb.pop_job("w2") is None  # lease still valid
    time.sleep(0.5)
    second = tdb.pop_job("w2", lease_s=30)
    assert second["_id"] == job and second["attempts"] == 2 and second["worker"] == "w2"
    with pytest.raises(JobError, match="no longer held"):
        tdb.jobs.heartbeat(job, "dead-worker")
    tdb.jobs.heartbeat(job, "w2", progress={"epoch": 1})
    assert tdb.jobs.get(job)["progress"] == {"epoch": 1}


def test_lease_expiry_on_the_last_attempt_ends_failed(tdb):
    job = tdb.push_job("a", max_attempts=1)
    tdb.pop_job("w1", lease_s=0.2)
    time.sleep(0.4)
    assert tdb.pop_job("w2") is None
    assert tdb.jobs.get(job)["status"] == "failed"


def test_failures_retry_until_max_attempts_with_traceback(tdb):
    job = tdb.push_job("a", max_attempts=2)
    tdb.jobs.fail(tdb.pop_job("w"), "w", "ValueError: boom", "Traceback ... boom")
    assert tdb.jobs.get(job)["status"] == "queued"
    doc = tdb.jobs.fail(tdb.pop_job("w"), "w", "ValueError: boom again", "Traceback ... again")
    assert doc["status"] == "failed" and doc["traceback"] == "Traceback ... again"
    assert [f["error"] for f in doc["failures"]] == ["ValueError: boom", "ValueError: boom again"]
    assert tdb.pop_job("w") is None


def test_cancel_requeue_and_priority_transitions(tdb):
    job = tdb.push_job("a")
    tdb.jobs.set_priority(job, 9)
    assert tdb.jobs.cancel(job)["status"] == "cancelled"
    assert tdb.pop_job("w") is None
    with pytest.raises(JobError, match="cancelled"):
        tdb.jobs.cancel(job)
    assert tdb.jobs.requeue(job)["status"] == "queued"
    claimed = tdb.pop_job("w")
    assert claimed["priority"] == 9
    tdb.jobs.cancel(job)
    with pytest.raises(JobError, match="no longer held"):
        tdb.jobs.complete(job, "w")


def test_code_jobs_are_only_claimed_when_allowed(tdb):
    code_job = tdb.push_job(code="def build_model(): ...")
    assert tdb.pop_job("careful") is None
    assert tdb.pop_job("trusting", allow_code=True)["_id"] == code_job


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "needs an architecture"),
    ({"architecture": "a", "epochs": 0}, "epochs"),
    ({"architecture": "a", "data": "split=train"}, "MongoDB filter dict"),
    ({"architecture": "a", "priority": "high"}, "priority"),
    ({"architecture": "a", "tags": {"a.b": 1}}, "contain '.'"),
])
def test_bad_jobs_are_rejected(tdb, kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        tdb.push_job(**kwargs)
    assert tdb.jobs.find() == []


def test_unknown_job_ids(tdb):
    with pytest.raises(NotFound):
        tdb.jobs.get("0" * 24)
    with pytest.raises(InvalidInput):
        tdb.jobs.get("not-an-id")


def test_a_job_completed_by_a_worker_that_died_before_updating_it_is_settled_not_rerun(tdb):
    job = tdb.push_job("a", max_attempts=5)
    claimed = tdb.pop_job("w1", lease_s=0.2)
    # w1 wrote its completion marker and died before the job document said done:
    tdb.collection("job_claims").insert_one({"_id": f"{job}:done", "job": job, "worker": "w1",
                                             "claim": claimed["claims"], "result": {"ok": 1},
                                             "at": claimed["claimed_at"]})
    time.sleep(0.4)
    assert tdb.pop_job("w2") is None  # the lease expired, but the job is not trained again
    doc = tdb.jobs.get(job)
    assert doc["status"] == "done" and doc["result"] == {"ok": 1} and doc["worker"] == "w1"


def test_a_claim_whose_worker_died_before_taking_the_job_does_not_strand_it(tdb):
    from datetime import datetime, timedelta, timezone

    job = tdb.push_job("a")
    # a worker inserted claim 1 a minute ago and was killed before it marked the job running:
    long_ago = datetime.now(timezone.utc) - timedelta(seconds=60)
    tdb.collection("job_claims").insert_one({"_id": f"{job}:1", "job": job, "worker": "dead", "at": long_ago})
    claimed = tdb.pop_job("w2")
    assert claimed is not None and claimed["_id"] == job and claimed["claims"] == 2 and claimed["worker"] == "w2"


def test_a_fresh_claim_marker_is_respected(tdb):
    from datetime import datetime, timezone

    job = tdb.push_job("a")
    tdb.collection("job_claims").insert_one({"_id": f"{job}:1", "job": job, "worker": "busy",
                                             "at": datetime.now(timezone.utc)})
    assert tdb.pop_job("w2") is None  # the claimer is mid-claim: not taken from it


# -- the ready set: claims read only unfinished jobs, and its entries never outrank the job documents --

def _ready_ids(tdb) -> set:
    return {entry["_id"] for entry in tdb.collection("job_ready").find()}


def test_the_ready_set_holds_exactly_the_unfinished_jobs(tdb):
    done, exhausted, retried = (tdb.push_job("a", max_attempts=n, priority=p) for n, p in ((3, 3), (1, 2), (3, 1)))
    cancelled = tdb.push_job("a")
    assert _ready_ids(tdb) == {done, retried, exhausted, cancelled}
    tdb.jobs.complete(tdb.pop_job("w"), "w")
    assert tdb.jobs.fail(tdb.pop_job("w"), "w", "boom")["_id"] == exhausted  # its only attempt: failed, gone
    assert tdb.jobs.fail(tdb.pop_job("w"), "w", "boom")["_id"] == retried  # attempts remain: queued, ready
    tdb.jobs.cancel(cancelled)
    assert _ready_ids(tdb) == {retried}
    assert tdb.collection("job_ready").find_one({"_id": retried})["lease_expires"] is None
    tdb.jobs.requeue(cancelled)
    assert _ready_ids(tdb) == {retried, cancelled}
    assert tdb.drop_study()["jobs"] == 4 and _ready_ids(tdb) == set()


def test_a_worker_holding_read_candidates_still_sees_new_jobs_and_priorities_first(tdb):
    first, second, third = (tdb.push_job("a") for _ in range(3))
    assert tdb.pop_job("w")["_id"] == first  # the worker now holds [second, third] from its read
    urgent = tdb.push_job("a", priority=5)
    assert tdb.pop_job("w")["_id"] == urgent
    tdb.jobs.set_priority(third, 9)
    assert [tdb.pop_job("w")["_id"] for _ in range(2)] == [third, second]


def test_another_process_sees_a_new_urgent_job_within_the_version_check_interval(tdb, mongo_uri):
    import tensorlab
    from tensorlab.tensordb.jobs.claims import VERSION_CHECK_S

    other = tensorlab.connect(mongo_uri, db=tdb.db_name, study="test")
    try:
        low = [tdb.push_job("a") for _ in range(3)]
        assert other.pop_job("w2")["_id"] == low[0]  # w2 now keeps [low[1], low[2]]
        high = tdb.push_job("a", priority=1)  # pushed by another process after w2 read its candidates
        time.sleep(VERSION_CHECK_S)
        assert other.pop_job("w2")["_id"] == high
    finally:
        other.close()


def test_a_database_from_before_the_ready_set_is_indexed_on_first_claim(tdb):
    old = [tdb.push_job("a", priority=p) for p in (0, 1)]
    tdb.collection("job_ready").delete_many({})  # as written by a version without the ready set
    tdb.collection("job_queue_state").delete_many({})
    fresh = type(tdb.jobs)(tdb)  # a new process's queue object
    assert [fresh.pop("w")["_id"] for _ in range(2)] == [old[1], old[0]]
    assert fresh.pop("w") is None


def test_stale_entries_are_dropped_and_never_claimed(tdb):
    from bson import ObjectId

    job = tdb.push_job("a")
    tdb.jobs.collection.update_one({"_id": job}, {"$set": {"status": "cancelled"}})  # written by hand
    orphan = ObjectId.from_datetime(datetime.now(timezone.utc) - timedelta(minutes=5))
    young = ObjectId()  # a pusher between its two inserts: left alone
    for entry_id in (orphan, young):  # entries whose job documents were never written
        tdb.collection("job_ready").insert_one({"_id": entry_id, "study": "test", "priority": 0, "requires_code": False,
                                                "created": datetime.now(timezone.utc), "attempts_left": 1,
                                                "lease_expires": None})
    assert tdb.pop_job("w") is None
    assert _ready_ids(tdb) == {young}


def test_filters_on_fields_outside_the_ready_set_read_the_jobs(tdb):
    plain = tdb.push_job("a", data={"tags.split": "train"})
    other = tdb.push_job("a", data={"tags.split": "test"}, tags={"size": "big"})
    assert tdb.pop_job("w", query={"data_query": {"$regex": "test"}})["_id"] == other  # not copied: jobs read
    assert tdb.pop_job("w", query={"tags.size": "big"}) is None  # copied: ready set read
    assert tdb.pop_job("w", query={"queue": "default"})["_id"] == plain


def test_find_by_sweep_and_status_agrees_with_a_scan(tdb):
    sweep_jobs = [tdb.push_job("a", sweep="s1", tags={"queue": "gpu"}) for _ in range(3)]
    tdb.push_job("a", sweep="s2")
    tdb.jobs.complete(tdb.pop_job("w"), "w")  # the oldest s1 job is done
    by_index = [j["_id"] for j in tdb.jobs.find({"sweep": "s1"})]
    by_scan = [j["_id"] for j in tdb.jobs.find({"sweep": {"$in": ["s1"]}})]
    assert by_index == by_scan == sweep_jobs
    assert [j["_id"] for j in tdb.jobs.find({"sweep": "s1"}, status="queued")] == sweep_jobs[1:]
    assert [j["_id"] for j in tdb.jobs.find({"tags.queue": "gpu"}, status="done")] == sweep_jobs[:1]
    assert len(tdb.jobs.find(status="queued")) == 3 and len(tdb.jobs.find(status="done")) == 1


def test_a_queue_panel_reads_unfinished_jobs_and_only_the_newest_others(tdb, monkeypatch):
    from tensorlab.tensordb.jobs import recent

    monkeypatch.setattr(recent, "PER_DOC", 4)  # several id documents with few jobs
    early = tdb.push_job("a", priority=-1)  # stays queued: always shown, however old
    pushed = [tdb.push_job("a") for _ in range(13)]
    for _ in range(10):
        tdb.jobs.complete(tdb.pop_job("w"), "w")
    shown = [job["_id"] for job in tdb.jobs.recent(limit=5)]
    assert set(shown) == {early, *pushed[-5:], *pushed[10:]} and shown == sorted(shown, key=lambda i: i.generation_time)
    assert {job["status"] for job in tdb.jobs.recent(limit=5, status="done")} == {"done"}
    assert tdb.collection("job_recent").count_documents({"ids": {"$exists": True}}) == 4  # 14 ids, 4 per document


def test_an_old_database_gets_its_recent_jobs_on_first_use(tdb, mongo_uri):
    import tensorlab

    pushed = [tdb.push_job("a") for _ in range(3)]
    tdb.jobs.complete(tdb.pop_job("w"), "w")
    tdb.collection("job_recent").delete_many({})  # as a database from before the list
    tdb.collection("tensorlab_state").delete_many({"_id": {"$regex": "^job_recent"}})
    other = tensorlab.connect(mongo_uri, db=tdb.db_name, study="test")  # another process, first use
    assert other.jobs.recent_jobs.newest(10) == []
    assert [job["_id"] for job in other.jobs.recent(limit=10)] == pushed
    assert other.jobs.recent_jobs.newest(10) == pushed
    other.close()


def _until_the_lease_passes(tdb, job) -> None:
    """A lease of 1 ms is stored to the millisecond: a claim in that same millisecond still sees it held."""
    from polling import wait_until

    from tensorlab.clock import as_utc, utc_now

    assert wait_until(lambda: utc_now() > as_utc(tdb.jobs.get(job)["lease_expires"]), timeout=10)


def test_a_lost_attempt_that_advanced_the_checkpoint_is_refunded(tdb):
    job = tdb.push_job("a", max_attempts=1)
    held = tdb.pop_job("w1")
    tdb.jobs.heartbeat(held, "w1", 60, progress={"epoch": 2, "step": 40})  # resumed at epoch 2
    assert tdb.jobs.get(job)["attempts_left"] == 0
    tdb.jobs.heartbeat(held, "w1", 60, progress={"epoch": 2, "step": 80})  # same epoch: nothing gained yet
    assert tdb.jobs.get(job)["attempts_left"] == 0
    tdb.jobs.heartbeat(held, "w1", 60, progress={"epoch": 3, "step": 120})  # epoch 2 ended: checkpointed
    tdb.jobs.heartbeat(held, "w1", 0.001, progress={"epoch": 4, "step": 160})  # refunded once per attempt; then dies
    assert tdb.jobs.get(job)["attempts_left"] == 1 and tdb.jobs.get(job)["refunds"] == 1
    _until_the_lease_passes(tdb, job)
    again = tdb.pop_job("w2")  # its only attempt was lost, but it advanced: claimed again, not failed
    assert again is not None and again["_id"] == job and again["worker"] == "w2"
    tdb.jobs.heartbeat(again, "w2", 0.001, progress={"epoch": 4, "step": 170})  # this attempt gains nothing
    _until_the_lease_passes(tdb, job)
    assert tdb.pop_job("w3") is None and tdb.jobs.get(job)["status"] == "failed"


def test_an_attempt_that_fails_with_an_error_counts_even_after_progress(tdb):
    job = tdb.push_job("a", max_attempts=1)
    held = tdb.pop_job("w1")
    tdb.jobs.heartbeat(held, "w1", 60, progress={"epoch": 0, "step": 1})
    tdb.jobs.heartbeat(held, "w1", 60, progress={"epoch": 1, "step": 9})
    doc = tdb.jobs.fail(held, "w1", "ValueError: boom", "Traceback ...")
    assert doc["status"] == "failed" and doc["attempts_left"] == 0
    assert tdb.jobs.get(job)["status"] == "failed"


def test_pop_keeps_reading_under_contention_until_nothing_is_claimable(tdb, monkeypatch):
    from datetime import timedelta

    from tensorlab.clock import utc_now

    jobs = [tdb.push_job("a") for _ in range(30)]
    claimer = tdb.jobs._claimer
    real_try, stolen = claimer._try_claim, []

    def rival_wins_first(job_id, *args):
        if len(stolen) < 20:  # a rival worker takes the job just before us, twenty times in a row
            job = tdb.jobs.get(job_id)
            number = job.get("claims", 0) + 1
            tdb.collection("job_claims").insert_one({"_id": f"{job_id}:{number}", "job": job_id, "worker": "rival",
                                                     "at": utc_now()})
            tdb.collection("jobs").update_one({"_id": job_id}, {"$set": {
                "status": "running", "worker": "rival", "claims": number,
                "lease_expires": utc_now() + timedelta(minutes=5)}})
            stolen.append(job_id)
        return real_try(job_id, *args)

    monkeypatch.setattr(claimer, "_try_claim", rival_wins_first)
    claimed = tdb.pop_job("me")
    assert claimed is not None and claimed["worker"] == "me" and claimed["_id"] not in stolen
    assert len(stolen) == 20 and len(jobs) == 30
    for _ in range(9):
        assert tdb.pop_job("me") is not None  # every job the rival did not take
    assert tdb.pop_job("me") is None  # now nothing is claimable


def test_a_worker_finishes_starting_before_its_first_claim(tdb, monkeypatch):
    from tensorlab.worker import Worker

    calls = []
    monkeypatch.setattr(Worker, "warm_up", lambda self: calls.append("warm_up"))
    monkeypatch.setattr(tdb.jobs, "pop", lambda *args, **kwargs: calls.append("pop"))
    Worker(tdb, "starting", max_idle_s=0, poll_interval_s=0.01).run()
    assert calls[0] == "warm_up" and calls.count("warm_up") == 1 and "pop" in calls
