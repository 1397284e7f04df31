"""Notebook panel costs (#31): kernel time per live update at 1k / 10k / 100k points already drawn, against
resending every point each update (what a chart that holds its data in the kernel's widget state does); the
browser's time to take and draw 3 series of 100k points in the panel's chart view (Chromium, the built
widgets/static/charts.js); and the slowdown of a background fit with the live panel attached vs without.

Each kernel update is serialised as the kernel would send it (a signed Jupyter comm message, buffers beside
it), so the figure includes what goes over the wire. Prints a table and writes benchmarks/results/widgets.json.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import numpy as np
from save_results import write_results  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
ROWS_PER_UPDATE = 25  # a quarter second of a fast fit at 100 steps/s


def _wire(chart) -> list[int]:
    """Make `chart.send` do what the kernel does with a comm message: build, sign and serialise it."""
    from jupyter_client.session import Session

    session, sizes = Session(key=b"bench"), []

    def send(content, buffers):
        message = session.msg("comm_msg", {"comm_id": chart.model_id, "data": {"method": "custom", "content": content}})
        frames = session.serialize(message)
        sizes.append(sum(len(f) for f in frames) + sum(len(b) for b in buffers))

    chart.send = send
    return sizes


def _rows(start: int, stop: int) -> list[dict]:
    return [{"kind": "train", "metrics": {"loss": 1 / (1 + i), "accuracy": i / (i + 100)}, "time": i}
            for i in range(start, stop)]


def update_costs(db, sizes: tuple[int, ...] = (1_000, 10_000, 100_000), updates: int = 100) -> dict:
    """Median and p95 ms of one panel refresh that adds ROWS_PER_UPDATE rows to a run of `size` rows."""
    from tensorlab.widgets import LivePanel

    rows = {}
    for size in sizes:
        figures = {}
        for mode in ("new points only", "resend everything"):
            panel = LivePanel("bench", db, auto_refresh=False)
            wire = _wire(panel.chart)
            panel.feed_rows(_rows(0, size))
            panel.refresh(force=True)
            costs = []
            for u in range(updates):
                panel.feed_rows(_rows(size + u * ROWS_PER_UPDATE, size + (u + 1) * ROWS_PER_UPDATE))
                if mode == "resend everything":
                    panel.chart._sent.clear()
                    panel.chart._reset = True
                started = time.perf_counter()
                panel.refresh(force=True)
                costs.append((time.perf_counter() - started) * 1000)
            panel.close()
            figures[mode] = {"median_ms": statistics.median(costs), "p95_ms": sorted(costs)[int(0.95 * updates)],
                             "bytes_per_update": statistics.median(wire[1:])}
        rows[size] = figures
    return rows


PAGE = """<!doctype html><html><body style="width:1000px"><div id="el"></div><script type="module">
const source = await (await fetch('charts.js')).text();
const module = await import(URL.createObjectURL(new Blob([source], {type: 'text/javascript'})));
const handlers = {};
const state = {charts: [{key: 'loss', title: 'loss'}], lines: [0, 1, 2].map(i => ({key: 's' + i, label: 'series ' + i,
  chart: 'loss'})), log_y: false, smoothing: 0, hidden: [], x_axis: 'step', x_label: '', parallel: null, height: 220};
const model = {get: k => state[k], set: (k, v) => { state[k] = v; }, save_changes() {}, send() {},
  on: (e, f) => { handlers[e] = f; }, off() {}};
