"""TensorDB figures: streaming vs in-memory vs naive reads, parameter save/load vs np.save, train_log cost.

Prints a table and writes benchmarks/results/tensordb.json. Uses $TENSORLAB_MONGODB_URI or the managed
local server. Samples are MNIST-like: sklearn's digits upscaled to 28x28 uint8 (784 values each).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from bson import Binary
from save_results import write_results  # benchmarks/ is on sys.path when run as a script

import tensorlab


def mnist_like(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.kron(digits.images, np.ones((3, 3)))  # 8x8 -> 24x24
    images = np.pad(images, ((0, 0), (2, 2), (2, 2))) * (255 / 16)
    index = np.arange(n) % len(images)
    return images[index].astype(np.uint8), digits.target[index]


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def bench_streaming(db: tensorlab.TensorDB, n: int, batch: int) -> dict:
    X, y = mnist_like(n)
    import_s = timed(lambda: db.import_data(X, y, {"bench": "stream"}))

    def stream(epochs: int) -> int:
        count = 0
        for xb, _ in db.data_generator({"tags.bench": "stream"}, batch_size=batch, epochs=epochs):
            count += len(xb)
        return count

    cold_s = timed(lambda: stream(1), repeat=3)  # a fresh stream each time: cache empty, all chunks fetched
    warm_total = timed(lambda: stream(3), repeat=1)

    def in_memory() -> None:
        for start in range(0, n, batch):
            _ = X[start:start + batch], y[start:start + batch]

    memory_s = timed(in_memory, repeat=3)
    naive = db.collection("naive_samples")
    naive.insert_many([{"x": Binary(X[i].tobytes()), "y": int(y[i])} for i in range(n)])

    def naive_read() -> None:
        for doc in naive.find({}, batch_size=1000):
            _ = np.frombuffer(doc["x"], np.uint8).reshape(28, 28), doc["y"]

    naive_s = timed(naive_read, repeat=1)
    return {
        "samples": n, "batch_size": batch, "import_s": import_s,
        "stream_cold_samples_per_s": n / cold_s,
        "stream_3_epochs_cached_samples_per_s": 3 * n / warm_total,
        "in_memory_samples_per_s": n / memory_s,
        "naive_one_doc_per_sample_samples_per_s": n / naive_s,
        "stream_cold_vs_naive": naive_s / cold_s,
    }


def bench_float_stream(db: tensorlab.TensorDB, n: int, batch: int) -> dict:
    """The issue's cold-stream target: incompressible 784-d float32, so lz4 cannot hide the transfer."""
    X = np.random.default_rng(5).random((n, 784), dtype=np.float32)
    y = np.arange(n) % 10
    import_s = timed(lambda: db.import_data(X, y, {"bench": "float"}))

    def stream() -> None:
        for _ in db.data_generator({"tags.bench": "float"}, batch_size=batch, epochs=1):
            pass

    cold_s = timed(stream, repeat=3)
    return {"samples": n, "megabytes": X.nbytes / 2**20, "import_s": import_s,
            "stream_cold_samples_per_s": n / cold_s, "stream_cold_mb_per_s": X.nbytes / 2**20 / cold_s}


