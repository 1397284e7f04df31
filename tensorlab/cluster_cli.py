"""`tensorlab slurm submit|status|cancel` and `tensorlab k8s manifest|probe`: workers beyond one machine."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .errors import InvalidInput


def liveness_file(path: str | None) -> Any:
    """A worker's `on_beat`: touch `path` (None: do nothing), so a liveness probe can read the heartbeat's age."""
    if path is None:
        return None

    def touch() -> None:
        Path(path).touch()
    return touch


def _slurm_submit(args: argparse.Namespace) -> int:
    from .slurm_submit import ArraySpec, render_script, submit

    query = json.loads(args.query) if args.query else None
    spec = ArraySpec(workers=args.workers, concurrent=args.concurrent, gpus_per_worker=args.gpus_per_worker,
                     cpus_per_worker=args.cpus_per_worker, time_limit=args.time, partition=args.partition,
                     uri=args.uri, db=args.db, study=args.study, query=query, idle_exit_s=args.idle_exit,
                     min_time_left_s=args.min_time_left, lease_s=args.lease, allow_code=args.allow_code,
                     log_dir=args.log_dir, hosts=args.hosts, tasks_per_host=args.tasks_per_host)
    if args.dry_run:
        print(render_script(spec), end="")
        return 0
    if not args.uri and not os.environ.get("TENSORLAB_MONGODB_URI"):
        raise InvalidInput("The workers need a database every node reaches: set $TENSORLAB_MONGODB_URI (MongoDB or "
                           "Atlas; sbatch passes it to the tasks) or --uri. The managed local server listens on "
                           "this machine's private socket only.")
    if (args.uri or os.environ.get("TENSORLAB_MONGODB_URI", "")).startswith("mongodb://%2F"):
        print("tensorlab: warning: the database is a Unix socket, reachable from this machine only: fine on a "
              "one-node cluster; on several nodes use MongoDB/Atlas.", file=sys.stderr)
    submitted = submit(spec)
    groups = f" of {spec.hosts} node(s) x {spec.tasks_per_host} process(es)" if spec.hosts else ""
    print(f"submitted Slurm array job {submitted['job']} ({spec.workers} workers{groups}); "
          f"script {submitted['script']}; logs {spec.log_dir}/{submitted['job']}_<task>.out", flush=True)
    return 0


def _slurm_status(args: argparse.Namespace) -> int:
    from .slurm_submit import array_tasks
    from .tensordb import connect

    tasks = array_tasks(args.job)
    db = connect(args.uri, db=args.db, study=args.study)
    try:
        held = {str(job.get("worker")): job for job in db.jobs.find(status="running")}
    finally:
        db.close()
    print(f"{'task':<16} {'state':<11} {'elapsed':>10} {'left':>10}  node / job held")
    for task in tasks:
        prefix = f"slurm-{task['task']}@"
        jobs = [f"{job['_id']} (epoch {(job.get('progress') or {}).get('epoch')})" for worker, job in held.items()
                if worker.startswith(prefix)]
        print(f"{task['task']:<16} {task['state']:<11} {task['elapsed']:>10} {task['left']:>10}  {task['node']} "
              f"{', '.join(jobs) or '-'}")
    if not tasks:
        print(f"no task of Slurm job {args.job} is queued or running")
    return 0


def _slurm_cancel(args: argparse.Namespace) -> int:
    from .slurm_submit import cancel

    cancel(args.job, args.task)
    print(f"cancelled Slurm job {args.job}" + (f" task {args.task}" if args.task is not None else "")
          + ": each worker checkpoints and requeues its job", flush=True)
    return 0


def _k8s_manifest(args: argparse.Namespace) -> int:
    from .k8s_manifest import WorkerPods, render

    query = json.loads(args.query) if args.query else None
    print(render(WorkerPods(workers=args.workers, image=args.image, gpus=args.gpus, secret=args.secret,
                            secret_key=args.secret_key, name=args.name, namespace=args.namespace, db=args.db,
                            study=args.study, query=query, lease_s=args.lease, allow_code=args.allow_code)), end="")
    return 0


def _k8s_probe(args: argparse.Namespace) -> int:
    """Exit 0 when the worker's alive file is younger than --max-age seconds (the liveness probe)."""
    try:
        age = time.time() - Path(args.alive_file).stat().st_mtime
    except FileNotFoundError:
        print(f"no heartbeat file {args.alive_file}", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"last heartbeat {age:.0f} s ago (more than {args.max_age:g} s)", file=sys.stderr)
        return 1
    return 0


