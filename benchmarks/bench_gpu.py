"""The GPU check: training overhead, stream feed, a worker and a `%%tdb_train` cell, all on one device.

Run by `benchmarks/gpu_check.sh` on a GPU machine (Keras 3 on JAX there), or by hand anywhere:
`KERAS_BACKEND=jax python benchmarks/bench_gpu.py --device cpu --quick` checks the script itself.

Measures, on `--device`:
- plain `fit` vs `fit` + DBLogger (every batch, checkpoint each epoch) for an MLP 784-800-800-10 and a
  small CNN on MNIST-shaped data, at batch 128 and 1024: samples/s and the ratio (target <= 1.02x at 128);
- the same MLP fed by `db.data_generator` vs in-memory arrays (target <= 1.05x);
- a worker claiming and training 8 queued jobs on the device;
- a `%%tdb_train --device ...` cell executed through a real kernel (nbclient).
Prints a table per part and writes benchmarks/results/gpu-<device name>.json (gpu-<device name>-torch.json on
the PyTorch backend, cpu-check-<backend>.json on a CPU).
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from typing import Any

import numpy as np
from save_results import write_results  # benchmarks/ is on sys.path when run as a script

import tensorlab

DB_NAME = "tensorlab_bench_gpu"


def build_mlp() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(800, activation="relu"),
                              keras.layers.Dense(800, activation="relu"), keras.layers.Dense(10, activation="softmax")],
                             name="mlp")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_cnn() -> Any:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Reshape((28, 28, 1)),
                              keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
                              keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")], name="cnn")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


MODELS = {"mlp 784-800-800-10": build_mlp, "cnn 2xconv": build_cnn}


def median_time(runs: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds of each configuration, repetitions interleaved so drift hits all alike."""
    for run in runs.values():  # warm-up: compile and trace once per configuration
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def bench_overhead(db: Any, device: str, X: np.ndarray, y: np.ndarray, epochs: int, repeats: int) -> list[dict]:
    from tensorlab.devices import on_device

    rows = []
    for model_name, build in MODELS.items():
        for batch in (128, 1024):
            def plain(build=build, batch=batch) -> None:
                with on_device(device):
                    build().fit(X, y, batch_size=batch, epochs=epochs, verbose=0)

            def logged(build=build, batch=batch, model_name=model_name) -> None:
                logger = tensorlab.DBLogger(db, f"{model_name}-{batch}", every_n_batches=1, checkpoint="epoch",
                                            batch_size=batch)
                with on_device(device):
                    build().fit(X, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[logger])

            median = median_time({"plain": plain, "dblogger": logged}, repeats)
            samples = len(X) * epochs
            rows.append({"model": model_name, "batch_size": batch, "plain_s": median["plain"],
                         "dblogger_s": median["dblogger"], "plain_samples_per_s": samples / median["plain"],
                         "dblogger_samples_per_s": samples / median["dblogger"],
                         "ratio": median["dblogger"] / median["plain"]})
            print(f"{model_name:<20} batch {batch:>5}: plain {samples / median['plain']:>10,.0f} samples/s, "
                  f"DBLogger {samples / median['dblogger']:>10,.0f} samples/s, ratio {rows[-1]['ratio']:.3f}x"
                  f"{'   (target <= 1.02x)' if batch == 128 else ''}")
    return rows


def bench_stream(db: Any, device: str, X: np.ndarray, y: np.ndarray, epochs: int, repeats: int) -> dict:
    import math

    from tensorlab.devices import on_device

    db.import_data(X, y, tags={"bench": "stream"})
    batch = 128
    steps = math.ceil(len(X) / batch)

    def in_memory() -> None:
        with on_device(device):
            build_mlp().fit(X, y, batch_size=batch, epochs=epochs, verbose=0)

    def streamed() -> None:
        stream = db.data_generator({"tags.bench": "stream"}, batch, epochs=None)
        try:
            with on_device(device):
                build_mlp().fit(iter(stream), steps_per_epoch=steps, epochs=epochs, verbose=0)
        finally:
            stream.close()

    median = median_time({"in_memory": in_memory, "stream": streamed}, repeats)
    result = {"batch_size": batch, "samples": len(X), "in_memory_s": median["in_memory"], "stream_s": median["stream"],
              "ratio": median["stream"] / median["in_memory"]}
    print(f"stream-fed MLP fit: {median['stream']:.2f} s vs in-memory {median['in_memory']:.2f} s, "
          f"ratio {result['ratio']:.3f}x (target <= 1.05x)")
    return result


