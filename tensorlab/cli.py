"""The `tensorlab` console script: `tensorlab server ...`, `tensorlab worker`, `tensorlab db upgrade|fsck`."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, NoReturn

from .cluster_cli import add_cluster_commands
from .errors import IntegrityError, InvalidInput, TensorLabError
from .tensordb.server.ferretdb_build import install_ferretdb
from .tensordb.server.localserver import LocalServer
from .tensordb.server.uri import URI_ENV_VAR, mask_uri, mask_uris_in, uri_password, with_password_from

# (URI argument, its flag, the argument naming a password variable, its flag), for every command taking a URI
_URI_ARGUMENTS = (("uri", "--uri", "password_env", "--password-env"),
                  ("source", "--from", "from_password_env", "--from-password-env"),
                  ("target", "--to", "to_password_env", "--to-password-env"))
_PASSWORD_ENV_HELP = "environment variable holding the password for the URI's user (keeps it out of `ps`)"


def _server_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.home is not None and (not args.home.strip() or (Path(args.home).exists() and not Path(args.home).is_dir())):
        raise InvalidInput(f"--home {args.home!r} is {'empty' if not args.home.strip() else 'an existing file'}; "
                           "name a folder for the server's state (it is created when missing), or leave --home out.")
    server = LocalServer(args.home)
    if args.action == "install":
        install_ferretdb(force=args.force)
        return 0
    if args.action == "start":
        started = time.monotonic()
        info = server.start()
        print(f"{info.kind} running at {info.uri} (pid {info.pid}, data {info.data_dir}) "
              f"[{time.monotonic() - started:.2f} s]{_reach(info)}")
        return 0
    if args.action == "stop":
        print("stopped" if server.stop() else "no server was running")
        return 0
    info = server.status()
    if info is None:
        print(f"not running (home {server.home})")
        return 3
    print(f"{info.kind} running at {info.uri} (pid {info.pid}, data {info.data_dir}){_reach(info)}")
    return 0


def _reach(info: Any) -> str:
    if info.socket and info.port is None:
        return f"\n  private socket {info.socket} (only this user; TENSORLAB_SERVER_TCP=1 adds 127.0.0.1 TCP)"
    return f"\n  TCP 127.0.0.1:{info.port}" + (f" and private socket {info.socket}" if info.socket else "")


def _worker_command(args: argparse.Namespace) -> int:
    import json

    from .cluster_cli import liveness_file
    from .slurm_task import slurm_task, slurm_worker_name, time_guard
    from .tensordb import connect
    from .validation import check_query
    from .worker import Worker, check_worker_arguments

    try:
        query = json.loads(args.query) if args.query else None
    except json.JSONDecodeError as error:
        print(f"tensorlab: error: --query is not JSON ({error}); e.g. --query '{{\"tags.queue\": \"gpu\"}}'",
              file=sys.stderr)
        return 2
    check_query(query, "--query")  # refused before connecting, like every flag below
    check_worker_arguments(args.max_jobs, args.lease, args.poll, args.idle_exit,
                           names=("--max-jobs", "--lease", "--poll", "--idle-exit"))
    if args.multi_host and args.distribute == "mirrored":
        print("tensorlab: error: --multi-host trains with keras.distribution (JAX); it cannot be combined with "
              "--distribute mirrored.", file=sys.stderr)
        return 2
    worker_class = Worker
    if args.multi_host:
        from .multi_host import initialize
        from .worker_group import GroupWorker

        initialize()
        worker_class = GroupWorker  # the group's processes train each job together
    db = connect(args.uri, db=args.db, study=args.study)
    task = slurm_task()
    worker = worker_class(db, args.name or (slurm_worker_name(task) if task else None), query=query,
                    max_jobs=args.max_jobs, device=args.device, allow_code=args.allow_code, lease_s=args.lease,
                    max_idle_s=args.idle_exit, poll_interval_s=args.poll, distribute=args.distribute,
                    claim_guard=time_guard(task, args.min_time_left) if task else None,
                    details={"slurm": task} if task else None, on_beat=liveness_file(args.alive_file))
    worker.install_signal_handlers()
    print(f"worker {worker.name} on {db} (allow_code={args.allow_code}, lease {args.lease:g} s)", flush=True)
    stats = worker.run()
    db.close()
    print(f"worker {worker.name} exits: done {stats.done}, failed {stats.failed}, requeued {stats.requeued}, "
          f"lost {stats.lost}", flush=True)
    if stats.quarantined:
        print(f"tensorlab: {stats.quarantined}", file=sys.stderr)
        return 3
    if stats.stopped:
        print(f"tensorlab: {stats.stopped}", flush=True)
    return 0


def _fsck_command(args: argparse.Namespace) -> int:
    from .tensordb import connect

    probe = connect(args.uri, db=args.db, ignore_transfer=True)
    studies = [args.study] if args.study else sorted(
        {s for name in ("sample_imports", "parameters") for s in probe.collection(name).distinct("study")}
        or {"default"})
    probe.close()
    clean, unrepaired = True, False
    for study in studies:
        db = connect(args.uri, db=args.db, study=study, ignore_transfer=True)  # fsck leaves a transfer alone
        report = db.fsck(repair=not args.dry_run)
        db.close()
        print(f"study {study!r}" + (" (dry run: nothing changed)" if args.dry_run else ""))
        for line in report.lines():
            print(f"  {line}")
        clean, unrepaired = clean and report.clean, unrepaired or report.needs_attention
    print("clean" if clean else ("found the above" if args.dry_run else "repaired the above" + (
        "; damaged or missing payloads and unfinished transfers remain (see above)" if unrepaired else "")))
    return 0 if clean or not args.dry_run else 1


def _db_command(args: argparse.Namespace) -> int:
    from .tensordb import connect
    from .tensordb.logs.log_migration import migrate_legacy_logs

    if args.action == "fsck":
        return _fsck_command(args)
    db = connect(args.uri, db=args.db)
    rows = migrate_legacy_logs(db._scope, progress=True)
    db.close()
    print(f"database {args.db!r} is on the current layout ({rows} log rows moved into buckets now)")
    return 0


def _studies(db: Any, fallback: bool = True) -> list[str]:
    """Every study a database holds documents of (with `fallback`: 'default' for an empty one)."""
    names = ("sample_imports", "parameters", "runs", "jobs", "architectures", "log_index")
    found = {s for name in names for s in db.collection(name).distinct("study")}
    return sorted(found or ({"default"} if fallback else set()))


def _copy_command(args: argparse.Namespace) -> int:
    from .tensordb import connect
    from .tensordb.transfer.study_copy import copy_study

    source_uri, target_uri = (None if uri == "local" else uri for uri in (args.source, args.target))
    probe = connect(source_uri, db=args.db, ignore_transfer=True)
    studies = [args.study] if args.study else _studies(probe)
    probe.close()
    verified = True
    for study in studies:
        source = connect(source_uri, db=args.db, study=study)  # StudyNotReady while it is itself being filled
        target = connect(target_uri, db=args.to_db or args.db, study=study, ignore_transfer=True)
        print(f"copying study {study!r}: {source.uri} -> {target.uri}", flush=True)
        report = copy_study(source, target, progress=True, verify=not args.no_verify, merge=args.merge)
        source.close()
        target.close()
        for line in report.lines():
            print(f"  {line}")
        verified = verified and report.ok
    return 0 if verified or args.no_verify else 1


def _export_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .tensordb import connect
    from .tensordb.transfer.study_export import export_study

    if Path(args.to).exists() and not Path(args.to).is_dir():
        raise InvalidInput(f"--to {args.to} is an existing file; name a folder (it is created when missing).")
    probe = connect(args.uri, db=args.db, ignore_transfer=True)
    present = _studies(probe, fallback=False)
    probe.close()
    if args.study is not None and args.study not in present:
        raise InvalidInput(f"No study {args.study!r} in database {args.db!r}; it holds "
                           f"{', '.join(map(repr, present)) or 'no study'}.")
    for study in [args.study] if args.study else present:
        db = connect(args.uri, db=args.db, study=study)
        manifest = export_study(db, Path(args.to) / study)
        db.close()
        print(f"exported study {study!r}: {sum(manifest['counts'].values()):,} documents, "
              f"{manifest['payloads']:,} payloads -> {Path(args.to) / study}")
    return 0


def _import_command(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .tensordb import connect
    from .tensordb.transfer.study_export import MANIFEST, import_study, read_manifest

    root = Path(args.folder)
    folders = [root] if (root / MANIFEST).exists() else sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))
    if not folders:
        print(f"tensorlab: error: {root} holds no export ({MANIFEST} not found)", file=sys.stderr)
        return 2
    verified = True
    for folder in folders:
        study = read_manifest(folder)["study"]
        db = connect(args.uri, db=args.db, study=study, ignore_transfer=True)
        report = import_study(folder, db, merge=args.merge)
        db.close()
        print(f"imported study {study!r} from {folder}")
        for line in report.lines():
            print(f"  {line}")
        verified = verified and report.ok
    return 0 if verified else 1


def _diff_command(args: argparse.Namespace) -> int:
    import json

    from .tensordb import connect
    from .tensordb.provenance.run_diff import diff_text

    db = connect(args.uri, db=args.db, study=args.study)
    try:
        found = db.diff_runs(*args.runs)
    finally:
        db.close()
    print(json.dumps(found, indent=1, default=str) if args.json else diff_text(found))
    return 0


def _rerun_command(args: argparse.Namespace) -> int:
    from .reruns import push_rerun, rerun
    from .tensordb import connect

    db = connect(args.uri, db=args.db, study=args.study)
    try:
        if args.job:
            if args.name:
                raise InvalidInput("--name names a run trained here; a rerun job's run is named job-JOB_ID, as every "
                                   "job's run is. Drop --name or --job.")
            print(f"rerun of {args.run}: queued as job {push_rerun(db, args.run, priority=args.priority)}")
            return 0
        again = rerun(db, args.run, name=args.name)
        best = ", ".join(f"{k} {v:.4g}" for k, v in ((again.get("summary") or {}).get("best") or {}).items())
        print(f"rerun of {args.run}: run {again['name']} ({again['_id']}) {again['status']}"
              + (f"; {best}" if best else ""))
    finally:
        db.close()
    return 0


def _resolve_uris(args: argparse.Namespace) -> None:
    """Warn about a password on the command line (every user sees it in `ps`), masked; add the password that a
    --password-env variable holds to its URI (given, else $TENSORLAB_MONGODB_URI)."""
    for name, flag, variable_name, variable_flag in _URI_ARGUMENTS:
        uri, variable = getattr(args, name, None), getattr(args, variable_name, None)
        if uri and uri_password(uri):
            print(f"tensorlab: warning: the password in {flag} {mask_uri(uri)} is visible to every user of this "
                  f"machine (`ps`); set {URI_ENV_VAR} or use {variable_flag} VAR instead.", file=sys.stderr)
        if variable and uri == "local":
            raise InvalidInput(f"{variable_flag} {variable}: the managed server ('local') takes no password.")
        if variable:
            setattr(args, name, with_password_from(uri, variable))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        super().error(mask_uris_in(message))  # e.g. an invalid choice that was a URI with a password


def _add_transfer_commands(commands: Any) -> None:
    """`tensorlab copy`, `export` and `import`."""
    copy = commands.add_parser("copy", help="copy studies between servers (resumable; verifies every document "
                               "and payload)")
    copy.add_argument("--from", dest="source", required=True, help="source mongodb:// URI ('local': the managed "
                      "server)")
    copy.add_argument("--to", dest="target", required=True, help="target mongodb:// URI ('local': the managed server)")
    copy.add_argument("--from-password-env", default=None, metavar="VAR", help="for --from: " + _PASSWORD_ENV_HELP)
    copy.add_argument("--to-password-env", default=None, metavar="VAR", help="for --to: " + _PASSWORD_ENV_HELP)
    copy.add_argument("--study", default=None, help="one study (default: every study)")
    copy.add_argument("--db", default="tensorlab", help="source database")
    copy.add_argument("--to-db", default=None, help="target database (default: the source's name)")
    copy.add_argument("--no-verify", action="store_true", help="skip the final comparison of every document")
    copy.set_defaults(handler=_copy_command)
    export = commands.add_parser("export", help="write studies to a folder (mongodump-style BSON files)")
    export.add_argument("--to", required=True, help="folder to create; one subfolder per study")
    import_ = commands.add_parser("import", help="load studies written by `tensorlab export` (resumable)")
    import_.add_argument("folder", help="an export folder (or one study's subfolder)")
    for command in (export, import_):
        command.add_argument("--uri", default=None, help="mongodb:// URI (default: $TENSORLAB_MONGODB_URI, "
                             "else local)")
        command.add_argument("--password-env", default=None, metavar="VAR", help=_PASSWORD_ENV_HELP)
        command.add_argument("--db", default="tensorlab")
    export.add_argument("--study", default=None, help="one study (default: every study)")
    export.set_defaults(handler=_export_command)
    import_.set_defaults(handler=_import_command)
    for command in (copy, import_):
        command.add_argument("--merge", action="store_true", help="fill a study that already holds other documents "
                             "(refused otherwise)")


def _add_rerun_command(commands: Any) -> None:
    """`tensorlab rerun RUN [--name NEW | --job [--priority N]]`."""
    again = commands.add_parser("rerun", help="train a run again: its architecture, hyper-parameters, seed and the "
                                "exact data imports it saw")
    again.add_argument("run", metavar="RUN", help="run id or name")
    again.add_argument("--name", default=None, help="the new run's name (default: RUN-rerun)")
    again.add_argument("--job", action="store_true", help="queue the rerun as a job for a worker instead of training "
                       "it here")
    again.add_argument("--priority", type=int, default=0, help="the rerun job's priority (with --job)")
    again.add_argument("--uri", default=None, help="mongodb:// URI (default: $TENSORLAB_MONGODB_URI, else local)")
    again.add_argument("--password-env", default=None, metavar="VAR", help=_PASSWORD_ENV_HELP)
    again.add_argument("--db", default="tensorlab")
    again.add_argument("--study", default="default")
    again.set_defaults(handler=_rerun_command)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tensorlab", description="TensorLab command-line tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="manage the local MongoDB-protocol server")
    server.add_argument("action", choices=["start", "stop", "status", "install"])
    server.add_argument("--home", default=None, help="state folder (default ~/.tensorlab/server or $TENSORLAB_HOME)")
    server.add_argument("--force", action="store_true", help="with install: rebuild even if present")
    server.set_defaults(handler=_server_command)
    worker = commands.add_parser("worker", help="claim jobs from the queue and train them")
    worker.add_argument("--uri", default=None, help="mongodb:// URI (default: $TENSORLAB_MONGODB_URI, else local)")
    worker.add_argument("--password-env", default=None, metavar="VAR", help=_PASSWORD_ENV_HELP)
    worker.add_argument("--db", default="tensorlab")
    worker.add_argument("--study", default=None)
    worker.add_argument("--name", default=None, help="worker name (default host:pid)")
    worker.add_argument("--query", default=None, help="JSON job filter, e.g. '{\"tags.queue\": \"gpu\"}'")
    worker.add_argument("--max-jobs", type=int, default=None)
    worker.add_argument("--device", default=None, help="cpu, gpu or gpu:N")
    worker.add_argument("--allow-code", action="store_true", help="also run jobs that carry Python source")
    worker.add_argument("--lease", type=float, default=60.0, help="lease seconds (heartbeats every third)")
    worker.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")
    worker.add_argument("--poll", type=float, default=1.0, help="seconds between polls of an empty queue")
    worker.add_argument("--distribute", choices=["mirrored", "data_parallel"], default=None,
                        help="every local device: mirrored (tf.distribute, TensorFlow) or data_parallel "
                        "(keras.distribution, JAX)")
    worker.add_argument("--multi-host", action="store_true",
                        help="one of several processes started together (srun in a Slurm job of several tasks, or "
                        "KERAS_DISTRIBUTION_JOB_ADDRESSES/_NUM_PROCESSES/_PROCESS_ID set): they train each job "
                        "together, data-parallel on all their devices (JAX); process 0 claims and writes")
    worker.add_argument("--min-time-left", type=float, default=300.0, metavar="S",
                        help="under Slurm: claim no new job with less than S seconds of the time limit left")
    worker.add_argument("--alive-file", default=None, metavar="PATH",
                        help="touched on every poll and heartbeat (a liveness probe checks its age)")
    worker.set_defaults(handler=_worker_command)
    database = commands.add_parser("db", help="database maintenance")
    database.add_argument("action", choices=["upgrade", "fsck"], help="upgrade: move a database to the current "
                          "layout (also happens on first use; safe to interrupt and run again); fsck: remove what "
                          "killed writers left and name damaged payloads")
    database.add_argument("--study", default=None, help="with fsck: one study (default: every study)")
    database.add_argument("--dry-run", action="store_true", help="with fsck: only report (exit 1 if not clean)")
    database.add_argument("--uri", default=None, help="mongodb:// URI (default: $TENSORLAB_MONGODB_URI, else local)")
    database.add_argument("--password-env", default=None, metavar="VAR", help=_PASSWORD_ENV_HELP)
    database.add_argument("--db", default="tensorlab")
    database.set_defaults(handler=_db_command)
    diff = commands.add_parser("diff", help="what differs between two runs: hyper-parameters, code, data imports, "
                               "packages, seed, hardware")
    diff.add_argument("runs", nargs=2, metavar="RUN", help="run ids or names")
    diff.add_argument("--uri", default=None, help="mongodb:// URI (default: $TENSORLAB_MONGODB_URI, else local)")
    diff.add_argument("--password-env", default=None, metavar="VAR", help=_PASSWORD_ENV_HELP)
    diff.add_argument("--db", default="tensorlab")
    diff.add_argument("--study", default="default")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    diff.set_defaults(handler=_diff_command)
    _add_rerun_command(commands)
    _add_transfer_commands(commands)
    add_cluster_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _resolve_uris(args)
        return args.handler(args)
    except IntegrityError as error:  # verification failed: damaged data, named
        print(f"tensorlab: error: {error}", file=sys.stderr)
        return 1
    except (TensorLabError, OSError) as error:
        print(f"tensorlab: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