def _database_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--uri", default=None, help="mongodb:// URI without a password (default: "
                        "$TENSORLAB_MONGODB_URI)")
    parser.add_argument("--db", default="tensorlab")
    parser.add_argument("--study", default=None)


def add_cluster_commands(commands: Any) -> None:
    slurm = commands.add_parser("slurm", help="workers as a Slurm job array").add_subparsers(dest="action",
                                                                                           required=True)
    submit = slurm.add_parser("submit", help="write and submit an sbatch --array of workers")
    submit.add_argument("--workers", type=int, required=True, help="array tasks (one worker each)")
    submit.add_argument("--concurrent", type=int, default=None, help="at most this many at once (%%K)")
    submit.add_argument("--gpus-per-worker", type=int, default=0, help="--gres=gpu:G for each task")
    submit.add_argument("--cpus-per-worker", type=int, default=1)
    submit.add_argument("--hosts", type=int, default=None, help="each worker a group over this many nodes that "
                        "trains every job data-parallel on all their devices (JAX; keras.distribution)")
    submit.add_argument("--tasks-per-host", type=int, default=1, help="processes per node in a --hosts group")
    submit.add_argument("--time", default=None, help="each task's time limit (sbatch --time)")
    submit.add_argument("--partition", default=None)
    submit.add_argument("--query", default=None, help="JSON job filter for the workers")
    submit.add_argument("--idle-exit", type=float, default=60.0, help="a worker leaves after this many idle s")
    submit.add_argument("--min-time-left", type=float, default=300.0, help="claim nothing with less left (s)")
    submit.add_argument("--lease", type=float, default=60.0)
    submit.add_argument("--allow-code", action="store_true", help="the workers also run jobs that carry source")
    submit.add_argument("--log-dir", default="tensorlab-slurm", help="script and task logs (%%A_%%a.out)")
    submit.add_argument("--dry-run", action="store_true", help="print the script, submit nothing")
    _database_flags(submit)
    submit.set_defaults(handler=_slurm_submit)
    status = slurm.add_parser("status", help="the array's tasks beside the jobs they hold")
    status.add_argument("job", help="the array's Slurm job id")
    _database_flags(status)
    status.set_defaults(handler=_slurm_status)
    cancel = slurm.add_parser("cancel", help="end the array (or one task): workers requeue their jobs")
    cancel.add_argument("job")
    cancel.add_argument("--task", type=int, default=None)
    cancel.set_defaults(handler=_slurm_cancel)

    k8s = commands.add_parser("k8s", help="workers as Kubernetes pods").add_subparsers(dest="action", required=True)
    manifest = k8s.add_parser("manifest", help="print a Deployment of worker pods (kubectl apply -f -)")
    manifest.add_argument("--workers", type=int, required=True, help="replicas")
    manifest.add_argument("--image", required=True, help="an image with tensorlab installed")
    manifest.add_argument("--gpus", type=int, default=0, help="nvidia.com/gpu per pod")
    manifest.add_argument("--secret", default="tensorlab-mongodb", help="Secret holding the URI")
    manifest.add_argument("--secret-key", default="uri")
    manifest.add_argument("--name", default="tensorlab-worker")
    manifest.add_argument("--namespace", default=None)
    manifest.add_argument("--db", default="tensorlab")
    manifest.add_argument("--study", default=None)
    manifest.add_argument("--query", default=None)
    manifest.add_argument("--lease", type=float, default=60.0)
    manifest.add_argument("--allow-code", action="store_true")
    manifest.set_defaults(handler=_k8s_manifest)
    probe = k8s.add_parser("probe", help="liveness: exit 1 when the worker's heartbeat file is stale")
    probe.add_argument("--alive-file", required=True)
    probe.add_argument("--max-age", type=float, default=180.0)
    probe.set_defaults(handler=_k8s_probe)
