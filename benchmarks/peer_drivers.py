"""One measured call of bench_peers.py, run in a fresh process with that tool's own Python:

    <venv>/bin/python benchmarks/peer_drivers.py '{"tool": "mlflow", "op": "read_history", "work": ..., ...}'

prints `RESULT {json}` as its last line. Each tool is an adapter class with the same methods; each op does its set-up
(connecting, starting a run, making the array) before the clock and times only the work itself. Imports nothing
from TensorLab unless the tool is TensorLab, and nothing but numpy besides the tool's own package.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("loss", "acc", "lr", "gn")
LRS = (0.1, 0.03, 0.01, 0.003, 0.001)  # the search matches one of 5: 20% of the runs
TOP = 10


class Unsupported(Exception):
    """The tool has nothing that does this work."""


def row(step: int, steps: int) -> dict[str, float]:
    return {"loss": 1.0 / (step + 1), "acc": step / steps, "lr": 0.001 * (1 + step % 3), "gn": (step % 17) / 17}


def search_run(index: int) -> tuple[dict[str, Any], float]:
    """The i-th run of a search population: its hyper-parameters and its (unique) accuracy."""
    return {"lr": LRS[index % len(LRS)], "units": (32, 64, 128, 256)[index % 4]}, ((index * 7919) % 10007) / 10007


def checkpoint(megabytes: float, seed: int) -> np.ndarray:
    """Trained-weight-like float32 (not compressible); a new seed per repetition, so no store can dedupe it."""
    return np.random.default_rng(seed).standard_normal(int(megabytes * 2**20) // 4, dtype=np.float32)


class TensorLab:
    def __init__(self, a: dict[str, Any]) -> None:
        from bson import ObjectId

        import tensorlab

        self.oid = ObjectId
        self.db = tensorlab.connect(a["uri"], db=a["db"], study=a["store"])
        self.notes: list[str] = []
        began = time.perf_counter()
        import pandas  # noqa: F401  (as `import mlflow` does; db.logs / db.runs would import it on their first call)

        self.extra = {"pandas_import_s": time.perf_counter() - began}
        self.notes.append("pandas is imported before the clock, as `import mlflow` does (pandas_import_s)")

    def log_session(self, name: str) -> tuple[Any, Any, str]:
        db, run = self.db, self.db.run_store.start(name, hyper_parameters={"lr": 0.001})

        def log(step: int, metrics: dict[str, float]) -> None:
            db.train_log(run=run, step=step, **metrics)

        return log, lambda: db.flush_logs(timeout_s=600), str(run)

    def read_history(self, ref: str) -> Any:
        try:
            return self.db.logs(run=self.oid(ref), metrics=list(METRICS))
        except TypeError:  # `metrics=` not in this tree yet
            self.notes.append("logs(run=...) has no metrics= yet: read all columns")
            return self.db.logs(run=self.oid(ref))

    def create_run(self, name: str, hp: dict[str, Any], accuracy: float) -> None:
        run = self.db.run_store.start(name, hyper_parameters=hp, tags={"bench": "peers"})
        self.db.run_store.finish(run, "finished", summary={"best": {"accuracy": accuracy}})

    def search(self, lr: float) -> list[float]:
        query = {"hyper_parameters.lr": lr}
        try:
            found = self.db.runs(query, sort=[("accuracy", -1)], limit=TOP)
        except TypeError:  # no sort=/limit= yet
            self.notes.append("runs() has no sort=/limit= yet: runs(query) then pandas sort_values/head")
            found = self.db.runs(query).sort_values("best.accuracy", ascending=False).head(TOP)
        return [float(v) for v in found["best.accuracy"]]

    def save_blob(self, array: np.ndarray, name: str) -> Any:
        run = self.db.run_store.start(name)
        return lambda: (self.db.save_parameters([array], run=run), str(run))[1]

    def load_blob(self, ref: str) -> Any:
        return lambda: self.db.find_parameters({"run": self.oid(ref)})[0]

    def close(self) -> None:
        self.db.close()


class MLflow:
    def __init__(self, a: dict[str, Any]) -> None:
        import mlflow

        self.mlflow = mlflow
        root = Path(a["work"]) / "mlflow"
        root.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(f"sqlite:///{root / a['store']}.db")
        if mlflow.get_experiment_by_name("bench") is None:
            mlflow.create_experiment("bench", artifact_location=(root / f"{a['store']}-artifacts").as_uri())
        self.experiment = mlflow.set_experiment("bench").experiment_id
        self.client = mlflow.MlflowClient()
        self.work, self.notes = Path(a["work"]), []

    def log_session(self, name: str) -> tuple[Any, Any, str]:
        run = self.mlflow.start_run(run_name=name)
        log_metrics = self.mlflow.log_metrics

        def log(step: int, metrics: dict[str, float]) -> None:
            log_metrics(metrics, step=step)

        self.notes.append("log: log_metrics(4 metrics, step=i) per row, synchronous (readable when it returns), "
                          "on --mlflow-log-steps steps")
        return log, lambda: True, run.info.run_id

    def fill_history(self, name: str, steps: int) -> str:
        """Set-up only: the history written 250 steps (1,000 values, MLflow's batch limit) at a time."""
        from mlflow.entities import Metric

        run_id = self.mlflow.start_run(run_name=name).info.run_id
        now = int(time.time() * 1000)
        for first in range(0, steps, 250):
            batch = [Metric(key, value, now, step) for step in range(first, min(steps, first + 250))
                     for key, value in row(step, steps).items()]
            self.client.log_batch(run_id, metrics=batch)
        self.mlflow.end_run()
        return run_id

    def read_history(self, ref: str) -> Any:
        self.notes.append("history: MlflowClient().get_metric_history(run_id, key) per metric")
        return {key: self.client.get_metric_history(ref, key) for key in METRICS}

    def create_run(self, name: str, hp: dict[str, Any], accuracy: float) -> None:
        with self.mlflow.start_run(run_name=name, tags={"bench": "peers"}):
            self.mlflow.log_params(hp)
            self.mlflow.log_metric("accuracy", accuracy)

    def search(self, lr: float) -> list[float]:
        found = self.mlflow.search_runs([self.experiment], filter_string=f"params.lr = '{lr}'",
                                        order_by=["metrics.accuracy DESC"], max_results=TOP)
        return [float(v) for v in found["metrics.accuracy"]]

    def save_blob(self, array: np.ndarray, name: str) -> Any:
        self.notes.append("checkpoint: np.save + mlflow.log_artifact; "
                          "load: mlflow.artifacts.download_artifacts + np.load")
        run_id = self.mlflow.start_run(run_name=name).info.run_id
        path = Path(tempfile.mkdtemp(dir=self.work)) / "checkpoint.npy"

        def save() -> str:
            np.save(path, array)
            self.mlflow.log_artifact(str(path))
            return run_id

        return save

    def load_blob(self, ref: str) -> Any:
        out = tempfile.mkdtemp(dir=self.work)
        return lambda: np.load(self.mlflow.artifacts.download_artifacts(run_id=ref, artifact_path="checkpoint.npy",
                                                                        dst_path=out))

    def close(self) -> None:
        self.mlflow.end_run()


class Aim:
    def __init__(self, a: dict[str, Any]) -> None:
        import aim

        self.aim = aim
        self.path = str(Path(a["work"]) / "aim" / a["store"])
        Path(self.path).mkdir(parents=True, exist_ok=True)
        self.repo = aim.Repo.from_path(self.path, init=True)
        self.work, self.notes, self.run = Path(a["work"]), [], None

    def new_run(self, name: str) -> Any:
        # no system-metrics thread, no terminal capture: Aim at its lightest
        run = self.aim.Run(repo=self.repo, experiment="bench", system_tracking_interval=None,
                           capture_terminal_logs=False)
        run.name = name
        return run

    def log_session(self, name: str) -> tuple[Any, Any, str]:
        self.run = run = self.new_run(name)
        self.notes.append("log: run.track({4 metrics}, step=i) per row; readable = run.close() + indexing the run")

        def log(step: int, metrics: dict[str, float]) -> None:
            run.track(metrics, step=step)

        def readable() -> bool:
            run.close()
            self.run = None
            self.settle([run.hash])
            return True

        return log, readable, run.hash

    def settle(self, run_hashes: list[str]) -> None:
        """What `aim up` (or `aim storage reindex`) does in the background: until then Aim 3.29's readers,
        which read the repository's index, do not see the run."""
        from aim.sdk.index_manager import RepoIndexManager

        manager = RepoIndexManager.get_index_manager(self.repo)
        for run_hash in run_hashes:
            manager.index(run_hash)

    def read_history(self, ref: str) -> Any:
        run = self.aim.Run(ref, repo=self.repo, read_only=True)
        context = self.aim.storage.context.Context({})
        # (steps, [values, epochs, timestamps]) in step order; faster here than metric.dataframe(), and
        # metric.values.sparse_numpy(), faster still, gives neither the steps nor their order
        self.notes.append("history: Run(hash, read_only=True).get_metric(name, Context({})).data.numpy() per metric")
        return {key: run.get_metric(key, context).data.numpy() for key in METRICS}

    def create_run(self, name: str, hp: dict[str, Any], accuracy: float) -> str:
        self.notes.append("create: Run() + hparams + tag + track(accuracy) + close(); indexing the runs for readers "
                          "is after the clock (settle_s)")
        run = self.new_run(name)
        run["hparams"] = hp
        run.add_tag("bench")
        run.track(accuracy, name="accuracy", step=0)
        run.close()
        return run.hash

    def search(self, lr: float) -> list[float]:
        self.notes.append("search: repo.query_runs('run.hparams.lr == 0.01'), then each run's accuracy "
                          "(metric.values.last()) sorted in Python: Aim's query language cannot sort or limit")
        context = self.aim.storage.context.Context({})
        quiet = self.aim.sdk.types.QueryReportMode.DISABLED
        found = [item.run for item in self.repo.query_runs(f"run.hparams.lr == {lr}", report_mode=quiet).iter_runs()]
        accuracies = sorted((run.get_metric("accuracy", context).values.last()[1] for run in found), reverse=True)
        return [float(v) for v in accuracies[:TOP]]

    def save_blob(self, array: np.ndarray, name: str) -> Any:
        self.notes.append("checkpoint: run.log_artifact(np.save'd file, block=True) to a file:// artifacts URI; "
                          "load: run.artifacts[name].download() + np.load")
        self.run = run = self.new_run(name)
        run.set_artifacts_uri((self.work / "aim-artifacts").as_uri())
        path = Path(tempfile.mkdtemp(dir=self.work)) / "checkpoint.npy"

        def save() -> str:
            np.save(path, array)
            run.log_artifact(str(path), name="checkpoint.npy", block=True)
            run.close()
            self.run = None
            return run.hash

        return save

    def load_blob(self, ref: str) -> Any:
        out = tempfile.mkdtemp(dir=self.work)
        run = self.aim.Run(ref, repo=self.repo, read_only=True)
        return lambda: np.load(run.artifacts["checkpoint.npy"].download(out))

    def close(self) -> None:
        if self.run is not None:
            self.run.close()


class TensorBoard:
    """tensorboardX's SummaryWriter (its own writer thread) and TensorBoard's EventAccumulator to read."""

    def __init__(self, a: dict[str, Any]) -> None:
        self.root, self.notes, self.writer = Path(a["work"]) / "tensorboard" / a["store"], [], None

    def log_session(self, name: str) -> tuple[Any, Any, str]:
        from tensorboardX import SummaryWriter

        self.notes.append("log: add_scalar x 4 per row (tensorboardX); readable = writer.flush()")
        self.writer = writer = SummaryWriter(str(self.root / name))
        add = writer.add_scalar

        def log(step: int, metrics: dict[str, float]) -> None:
            for key, value in metrics.items():
                add(key, value, step)

        def readable() -> bool:
            writer.flush()
            return True

        return log, readable, name

    def read_history(self, ref: str) -> Any:
        from tensorboard.backend.event_processing import event_accumulator

        self.notes.append("history: EventAccumulator(size_guidance={SCALARS: 0}).Reload() + Scalars(key) per metric")
        events = event_accumulator.EventAccumulator(str(self.root / ref), size_guidance={event_accumulator.SCALARS: 0})
        events.Reload()
        return {key: events.Scalars(key) for key in METRICS}

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class WandB:
    """W&B in offline mode: rows go to a local .wandb file through its wandb-core process."""

    def __init__(self, a: dict[str, Any]) -> None:
        import wandb

        self.wandb, self.dir, self.notes, self.run = wandb, Path(a["work"]) / "wandb" / a["store"], [], None
        self.dir.mkdir(parents=True, exist_ok=True)

    def log_session(self, name: str) -> tuple[Any, Any, str]:
        self.notes.append("log: run.log({4 metrics}, step=i) per row, offline; readable = run.finish() (the local "
                          ".wandb file is complete; nothing reads it before `wandb sync`)")
        self.run = run = self.wandb.init(mode="offline", dir=str(self.dir), project="bench", name=name,
                                         config={"lr": 0.001})

        def log(step: int, metrics: dict[str, float]) -> None:
            run.log(metrics, step=step)

        def readable() -> bool:
            run.finish()
            return True

        return log, readable, run.id

    def close(self) -> None:
        pass


class Numpy:
    """The physical floor for a checkpoint: np.save / np.load of the same array to a local file."""

    def __init__(self, a: dict[str, Any]) -> None:
        self.dir, self.notes = Path(a["work"]) / "numpy", []
        self.dir.mkdir(parents=True, exist_ok=True)

    def save_blob(self, array: np.ndarray, name: str) -> Any:
        path = self.dir / f"{name}.npy"
        return lambda: (np.save(path, array), str(path))[1]

    def load_blob(self, ref: str) -> Any:
        return lambda: np.load(ref)

    def close(self) -> None:
        pass


ADAPTERS = {"tensorlab": TensorLab, "mlflow": MLflow, "aim": Aim, "tensorboard": TensorBoard, "wandb": WandB,
            "numpy": Numpy}


def _method(tool: Any, name: str) -> Any:
    if not hasattr(tool, name):
        raise Unsupported(f"{type(tool).__name__} has no {name}")
    return getattr(tool, name)


def op_log(tool: Any, a: dict[str, Any]) -> dict[str, Any]:
    """`steps` rows of 4 metrics, one call per row; the clock runs until the rows are readable."""
    steps = a["steps"]
    rows = [row(step, steps) for step in range(steps)]
    log, readable, ref = _method(tool, "log_session")(a["name"])
    costs = np.empty(steps, dtype=np.int64)
    gc.collect()
    began = time.perf_counter()
    for step in range(steps):
        tick = time.perf_counter_ns()
        log(step, rows[step])
        costs[step] = time.perf_counter_ns() - tick
    logged_s = time.perf_counter() - began
    done = readable()
    seconds = time.perf_counter() - began
    return {"ref": ref, "rows": steps, "seconds": seconds, "loop_s": logged_s, "readable": bool(done),
            "rows_per_s": steps / seconds, "p50_us": float(np.percentile(costs, 50)) / 1000,
            "p99_us": float(np.percentile(costs, 99)) / 1000, "max_ms": float(costs.max()) / 1e6}


def op_fill_history(tool: Any, a: dict[str, Any]) -> dict[str, Any]:
    """Set-up: one run with `steps` rows of 4 metrics, by the tool's fastest way in (batches where it has them)."""
    began = time.perf_counter()
    if hasattr(tool, "fill_history"):
        ref = tool.fill_history(a["name"], a["steps"])
    else:
        ref = op_log(tool, a)["ref"]
    return {"ref": ref, "seconds": time.perf_counter() - began}


def _points(found: Any) -> int:
    if hasattr(found, "columns"):  # a DataFrame: the non-empty values of the 4 metrics
        return int(found[[key for key in METRICS if key in found.columns]].notna().sum().sum())
    return sum(len(values[0]) if isinstance(values, tuple) else len(values) for values in found.values())


def op_read_history(tool: Any, a: dict[str, Any]) -> dict[str, Any]:
    gc.collect()
    began = time.perf_counter()
    found = _method(tool, "read_history")(a["ref"])
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "points": _points(found)}


