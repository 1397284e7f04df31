"""Build the pinned FerretDB release from the Go module proxy into the environment's tools folder.

Why not a bare `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.0`: that form first asks
the proxy for the module's version list (to check deprecation), which some proxies refuse, and the
binary it builds panics at start because the module zip lacks `build/version/version.txt`. So we let
`go mod download` fetch the pinned module (checksum-verified), copy it, write the version file, and
`go install ./cmd/ferretdb` from that copy. Same source, same pin, a working binary.

Two fixes are applied to the copy (`PATCHES`):
- `_id` lookups use the `_id` index: in v1.24's SQLite backend the index is built on
  `_ferretdb_sjson->"_id"` while lookups filter on `_ferretdb_sjson->'$._id'`; SQLite matches index
  expressions by their text, so every find/update/delete by `_id` scanned and parsed the whole table
  (`EXPLAIN QUERY PLAN`: SCAN). Making the lookup use the index's own expression turns that into an
  index SEARCH; the meaning is unchanged.
- Single-document writes are atomic, as MongoDB documents them: v1.24 runs update, findAndModify and
  delete as a read followed by a separate write, so concurrent updates of one document lost each other's
  changes (4 processes x 300 `$inc` kept 347). `ferretdb_patches/tensorlab_atomic_writes.go` adds
  per-document locks around those commands (docs/CONSISTENCY.md).
A stamp beside the binary records the recipe, so a binary built another way is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ...errors import ServerError

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.0"
PATCHES = (  # (file, text to find, its replacement); each text must occur exactly once
    ("internal/backends/sqlite/metadata/metadata.go",
     'IDColumn = DefaultColumn + "->\'$._id\'"',
     'IDColumn = DefaultColumn + `->"_id"`'),
    ("internal/handler/msg_update.go",
     "\tfor _, u := range params.Updates {\n\t\tc, err := db.Collection(params.Collection)",
     "\tdefer tensorlabLockUpdates(params.DB, params.Collection, params.Updates)()\n\n"
     "\tfor _, u := range params.Updates {\n\t\tc, err := db.Collection(params.Collection)"),
    ("internal/handler/msg_findandmodify.go",
     "\tqueryRes, err := c.Query(ctx, &qp)",
     "\tdefer tensorlabLockWrites(params.DB, params.Collection, params.Query)()\n\n"
     "\tqueryRes, err := c.Query(ctx, &qp)"),
    ("internal/handler/msg_delete.go",
     "\t\td, err = h.execDelete(connCtx, c, &p)",
     "\t\tunlock := tensorlabLockWrites(params.DB, params.Collection, p.Filter)\n"
     "\t\td, err = h.execDelete(connCtx, c, &p)\n\t\tunlock()"),
    ("internal/handler/msg_buildinfo.go",  # clients tell this build from one without the locks (connection.py)
     '\t\t\t"ferretdbVersion", version.Get().Version,',
     '\t\t\t"ferretdbVersion", version.Get().Version,\n\t\t\t"tensorlabAtomicWrites", true,'),
)
ADDED_FILES = {"internal/handler/tensorlab_atomic_writes.go": "tensorlab_atomic_writes.go"}
BUILD_STAMP = f"{FERRETDB_VERSION}+id-lookup-index-1+atomic-writes-2"


def tools_dir() -> Path:
    """Where TensorLab keeps the binaries it builds: inside the active environment."""
    override = os.environ.get("TENSORLAB_TOOLS_DIR")
    return Path(override) if override else Path(sys.prefix) / "share" / "tensorlab" / "bin"


def installed_ferretdb() -> Path | None:
    """The binary this recipe built, or None (missing, or built by another recipe)."""
    candidate = tools_dir() / "ferretdb"
    stamp = tools_dir() / "ferretdb.build"
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        return None
    return candidate if stamp.is_file() and stamp.read_text().strip() == BUILD_STAMP else None


def _apply_patches(source: Path) -> None:
    for path, old, new in PATCHES:
        target = source / path
        text = target.read_text()
        if text.count(old) != 1:
            raise ServerError(f"FerretDB source changed: cannot find the line to patch in {path}; "
                              "update tensorlab/tensordb/server/ferretdb_build.py for this FerretDB version.")
        target.write_text(text.replace(old, new))
    patches = Path(__file__).with_name("ferretdb_patches")
    for path, name in ADDED_FILES.items():
        shutil.copyfile(patches / name, source / path)


def _go_binary() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        raise ServerError(
            "Cannot build FerretDB: the Go toolchain (`go`) is not on PATH. Install Go 1.21+ "
            "(e.g. `apt-get install golang`), or set TENSORLAB_SERVER_BIN to an existing mongod/ferretdb, "
            "or point TensorLab at a MongoDB with TENSORLAB_MONGODB_URI."
        )
    return go


def _run_go(go: str, args: list[str], cwd: Path | None, env: dict[str, str]) -> str:
    result = subprocess.run([go, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServerError(f"`go {' '.join(args)}` failed (exit {result.returncode}):\n{result.stderr.strip()}")
    return result.stdout


def install_ferretdb(force: bool = False, log=print) -> Path:
    """Build FerretDB into `tools_dir()`; a no-op when it is already there. Returns the binary path."""
    existing = installed_ferretdb()
    if existing and not force:
        log(f"FerretDB already installed at {existing}")
        return existing
    go = _go_binary()
    target = tools_dir()
    target.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(target), "GOFLAGS": "-buildvcs=false", "CGO_ENABLED": "0"}
    started = time.monotonic()
    log(f"Downloading {FERRETDB_MODULE}@{FERRETDB_VERSION} from the Go module proxy ...")
    info = json.loads(_run_go(go, ["mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"], None, env))
    with tempfile.TemporaryDirectory(prefix="tensorlab-ferretdb-") as scratch:
        source = Path(scratch) / "src"
        shutil.copytree(info["Dir"], source)
        for path in source.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        (source / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        _apply_patches(source)
        log("Building ferretdb (first build downloads its dependencies; this takes a minute or two) ...")
        _run_go(go, ["install", "./cmd/ferretdb"], source, env)
    binary = target / "ferretdb"
    (target / "ferretdb.build").write_text(BUILD_STAMP + "\n")
    log(f"Installed FerretDB {FERRETDB_VERSION} at {binary} in {time.monotonic() - started:.1f} s")
    return binary
