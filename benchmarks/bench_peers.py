"""TensorLab vs its peers (MLflow, Aim, TensorBoard, W&B offline) on the same work, in one run (issue #29).

Each peer is installed by this script into its own throw-away venv under benchmarks/.peer-venvs/<tool>/ (gitignored,
reused while it holds the same packages; a peer that cannot be installed is reported and left out). Every measured
call runs in a fresh process: benchmarks/peer_drivers.py run by that tool's own Python (TensorLab's: .venv/bin/python),
which sets up before the clock and times only the work. Tools alternate (A B C A B C ...), each figure is the median
of --repeats, and the ratio is TensorLab / the best peer. Stores: MLflow's default SQLite store, Aim 3.x repos,
TensorBoard event files and W&B offline runs in a temporary folder; TensorLab in a database of its own on
$TENSORLAB_MONGODB_URI or the managed local server, dropped at the end.

Work: log N steps x 4 metrics until readable (rows/s; caller time per call), read one run's N-step history, search
M runs for hyper_parameters.lr == 0.01 (20% match) and take the top 10 by accuracy, create K runs (start + finish),
save / load a checkpoint of B MB (np.save / np.load of the same array is the floor).
Targets for TensorLab (full sizes): logging >= 50,000 rows/s; history read <= 0.2 s and <= the best peer; search
<= 50 ms and <= the best peer at 2,000 and 10,000 runs (`--search-runs 2000 10000`); run start + finish <= 10 ms.
Prints a table and writes benchmarks/results/peers.json (peers-quick.json with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from peer_drivers import LRS, TOP, search_run  # benchmarks/ is on sys.path when run as a script
from save_results import write_results

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "peer_drivers.py"
CACHE = HERE / ".peer-venvs"
TENSORLAB_PYTHON = sys.executable
PACKAGES = {"mlflow": ["mlflow", "numpy"], "aim": ["aim<4", "numpy"],
            "tensorboard": ["tensorboardX", "tensorboard", "numpy"], "wandb": ["wandb", "numpy"]}
VERSION_OF = {"mlflow": "mlflow", "aim": "aim", "tensorboard": "tensorboardX", "wandb": "wandb"}
WORK = {"tensorlab": {"log", "history", "search", "create", "checkpoint"},
        "mlflow": {"log", "history", "search", "create", "checkpoint"},
        "aim": {"log", "history", "search", "create", "checkpoint"},
        "tensorboard": {"log", "history"}, "wandb": {"log"}, "numpy": {"checkpoint"}}
FULL = {"steps": 100_000, "search_runs": [2000], "create_runs": 2000, "checkpoint_mb": 100.0, "mlflow_log_steps": 1000}
QUICK = {"steps": 10_000, "search_runs": [200], "create_runs": 200, "checkpoint_mb": 10.0, "mlflow_log_steps": 200}
DRIVER_ENV = {"WANDB_SILENT": "true", "WANDB_MODE": "offline", "WANDB_CONSOLE": "off", "TQDM_DISABLE": "1",
              "GIT_PYTHON_REFRESH": "quiet", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def ensure_venv(tool: str, reinstall: bool = False) -> dict[str, Any]:
    """{"python", "version", "cached"} or {"error"}: the tool's venv, built when missing or its packages changed."""
    folder, marker = CACHE / tool, CACHE / tool / ".installed.json"
    python = folder / "bin" / "python"
    if not reinstall and marker.exists() and python.exists():
        info = json.loads(marker.read_text())
        if info.get("packages") == PACKAGES[tool]:
            return {"python": str(python), "version": info["version"], "cached": True}
    shutil.rmtree(folder, ignore_errors=True)
    CACHE.mkdir(exist_ok=True)
    print(f"  installing {tool} into {folder} ({' '.join(PACKAGES[tool])}); a few minutes ...", flush=True)
    steps = [[sys.executable, "-m", "venv", str(folder)],
             [str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"],
             [str(python), "-m", "pip", "install", "-q", *PACKAGES[tool]],
             [str(python), "-c", f"import importlib.metadata as m; print(m.version({VERSION_OF[tool]!r}))"]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1800, check=False)
        except subprocess.TimeoutExpired:
            done = subprocess.CompletedProcess(step, 1, "", "timed out after 1800 s")
        if done.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            return {"error": f"`{' '.join(step[2:4])} ...` failed: {(done.stderr or done.stdout).strip()[-600:]}"}
    version = done.stdout.strip()
    marker.write_text(json.dumps({"packages": PACKAGES[tool], "version": version}))
    return {"python": str(python), "version": version, "cached": False}


class Bench:
    """The tools, where their stores live, and every figure measured so far."""

    def __init__(self, args: argparse.Namespace, tools: dict[str, dict[str, Any]], work: Path) -> None:
        self.args, self.tools, self.work = args, tools, work
        self.samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.errors: list[str] = []
        self.notes: dict[str, set[str]] = {}
        self.db = f"tensorlab_bench_peers_{os.getpid()}"
        self.uri = None
        if "tensorlab" in tools:
            import tensorlab

            self.uri = os.environ.get("TENSORLAB_MONGODB_URI") or tensorlab.LocalServer().start().uri

    def able(self, work: str) -> list[str]:
        return [tool for tool in self.tools if work in WORK[tool]]

    def call(self, tool: str, op: str, **params: Any) -> dict[str, Any] | None:
        """One fresh process of `tool` doing `op`; its RESULT, or None (the error is kept and printed)."""
        request = {"tool": tool, "op": op, "work": str(self.work), "uri": self.uri, "db": self.db, **params}
        try:
            done = subprocess.run([self.tools[tool]["python"], str(DRIVER), json.dumps(request)], capture_output=True,
                                  text=True, timeout=self.args.call_timeout, env={**os.environ, **DRIVER_ENV},
                                  cwd=self.work, check=False)
            out = done.stdout.strip().splitlines()
            result = json.loads(out[-1][len("RESULT "):]) if out and out[-1].startswith("RESULT ") else None
            why = (done.stderr.strip().splitlines() or ["no output"])[-1] if result is None else None
        except subprocess.TimeoutExpired:
            result, why = None, f"over --call-timeout {self.args.call_timeout} s"
        if result is None or "unsupported" in result:
            why = why or result["unsupported"]
            self.errors.append(f"{tool} {op} ({params.get('store', '')}): {why}")
            print(f"    {tool} {op} failed: {why}", flush=True)
            return None
        self.notes.setdefault(tool, set()).update(result.pop("notes", []))
        return result

    def add(self, work: str, tool: str, result: dict[str, Any] | None) -> None:
        if result is not None:
            self.samples.setdefault(work, {}).setdefault(tool, []).append(result)


def phase_log(b: Bench, sizes: dict[str, Any]) -> None:
    for rep in range(b.args.repeats):
        for tool in b.able("log"):
            steps = min(sizes["steps"], sizes["mlflow_log_steps"]) if tool == "mlflow" else sizes["steps"]
            result = b.call(tool, "log", store="log", name=f"log-{rep}", steps=steps)
            b.add("log", tool, result)
            if result and not result["readable"]:
                b.errors.append(f"{tool} log: the rows were not readable (flush timed out)")
            if result:
                print(f"    log {tool}: {result['rows_per_s']:,.0f} rows/s, p50 {result['p50_us']:.1f} us", flush=True)


def phase_history(b: Bench, sizes: dict[str, Any]) -> None:
    refs = {}
    for tool in b.able("history"):
        filled = b.call(tool, "fill_history", store="history", name="history", steps=sizes["steps"])
        if filled:
            refs[tool] = filled["ref"]
            print(f"    history of {sizes['steps']:,} steps written by {tool} in {filled['seconds']:.1f} s", flush=True)
    for _ in range(b.args.repeats):
        for tool, ref in refs.items():
            result = b.call(tool, "read_history", store="history", ref=ref)
            if result and result["points"] != 4 * sizes["steps"]:
                b.errors.append(f"{tool} read_history: {result['points']:,} points, expected {4 * sizes['steps']:,}")
            b.add("history", tool, result)


def expected_top(runs: int) -> list[float]:
    matching = [search_run(index) for index in range(runs) if search_run(index)[0]["lr"] == LRS[2]]
    return sorted((accuracy for _, accuracy in matching), reverse=True)[:TOP]


def phase_search(b: Bench, sizes: dict[str, Any]) -> None:
    for runs in sizes["search_runs"]:
        store, ready = f"search-{runs}", []
        for tool in b.able("search"):
            made = b.call(tool, "create", store=store, name="s", runs=runs)
            if made:
                ready.append(tool)
                b.add(f"populate-{runs}", tool, made)
                print(f"    {runs:,} runs created in {tool} in {made['seconds']:.1f} s (+{made['settle_s']:.1f} s to "
                      "be readable)", flush=True)
        want = expected_top(runs)
        for _ in range(b.args.repeats):
            for tool in ready:
                result = b.call(tool, "search", store=store)
                if result and [round(v, 9) for v in result["top"]] != [round(v, 9) for v in want]:
                    b.errors.append(f"{tool} search {runs}: top {result['top']} differs from {want}")
                b.add(store, tool, result)


def phase_create(b: Bench, sizes: dict[str, Any]) -> None:
    for rep in range(b.args.repeats):
        for tool in b.able("create"):
            b.add("create", tool, b.call(tool, "create", store=f"create-{rep}", name="c", runs=sizes["create_runs"]))


def phase_checkpoint(b: Bench, sizes: dict[str, Any]) -> None:
    mb = sizes["checkpoint_mb"]
    for rep in range(b.args.repeats):
        saved = {}
        for tool in b.able("checkpoint"):
            result = b.call(tool, "save", store="checkpoint", name=f"ckpt-{rep}", mb=mb, seed=rep)
            b.add("save", tool, result)
            if result:
                saved[tool] = result["ref"]
        for tool, ref in saved.items():
            result = b.call(tool, "load", store="checkpoint", ref=ref, mb=mb, seed=rep)
            if result and not result["same"]:
                b.errors.append(f"{tool} load: the array read back differs from the one saved")
            b.add("load", tool, result)


PHASES = {"log": phase_log, "history": phase_history, "search": phase_search, "create": phase_create,
          "checkpoint": phase_checkpoint}


def rows_of(sizes: dict[str, Any]) -> list[tuple[str, str, str, bool, float | None, bool]]:
    """(samples key, field, label, higher is better, TensorLab's target, must also beat the best peer)."""
    steps, mb = sizes["steps"], sizes["checkpoint_mb"]
    rows = [("log", "rows_per_s", f"log {steps:,} steps x 4 metrics, until readable (rows/s, higher better)",
             True, 50_000.0, False),
            ("log", "p50_us", "caller time per log call p50 (us)", False, None, False),
            ("log", "p99_us", "caller time per log call p99 (us)", False, None, False),
            ("history", "seconds", f"read one run's {steps:,}-step history, 4 metrics (s)", False, 0.2, True)]
    for runs in sizes["search_runs"]:
        label = f"search {runs:,} runs: lr == 0.01, top 10 by accuracy (s)"
        rows += [(f"search-{runs}", "first_s", f"{label}, first call", False, 0.05, True),
                 (f"search-{runs}", "warm_s", f"{label}, warm", False, 0.05, True)]
    return rows + [("create", "ms_each", f"create {sizes['create_runs']:,} runs, start + finish (ms per run)",
                    False, 10.0, False),
                   ("save", "seconds", f"{mb:g} MB checkpoint save (s)", False, None, False),
                   ("load", "seconds", f"{mb:g} MB checkpoint load (s)", False, None, False)]


def summarise(b: Bench, sizes: dict[str, Any]) -> list[dict[str, Any]]:
    table = []
    for key, field, label, higher, target, beat_peers in rows_of(sizes):
        values = {tool: statistics.median(r[field] for r in results)
                  for tool, results in b.samples.get(key, {}).items()}
        peers = {tool: v for tool, v in values.items() if tool not in ("tensorlab", "numpy")}
        best = (max if higher else min)(peers, key=peers.get) if peers else None
        ours = values.get("tensorlab")
        ratio = ours / peers[best] if ours is not None and best and peers[best] else None
        met = None
        if ours is not None and (target is not None or beat_peers):
            met = (target is None or (ours >= target if higher else ours <= target))
            met = met and (not beat_peers or best is None or (ours >= peers[best] if higher else ours <= peers[best]))
        table.append({"work": label, "key": key, "field": field, "values": values, "best_peer": best,
                      "best_peer_value": peers.get(best), "ratio_tensorlab_to_best_peer": ratio,
                      "target": _target_text(target, higher, beat_peers), "met": met})
    return table


def _target_text(target: float | None, higher: bool, beat_peers: bool) -> str:
    parts = [f"{'>=' if higher else '<='} {target:g}"] if target is not None else []
    return " and ".join(parts + (["<= best peer"] if beat_peers else []))


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def print_table(table: list[dict[str, Any]], tools: list[str]) -> None:
    head = f"{'work':<62}" + "".join(f"{tool:>12}" for tool in tools)
    print("\n" + head + f"{'best peer':>14}{'TL/best':>9}  {'target':<27}met?")
    for row in table:
        cells = "".join(f"{_fmt(row['values'].get(tool)):>12}" for tool in tools)
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        ratio = row["ratio_tensorlab_to_best_peer"]
        print(f"{row['work']:<62}{cells}{row['best_peer'] or '-':>14}{(f'{ratio:.2f}x' if ratio else '-'):>9}  "
              f"{row['target']:<27}{met}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k steps, 200 runs, 10 MB: a dry run of a few minutes")
    parser.add_argument("--tools", default="tensorlab,mlflow,aim,tensorboard,wandb",
                        help="comma-separated, from tensorlab, mlflow, aim, tensorboard, wandb")
    parser.add_argument("--work", default=",".join(PHASES), help=f"comma-separated, from {', '.join(PHASES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, help="log / history steps (default 100,000; 10,000 with --quick)")
    parser.add_argument("--search-runs", type=int, nargs="+", help="run counts to search (default 2000)")
    parser.add_argument("--create-runs", type=int, help="runs created per repetition (default 2,000)")
    parser.add_argument("--checkpoint-mb", type=float, help="checkpoint size (default 100)")
    parser.add_argument("--mlflow-log-steps", type=int,
                        help="MLflow logs synchronously, one SQLite write per call: its log row uses this many steps "
                             "(default 1,000; 200 with --quick)")
    parser.add_argument("--call-timeout", type=float, default=3600, help="seconds one measured process may take")
    parser.add_argument("--quiet-load", type=float, default=0.5, help="1-minute load average to wait for first")
    parser.add_argument("--quiet-wait", type=float, default=600, help="seconds to wait for it at most")
    parser.add_argument("--reinstall", action="store_true", help="build the peers' venvs again")
    parser.add_argument("--keep-work", action="store_true", help="keep the peers' stores (temporary folder)")
    return parser.parse_args()


def _tensorlab_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tensorlab")
    except PackageNotFoundError:  # a working tree being reinstalled
        return "working tree"


def resolve_tools(args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    tools: dict[str, dict[str, Any]] = {}
    missing = {}
    for tool in [t.strip() for t in args.tools.split(",") if t.strip()]:
        if tool == "tensorlab":
            tools[tool] = {"python": TENSORLAB_PYTHON, "version": _tensorlab_version()}
        elif tool in PACKAGES:
            info = ensure_venv(tool, args.reinstall)
            if "error" in info:
                missing[tool] = info["error"]
                print(f"  {tool} left out: it could not be installed here: {info['error']}", flush=True)
            else:
                tools[tool] = info
        else:
            raise SystemExit(f"unknown tool {tool!r}; choose from tensorlab, {', '.join(PACKAGES)}")
    if "checkpoint" in args.work:
        tools["numpy"] = {"python": TENSORLAB_PYTHON, "version": "np.save/np.load (the floor)"}
    return tools, missing


def wait_for_quiet(load: float, patience_s: float) -> float:
    """Wait (at most `patience_s`) for the 1-minute load average to fall under `load`: a server still writing out
    what an earlier benchmark wrote (SQLite's checkpoints) slowed the first phase by a fifth. Seconds waited."""
    began = time.time()
    while os.getloadavg()[0] >= load and time.time() - began < patience_s:
        if int(time.time() - began) % 30 == 0:
            print(f"  waiting for a quiet machine: load average {os.getloadavg()[0]:.2f} (>= {load})", flush=True)
        time.sleep(1)
    return time.time() - began


def main() -> None:
    args = parse_args()
    sizes = {**(QUICK if args.quick else FULL)}
    for name in sizes:
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    tools, missing = resolve_tools(args)
    for tool, info in tools.items():
        print(f"  {tool}: {info['version']} ({info['python']})", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    bench = Bench(args, tools, work)
    waited = wait_for_quiet(args.quiet_load, args.quiet_wait)
    load_before, began = os.getloadavg(), time.time()
    try:
        for phase in [p.strip() for p in args.work.split(",") if p.strip()]:
            print(f"{phase} ...", flush=True)
            PHASES[phase](bench, sizes)
    finally:
        _clean_up(bench, args.keep_work)
    table = summarise(bench, sizes)
    print_table(table, list(tools))
    _report(bench, sizes, table, missing, {"load_avg_before": load_before, "load_avg_after": os.getloadavg(),
                                           "wall_s": time.time() - began, "waited_for_quiet_s": waited})


def _clean_up(bench: Bench, keep: bool) -> None:
    if bench.uri is not None:
        import tensorlab

        db = tensorlab.connect(bench.uri, db=bench.db)
        db.client.drop_database(bench.db)
        db.close()
    if keep:
        print(f"stores kept in {bench.work}")
    else:
        shutil.rmtree(bench.work, ignore_errors=True)


def _report(bench: Bench, sizes: dict[str, Any], table: list[dict[str, Any]], missing: dict[str, str],
            machine: dict[str, Any]) -> None:
    machine |= {"cpu_cores": os.cpu_count(), "python": sys.version.split()[0]}
    print(f"\n{'quick run: the targets are for the full sizes. ' if bench.args.quick else ''}"
          f"load average {machine['load_avg_before'][0]:.1f} before, {machine['load_avg_after'][0]:.1f} after, "
          f"on {machine['cpu_cores']} cores; {machine['wall_s'] / 60:.1f} min")
    for tool, notes in bench.notes.items():
        for note in sorted(notes):
            print(f"note: {tool}: {note}")
    for error in bench.errors:
        print(f"FAILED: {error}")
    results = {"quick": bench.args.quick, "sizes": sizes, "repeats": bench.args.repeats, "machine": machine,
               "server": bench.uri, "tools": bench.tools,
               "not_installed": missing, "table": table, "samples": bench.samples, "errors": bench.errors,
               "notes": {tool: sorted(notes) for tool, notes in bench.notes.items()}}
    write_results("peers-quick" if bench.args.quick else "peers", results)


if __name__ == "__main__":
    main()