def _settle(tool: Any, refs: list[Any]) -> float:
    """After the clock: whatever the tool needs before another process's reader sees these runs (Aim: indexing)."""
    began = time.perf_counter()
    if hasattr(tool, "settle"):
        tool.settle([ref for ref in refs if ref is not None])
    return time.perf_counter() - began


def op_create(tool: Any, a: dict[str, Any]) -> dict[str, Any]:
    """`runs` runs, each started, given its hyper-parameters and accuracy, and finished."""
    create = _method(tool, "create_run")
    refs = []
    began = time.perf_counter()
    for index in range(a["runs"]):
        hp, accuracy = search_run(index)
        refs.append(create(f"{a['name']}-{index}", hp, accuracy))
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "ms_each": seconds * 1000 / max(1, a["runs"]), "settle_s": _settle(tool, refs)}


def op_search(tool: Any, a: dict[str, Any]) -> dict[str, Any]:
    """lr == 0.01, top 10 by accuracy: the first call in this process, then the median of 5 warm calls."""
    search = _method(tool, "search")
    began = time.perf_counter()
    top = search(0.01)
    first = time.perf_counter() - began
    warm = []
    for _ in range(5):
        began = time.perf_counter()
        search(0.01)
        warm.append(time.perf_counter() - began)
    return {"first_s": first, "warm_s": float(np.median(warm)), "top": top}


