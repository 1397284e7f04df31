"""The TensorLab magics: thin wrappers that parse arguments and call one public function each."""

from __future__ import annotations

import os
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from tensorlab import TensorLabError, connect

from .arguments import parse_grid, parse_pairs, parse_query, require_positive, unquote

CONNECTION_VAR = "_tdb"
WORKER_VAR = "_tdb_worker"


def _usage(error: Exception) -> UsageError:
    return UsageError(str(error))


def _panel(handle: Any) -> Any:
    from tensorlab.widgets import LivePanel

    return LivePanel(handle).show()


def _follow(handle: Any, interrupt: bool) -> None:
    """Show a run's live panel and wait for it; Ctrl-C stops it after the batch (with a checkpoint) and, for a
    fit inside the cell (`interrupt`), ends the cell too. The saved notebook shows the final state."""
    panel = _panel(handle)
    try:
        handle.wait()
    except KeyboardInterrupt:
        handle.stop()
        handle.wait()
        panel.finish()
        if interrupt:
            raise
        return
    panel.finish()


@magics_class
class TensorLabMagics(Magics):
    """`%tdb_connect` binds a TensorDB to the notebook; the other magics use it."""

    # -- helpers ---------------------------------------------------------------------------------
    def _connection(self) -> Any:
        db = self.shell.user_ns.get(CONNECTION_VAR)
        if db is None:
            raise UsageError("Not connected: run %tdb_connect first (e.g. `%tdb_connect --study mnist`).")
        return db

    def _variable(self, name: str, what: str) -> Any:
        if name not in self.shell.user_ns:
            raise UsageError(f"{what}: no variable named {name!r} in the notebook.")
        return self.shell.user_ns[name]

    # -- connection ------------------------------------------------------------------------------
    @magic_arguments()
    @argument("uri", nargs="?", default=None, help="mongodb:// URI (default: $TENSORLAB_MONGODB_URI, else local)")
    @argument("--db", default="tensorlab", help="database name")
    @argument("--study", default=None, help="study every document is tagged with")
    @argument("--user", default=None, help="user name")
    @argument("--password-env", default=None, help="environment variable that holds the password")
    @argument("--memory", action="store_true", help="ephemeral in-process store (mongomock)")
    @line_magic
    def tdb_connect(self, line: str) -> None:
        """Connect to TensorDB and bind it as `_tdb` for the other magics."""
        args = parse_argstring(self.tdb_connect, line)
        for option in ("uri", "db", "study", "user"):  # `--study ''` arrives with its quotes
            setattr(args, option, unquote(getattr(args, option)))
        password = None
        if args.password_env:
            password = os.environ.get(args.password_env)
            if password is None:
                raise UsageError(f"--password-env {args.password_env}: that environment variable is not set.")
        try:
            db = connect("memory://" if args.memory else args.uri, db=args.db, study=args.study, user=args.user,
                         password=password)
        except TensorLabError as error:
            raise _usage(error) from None
        self.shell.user_ns[CONNECTION_VAR] = db
        self.tdb_status("")

    @line_magic
    def tdb_status(self, line: str) -> None:
        """Show the connection the magics use."""
        db = self._connection()
        print(f"TensorDB connected: server {db.uri}, database {db.db_name!r}, study {db.study!r}")

    # -- training --------------------------------------------------------------------------------
    @magic_arguments()
    @argument("--name", default=None, help="run name (default: the model's name)")
    @argument("--epochs", type=int, default=1)
    @argument("--batch-size", type=int, default=32)
    @argument("--data", nargs="+", default=None, help="TensorDB query (JSON or k=v) for training data")
    @argument("--validation", nargs="+", default=None, help="TensorDB query for validation data")
    @argument("--x", default=None, help="notebook variable holding the inputs")
    @argument("--y", default=None, help="notebook variable holding the labels")
    @argument("--validation-vars", nargs=2, default=None, metavar=("XV", "YV"), help="validation variables")
    @argument("--steps-per-epoch", type=int, default=None,
              help="batches per epoch (needed for a generator that never ends)")
    @argument("--callbacks", default=None, metavar="VAR", help="notebook variable holding a callback or a list")
    @argument("--checkpoint", choices=["every", "best", "none"], default="every")
    @argument("--monitor", default="val_loss")
    @argument("--mode", choices=["auto", "min", "max"], default="auto",
              help="whether a higher or lower --monitor is better (auto: ask the metric)")
    @argument("--resume", nargs="?", const=True, default=False, help="resume the run (or the named run)")
    @argument("--fork", default=None, metavar="RUN[@EPOCH]",
              help="start a new run from RUN's parameters at EPOCH (default: its latest)")
    @argument("--background", action="store_true", help="return at once; training continues")
    @argument("--device", default=None)
    @argument("--mixed-precision", action="store_true", help="train in mixed_float16 (the policy is restored after)")
    @argument("--tag", nargs="+", default=None, help="k=v tags for the run")
    @argument("--distribution", choices=["data_parallel"], default=None,
              help="train on every local device (keras.distribution, JAX backend)")
    @argument("--seed", type=int, default=None,
              help="seed set before the cell runs and for fit (default: drawn, recorded with the run)")
    @cell_magic
    def tdb_train(self, line: str, cell: str) -> Any:
        """Train the cell's Keras model with DBLogger and the live panel. Variables are read after the cell ran;
        a model.fit(...) inside the cell is logged as a run too."""
        import tensorlab
        from tensorlab.cell_training import NEEDS_DATA

        args = parse_argstring(self.tdb_train, line)
        require_positive(args, "--epochs", "--batch-size", "--steps-per-epoch")
        db = self._connection()
        data = parse_query(args.data)
        if data is None and args.x is None and ".fit(" not in cell:
            raise UsageError(NEEDS_DATA)
        fit: dict[str, Any] = {"epochs": args.epochs, "batch_size": args.batch_size,
                               "checkpoint": {"every": "epoch", "best": "best", "none": None}[args.checkpoint],
                               "monitor": args.monitor, "mode": args.mode, "resume": args.resume,
                               "device": args.device, "hyper_parameters": parse_pairs(args.tag, "--tag"),
                               "mixed_precision": args.mixed_precision}
        if args.steps_per_epoch is not None:
            fit["steps_per_epoch"] = args.steps_per_epoch
        if args.seed is not None:
            fit["seed"] = args.seed
        if args.distribution is not None:
            fit["distribution"] = args.distribution
        if data is not None:
            fit["data"] = data
        if args.validation:
            fit["validation_data"] = parse_query(args.validation)
        variables = {"x": args.x, "y": args.y, "callbacks": args.callbacks,
                     "validation_data": tuple(args.validation_vars) if args.validation_vars else None}
        try:
            handle = tensorlab.train_cell(self.shell, cell, db, name=args.name, fork=args.fork, variables=variables,
                                          follow=lambda run: _follow(run, interrupt=True), **fit)
        except TensorLabError as error:
            raise _usage(error) from None
        if handle.followed:  # the cell's own fit: shown and waited for already
            return None
        if args.background:
            _panel(handle)  # a background run writes its final state into the output itself
            return None
        _follow(handle, interrupt=False)
        if isinstance(handle.error, TensorLabError):  # refused by Model.fit's checks, before anything trained
            raise _usage(handle.error) from None
        if handle.error is not None:
            raise handle.error
        return None

    # -- jobs ------------------------------------------------------------------------------------
    @magic_arguments()
    @argument("--model", default=None, help="notebook variable holding a Keras model (its architecture is saved)")
    @argument("--architecture", nargs="+", default=None, help="query of a stored architecture")
    @argument("--data", nargs="+", default=None, help="TensorDB query for training data")
    @argument("--validation", nargs="+", default=None, help="TensorDB query for validation data")
    @argument("--epochs", type=int, default=1)
    @argument("--batch-size", type=int, default=32)
    @argument("--priority", type=float, default=0)
    @argument("--max-attempts", type=int, default=3)
    @argument("--param", nargs="+", default=None, help="k=v hyper-parameters for every job")
    @argument("--grid", action="append", default=None, help="k=v1,v2 (repeatable): one job per combination")
    @argument("--repeat", type=int, default=1, help="push each setting this many times")
    @line_cell_magic
    def tdb_push_job(self, line: str, cell: str | None = None) -> list[Any]:
        """Queue training jobs; the cell form's body is model-building code, run only by --allow-code workers."""
        from tensorlab.widgets import JobQueuePanel

        from tensorlab.sweeps import grid, push_jobs

        args = parse_argstring(self.tdb_push_job, line)
        require_positive(args, "--epochs", "--batch-size", "--max-attempts", "--repeat")
        db = self._connection()
        # every argument is parsed and checked before anything is stored (the architecture included)
        base, space = parse_pairs(args.param, "--param"), parse_grid(args.grid)
        job = {"code": cell or None, "data": parse_query(args.data), "validation_data": parse_query(args.validation),
               "epochs": args.epochs, "batch_size": args.batch_size, "priority": args.priority,
               "max_attempts": args.max_attempts}
        model = self._variable(args.model, "--model") if args.model else None
        if model is None and not args.architecture and not cell:
            raise UsageError("%tdb_push_job needs --model VAR, --architecture QUERY, or a cell with build_model().")
        try:
            architecture = db.architectures.find(parse_query(args.architecture))["_id"] if args.architecture else None
            settings = [{**base, **hp} for hp in (grid(space) if space else [{}]) for _ in range(args.repeat)]
            ids = push_jobs(db, architecture, settings, model=model, **job)
        except TensorLabError as error:
            raise _usage(error) from None
        print(f"pushed {len(ids)} job(s): {', '.join(str(i)[-8:] for i in ids)}")
        display(JobQueuePanel(db))
        return None if cell else ids  # `ids = %tdb_push_job ...`; the cell form shows the panel only, once

    @magic_arguments()
    @argument("--status", default=None, choices=["queued", "running", "done", "failed", "cancelled"])
    @line_magic
    def tdb_jobs(self, line: str) -> None:
        """Show the job queue panel."""
        from tensorlab.widgets import JobQueuePanel

        args = parse_argstring(self.tdb_jobs, line)
        try:
            display(JobQueuePanel(self._connection(), status=args.status))
        except TensorLabError as error:
            raise _usage(error) from None

    @magic_arguments()
    @argument("--background", action="store_true", help="run in a thread; the notebook stays usable")
    @argument("--max-jobs", type=int, default=None)
    @argument("--allow-code", action="store_true", help="also run jobs that carry Python source")
    @argument("--idle-exit", type=float, default=5.0, help="stop after this many idle seconds")
    @argument("--lease", type=float, default=60.0)
    @argument("--poll", type=float, default=0.5, help="seconds between polls of an empty queue")
    @line_magic
    def tdb_worker(self, line: str) -> Any:
        """Run a worker inside this kernel."""
        import threading

        from tensorlab.worker import Worker

        args = parse_argstring(self.tdb_worker, line)
        try:
            worker = Worker(self._connection(), max_jobs=args.max_jobs, allow_code=args.allow_code,
                            max_idle_s=args.idle_exit, lease_s=args.lease, poll_interval_s=args.poll)
        except TensorLabError as error:
            raise _usage(error) from None
        self.shell.user_ns[WORKER_VAR] = worker
        if args.background:
            threading.Thread(target=worker.run, daemon=True, name="tensorlab-kernel-worker").start()
            print(f"worker {worker.name} running in the background (stop: _tdb_worker.request_stop())")
            return None
        stats = worker.run()
        print(f"worker {worker.name}: done {stats.done}, failed {stats.failed}, requeued {stats.requeued}")
        if stats.quarantined:
            print(stats.quarantined)
        return None

    # -- runs, comparison, data --------------------------------------------------------------------
    @line_magic
    def tdb_runs(self, line: str) -> Any:
        """Runs matching an optional query (JSON or k=v) as a DataFrame."""
        try:
            return self._connection().runs(parse_query(line))
        except TensorLabError as error:
            raise _usage(error) from None

    @magic_arguments()
    @argument("run", help="the run's id or name")
    @line_magic
    def tdb_open(self, line: str) -> None:
        """Open a run's tab in JupyterLab (the TensorLab lab extension), live without this kernel."""
        from tensorlab.lab.open_run import open_run

        try:
            open_run(self._connection(), unquote(parse_argstring(self.tdb_open, line).run))
        except TensorLabError as error:
            raise _usage(error) from None

    @magic_arguments()
    @argument("runs", nargs="*", help="run names or ids")
    @argument("--query", nargs="+", default=None, help="query selecting runs")
    @argument("--metric", default="val_accuracy")
    @argument("--mode", choices=["max", "min"], default="max")
    @line_magic
    def tdb_compare(self, line: str) -> None:
        """Show the comparison panel for runs named on the line or selected by --query."""
        from tensorlab.widgets import ComparisonPanel

        args = parse_argstring(self.tdb_compare, line)
        if not args.runs and not args.query:
            raise UsageError("%tdb_compare needs run names or --query QUERY.")
        try:
            display(ComparisonPanel(self._connection(), parse_query(args.query), args.runs or None,
                                    metric=args.metric, mode=args.mode))
        except TensorLabError as error:
            raise _usage(error) from None

    @magic_arguments()
    @argument("x", help="notebook variable with the samples")
    @argument("y", nargs="?", default=None, help="notebook variable with the labels")
    @argument("--tag", nargs="+", default=None, help="k=v tags")
    @line_magic
    def tdb_import(self, line: str) -> Any:
        """Import notebook arrays into TensorDB with tags."""
        args = parse_argstring(self.tdb_import, line)
        X = self._variable(args.x, "%tdb_import")
        y = self._variable(args.y, "%tdb_import") if args.y else None
        try:
            result = self._connection().import_data(X, y, parse_pairs(args.tag, "--tag"))
        except TensorLabError as error:
            raise _usage(error) from None
        print(f"imported {result.count} samples in {result.chunks} chunk(s) (import {result.import_id})")
        return None

    @line_magic
    def tdb_data(self, line: str) -> None:
        """Show the data panel."""
        from tensorlab.widgets import DataPanel

        db, query = self._connection(), parse_query(line)
        try:
            db.data_count(query)  # a bad query is a usage error now, not a message inside the panel
        except TensorLabError as error:
            raise _usage(error) from None
        display(DataPanel(db, query))
