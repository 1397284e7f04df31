"""Widget costs: kernel-side time per live-panel update (SVG) vs a matplotlib PNG redraw of the same
curves, and the slowdown of a background fit with the live panel attached vs without.

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
    results = {"update": update_costs(db), "fit": fit_slowdown(db)}
    db.client.drop_database("tensorlab_bench_widgets")
    u, f = results["update"], results["fit"]
    print(f"{'measure':<44} {'value':>10}  target")
    print(f"{'live panel update, SVG (median ms)':<44} {u['svg_update_ms_median']:>10.2f}  <= 10 ms")
    print(f"{'live panel update, SVG (p95 ms)':<44} {u['svg_update_ms_p95']:>10.2f}")
    print(f"{'matplotlib PNG redraw of same curves (ms)':<44} {u['matplotlib_png_redraw_ms_median']:>10.2f}")
    print(f"{'fit with live panel / without (median)':<44} {f['ratio']:>9.3f}x  <= 1.01x")
    write_results("widgets", results)


if __name__ == "__main__":
    main()
