"""Training overhead: plain fit vs fit + DBLogger (every batch, checkpoint each epoch) vs MLflow autolog.

Same model and data as the seeds' demo: MLP 784-800-800-10, 60,000 synthetic MNIST-shaped samples,
batch 128, 2 epochs. Repetitions are interleaved; the median of each is reported as a ratio to plain
fit, and so is the median of each repetition's own ratio (each configuration against the plain fit just before
it: on a machine whose speed drifts by 10% from minute to minute, the paired ratio is the steadier figure).
DBLogger's run records its provenance (code, environment, seed, hardware) as every run does.
`--configs` picks configurations (e.g. `--configs dblogger` skips MLflow). Prints a table and writes
benchmarks/results/training_<backend>.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
from save_results import write_results  # benchmarks/ is on sys.path when run as a script


def build_model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(800, activation="relu"),
                              keras.layers.Dense(800, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def timed_callbacks(logger):
    """`logger` with its Keras hooks timed: `seconds_inside` is what the training thread spent in them, the part
    of the overhead a wall-clock ratio measures only within this machine's run-to-run spread."""
    logger.seconds_inside = 0.0
    for name in ("on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end", "on_epoch_end",
                 "on_train_end"):
        hook = getattr(logger, name)

        def timed(*args, _hook=hook, **kwargs):
            began = time.perf_counter()
            try:
                return _hook(*args, **kwargs)
            finally:
                logger.seconds_inside += time.perf_counter() - began
        setattr(logger, name, timed)
    return logger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default=None, help="informational: set KERAS_BACKEND before running")
    parser.add_argument("--configs", default="dblogger,mlflow", help="comma-separated, from dblogger, mlflow")
    args = parser.parse_args()

    import keras
    import mlflow

    import tensorlab
    from tensorlab.devices import list_devices

    rng = np.random.default_rng(0)
    X = rng.random((args.samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    db = tensorlab.connect(db="tensorlab_bench_training", study="bench")
    db.client.drop_database("tensorlab_bench_training")
    mlflow_dir = tempfile.mkdtemp(prefix="mlflow-")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # a local file store, as the peer setup asks
    mlflow.set_tracking_uri(f"file://{mlflow_dir}/mlruns")  # a fresh store creates its default experiment

    def plain() -> None:
        build_model().fit(X, y, batch_size=128, epochs=args.epochs, verbose=0)

    callback_s: list[float] = []

    def with_dblogger() -> None:
        logger = timed_callbacks(tensorlab.DBLogger(db, "bench", every_n_batches=1, checkpoint="epoch", batch_size=128))
        build_model().fit(X, y, batch_size=128, epochs=args.epochs, verbose=0, callbacks=[logger])
        callback_s.append(logger.seconds_inside)

    def with_mlflow() -> None:
        mlflow.keras.autolog(log_every_n_steps=1, log_models=False, log_datasets=False, silent=True)
        try:
            with mlflow.start_run():
                build_model().fit(X, y, batch_size=128, epochs=args.epochs, verbose=0)
        finally:
            mlflow.keras.autolog(disable=True)

    chosen = set(args.configs.split(","))
    configs = {"plain fit": plain, **({"fit + DBLogger": with_dblogger} if "dblogger" in chosen else {}),
               **({"fit + MLflow autolog": with_mlflow} if "mlflow" in chosen else {})}
    plain()  # warm-up: imports, kernels, first trace
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, run in configs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    db.flush_logs(timeout_s=120)
    rows_logged = db.logbook.count()
    db.client.drop_database("tensorlab_bench_training")
    base = statistics.median(times["plain fit"])
    results = {
        "backend": keras.config.backend(), "samples": args.samples, "epochs": args.epochs, "batch_size": 128,
        "repeats": args.repeats, "devices": list(list_devices().devices),
        "seconds": times, "median_s": {k: statistics.median(v) for k, v in times.items()},
        "ratio_to_plain": {k: statistics.median(v) / base for k, v in times.items()},
        "paired_ratio_median": {k: statistics.median(a / b for a, b in zip(v, times["plain fit"], strict=True))
                                for k, v in times.items()},
        "dblogger_rows_logged": rows_logged,
        "dblogger_callback_s": callback_s,
        "dblogger_callback_share": [c / t for c, t in zip(callback_s, times.get("fit + DBLogger", []), strict=False)],
    }
    print(f"backend {results['backend']}, devices {results['devices']}, {args.repeats} repetitions")
    print(f"{'configuration':<22} {'median s':>9} {'ratio':>7} {'paired':>7}   target")
    for name in configs:
        target = "<= 1.02x" if name == "fit + DBLogger" else ""
        print(f"{name:<22} {results['median_s'][name]:>9.2f} {results['ratio_to_plain'][name]:>6.3f}x "
              f"{results['paired_ratio_median'][name]:>6.3f}x   {target}")
    if callback_s:
        shares = results["dblogger_callback_share"]
        print(f"time inside DBLogger's callbacks (run start with provenance, rows, checkpoints): first fit "
              f"{shares[0]:.1%}, median {statistics.median(shares):.1%} of the fit")
    write_results(f"training_{results['backend']}", results)


if __name__ == "__main__":
    main()