def bench_worker(db: Any, device: str, epochs: int, jobs: int = 8) -> dict:
    from tensorlab.worker import Worker

    architecture = db.save_model_architecture(build_mlp(), name="gpu-worker-mlp")
    ids = [db.push_job(architecture, data={"tags.bench": "stream"}, epochs=epochs, batch_size=128,
                       hyper_parameters={"learning_rate": lr}) for lr in np.geomspace(1e-4, 1e-2, jobs)]
    started = time.perf_counter()
    stats = Worker(db, "gpu-bench-worker", device=device, max_jobs=jobs, max_idle_s=5.0).run()
    elapsed = time.perf_counter() - started
    states = [db.jobs.get(job)["status"] for job in ids]
    devices = sorted({run["device"] for run in db.run_store.find({"job": {"$in": ids}})})
    print(f"worker: {stats.done}/{jobs} jobs done in {elapsed:.1f} s on {devices} (failed {stats.failed})")
    return {"jobs": jobs, "done": states.count("done"), "failed": stats.failed, "seconds": elapsed,
            "run_devices": devices}


MAGIC_CELL = """%%tdb_train --name gpu-magic --epochs {epochs} --batch-size 128 --x X --y y --device {device}
import keras
model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(800, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model
"""


def bench_magic_cell(db: Any, uri: str, device: str, epochs: int) -> dict:
    """A `%%tdb_train` cell in a real kernel (nbclient), on the device; the run it records is read back."""
    import nbformat
    from nbclient import NotebookClient

    setup = (f"import numpy as np\n%load_ext tensorlab\n%tdb_connect {uri} "
             f"--db {DB_NAME} --study {db.study}\n"
             "rng = np.random.default_rng(0)\nX = rng.random((4096, 784), dtype=np.float32)\n"
             "y = rng.integers(0, 10, 4096)")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup),
                                               nbformat.v4.new_code_cell(MAGIC_CELL.format(epochs=epochs,
                                                                                           device=device))])
    started = time.perf_counter()
    NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    elapsed = time.perf_counter() - started
    run = db.run_store.resolve("gpu-magic")
    print(f"%%tdb_train cell: run {run['name']!r} {run['status']} on {run['device']!r} in {elapsed:.1f} s")
    return {"status": run["status"], "device": run["device"], "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="gpu:0")
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes: checks that every part runs")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.epochs, args.repeats = 4096, 1, 1

    import keras

    from tensorlab.devices import list_devices
    from tensorlab.tensordb.server.connection import resolve_uri

    info = list_devices()
    if args.device not in info.devices:
        raise SystemExit(f"--device {args.device}: the {info.backend} backend has {list(info.devices)}.")
    device_name = _device_name(info.backend, args.device)
    rng = np.random.default_rng(0)
    X = rng.random((args.samples, 784), dtype=np.float32)  # incompressible, like real pixels after scaling
    y = rng.integers(0, 10, args.samples)
    uri = resolve_uri(None)  # $TENSORLAB_MONGODB_URI, else the managed server (started if need be)
    db = tensorlab.connect(uri, db=DB_NAME, study="gpu")
    db.client.drop_database(DB_NAME)
    print(f"backend {info.backend}, device {args.device} ({device_name}), {args.samples} samples, "
          f"{args.epochs} epochs, {args.repeats} repetitions")
    results = {"backend": keras.config.backend(), "device": args.device, "device_name": device_name,
               "samples": args.samples, "epochs": args.epochs, "repeats": args.repeats,
               "overhead": bench_overhead(db, args.device, X, y, args.epochs, args.repeats),
               "stream": bench_stream(db, args.device, X, y, args.epochs, args.repeats),
               "worker": bench_worker(db, args.device, args.epochs),
               "magic_cell": bench_magic_cell(db, uri, args.device, args.epochs)}
    db.flush_logs(timeout_s=120)
    db.client.drop_database(DB_NAME)
    slug = re.sub(r"[^a-z0-9]+", "-", device_name.lower()).strip("-")
    suffix = "" if info.backend == "jax" else f"-{info.backend}"  # a second backend's run keeps its own file
    write_results(f"gpu-{slug}{suffix}" if args.device.startswith("gpu") else f"cpu-check-{info.backend}", results)


def _device_name(backend: str, device: str) -> str:
    """The accelerator's model name (e.g. 'NVIDIA H100 80GB HBM3'), as the backend reports it."""
    if device == "cpu":
        import platform

        return platform.processor() or platform.machine()
    index = int(device.partition(":")[2] or 0)
    if backend == "jax":
        import jax

        return jax.devices("gpu")[index].device_kind
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(index)
    import tensorflow as tf

    return tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[index]).get(
        "device_name", device)


if __name__ == "__main__":
    main()
