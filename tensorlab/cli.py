"""The `tensorlab` console script: `tensorlab server start|stop|status|install`."""

from __future__ import annotations

import argparse
import sys
import time

from .errors import TensorLabError
from .ferretdb_build import install_ferretdb
from .localserver import LocalServer


def _server_command(args: argparse.Namespace) -> int:
    server = LocalServer(args.home)
    if args.action == "install":
        install_ferretdb(force=args.force)
        return 0
    if args.action == "start":
        started = time.monotonic()
        info = server.start()
        print(f"{info.kind} running at {info.uri} (pid {info.pid}, data {info.data_dir}) "
              f"[{time.monotonic() - started:.2f} s]")
        return 0
    if args.action == "stop":
        print("stopped" if server.stop() else "no server was running")
        return 0
    info = server.status()
    if info is None:
        print(f"not running (home {server.home})")
        return 3
    print(f"{info.kind} running at {info.uri} (pid {info.pid}, data {info.data_dir})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tensorlab", description="TensorLab command-line tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    server = commands.add_parser("server", help="manage the local MongoDB-protocol server")
    server.add_argument("action", choices=["start", "stop", "status", "install"])
    server.add_argument("--home", default=None, help="state folder (default ~/.tensorlab/server or $TENSORLAB_HOME)")
    server.add_argument("--force", action="store_true", help="with install: rebuild even if present")
    server.set_defaults(handler=_server_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except TensorLabError as error:
        print(f"tensorlab: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