def op_save(tool: Any, a: dict[str, Any]) -> dict[str, Any]:
    save = _method(tool, "save_blob")(checkpoint(a["mb"], a["seed"]), a["name"])
    gc.collect()
    began = time.perf_counter()
    ref = save()
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "ref": ref, "settle_s": _settle(tool, [ref])}


def op_load(tool: Any, a: dict[str, Any]) -> dict[str, Any]:
    load = _method(tool, "load_blob")(a["ref"])
    gc.collect()
    began = time.perf_counter()
    array = load()
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "same": bool(np.array_equal(np.asarray(array), checkpoint(a["mb"], a["seed"])))}


OPS = {"log": op_log, "fill_history": op_fill_history, "read_history": op_read_history, "create": op_create,
       "search": op_search, "save": op_save, "load": op_load}


def main() -> None:
    args = json.loads(sys.argv[1])
    os.chdir(args["work"])  # whatever a tool leaves beside its store (mlruns/, wandb/) stays in the work folder
    tool = ADAPTERS[args["tool"]](args)
    try:
        result = OPS[args["op"]](tool, args)
    except Unsupported as why:
        result = {"unsupported": str(why)}
    result["notes"] = sorted(set(tool.notes))
    result.update(getattr(tool, "extra", {}))
    tool.close()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
