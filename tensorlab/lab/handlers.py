"""Tornado handlers of the lab's HTTP API: each parses its parameters and calls one function of the views.

Why thin: the views (run_views, log_positions, job_views, data_views) are plain functions over a TensorDB,
tested without a server; a handler only checks parameters (a bad one is a 400 naming it), runs the view on
a thread (pymongo blocks; the Jupyter server's event loop must not) and maps TensorLab's errors to HTTP
statuses. Every handler requires an authenticated user (`@tornado.web.authenticated`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from tornado.ioloop import IOLoop

from tensorlab.errors import ConnectionFailed, InvalidInput, JobError, NotFound, StudyNotReady, TensorLabError
from tensorlab.reruns import push_rerun
from tensorlab.tensordb.jobs import STATUSES as JOB_STATUSES
from tensorlab.tensordb.runs.run_search import STATUSES as RUN_STATUSES

from . import data_views, job_views, log_positions, params, run_views
from .connections import Connections
from .json_values import plain

EXECUTOR = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tensorlab-lab")
SCOPE = ("db", "study")
RUN_SORTS = ("started", "ended", "name", "status")
STATUS_OF = ((params.BadParameter, 400), (NotFound, 404), (JobError, 409), (StudyNotReady, 409),
             (InvalidInput, 400), (ConnectionFailed, 503), (TensorLabError, 500))


class LabHandler(APIHandler):
    """Shared by every endpoint: parameter checking, the thread hop, errors as JSON."""

    def initialize(self, connections: Connections) -> None:
        self.connections = connections

    def arguments(self, allowed: Iterable[str]) -> dict[str, str]:
        """The query string as {name: last value}; a parameter the endpoint does not take is refused."""
        allowed = set(allowed)
        found = {}
        for name in self.request.query_arguments:
            if name == "token" or name.isdigit():  # Jupyter's authentication; JupyterLab's cache-busting stamp
                continue
            if name not in allowed:
                raise params.BadParameter(name, self.get_query_argument(name), f"one of {', '.join(sorted(allowed))}"
                                          if allowed else "no parameters")
            found[name] = self.get_query_argument(name)
        return found

    def scope(self, args: dict[str, str]) -> Callable[[], Any]:
        """The (db, study) the request names, checked now; the handle itself is opened on the worker thread
        (opening a client blocks, the event loop must not)."""
        settings = self.connections.settings
        db, study = params.database(args, settings.db), params.study(args, settings.study or "default")
        return lambda: self.connections.get(db, study)

    async def answer(self, work: Callable[[], Any], status: int = 200) -> None:
        """Run `work` on a thread and send its result as JSON, or the error as {message, parameter?}."""
        try:
            result = await IOLoop.current().run_in_executor(EXECUTOR, work)
        except Exception as error:  # noqa: BLE001 - every failure becomes an HTTP answer, never a hung request
            code = next((code for kind, code in STATUS_OF if isinstance(error, kind)), 500)
            if code == 500:
                self.log.warning("TensorLab API %s failed: %s", self.request.path, self.connections.scrub(repr(error)))
            self.set_status(code)
            message = self.connections.scrub(str(error) or type(error).__name__)
            body = {"message": message, "error": type(error).__name__}
            if isinstance(error, params.BadParameter):
                body["parameter"] = error.parameter
            self.finish(json.dumps(body))
            return
        self.set_status(status)
        self.finish(json.dumps(result, allow_nan=False, separators=(",", ":")))

    async def refuse(self, error: params.BadParameter) -> None:
        self.set_status(400)
        self.finish(json.dumps({"message": str(error), "error": "BadParameter", "parameter": error.parameter}))


def checked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Parameter errors raised while reading the request (before any thread hop) become a 400."""
    async def wrapper(self: LabHandler, *args: Any) -> None:
        try:
            await method(self, *args)
        except params.BadParameter as error:
            await self.refuse(error)
    wrapper.__name__ = method.__name__
    return wrapper


class InfoHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def get(self) -> None:
        self.arguments(())
        settings = self.connections.settings
        await self.answer(lambda: {"uri": self.connections.masked_uri(), "db": settings.db,
                                   "study": settings.study or None, "version": _version()})


class DatabasesHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def get(self) -> None:
        args = self.arguments(("db", "refresh"))
        db = params.database(args, self.connections.settings.db)
        if params.choice(args, "refresh", ("0", "1"), "0") == "1":
            self.connections.forget_studies()
        def work() -> dict[str, Any]:
            studies, recent = self.connections.studies(db)
            found = {"databases": self.connections.databases(), "db": db, "studies": studies, "recent_study": recent}
            return {"uri": self.connections.masked_uri(), **found}  # resolved by now: the address shown is real

        await self.answer(work)


class RunsHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def get(self) -> None:
        args = self.arguments((*SCOPE, "status", "name", "filter", "sort", "order", "offset", "limit"))
        query = run_views.run_query(params.choice(args, "status", RUN_STATUSES), params.text(args, "name"),
                                    params.json_object(args, "filter"))
        sort = params.text(args, "sort", "started")
        if sort not in RUN_SORTS and not sort.startswith(("best.", "hp.")):
            raise params.BadParameter("sort", sort, f"one of {', '.join(RUN_SORTS)}, best.<metric> or hp.<name>")
        descending = params.choice(args, "order", ("asc", "desc"), "desc") == "desc"
        offset = params.integer(args, "offset", 0, maximum=10_000_000)
        limit = params.integer(args, "limit", 50, minimum=1, maximum=1000)
        db = self.scope(args)
        await self.answer(lambda: run_views.runs_page(db(), query, sort=sort, descending=descending, offset=offset,
                                                      limit=limit))


class RunHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def get(self, run_id: str) -> None:
        args = self.arguments(SCOPE)
        run_id = params.identifier(run_id, "run")
        db = self.scope(args)
        await self.answer(lambda: run_views.run_detail(db(), run_id))


class RerunHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def post(self, run_id: str) -> None:
        """Queue the run to be trained again by a worker (tensorlab.reruns.push_rerun); answers the job's id."""
        args = self.arguments(SCOPE)
        run_id = params.identifier(run_id, "run")
        db = self.scope(args)
        await self.answer(lambda: {"job": str(push_rerun(db(), run_id))}, status=201)


class LogsHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def get(self, run_id: str) -> None:
        args = self.arguments((*SCOPE, "cursor", "kinds", "metrics", "max_points"))
        run_id = params.identifier(run_id, "run")
        cursor = params.text(args, "cursor")
        log_positions.decode_cursor(cursor)  # a bad token is refused before any read
        kinds = params.names(args, "kinds")
        if kinds and not set(kinds) <= {"train", "valid", "test"}:
            raise params.BadParameter("kinds", args["kinds"], "kinds among train, valid, test")
        metrics = params.names(args, "metrics")
        max_points = params.integer(args, "max_points", 4000, minimum=16, maximum=1_000_000)
        db = self.scope(args)
        await self.answer(lambda: log_positions.poll(db(), run_id, cursor, kinds=kinds, metrics=metrics,
                                                     max_points=max_points))


class CompareHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def get(self) -> None:
        args = self.arguments((*SCOPE, "runs", "metric", "mode"))
        run_ids = params.identifiers(args, "runs")
        metric = params.text(args, "metric", "val_accuracy")
        mode = params.choice(args, "mode", ("max", "min"))
        db = self.scope(args)
        await self.answer(lambda: run_views.comparison(db(), run_ids, metric, mode))


class DiffHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def get(self) -> None:
        args = self.arguments((*SCOPE, "runs"))
        run_ids = params.identifiers(args, "runs", most=2)
        if len(run_ids) != 2:
            raise params.BadParameter("runs", args["runs"], "two run ids separated by a comma")
        db = self.scope(args)
        await self.answer(lambda: plain(db().diff_runs(*run_ids)))


class LineageHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def get(self) -> None:
        args = self.arguments((*SCOPE, "of"))
        of = params.identifier(args.get("of"), "of")  # a run's or a parameter version's id
        db = self.scope(args)
        await self.answer(lambda: plain(db().lineage(of)))


class JobsHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def get(self) -> None:
        args = self.arguments((*SCOPE, "status", "limit"))
        status = params.choice(args, "status", JOB_STATUSES)
        limit = params.integer(args, "limit", 50, minimum=0, maximum=1000)
        db = self.scope(args)
        await self.answer(lambda: job_views.jobs_list(db(), status, limit))


class JobActionHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def post(self, job_id: str, action: str) -> None:
        args = self.arguments(SCOPE)
        job_id = params.identifier(job_id, "job")
        body = params.body_object(self.request.body)
        priority = params.number(body, "priority") if action == "priority" else None
        db = self.scope(args)
        await self.answer(lambda: job_views.act(db(), job_id, action, priority))


class DataHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def get(self) -> None:
        db = self.scope(self.arguments(SCOPE))
        await self.answer(lambda: data_views.data_summary(db()))


class SamplesHandler(LabHandler):
    @tornado.web.authenticated
    @checked
    async def get(self) -> None:
        args = self.arguments((*SCOPE, "tags", "count"))
        tags = params.json_object(args, "tags")
        count = params.integer(args, "count", 8, minimum=1, maximum=64)
        db = self.scope(args)
        await self.answer(lambda: data_views.data_samples(db(), tags, count))


def _version() -> str:
    from tensorlab import __version__

    return __version__
