"""What made a run, gathered when it starts: the code, its git state, the installed packages, the machine.

Why here and not in the store: these read the process (IPython's history, `sys.argv`, git, the installed
distributions), which the storage layer must not know about. Everything is best effort and cheap: a value that
cannot be read is left out (never an error that stops training), git gets 5 s, the package list is read once
per process (and cached on disk between processes), texts are capped at MAX_TEXT bytes (the cap is recorded).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from .environment_cache import cached_environment
from .validation_values import check_seed

MAX_TEXT = 256 * 1024
GIT_TIMEOUT_S = 5.0


def capped(text: str) -> tuple[str, bool]:
    """`text` cut to MAX_TEXT bytes (on a character boundary), and whether it was cut."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_TEXT:
        return text, False
    return data[:MAX_TEXT].decode("utf-8", "ignore"), True


def running_code() -> dict[str, Any] | None:
    """The code that is training: the notebook cell being run (raw, magics included), else the script.
    {"kind": "cell" | "script", "text", "path"?, "notebook"?}."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # IPython is a dependency, but a trimmed install may lack it
        shell = None
    if shell is not None and getattr(shell, "history_manager", None) is not None:
        cells = shell.history_manager.input_hist_raw
        if cells and cells[-1].strip():
            code = {"kind": "cell", "text": cells[-1], "execution_count": getattr(shell, "execution_count", None)}
            notebook = os.environ.get("JPY_SESSION_NAME")  # set by Jupyter Server for the kernel's notebook
            return {**code, "notebook": notebook} if notebook else code
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path and Path(path).is_file():
        try:
            return {"kind": "script", "text": Path(path).read_text(errors="replace"), "path": str(Path(path).resolve()),
                    "argv": [str(arg) for arg in sys.argv[1:]]}
        except OSError:
            return None
    return None


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(folder: str | os.PathLike | None) -> dict[str, Any] | None:
    """The repository holding `folder` (default: the working directory): root, commit, branch, and the diff
    of uncommitted changes to tracked files against the commit (text). None outside a repository."""
    where = Path(folder or os.getcwd())
    where = where if where.is_dir() else where.parent
    root = _git(where, "rev-parse", "--show-toplevel")
    if root is None:
        return None
    state: dict[str, Any] = {"root": root.strip()}
    commit = _git(where, "rev-parse", "HEAD")
    state["commit"] = commit.strip() if commit else None  # None: a repository without commits yet
    branch = _git(where, "rev-parse", "--abbrev-ref", "HEAD")
    state["branch"] = branch.strip() if branch else None
    diff = _git(where, "diff", "HEAD", "--no-color", "--no-ext-diff") if commit else None
    state["diff"] = diff or ""
    return state


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Python and every installed distribution as sorted 'name==version': read once per process, and from
    the on-disk cache (environment_cache.py) while no folder on sys.path has changed."""
    return cached_environment(read_environment)


def read_environment() -> dict[str, Any]:
    """The package list from every distribution's metadata (~180 ms with a full ML stack)."""
    packages = sorted({f"{dist.metadata['Name']}=={dist.version}" for dist in importlib.metadata.distributions()
                       if dist.metadata and dist.metadata["Name"]}, key=str.lower)
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "packages": packages}


def hardware(device: str | None) -> dict[str, Any]:
    """The machine and what Keras trains on (backend, its devices)."""
    found: dict[str, Any] = {"host": platform.node(), "machine": platform.machine(), "system": platform.system(),
                             "cpus": os.cpu_count(), "device": device}
    try:
        import keras

        found["keras"] = keras.__version__
        found["backend"] = keras.backend.backend()
        found["devices"] = [str(d) for d in keras.distribution.list_devices()]
    except Exception:  # noqa: BLE001 - a backend that cannot list its devices: the rest still describes the run
        pass
    return found


def record_provenance(db: Any, device: str | None, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's `provenance` field: texts and the environment stored once each (by SHA-256) through
    `db.provenance`, the run keeping their digests; `given` (seed, data snapshots, from Model.fit) added."""
    found: dict[str, Any] = dict(given or {})
    code = running_code()
    if code is not None:
        text, cut = capped(code.pop("text"))
        code.update(sha256=db.provenance.put_text(text, "code"), bytes=len(text.encode("utf-8", "replace")),
                    capped=cut)
        found["code"] = code
    git = git_state(Path(code["path"]).parent if code and code.get("path") else None)
    if git is not None:
        diff, cut = capped(git.pop("diff"))
        git.update(dirty=bool(diff), capped=cut,
                   diff_sha256=db.provenance.put_text(diff, "diff") if diff else None)
        found["git"] = git
    env = environment()
    found["environment"] = db.provenance.put_environment(env)
    found["python"] = env["python"]
    found["hardware"] = hardware(device)
    found.setdefault("seed", None)  # None: not set by TensorLab (a bare DBLogger in the user's own fit)
    return found


def training_seed(seed: Any) -> int:
    """`seed` checked, or one drawn from numpy's global generator: a notebook that seeded numpy (or called
    keras.utils.set_random_seed) draws the same seed on every run, so seeding stays the user's choice."""
    if seed is None:
        import numpy as np

        return int(np.random.randint(0, 2**31 - 1))
    return check_seed(seed)


def data_snapshots(db: Any, **queries: Any) -> dict[str, Any]:
    """Each TensorDB query of a fit (`data`, `x`'s stream, `validation`) as the imports and counts it selects."""
    return {part: db.data_snapshot(query) for part, query in queries.items() if query is not None}
