"""The lab extension on a lab used for months: what the side bar, a run tab and the browser each wait for.

Grows a database like bench_history.py (its `grow`: log rows over many runs, runs, parameter versions, samples,
imports, finished jobs; `--size` scales it, 1.0 = 1,000,000 rows and 10,000 runs), adds a finished run of
100,000 rows, starts JupyterLab with this checkout's extension and times, over HTTP and in Chromium:
  - runs list: the side bar's live poll (running runs), its page (the newest 30) and a page of 50
  - one run's first load: its document and its logs of 100,000 rows (cold: first read after the server started;
    warm: final buckets from the server's cache)
  - an incremental poll (10 new rows since the cursor)
  - row written -> browser: from the row being stored to the run tab's chart holding it
  - chart render of 100,000 points in Chromium (the tab set to hold every row: smoothing, per-pixel downsampling,
    uPlot drawing): the first draw, and the median of redraws (log y toggled: a new plot each time)
Prints a table and writes benchmarks/results/lab.json.

Targets: runs list <= 50 ms, first load <= 300 ms, poll <= 20 ms, write-to-browser <= 1 s, render <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_history import FULL, STUDY, grow  # benchmarks/ is on sys.path when run as a script
from save_results import write_results

import tensorlab

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_lab_browser import open_browser, start_lab, stop  # noqa: E402 - the browser test's JupyterLab launcher

DB_NAME = "tensorlab_bench_lab"
PROBE_ROWS = 100_000
TARGETS_MS = {"runs list: live poll (running runs)": 50, "runs list: side bar page (newest 30)": 50,
              "runs list: newest 50": 50,
              "first load 100k rows (cold)": 300, "first load 100k rows (warm)": 300, "incremental poll": 20,
              "row written -> browser p50": 1000, "row written -> browser max": 1000,
              "chart render 100k points": 50, "chart redraw 100k points": 50}


def probe_run(db: Any) -> str:
    """A finished run of PROBE_ROWS training rows (and a validation row every 1,000), written once."""
    found = db.collection("bench_state").find_one({"_id": "lab_probe"})
    if found:
        return found["run"]
    run = db.run_store.start("probe-100k", hyper_parameters={"lr": 0.001})
    for step in range(PROBE_ROWS):
        db.train_log(loss=1.0 / (1 + step / 1000), accuracy=step / PROBE_ROWS, step=step, epoch=step // 1000, run=run)
        if step % 1000 == 999:
            db.valid_log(val_loss=1.1 / (1 + step / 1000), val_accuracy=step / PROBE_ROWS, step=step,
                         epoch=step // 1000, run=run)
    db.flush_logs(timeout_s=600)
    db.run_store.finish(run, summary={"best": {"val_accuracy": 0.99}})
    db.collection("bench_state").insert_one({"_id": "lab_probe", "run": str(run)})
    return str(run)


class Api:
    """GETs against the running JupyterLab's TensorLab API, with its token."""

    def __init__(self, url: str) -> None:
        base, _, query = url.partition("/lab?")
        self.base, self.token = base, query.split("token=")[1]

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(f"{self.base}/tensorlab/api/{path}?{query}",
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read())

    def wait_ready(self) -> None:
        deadline = time.time() + 90
        while True:
            try:
                self.get("info")
                return
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)


def timed(fn: Callable[[], Any], repeat: int = 7) -> float:
    """Median milliseconds of `repeat` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure_http(api: Api, db: Any, probe: str) -> dict[str, float]:
    results: dict[str, float] = {}
    api.get("runs", limit=1)  # the server's connection to the database opens here, not in the first load
    started = time.perf_counter()
    api.get(f"runs/{probe}")
    first = api.get(f"runs/{probe}/logs")
    results["first load 100k rows (cold)"] = (time.perf_counter() - started) * 1000
    assert sum(s["count"] for s in first["streams"]) >= PROBE_ROWS, "the probe run's rows did not all come"
    results["first load 100k rows (warm)"] = timed(lambda: (api.get(f"runs/{probe}"), api.get(f"runs/{probe}/logs")))
    results["runs list: live poll (running runs)"] = timed(lambda: api.get("runs", status="running", limit=1000))
    results["runs list: side bar page (newest 30)"] = timed(lambda: api.get("runs", limit=30))
    results["runs list: newest 50"] = timed(lambda: api.get("runs", limit=50))
    live = str(db.run_store.start("poll-probe"))
    cursor = api.get(f"runs/{live}/logs")["cursor"]
    polls, step = [], 0
    for _ in range(12):
        for _ in range(10):
            db.train_log(loss=0.1, step=step, run=live)
            step += 1
        db.flush_logs()
        started = time.perf_counter()
        answer = api.get(f"runs/{live}/logs", cursor=cursor)
        polls.append((time.perf_counter() - started) * 1000)
        cursor = answer["cursor"]
        assert sum(s["count"] for s in answer["streams"]) == 10
    results["incremental poll"] = statistics.median(polls[2:])
    db.run_store.finish(live)
    return results


def _data(page: Any, selector: str, name: str) -> float:
    return float(page.get_attribute(selector, f"data-{name}") or 0)


def open_run(page: Any, run: str) -> None:
    """Command palette > TensorLab: Open a Run…, then the run's id in the dialog."""
    page.keyboard.press("Control+Shift+C")
    page.fill(".lm-CommandPalette-input", "TensorLab: Open a Run")
    page.keyboard.press("Enter")
    page.fill(".jp-Dialog input", run)
    page.keyboard.press("Enter")


