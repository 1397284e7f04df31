"""Repeated reads on a lab that has been used for months: does each cost its answer, or the whole history?

Grows one database in steps (default to 1,000,000 log rows over 1,000 runs, 10,000 runs, 1,000 parameter
versions, 1,000,000 samples, 1,000 small imports, 10,000 finished jobs), printing as it grows, and at each
size times what a notebook repeats: the live panel's poll, a comparison refresh of 10 runs, `runs(query)`,
`logs(run=...)` of a 5,000-row run, rows since a step, `find_best_parameters`, `data_count` by tag and by
label, `find_data` by tag, the job queue panel's poll, the jobs of a sweep, `pop_job`.
Growing is resumable: the sizes reached are kept in the database, so a rerun continues where it stopped
(`--fresh` starts over). Prints a table and writes benchmarks/results/history.json.

Targets at the largest size on the managed server: live poll <= 20 ms, comparison refresh <= 200 ms,
runs <= 100 ms, logs of one run <= 150 ms, pop_job p50 <= 10 ms; growth smallest -> largest <= 2x each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from bson import ObjectId
from save_results import write_results  # benchmarks/ is on sys.path when run as a script

import tensorlab

DB_NAME = "tensorlab_bench_history"
STUDY = "history"
FULL = {"log_rows": 1_000_000, "logged_runs": 1_000, "runs": 10_000, "parameter_versions": 1_000,
        "samples": 1_000_000, "imports": 1_000, "finished_jobs": 10_000}
STEPS = (0.01, 0.1, 1.0)
PROBE_ROWS = 5_000
TARGETS_MS = {"live poll": 20, "comparison refresh (10 runs)": 200, "runs(query)": 100, "logs(run) 5,000 rows": 150,
              "pop_job p50": 10}


def _state(db: Any) -> dict[str, int]:
    return db.collection("bench_state").find_one({"_id": "sizes"}) or {}


def _save_state(db: Any, sizes: dict[str, int]) -> None:
    db.collection("bench_state").replace_one({"_id": "sizes"}, {"_id": "sizes", **sizes}, upsert=True)


def grow(db: Any, target: dict[str, int]) -> dict[str, int]:
    """Bring every kind of history up to `target`; returns the sizes now reached (also saved)."""
    sizes = {name: 0 for name in FULL} | {k: v for k, v in _state(db).items() if k in FULL}
    started = time.perf_counter()
    _grow_logs(db, sizes, target)
    _grow_runs(db, sizes, target)
    _grow_parameters(db, sizes, target)
    _grow_samples(db, sizes, target)
    _grow_imports(db, sizes, target)
    _grow_jobs(db, sizes, target)
    print(f"  grown to {sizes} in {time.perf_counter() - started:.0f} s", flush=True)
    return sizes


def _grow_logs(db: Any, sizes: dict[str, int], target: dict[str, int]) -> None:
    """Finished runs with logs, through the real writer; rows spread evenly over the logged runs."""
    per_run = max(1, target["log_rows"] // max(1, target["logged_runs"]))
    while sizes["log_rows"] < target["log_rows"]:
        run = db.run_store.start(f"filler-{sizes['runs']}", hyper_parameters={"lr": 0.001 * (sizes["runs"] % 7 + 1)},
                                 tags={"sweep": f"s{sizes['runs'] // 10}"})
        for step in range(per_run):
            db.train_log(step=step, epoch=step // 100, loss=1.0 / (step + 1), accuracy=step / per_run, run=run)
            if step % 100 == 99:
                db.valid_log(step=step, epoch=step // 100, val_loss=1.0 / (step + 2), val_accuracy=step / per_run,
                             run=run)
        db.run_store.finish(run, "finished", summary={"best": {"val_accuracy": (per_run - 1) / per_run}})
        sizes["log_rows"] += per_run
        sizes["logged_runs"] += 1
        sizes["runs"] += 1
        if sizes["logged_runs"] % 50 == 0:
            db.flush_logs(timeout_s=600)
            _save_state(db, sizes)
            print(f"    logs: {sizes['log_rows']:,} rows over {sizes['logged_runs']:,} runs", flush=True)
    db.flush_logs(timeout_s=600)
    _save_state(db, sizes)


def _grow_runs(db: Any, sizes: dict[str, int], target: dict[str, int]) -> None:
    while sizes["runs"] < target["runs"]:
        batch = min(1000, target["runs"] - sizes["runs"])
        docs = [{"_id": ObjectId(), "study": STUDY, "name": f"filler-{sizes['runs'] + i}", "status": "finished",
                 "hyper_parameters": {"lr": 0.01}, "tags": {"sweep": f"s{(sizes['runs'] + i) // 10}"},
                 "architecture": None, "data_query": None, "host": "bench", "pid": 0, "device": "cpu", "job": None,
                 "started": tensorlab.clock.utc_now(), "ended": tensorlab.clock.utc_now(), "heartbeat": None,
                 "summary": {"best": {"val_accuracy": 0.5}}, "error": None, "row_version": 0} for i in range(batch)]
        db.collection("runs").insert_many(docs)  # filler history: written raw for speed...
        db.run_store.table.rebuild(docs)  # ...with its rows in the run table (and their keys filed), as starts do
        sizes["runs"] += batch
    _save_state(db, sizes)


def _grow_parameters(db: Any, sizes: dict[str, int], target: dict[str, int]) -> None:
    rng = np.random.default_rng(sizes["parameter_versions"])
    while sizes["parameter_versions"] < target["parameter_versions"]:
        run = f"params-{sizes['parameter_versions'] // 10}"
        db.save_parameters([rng.random((64, 32), dtype=np.float32), rng.random(32, dtype=np.float32)],
                           {"epoch": sizes["parameter_versions"] % 10}, run=run,
                           metrics={"val_accuracy": float(rng.random())})
        sizes["parameter_versions"] += 1
    _save_state(db, sizes)


def _grow_samples(db: Any, sizes: dict[str, int], target: dict[str, int]) -> None:
    rng = np.random.default_rng(sizes["samples"])
    while sizes["samples"] < target["samples"]:
        batch = min(100_000, target["samples"] - sizes["samples"])
        db.import_data(rng.random((batch, 16), dtype=np.float32), rng.integers(0, 10, batch),
                       tags={"split": "filler", "part": sizes["samples"] // 100_000})
        sizes["samples"] += batch
        _save_state(db, sizes)
        print(f"    samples: {sizes['samples']:,}", flush=True)


def _grow_imports(db: Any, sizes: dict[str, int], target: dict[str, int]) -> None:
    """Many small imports, as a lab that adds a batch of labelled data every hour has after a few weeks."""
    rng = np.random.default_rng(sizes["imports"])
    while sizes["imports"] < target["imports"]:
        db.import_data(rng.random((50, 16), dtype=np.float32), rng.integers(0, 10, 50),
                       tags={"split": "hourly", "hour": sizes["imports"]})
        sizes["imports"] += 1
        if sizes["imports"] % 100 == 0:
            _save_state(db, sizes)
            print(f"    imports: {sizes['imports']:,}", flush=True)
    _save_state(db, sizes)


def _grow_jobs(db: Any, sizes: dict[str, int], target: dict[str, int]) -> None:
    while sizes["finished_jobs"] < target["finished_jobs"]:
        batch = min(1000, target["finished_jobs"] - sizes["finished_jobs"])
        now = tensorlab.clock.utc_now()
        docs = [{"_id": ObjectId(), "study": STUDY, "queue": "default", "status": "done", "priority": 0,
                 "created": now, "updated": now, "architecture": "filler", "code": None, "requires_code": False,
                 "data_query": None, "validation_query": None, "hyper_parameters": {}, "epochs": 1, "batch_size": 32,
                 "tags": {}, "warm_start": None, "sweep": None, "attempts": 1, "attempts_left": 2, "claims": 1,
                 "max_attempts": 3, "worker": "bench", "lease_expires": None, "progress": None, "result": {},
                 "error": None, "traceback": None, "run": None} for _ in range(batch)]
        db.collection("jobs").insert_many(docs)  # filler history: finished jobs, written raw for speed
        sizes["finished_jobs"] += batch
    _save_state(db, sizes)


def _timed(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Median milliseconds of `repeat` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def probes(db: Any) -> dict[str, Any]:
    """The small things a notebook reads again and again, created once next to the growing history."""
    found = db.collection("bench_state").find_one({"_id": "probes"})
    if found:
        return found
    probe_run = db.run_store.start("probe-5000", tags={"sweep": "probe"})
    for step in range(PROBE_ROWS):
        db.train_log(step=step, epoch=step // 500, loss=1.0 / (step + 1), run=probe_run)
        if step % 500 == 499:
            db.valid_log(step=step, epoch=step // 500, val_loss=0.5, val_accuracy=step / PROBE_ROWS, run=probe_run)
    db.run_store.finish(probe_run, "finished", summary={"best": {"val_accuracy": 0.9}})
    compared = []
    for index in range(10):
        run = db.run_store.start(f"compared-{index}", tags={"sweep": "compared"})
        for epoch in range(20):
            db.valid_log(step=epoch, epoch=epoch, val_loss=1.0 / (epoch + 1), val_accuracy=epoch / 20, run=run)
        db.run_store.finish(run, "finished", summary={"best": {"val_accuracy": 0.95}})
        compared.append(run)
    db.flush_logs(timeout_s=120)
    rng = np.random.default_rng(7)
    for epoch in range(5):
        db.save_parameters([rng.random((8, 8), dtype=np.float32)], {"epoch": epoch}, run="probe-params",
                           metrics={"val_accuracy": epoch / 5})
    db.import_data(rng.random((500, 16), dtype=np.float32), rng.integers(0, 10, 500), tags={"split": "probe"})
    for _ in range(50):  # the queue panel's list of the 50 newest is full at every size, as after a day's use
        db.push_job("probe", data={"tags.split": "probe"})
        db.jobs.complete(db.pop_job("bench-worker"), "bench-worker")
    for _ in range(8):
        db.push_job("probe", data={"tags.split": "probe"}, sweep="probe-sweep")
    doc = {"_id": "probes", "probe_run": probe_run, "compared": compared}
    db.collection("bench_state").insert_one(doc)
    return doc


def measure(db: Any, probe: dict[str, Any]) -> dict[str, float]:
    from tensorlab.widgets import ComparisonPanel

    results: dict[str, float] = {}
    live = db.run_store.start("live-probe")
    cursor = db.logbook.cursor(live)
    cursor.poll()
    step = [0]

    def live_poll() -> None:  # the writer adds 10 rows between polls, as a run logging every batch would
        for _ in range(10):
            db.train_log(step=step[0], loss=0.1, run=live)
            step[0] += 1
        db.flush_logs()
        started = time.perf_counter()
        rows = cursor.poll()
        results.setdefault("_live", []).append((time.perf_counter() - started) * 1000)
        assert len(rows) == 10, len(rows)

    for _ in range(11):
        live_poll()
    results["live poll"] = statistics.median(results.pop("_live")[1:])
    results["comparison refresh (10 runs)"] = _timed(
        lambda: ComparisonPanel(db, runs=probe["compared"], auto_refresh=False), repeat=3)
    results["runs(query)"] = _timed(lambda: db.runs({"tags.sweep": "probe"}))
    results["logs(run) 5,000 rows"] = _timed(lambda: db.logs(run=probe["probe_run"]), repeat=3)
    results["rows since step (last 100)"] = _timed(lambda: db.logbook.rows_since(probe["probe_run"], PROBE_ROWS - 100))
    results["find_best_parameters"] = _timed(lambda: db.find_best_parameters({"run": "probe-params"}))
    results["data_count by tag"] = _timed(lambda: db.data_count({"tags.split": "probe"}), repeat=21)
    results["data_count by label"] = _timed(lambda: db.data_count({"label": 3}), repeat=21)
    results["find_data by tag (500 samples)"] = _timed(lambda: db.find_data({"tags.split": "probe"}))
    results["job queue panel poll"] = _timed(lambda: db.jobs.recent(50))
    results["jobs.find(sweep)"] = _timed(lambda: db.jobs.find({"sweep": "probe-sweep"}))
    results["pop_job p50"] = _pop_latency(db)
    # control: the floor any read pays (one round trip, one tiny document), to tell history from machine drift
    results["control: one _id lookup"] = _timed(lambda: db.collection("bench_state").find_one({"_id": "sizes"}),
                                                repeat=21)
    db.run_store.finish(live, "finished")
    return results


def _pop_latency(db: Any) -> float:
    jobs = [db.push_job("probe", data={"tags.split": "probe"}) for _ in range(21)]
    latencies = []
    for _ in jobs:
        started = time.perf_counter()
        job = db.pop_job("bench-worker")
        latencies.append((time.perf_counter() - started) * 1000)
        db.jobs.complete(job, "bench-worker")
    return statistics.median(latencies[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full history (0.1 for a quick run)")
    parser.add_argument("--fresh", action="store_true", help="drop the benchmark database and grow it again")
    args = parser.parse_args()
    db = tensorlab.connect(db=DB_NAME, study=STUDY)
    if args.fresh:
        db.close()
        tensorlab.connect(db=DB_NAME, study=STUDY).client.drop_database(DB_NAME)
        db = tensorlab.connect(db=DB_NAME, study=STUDY)
    probe = probes(db)
    table: list[dict[str, Any]] = []
    for fraction in STEPS:
        target = {name: max(1, int(count * fraction * args.scale)) for name, count in FULL.items()}
        print(f"growing to {target}", flush=True)
        sizes = grow(db, target)
        figures = measure(db, probe)
        table.append({"sizes": sizes, "ms": figures})
        print("  " + ", ".join(f"{name} {value:.1f} ms" for name, value in figures.items()), flush=True)
    _report(table)
    write_results("history", {"scale": args.scale, "steps": table, "targets_ms": TARGETS_MS})
    db.close()


def _report(table: list[dict[str, Any]]) -> None:
    names = list(table[0]["ms"])
    sizes = [f"{row['sizes']['log_rows']:,} rows/{row['sizes']['runs']:,} runs" for row in table]
    print(f"\n{'read':<30}" + "".join(f"{size:>26}" for size in sizes) + f"{'growth':>9}{'target':>9}")
    for name in names:
        values = [row["ms"][name] for row in table]
        growth = values[-1] / values[0] if values[0] else float("inf")
        target = TARGETS_MS.get(name)
        print(f"{name:<30}" + "".join(f"{value:>23.1f} ms" for value in values) + f"{growth:>8.1f}x"
              + (f"{'<= ' + str(target):>9}" if target else ""))


if __name__ == "__main__":
    main()
