"""The lineage of a run or a parameter version: data imports -> runs -> parameter versions -> the runs that
forked or warm-started from them, with the jobs and plan stages that ran them and the deployments serving them.

Why a graph of what is already stored: every edge is a field some document holds (a run's data snapshot and
`forked_from`, a version's `run`, a job's `result` and `after`, a deployment's version), so the lineage is read,
never written, and cannot disagree with the documents. Edges that point back (which runs started from this
version) are found by one query per kind within the study; the walk stops at MAX_NODES.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from bson import ObjectId

MAX_NODES = 500


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: list[dict[str, str]] = []
        self._seen_edges: set[tuple[str, str, str]] = set()

    def node(self, kind: str, ref: Any, label: str, **fields: Any) -> str:
        key = f"{kind}:{ref}"
        if key not in self.nodes:
            self.nodes[key] = {"id": key, "kind": kind, "ref": str(ref), "label": label, **fields}
        return key

    def edge(self, source: str, target: str, kind: str) -> None:
        if (source, target, kind) not in self._seen_edges:
            self._seen_edges.add((source, target, kind))
            self.edges.append({"from": source, "to": target, "kind": kind})


def _run_node(graph: _Graph, run: dict[str, Any]) -> str:
    return graph.node("run", run["_id"], run.get("name") or str(run["_id"]), status=run.get("status"))


def _version_node(graph: _Graph, version: dict[str, Any]) -> str:
    return graph.node("parameters", version["_id"], f"v{version.get('version')} epoch {version.get('epoch')}",
                      run=str(version.get("run")))


def _job_node(graph: _Graph, job: dict[str, Any]) -> str:
    tags = job.get("tags") or {}
    label = f"stage {tags['stage']}" if "stage" in tags else f"job {str(job['_id'])[-6:]}"
    return graph.node("job", job["_id"], label, status=job.get("status"), plan=tags.get("plan"),
                      stage=tags.get("stage"))


def _upstream_of_run(db: Any, graph: _Graph, run: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """The run's data imports, the version it forked or warm-started from, its job; yields what to visit next."""
    here = _run_node(graph, run)
    for part, snapshot in ((run.get("provenance") or {}).get("data") or {}).items():
        for entry in snapshot.get("imports") or []:
            source = graph.node("import", entry["import_id"], f"import {str(entry['import_id'])[-6:]}",
                                samples=entry.get("samples"))
            graph.edge(source, here, f"{part} data")
    forked = run.get("forked_from") or {}
    if forked.get("version") is not None:
        yield "version", forked["version"]
        graph.edge(f"parameters:{forked['version']}", here, "forked into")
    elif forked.get("run") is not None:
        yield "run", forked["run"]
        graph.edge(f"run:{forked['run']}", here, "forked into")
    if run.get("job") is not None:
        yield "job", run["job"]
        graph.edge(f"job:{run['job']}", here, "ran")


def _visit_run(db: Any, graph: _Graph, run_id: Any) -> Iterator[tuple[str, Any]]:
    run = db.run_store.resolve(run_id)
    here = _run_node(graph, run)
    yield from _upstream_of_run(db, graph, run)
    for version in db.parameters.find_docs({"run": run["_id"]}, sort=[("version", 1)]):
        graph.edge(here, _version_node(graph, version), "saved")
        yield "version", version["_id"]
    for child in db.run_store.find({"forked_from.run": run["_id"]}):
        yield "run", child["_id"]
        graph.edge(here, _run_node(graph, child), "forked into")


def _visit_version(db: Any, graph: _Graph, version_id: Any) -> Iterator[tuple[str, Any]]:
    found = db.parameters.find_docs({"_id": version_id})
    if not found:
        return
    version = found[0]
    here = _version_node(graph, version)
    if version.get("run") is not None:
        yield "run", version["run"]
    for job in db.jobs.find({"result.warm_start": version["_id"]}):
        graph.edge(here, _job_node(graph, job), "warm start")
        yield "job", job["_id"]
    for deployment in db.deployments.collection.find({"study": db.study, "parameters": version["_id"]}):
        graph.edge(here, graph.node("deployment", deployment["_id"], str(deployment.get("name") or
                                                                        deployment["_id"])), "deployed as")


def _visit_job(db: Any, graph: _Graph, job_id: Any) -> Iterator[tuple[str, Any]]:
    job = db.jobs.get(job_id)
    here = _job_node(graph, job)
    for before in job.get("after") or []:
        graph.edge(f"job:{before}", here, "then")
        yield "job", before
    result = job.get("result") or {}
    if result.get("warm_start") is not None:
        graph.edge(f"parameters:{result['warm_start']}", here, "warm start")
        yield "version", result["warm_start"]
    if result.get("run") is not None:
        yield "run", result["run"]
    plan = (job.get("tags") or {}).get("plan")
    if plan is not None:  # the plan's later stages: jobs that wait for this one
        for later in db.jobs.find({"tags.plan": plan}):
            if job["_id"] in (later.get("after") or []):
                yield "job", later["_id"]


VISITORS = {"run": _visit_run, "version": _visit_version, "job": _visit_job}


def lineage(db: Any, start_kind: str, start: Any) -> dict[str, Any]:
    """{"start", "nodes", "edges"}: everything connected to `start` (a run or a parameter version), both ways."""
    graph, queue, visited = _Graph(), deque([(start_kind, start)]), set()
    while queue and len(graph.nodes) < MAX_NODES:
        kind, ref = queue.popleft()
        if (kind, str(ref)) in visited:
            continue
        visited.add((kind, str(ref)))
        queue.extend(VISITORS[kind](db, graph, ref))
    edges = [edge for edge in graph.edges if edge["from"] in graph.nodes and edge["to"] in graph.nodes]
    first = f"{'parameters' if start_kind == 'version' else start_kind}:{start}"
    return {"start": first, "nodes": list(graph.nodes.values()), "edges": edges, "complete": not queue}


def lineage_of(db: Any, thing: Any) -> dict[str, Any]:
    """`thing`: a parameter version's id (ObjectId or its hex), else a run (id, name or document)."""
    ref = thing.get("_id") if isinstance(thing, dict) else thing
    if isinstance(ref, str) and ObjectId.is_valid(ref):
        ref = ObjectId(ref)
    if isinstance(ref, ObjectId) and db.parameters.find_docs({"_id": ref}):
        return lineage(db, "version", ref)
    return lineage(db, "run", db.run_store.resolve(thing)["_id"])
