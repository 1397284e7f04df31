"""End-to-end check of the TensorDB API (until the demo notebook lands): data, stream, parameters, logs, jobs."""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits

import tensorlab


def main() -> None:
    started = time.monotonic()
    db = tensorlab.connect(study="quickstart")
    print(f"connected: {db}")
    db.delete_data({})  # a fresh study each time the demo runs (blobs go with what refers to them)
    db.delete_parameters({})
    for collection in ("logs", "runs", "jobs"):
        db.collection(collection).delete_many({"study": db.study})

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    db.import_data(X[:1500], y[:1500], tags={"dataset": "digits", "split": "train"})
    db.import_data(X[1500:], y[1500:], tags={"dataset": "digits", "split": "valid"})
    print(db.data_summary()[["tags", "samples", "dtype", "sample_shape"]].to_string(index=False))

    X_valid, y_valid = db.find_data({"tags.split": "valid"})
    assert np.array_equal(X_valid, X[1500:]) and np.array_equal(y_valid, y[1500:]), "read-back differs"
    streamed = sum(len(xb) for xb, _ in db.data_generator({"tags.split": "train"}, batch_size=128, epochs=2))
    assert streamed == 3000, streamed
    print(f"read back {len(X_valid)} validation samples; streamed 2 epochs = {streamed} samples")

    run = db.run_store.start("quickstart", hyper_parameters={"lr": 0.1})
    weights = [np.zeros((64, 10), np.float32), np.zeros(10, np.float32)]
    for epoch in range(3):  # a tiny softmax regression by hand, logged like a real run
        logits = X[:1500] @ weights[0] + weights[1]
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        grad = probs - np.eye(10)[y[:1500]]
        weights = [weights[0] - 0.5 * X[:1500].T @ grad / 1500, weights[1] - 0.5 * grad.mean(0)]
        accuracy = float(((X_valid @ weights[0] + weights[1]).argmax(1) == y_valid).mean())
        db.train_log(run=run, epoch=epoch, loss=float(-np.log(probs[np.arange(1500), y[:1500]]).mean()))
        db.valid_log(run=run, epoch=epoch, val_accuracy=accuracy)
        db.save_parameters(weights, {"val_accuracy": accuracy}, run=run, epoch=epoch)
    best = db.find_best_parameters({"run": run}, "val_accuracy")
    db.run_store.finish(run, summary={"best": {"val_accuracy": best["metrics"]["val_accuracy"]}})
    print(db.logs(run=run)[["kind", "epoch", "loss", "val_accuracy"]].to_string(index=False))
    print(f"best version: epoch {best['epoch']} val_accuracy {best['metrics']['val_accuracy']:.3f}")

    job = db.push_job("softmax-regression", data={"tags.split": "train"}, epochs=3)
    claimed = db.pop_job("demo-worker")
    db.jobs.complete(claimed, "demo-worker", result={"ok": True})
    assert db.jobs.get(job)["status"] == "done"
    print(f"job {job} queued, claimed and done; demo finished in {time.monotonic() - started:.1f} s")
    db.close()


if __name__ == "__main__":
    main()