def bench_parameters(db: tensorlab.TensorDB, megabytes: int) -> dict:
    rng = np.random.default_rng(0)
    # A trained network's weights: small-magnitude floats, split across layers like a real model.
    layers = [rng.normal(0, 0.05, size=(megabytes * 1024 * 1024 // 4 // 8,)).astype(np.float32) for _ in range(8)]
    save_s = timed(lambda: db.save_parameters(layers, {"bench": "params"}))
    load_s = timed(lambda: db.find_parameters({"tags.bench": "params"}), repeat=3)
    db.delete_parameters({"tags.bench": "params"})
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "w.npz")

        def np_save() -> None:
            with open(path, "wb") as handle:
                np.savez(handle, *layers)
                handle.flush()
                os.fsync(handle.fileno())

        np_save_s = timed(np_save, repeat=3)
        np_load_s = timed(lambda: [a for a in np.load(path).values()], repeat=3)
    return {"megabytes": megabytes, "save_s": save_s, "load_s": load_s, "np_save_s": np_save_s,
            "np_load_s": np_load_s, "save_plus_load_ratio": (save_s + load_s) / (np_save_s + np_load_s)}


def bench_train_log(db: tensorlab.TensorDB, calls: int) -> dict:
    db.train_log(loss=0.0)  # start the writer
    started = time.perf_counter()
    for step in range(calls):
        db.train_log(step=step, loss=0.5, accuracy=0.9)
    per_call = (time.perf_counter() - started) / calls
    flush_started = time.perf_counter()
    db.flush_logs(timeout_s=120)
    return {"calls": calls, "caller_us_per_call": per_call * 1e6,
            "server_rows_per_s": calls / (time.perf_counter() - started),
            "flush_s": time.perf_counter() - flush_started}


def bench_big_sample(db: tensorlab.TensorDB, megabytes: int) -> dict:
    sample = np.random.default_rng(1).random((1, megabytes * 1024 * 1024 // 4)).astype(np.float32)
    import_s = timed(lambda: db.import_data(sample, np.array([1]), {"bench": "big"}))
    read_s = timed(lambda: db.find_data({"tags.bench": "big"}))
    return {"megabytes": megabytes, "import_s": import_s, "read_s": read_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--param-mb", type=int, default=100)
    parser.add_argument("--big-mb", type=int, default=300)
    parser.add_argument("--log-calls", type=int, default=100_000)
    parser.add_argument("--float-samples", type=int, default=60_000)
    parser.add_argument("--payloads", choices=("files", "gridfs"), default="files",
                        help="beside the managed server: payload files (default) or GridFS, as on MongoDB/Atlas")
    args = parser.parse_args()
    db = tensorlab.connect(db="tensorlab_bench", study="bench", payload_files=args.payloads == "files")
    db.client.drop_database("tensorlab_bench")
    results = {
        "server": db.uri, "payloads": "files" if db.blobs.uses_files else "gridfs",
        "streaming": bench_streaming(db, args.samples, 128),
        "float_stream": bench_float_stream(db, args.float_samples, 128),
        "parameters": bench_parameters(db, args.param_mb),
        "train_log": bench_train_log(db, args.log_calls),
        "big_sample": bench_big_sample(db, args.big_mb),
    }
    db.client.drop_database("tensorlab_bench")
    db.close()
    s, p, lg, b = results["streaming"], results["parameters"], results["train_log"], results["big_sample"]
    f = results["float_stream"]
    print(f"payloads: {results['payloads']}")
    rows = [
        ("stream, cold cache (samples/s)", f"{s['stream_cold_samples_per_s']:,.0f}", ""),
        ("stream 784-d float32, cold (samples/s)", f"{f['stream_cold_samples_per_s']:,.0f}", ">= 50,000"),
        ("stream 784-d float32, cold (MB/s)", f"{f['stream_cold_mb_per_s']:,.0f}", ""),
        ("stream, 3 epochs w/ cache (samples/s)", f"{s['stream_3_epochs_cached_samples_per_s']:,.0f}", ""),
        ("in-memory numpy (samples/s)", f"{s['in_memory_samples_per_s']:,.0f}", ""),
        ("naive doc-per-sample (samples/s)", f"{s['naive_one_doc_per_sample_samples_per_s']:,.0f}", ""),
        ("stream cold / naive", f"{s['stream_cold_vs_naive']:.1f}x", ">= 5x"),
        (f"params {p['megabytes']} MB save+load (s)", f"{p['save_s']:.2f} + {p['load_s']:.2f}", ""),
        ("np.savez+load to disk (s)", f"{p['np_save_s']:.2f} + {p['np_load_s']:.2f}", ""),
        ("params ratio vs numpy", f"{p['save_plus_load_ratio']:.1f}x", "<= 3x"),
        ("train_log caller cost (us)", f"{lg['caller_us_per_call']:.1f}", "<= 50"),
        (f"one {b['megabytes']} MB sample import/read (s)", f"{b['import_s']:.1f} / {b['read_s']:.1f}", "works"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>18}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>18}  {target}")
    write_results("tensordb" if args.payloads == "files" else "tensordb-gridfs", results)


if __name__ == "__main__":
    main()
