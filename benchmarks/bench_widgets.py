"""Widget costs: kernel-side time per live-panel update (SVG) vs a matplotlib PNG redraw of the same
curves, chart cost at 1k/10k/100k points per series (SVG vs a plotly FigureWidget when plotly is
installed), and the slowdown of a background fit with the live panel attached vs without.

Prints a table and writes benchmarks/results/widgets.json. Outside a kernel no comm messages are
sent, so the update cost here is the panel's own work (draining rows, formatting the charts).
"""

from __future__ import annotations

import io
import statistics
import time

import numpy as np
from save_results import write_results  # benchmarks/ is on sys.path when run as a script


def update_costs(db, steps: int = 20_000, updates: int = 200) -> dict:
    from tensorlab.widgets import LivePanel

    panel = LivePanel("bench", db, auto_refresh=False)
    per_update = steps // updates
    costs = []
    for u in range(updates):
        panel.feed_rows(
            [
                {"kind": "train", "metrics": {"loss": 1 / (1 + i), "accuracy": i / steps}, "time": i}
                for i in range(u * per_update, (u + 1) * per_update)
            ]
        )
        panel.feed_rows([{"kind": "valid", "epoch": u, "metrics": {"val_loss": 0.5, "val_accuracy": 0.9}}])
        started = time.perf_counter()
        panel.refresh(force=True)
        costs.append((time.perf_counter() - started) * 1000)
    panel.close()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = np.arange(steps)
    mpl = []
    for _ in range(20):
        started = time.perf_counter()
        figure, axes = plt.subplots(1, 2, figsize=(8, 3), dpi=80)
        axes[0].plot(xs, 1 / (1 + xs))
        axes[1].plot(xs, xs / steps)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        plt.close(figure)
        mpl.append((time.perf_counter() - started) * 1000)
    return {
        "rows": steps,
        "updates": updates,
        "svg_update_ms_median": statistics.median(costs),
        "svg_update_ms_p95": sorted(costs)[int(0.95 * len(costs))],
        "matplotlib_png_redraw_ms_median": statistics.median(mpl),
    }


def _plotly_update_ms(series: dict, repeats: int = 5) -> float | None:
    """A plotly FigureWidget's kernel-side cost for the same update: new data for every trace, serialized as
    the comm message would carry it (the whole arrays: plotly resends a changed trace)."""
    try:
        import plotly.graph_objects as go
        import plotly.io
    except ImportError:
        return None
    figure = go.FigureWidget(data=[go.Scattergl(x=[0], y=[0], name=name) for name in series])
    costs = []
    for _ in range(repeats):
        started = time.perf_counter()
        with figure.batch_update():
            for trace, (xs, ys) in zip(figure.data, series.values(), strict=True):
                trace.x, trace.y = xs, ys
        plotly.io.to_json({"data": [trace.to_plotly_json() for trace in figure.data]})
        costs.append((time.perf_counter() - started) * 1000)
    return statistics.median(costs)


def chart_scaling(sizes: tuple[int, ...] = (1_000, 10_000, 100_000), series_count: int = 3) -> dict:
    """Cost of one chart update at N points per series: the SVG chart (downsampled for display, data exact)
    against a plotly FigureWidget holding every point."""
    from tensorlab.widgets import line_chart

    rows = {}
    for size in sizes:
        xs = list(range(size))
        series = {f"series {i}": (xs, [1 / (1 + x) + i for x in xs]) for i in range(series_count)}
        costs = []
        for _ in range(5):
            started = time.perf_counter()
            line_chart(series, title="loss", y_label="loss")
            costs.append((time.perf_counter() - started) * 1000)
        rows[size] = {"svg_ms": statistics.median(costs), "plotly_ms": _plotly_update_ms(series)}
    return rows


def fit_slowdown(db, repeats: int = 3) -> dict:
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
    return {"seconds": times, "ratio": statistics.median(times["with live panel"]) / base}


def main() -> None:
    import tensorlab

    db = tensorlab.connect(db="tensorlab_bench_widgets", study="bench")
    db.client.drop_database("tensorlab_bench_widgets")
    results = {"update": update_costs(db), "scaling": chart_scaling(), "fit": fit_slowdown(db)}
    db.client.drop_database("tensorlab_bench_widgets")
    u, f = results["update"], results["fit"]
    print(f"{'measure':<44} {'value':>10}  target")
    print(f"{'live panel update, SVG (median ms)':<44} {u['svg_update_ms_median']:>10.2f}  <= 10 ms")
    print(f"{'live panel update, SVG (p95 ms)':<44} {u['svg_update_ms_p95']:>10.2f}")
    print(f"{'matplotlib PNG redraw of same curves (ms)':<44} {u['matplotlib_png_redraw_ms_median']:>10.2f}")
    for size, row in results["scaling"].items():
        plotly = "not installed" if row["plotly_ms"] is None else f"{row['plotly_ms']:.1f}"
        print(f"{f'chart update, 3 series x {size:,} points (ms)':<44} {row['svg_ms']:>10.1f}  "
              f"plotly FigureWidget: {plotly}{'  (target <= 10 ms)' if size == 10_000 else ''}")
    print(f"{'fit with live panel / without (median)':<44} {f['ratio']:>9.3f}x  <= 1.01x")
    write_results("widgets", results)


if __name__ == "__main__":
    main()
