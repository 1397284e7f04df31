"""Training fed by a TensorDB query (streamed) vs the same arrays in memory: the stream must cost <= 1.05x.

What `Model.fit(data=query)` hands Keras (tensorlab.training_input) against `keras.Model.fit(X, y)`, same
model, data, batch size and epochs: MLP 784-800-800-10 on 60,000 synthetic MNIST-shaped samples, batch
128, 2 epochs. Repetitions are interleaved; medians are compared. Prints a table and writes
benchmarks/results/stream_fit.json. Uses $TENSORLAB_MONGODB_URI or the managed local server.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from bench_training import build_model  # benchmarks/ is on sys.path when run as a script
from save_results import write_results

DB_NAME = "tensorlab_bench_stream_fit"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import keras

    import tensorlab
    from tensorlab.training_input import training_input

    rng = np.random.default_rng(0)
    X = rng.random((args.samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    db = tensorlab.connect(db=DB_NAME, study="bench")
    db.client.drop_database(DB_NAME)
    db.import_data(X, y, {"split": "train"})
    query = {"tags.split": "train"}

    def arrays() -> None:
        build_model().fit(X, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0)

    def stream() -> None:
        inputs = training_input(db, None, None, query, args.batch_size)
        try:
            build_model().fit(inputs.x, epochs=args.epochs, steps_per_epoch=inputs.steps_per_epoch, shuffle=False,
                              verbose=0)
        finally:
            inputs.close()

    configs = {"arrays in memory": arrays, "TensorDB query, streamed": stream}
    arrays()  # warm-up: imports, kernels, first trace
    stream()
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, run in configs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    db.client.drop_database(DB_NAME)
    db.close()
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["TensorDB query, streamed"] / medians["arrays in memory"]
    results = {"backend": keras.config.backend(), "samples": args.samples, "epochs": args.epochs,
               "batch_size": args.batch_size, "repeats": args.repeats, "seconds": times, "median_s": medians,
               "stream_to_arrays": ratio}
    print(f"backend {results['backend']}, {args.samples:,} samples x {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.repeats} repetitions")
    for name, median in medians.items():
        print(f"{name:<26} {median:>8.2f} s")
    print(f"{'stream / arrays':<26} {ratio:>8.3f}x   target <= 1.05x")
    write_results("stream_fit", results)


if __name__ == "__main__":
    main()