def measure_browser(page: Any, db: Any, probe: str) -> dict[str, float]:
    """Row-to-browser latency on a live run's tab, then render times of the 100k-row run's chart."""
    results: dict[str, float] = {}
    live = str(db.run_store.start("latency-probe"))
    db.train_log(loss=1.0, step=0, run=live)
    db.flush_logs()
    page.wait_for_selector(f"#tensorlab-sidebar .tl-run[data-run='{live}']", timeout=30_000)
    page.click(f"#tensorlab-sidebar .tl-run[data-run='{live}'] .tl-run-name")
    panel = f".tl-run-panel[data-run='{live}']"
    page.wait_for_function(f"Number(document.querySelector(\"{panel}\")?.dataset.points) >= 1", timeout=30_000)
    latencies = []
    for step in range(1, 21):
        db.train_log(loss=1.0 / (step + 1), step=step, run=live)
        db.flush_logs()  # returns once the row is stored
        stored = time.perf_counter()
        page.wait_for_function(f"Number(document.querySelector(\"{panel}\").dataset.points) >= {step + 1}",
                               timeout=10_000, polling=5)
        latencies.append((time.perf_counter() - stored) * 1000)
        time.sleep(0.137 * (step % 5))  # land at different points of the tab's poll interval
    results["row written -> browser p50"] = statistics.median(latencies)
    results["row written -> browser max"] = max(latencies)
    db.run_store.finish(live)
    open_run(page, probe)  # through the command palette: on a grown lab it is not among the newest 50
    chart = f".tl-run-panel[data-run='{probe}'] .tl-chart[data-chart='loss']"
    page.wait_for_function(f"Number(document.querySelector(\"{chart}\")?.dataset.points) >= {PROBE_ROWS}",
                           timeout=60_000)
    page.wait_for_function(f"document.querySelector(\"{chart}\").dataset.renderMs !== undefined", timeout=10_000)
    results["chart render 100k points"] = _data(page, chart, "render-ms")  # the first draw: JIT still cold
    redraws = []
    for _ in range(7):  # log y on and off: a new plot each time, the whole pipeline over 100k points
        renders = _data(page, chart, "renders")
        page.click(f".tl-run-panel[data-run='{probe}'] .tl-log-y")
        page.wait_for_function(f"Number(document.querySelector(\"{chart}\").dataset.renders) > {renders}",
                               timeout=10_000)
        redraws.append(_data(page, chart, "render-ms"))
    results["chart redraw 100k points"] = statistics.median(redraws)
    return results


def run(size: float, fresh: bool) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    db = tensorlab.connect(db=DB_NAME, study=STUDY)
    if fresh:
        db.client.drop_database(DB_NAME)
        db.close()
        db = tensorlab.connect(db=DB_NAME, study=STUDY)
    sizes = grow(db, {name: max(1, int(count * size)) for name, count in FULL.items()})
    probe = probe_run(db)
    with tempfile.TemporaryDirectory(prefix="bench-lab-") as folder:
        tmp = Path(folder)
        settings = tmp / "settings" / "tensorlab"
        settings.mkdir(parents=True)
        (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"maxPoints": 2 * PROBE_ROWS}))
        lab, url = start_lab(tmp, _uri(), DB_NAME, STUDY)
        try:
            api = Api(url)
            api.wait_ready()
            results = measure_http(api, db, probe)
            with sync_playwright() as playwright:
                browser, page = open_browser(playwright, url)
                try:
                    results.update(measure_browser(page, db, probe))
                finally:
                    browser.close()
        finally:
            stop(lab)
    db.close()
    return {"sizes": sizes, "ms": results}


def _uri() -> str:
    """The server the benchmark grew (what connect() resolved), for the JupyterLab it starts."""
    from tensorlab.tensordb.server.connection import resolve_uri

    return resolve_uri(None)


def report(result: dict[str, Any]) -> None:
    sizes = result["sizes"]
    print(f"\nlab extension on {sizes['log_rows']:,} log rows, {sizes['runs']:,} runs, "
          f"{sizes['finished_jobs']:,} finished jobs, {sizes['samples']:,} samples (+ a {PROBE_ROWS:,}-row run)")
    print(f"{'measure':<40}{'ms':>10}{'target':>10}")
    for name, value in result["ms"].items():
        target = TARGETS_MS.get(name)
        mark = "" if target is None else ("  ok" if value <= target else "  over")
        print(f"{name:<40}{value:>10.1f}{'<= ' + str(target) if target else '':>10}{mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=float, default=1.0, help="fraction of bench_history's full database")
    parser.add_argument("--fresh", action="store_true", help="drop the benchmark database and grow it again")
    args = parser.parse_args()
    result = run(args.size, args.fresh)
    report(result)
    write_results("lab", {"size": args.size, **result, "targets_ms": TARGETS_MS})


if __name__ == "__main__":
    main()