const el = document.getElementById('el');
module.default.render({model, el});
const frame = () => new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve, 0)));
window.bench = async (n, extra, k) => {
  const keys = [0, 1, 2].slice(0, k);
  const points = (start, count) => keys.flatMap(s => {
    const x = new Float64Array(count), y = new Float64Array(count);
    for (let i = 0; i < count; i++) { x[i] = start + i; y[i] = 1 / (1 + start + i) + s + 0.01 * Math.sin(i); }
    return [x.buffer, y.buffer];
  });
  const message = (reset, count) => ({type: 'points', reset, drop: [],
    series: keys.map(i => ({key: 's' + i, n: count}))});
  const render = async (reset, start, count) => {
    const buffers = points(start, count);
    const before = Number(el.querySelector('.tl-chart')?.dataset.renders ?? 0);
    handlers['msg:custom'](message(reset, count), buffers);
    await frame();
    const chart = el.querySelector('.tl-chart');
    while (Number(chart.dataset.renders) <= before) { await frame(); }
    const root = el.querySelector('.tl-notebook-charts');
    return {apply_ms: Number(root.dataset.applyMs), draw_ms: Number(chart.dataset.renderMs),
            drawn: Number(chart.dataset.drawn), points: Number(root.dataset.points)};
  };
  const first = await render(true, 0, n);
  const appends = [];
  for (let k = 0; k < 20; k++) { appends.push(await render(false, n + k * extra, extra)); }
  return {first, appends};
};
window.ready = true;
</script></body></html>"""


def browser_render(shapes: tuple[tuple[int, int], ...] = ((1, 100_000), (3, 100_000))) -> dict | None:
    """Chromium (Playwright, Debian's chromium): for each (series, points per series), take one message of all the
    points and draw it, then 20 messages of 25 new points per series; the chart view's own timings (apply =
    merging the points into the view's series, draw = downsampling to pixels and uPlot's canvas)."""
    bundle = ROOT / "widgets" / "static" / "charts.js"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not bundle.exists() or not Path(chromium).exists():
        return None
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    folder = bundle.parent
    (folder / "bench.html").write_text(PAGE)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder))  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/bench.html")
            page.wait_for_function("window.ready === true", timeout=30_000)
            results = {}
            for series, points in shapes:
                runs = [page.evaluate(f"window.bench({points}, {ROWS_PER_UPDATE}, {series})") for _ in range(3)]
                first = [r["first"]["apply_ms"] + r["first"]["draw_ms"] for r in runs]
                appends = [a["apply_ms"] + a["draw_ms"] for r in runs for a in r["appends"]]
                results[f"{series} x {points}"] = {
                    "points": series * points, "first_render_ms_median": statistics.median(first),
                    "first_apply_ms_median": statistics.median(r["first"]["apply_ms"] for r in runs),
                    "append_render_ms_median": statistics.median(appends), "drawn_points": runs[-1]["first"]["drawn"]}
            browser.close()
    finally:
        server.shutdown()
        (folder / "bench.html").unlink(missing_ok=True)
    return results


def fit_slowdown(db, repeats: int = 5) -> dict:
    import keras
    from tensorlab.widgets import LivePanel

    import tensorlab

    rng = np.random.default_rng(0)
    X = rng.random((30_000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 30_000)

    def build():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(800, activation="relu"),
                keras.layers.Dense(800, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def run(with_panel: bool) -> float:
        started = time.perf_counter()
        handle = tensorlab.train_in_background(
            tensorlab.Model(build(), db=db), db=db, x=X, y=y, epochs=2, batch_size=128, run_name="panel-bench"
        )
        panel = LivePanel(handle) if with_panel else None
        handle.wait()
        elapsed = time.perf_counter() - started
        if panel is not None:
            panel.close()
        return elapsed

    run(False)  # warm-up
    times = {"without panel": [], "with live panel": []}
    for _ in range(repeats):
        times["without panel"].append(run(False))
        times["with live panel"].append(run(True))
    base = statistics.median(times["without panel"])
    return {"seconds": times, "ratio": statistics.median(times["with live panel"]) / base,
            "ratio_of_fastest": min(times["with live panel"]) / min(times["without panel"])}  # least disturbed


def main() -> None:
    import tensorlab

    db = tensorlab.connect(db="tensorlab_bench_widgets", study="bench")
    db.client.drop_database("tensorlab_bench_widgets")
    results = {"update": update_costs(db), "browser": browser_render(), "fit": fit_slowdown(db)}
    db.client.drop_database("tensorlab_bench_widgets")
    print(f"{'live panel update (kernel ms, median / p95)':<48} {'new points only':>18} {'resend everything':>18}"
          "  target")
    for size, row in results["update"].items():
        new, full = row["new points only"], row["resend everything"]
        label = f"  run of {size:,} rows, +{ROWS_PER_UPDATE} rows"
        print(f"{label:<48} {new['median_ms']:>8.3f} / {new['p95_ms']:<7.3f}  {full['median_ms']:>8.3f} / "
              f"{full['p95_ms']:<7.3f}  <= 1 ms, flat")
        print(f"{'    bytes sent per update':<48} {new['bytes_per_update']:>18,.0f} {full['bytes_per_update']:>18,.0f}")
    if results["browser"] is None:
        print("browser render: skipped (widgets/static/charts.js not built or no chromium)")
    for shape, row in (results["browser"] or {}).items():
        label = f"browser: take + draw {shape} points (ms)"
        print(f"{label:<48} {row['first_render_ms_median']:>18.1f}  <= 50 ms at 100k points")
        print(f"{'  then +25 points per series (ms)':<48} {row['append_render_ms_median']:>18.1f}")
    f = results["fit"]
    print(f"{'fit with live panel / without (median)':<48} {f['ratio']:>17.3f}x  <= 1.01x")
    print(f"{'fit with live panel / without (fastest of each)':<48} {f['ratio_of_fastest']:>17.3f}x")
    write_results("widgets", results)


if __name__ == "__main__":
    main()
