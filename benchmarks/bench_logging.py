"""Logging under load: N processes each log M rows as fast as they can, as parallel trainings would.

Reports the aggregate rate at which rows reach the server, each `train_log` call's cost to the training
loop (p50/p99/max: the loop must never wait more than 10 ms on logging), and the rows that arrived
(0 lost). Prints a table and writes benchmarks/results/logging.json (logging-<N>p.json for other process
counts). Uses $TENSORLAB_MONGODB_URI or the managed local server.

Why a control: with more busy processes than cores, the OS takes the CPU away from any loop for a
scheduling period, whatever the loop does. So each iteration also times a control step of similar cost
that does not log, and each slow call records whether the OS preempted its thread during the call
(`ru_nivcsw`). A `train_log` call is "blocked by logging" when it was slow without being preempted.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import resource
import time

import numpy as np
from save_results import write_results  # benchmarks/ is on sys.path when run as a script

import tensorlab

DB_NAME = "tensorlab_bench_logging"
SLOW_US = 1000  # calls slower than this are checked for preemption


def _involuntary_switches() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw


def _control_step(step: int, rows: int) -> float:
    """About the cost of a train_log call, and no logging: the OS-scheduling floor of this loop."""
    metrics = {"loss": 1.0 / step, "accuracy": step / rows}
    return sum(sorted(metrics.values())) + time.time()


def _logger_process(uri: str, index: int, rows: int, start_at: float, out: multiprocessing.Queue) -> None:
    db = tensorlab.connect(uri, db=DB_NAME, study="bench")
    run = f"proc-{index}"
    db.train_log(step=0, run=run, loss=1.0)  # the run starts before the clock does, as in a real fit
    db.flush_logs()
    gc.collect()  # the full collection that follows imports, done before the clock as a real fit does it early
    while time.time() < start_at:
        time.sleep(0.001)
    costs = np.empty(rows - 1, dtype=np.int64)
    control = np.empty(rows - 1, dtype=np.int64)
    preempted = np.zeros(rows - 1, dtype=bool)
    began = time.perf_counter()
    for step in range(1, rows):
        switches = _involuntary_switches()
        tick = time.perf_counter_ns()
        db.train_log(step=step, run=run, loss=1.0 / step, accuracy=step / rows)
        costs[step - 1] = time.perf_counter_ns() - tick
        if costs[step - 1] > SLOW_US * 1000:
            preempted[step - 1] = _involuntary_switches() > switches
        tick = time.perf_counter_ns()
        _control_step(step, rows)
        control[step - 1] = time.perf_counter_ns() - tick
    logged_s = time.perf_counter() - began
    flushed = db.flush_logs(timeout_s=600)
    out.put({"index": index, "costs_us": (costs / 1000).tolist(), "control_us": (control / 1000).tolist(),
             "preempted": preempted.tolist(), "logged_s": logged_s,
             "done_at": time.time(), "flushed": flushed, "dropped": db.logbook.writer.dropped})
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    db = tensorlab.connect(db=DB_NAME, study="bench")
    db.client.drop_database(DB_NAME)
    uri = os.environ.get("TENSORLAB_MONGODB_URI") or tensorlab.LocalServer().start().uri
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = context.Queue()
    start_at = time.time() + 8.0  # every process connected and warmed up before the clock starts
    workers = [context.Process(target=_logger_process, args=(uri, i, args.rows, start_at, out))
               for i in range(args.processes)]
    for worker in workers:
        worker.start()
    reports = [out.get(timeout=900) for _ in workers]
    for worker in workers:
        worker.join()
    wall_s = max(report["done_at"] for report in reports) - start_at
    costs = np.concatenate([np.asarray(report["costs_us"]) for report in reports])
    control = np.concatenate([np.asarray(report["control_us"]) for report in reports])
    preempted = np.concatenate([np.asarray(report["preempted"], dtype=bool) for report in reports])
    not_preempted = costs[~preempted]
    stored = sum(db.logbook.count(run=f"proc-{i}", kind="train") for i in range(args.processes))
    expected = args.processes * args.rows
    results = {
        "server": db.uri, "processes": args.processes, "rows_per_process": args.rows,
        "rows_expected": expected, "rows_stored": stored, "rows_lost": expected - stored,
        "dropped": sum(report["dropped"] for report in reports),
        "all_flushed": all(report["flushed"] for report in reports),
        "rows_per_s_to_server": expected / wall_s,
        "caller_p50_us": float(np.percentile(costs, 50)), "caller_p99_us": float(np.percentile(costs, 99)),
        "caller_max_ms": float(costs.max() / 1000), "calls_over_10ms": int((costs > 10_000).sum()),
        "caller_max_not_preempted_ms": float(not_preempted.max() / 1000),
        "calls_over_10ms_not_preempted": int((not_preempted > 10_000).sum()),
        "control_max_ms": float(control.max() / 1000), "control_over_10ms": int((control > 10_000).sum()),
        "cpu_cores": os.cpu_count(),
    }
    db.client.drop_database(DB_NAME)
    db.close()
    rows = [("rows stored / expected", f"{stored:,} / {expected:,}", "0 lost"),
            ("rows/s reaching the server", f"{results['rows_per_s_to_server']:,.0f}", ""),
            ("train_log p50 / p99 (us)", f"{results['caller_p50_us']:.1f} / {results['caller_p99_us']:.1f}", ""),
            ("train_log max (ms)", f"{results['caller_max_ms']:.2f}", "<= 10"),
            ("calls over 10 ms", f"{results['calls_over_10ms']}", ""),
            ("  not preempted by the OS: max (ms)", f"{results['caller_max_not_preempted_ms']:.2f}", "<= 10"),
            ("  not preempted: calls over 10 ms", f"{results['calls_over_10ms_not_preempted']}", "0"),
            ("control step (no logging) max (ms)", f"{results['control_max_ms']:.2f}", "the OS floor"),
            ("control steps over 10 ms", f"{results['control_over_10ms']}", "")]
    print(f"{args.processes} processes x {args.rows:,} rows on {db.uri}")
    for name, value, target in rows:
        print(f"{name:<36} {value:>16}  {target}")
    write_results("logging" if args.processes == 8 else f"logging-{args.processes}p", results)
    print(json.dumps({k: results[k] for k in ("rows_lost", "caller_max_ms", "caller_max_not_preempted_ms")}))


if __name__ == "__main__":
    main()
