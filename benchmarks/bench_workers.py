"""Queue figures with 4 worker processes on no-op jobs: throughput and claim latency (p50/p95), then the
kill test at 2,000 jobs (every 0.25 s a worker holding a job is SIGKILLed and replaced): lost and
duplicated jobs.

No-op workers claim, hold the job ~5 ms, and complete it, without importing TensorFlow, so the figures
are the queue's own. Prints a table and writes benchmarks/results/workers.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time

from save_results import write_results  # benchmarks/ is on sys.path when run as a script

import tensorlab

HOLD_IN_KILL_TEST_S = 0.1  # long enough that most SIGKILLs land while the victim holds a job
NOOP_WORKER = """
import json, sys, time, tensorlab
from tensorlab.errors import JobError
uri, db_name, name, lease, hold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
db = tensorlab.connect(uri, db=db_name, study="bench")
latencies, idle_since = [], time.monotonic()
while time.monotonic() - idle_since < 3:
    started = time.perf_counter()
    job = db.pop_job(name, lease_s=lease)
    if job is None:
        time.sleep(0.05)
        continue
    latencies.append((time.perf_counter() - started) * 1000)
    idle_since = time.monotonic()
    time.sleep(hold)
    try:
        db.jobs.complete(job, name, {"by": name})
    except JobError:
        pass
print(json.dumps(latencies), flush=True)
"""


def _spawn(uri: str, db_name: str, name: str, lease: float, hold_s: float = 0.005) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", NOOP_WORKER, uri, db_name, name, str(lease), str(hold_s)],
                            stdout=subprocess.PIPE, text=True)


def throughput(uri: str, jobs: int) -> dict:
    db = tensorlab.connect(uri, db="tensorlab_bench_workers", study="bench")
    db.client.drop_database("tensorlab_bench_workers")
    for _ in range(jobs):
        db.push_job("noop")
    started = time.perf_counter()
    procs = [_spawn(uri, "tensorlab_bench_workers", f"w{i}", 60) for i in range(4)]
    latencies = [x for p in procs for x in json.loads(p.communicate()[0])]
    elapsed = time.perf_counter() - started - 3  # minus the idle wait before workers exit
    done = db.jobs.collection.count_documents({"status": "done"})
    db.client.drop_database("tensorlab_bench_workers")
    latencies.sort()
    return {"jobs": jobs, "done": done, "jobs_per_s": done / elapsed,
            "claim_ms_p50": statistics.median(latencies), "claim_ms_p95": latencies[int(0.95 * len(latencies))]}


def kill_test(uri: str, jobs: int, kill_every_s: float = 0.25, seed: int = 0) -> dict:
    db = tensorlab.connect(uri, db="tensorlab_bench_kill", study="bench")
    db.client.drop_database("tensorlab_bench_kill")
    ids = {str(db.push_job("noop", max_attempts=20)) for _ in range(jobs)}
    rng = random.Random(seed)
    names = [f"k{i}" for i in range(4)]
    procs = [_spawn(uri, "tensorlab_bench_kill", name, 2, HOLD_IN_KILL_TEST_S) for name in names]
    kills, kills_holding, started = 0, 0, time.perf_counter()
    while db.jobs.collection.count_documents({"status": "done"}) < jobs and time.perf_counter() - started < 1800:
        time.sleep(kill_every_s)
        holding = {job["worker"] for job in db.jobs.collection.find({"status": "running"}, {"worker": 1})}
        busy = [i for i, name in enumerate(names) if name in holding]  # kill mid-job where possible
        victim = rng.choice(busy) if busy else rng.randrange(4)
        procs[victim].kill()
        procs[victim].wait()
        kills += 1
        kills_holding += bool(busy)
        names[victim] = f"k{kills + 4}"
        procs[victim] = _spawn(uri, "tensorlab_bench_kill", names[victim], 2, HOLD_IN_KILL_TEST_S)
    for proc in procs:
        proc.kill()
        proc.wait()
    statuses = [job["status"] for job in db.jobs.find()]
    done_markers = db.collection("job_claims").count_documents({"_id": {"$regex": ":done$"}})
    found = {str(job["_id"]) for job in db.jobs.find()}
    result = {"jobs": jobs, "kills": kills, "kills_of_a_worker_holding_a_job": kills_holding,
              "kill_every_s": kill_every_s, "seconds": time.perf_counter() - started,
              "done": statuses.count("done"), "lost": len(ids - found) + (jobs - statuses.count("done")),
              "duplicated": done_markers - statuses.count("done") if done_markers > statuses.count("done") else 0,
              "completion_markers": done_markers,
              "reclaimed": db.jobs.collection.count_documents({"attempts": {"$gt": 1}})}
    db.client.drop_database("tensorlab_bench_kill")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, nargs="+", default=[300, 1000], help="queue sizes to measure")
    parser.add_argument("--kill-jobs", type=int, default=2000)
    parser.add_argument("--kill-every", type=float, default=0.25, help="seconds between SIGKILLs")
    args = parser.parse_args()
    uri = tensorlab.connect().uri  # $TENSORLAB_MONGODB_URI or the managed local server
    results = {"server": uri, "throughput": [throughput(uri, jobs) for jobs in args.jobs]}
    results["kill"] = kill_test(uri, args.kill_jobs, args.kill_every)
    k = results["kill"]
    print(f"{'measure':<40} {'value':>10}  target")
    for t in results["throughput"]:
        queued = f"{t['jobs']} queued"
        print(f"{'no-op jobs done by 4 workers':<40} {t['done']:>10}")
        print(f"{f'queue throughput (jobs/s), {queued}':<40} {t['jobs_per_s']:>10.1f}")
        print(f"{f'claim latency p50 (ms), {queued}':<40} {t['claim_ms_p50']:>10.1f}  <= 10 ms")
        print(f"{f'claim latency p95 (ms), {queued}':<40} {t['claim_ms_p95']:>10.1f}")
    print(f"{'kill test: jobs / SIGKILLs':<40} {k['jobs']:>5} / {k['kills']:<4}")
    print(f"{'kill test: lost':<40} {k['lost']:>10}  0")
    print(f"{'kill test: duplicated':<40} {k['duplicated']:>10}  0")
    print(f"{'kill test: kills of a worker holding a job':<40} {k['kills_of_a_worker_holding_a_job']:>10}")
    print(f"{'kill test: re-claimed after a kill':<40} {k['reclaimed']:>10}")
    print(f"{'kill test: seconds':<40} {k['seconds']:>10.0f}")
    write_results("workers", results)


if __name__ == "__main__":
    main()
