"""The package's shape: one folder speaks MongoDB, layers only import downwards, modules stay small.

Layers, lowest first:
  0 base      errors, clock, validation, table rows: plain Python, no database, no Keras
  1 storage   tensorlab/tensordb/: the only code that imports pymongo, gridfs or bson
  2 training  Keras glue above TensorDB: model, callback, background, workers, sweeps, continuous learning
  3 interface what people touch: the CLI, magics and widgets
The package root re-exports from every layer and is importable only from the interface layer.

Inside the storage layer, tensorlab/tensordb/ is split into rooms (sub-packages, ROOMS below): each imports
only the rooms it lists, the rooms form a DAG, and the server room imports no store. Only `database.py` (the one
door) and the aliases at paths the README documents sit beside the rooms, and no room imports them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Installed module name -> source folder (setup.py package_dir).
PACKAGE_DIRS = {"tensorlab": ROOT / "tensorlab", "tensorlab.magics": ROOT / "magics",
                "tensorlab.widgets": ROOT / "widgets"}
BASE, STORAGE, TRAINING, INTERFACE = range(4)
LAYER_NAMES = ("base", "storage", "training", "interface")
LAYERS = {
    "tensorlab.errors": BASE, "tensorlab.clock": BASE, "tensorlab.validation": BASE, "tensorlab.table_rows": BASE,
    "tensorlab.validation_values": BASE, "tensorlab.validation_queries": BASE,
    "tensorlab.metric_direction": BASE,
    "tensorlab.tensordb": STORAGE,
    "tensorlab.model": TRAINING, "tensorlab.db_logger": TRAINING, "tensorlab.background": TRAINING,
    "tensorlab.worker": TRAINING, "tensorlab.sweeps": TRAINING, "tensorlab.continuous": TRAINING,
    "tensorlab.devices": TRAINING, "tensorlab.datasets": TRAINING, "tensorlab.keras_weights": TRAINING,
    "tensorlab.run_heartbeat": TRAINING, "tensorlab.training_input": TRAINING, "tensorlab.cell_training": TRAINING,
    "tensorlab.forking": TRAINING, "tensorlab.failure_class": TRAINING, "tensorlab.plans": TRAINING,
    "tensorlab.reruns": TRAINING, "tensorlab.data_parallel": TRAINING, "tensorlab.slurm_task": TRAINING,
    "tensorlab.environment_cache": TRAINING, "tensorlab.follower_logger": TRAINING, "tensorlab.multi_host": TRAINING,
    "tensorlab.worker_group": TRAINING,
    "tensorlab.system_metrics": TRAINING, "tensorlab.halving": TRAINING, "tensorlab.fit_arguments": TRAINING,
    "tensorlab.architecture_save": TRAINING, "tensorlab.data_imports": TRAINING, "tensorlab.fit_watch": TRAINING,
    "tensorlab.label_encoding": TRAINING, "tensorlab.monitor_check": TRAINING, "tensorlab.precision": TRAINING,
    "tensorlab.run_record": TRAINING, "tensorlab.cell_fits": TRAINING, "tensorlab.provenance_capture": TRAINING,
    "tensorlab.cli": INTERFACE, "tensorlab.magics": INTERFACE, "tensorlab.widgets": INTERFACE,
    "tensorlab.cluster_cli": INTERFACE, "tensorlab.slurm_submit": INTERFACE, "tensorlab.k8s_manifest": INTERFACE,
    "tensorlab.lab": INTERFACE,  # the JupyterLab server extension (its front end: labextension/)
}
ROOT_PACKAGE = "tensorlab"
MONGODB_PACKAGES = {"pymongo", "gridfs", "bson", "mongomock"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

TENSORDB = "tensorlab.tensordb"
# Each room of tensorlab/tensordb/ -> the rooms it may import, lowest first.
ROOMS = {
    "documents": set(),  # Scope, `_id` helpers, index documents, markers: what every store shares
    "server": {"documents"},  # the managed server, FerretDB build, URIs, connections, indexes, retries
    "payloads": {"documents", "server"},  # codec, blobs, payload files, writes in flight
    "data": {"documents", "payloads"},
    "logs": {"documents"},
    "models": {"documents", "payloads", "server"},
    "runs": {"documents"},
    "jobs": {"documents"},
    "transfer": {"documents", "payloads"},
    "integrity": {"documents", "payloads", "models", "transfer"},
    "provenance": {"documents"},  # environments and sources by content hash; what differs between two runs
}
STORE_ROOMS = {"payloads", "data", "logs", "models", "runs", "jobs", "transfer", "integrity", "provenance"}
# Modules of tensorlab/tensordb/ itself: the one door, and the paths README documents (thin aliases).
TENSORDB_TOP = {"database", "study_copy", "study_export"}


def _modules() -> dict[str, Path]:
    """Every installed module name of the project -> its source file."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if package == "tensorlab" and parts[0] in ("magics", "widgets"):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int | None:
    """The layer of a project module: the longest prefix named in LAYERS (the root package has none)."""
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        prefix = ".".join(parts[:size])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, relative ones resolved, nested ones included."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from . import codec` imports a module, not a name: check the module's layer too
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names
                      if f"{target}.{alias.name}" in MODULES]
    return found


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if m != ROOT_PACKAGE and _layer(m) is None]
    assert not missing, f"Give these modules a layer in tests/test_layout.py LAYERS: {missing}"


def test_only_tensordb_imports_mongodb_drivers():
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for module, path in MODULES.items()
        if _layer(module) != STORAGE
        for target, line in _imports(module, path)
        if target.split(".")[0] in MONGODB_PACKAGES
    ]
    assert not offenders, "Only tensorlab/tensordb/ may speak MongoDB:\n" + "\n".join(offenders)


def test_layers_import_only_downwards():
    offenders = []
    for module, path in MODULES.items():
        own = _layer(module)
        if own is None:  # the package root re-exports every layer
            continue
        for target, line in _imports(module, path):
            if target == ROOT_PACKAGE and own != INTERFACE:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports the package root")
            elif target.startswith(ROOT_PACKAGE + ".") and (_layer(target) or 0) > own:
                offenders.append(f"{path.relative_to(ROOT)}:{line} ({LAYER_NAMES[own]}) imports {target} "
                                 f"({LAYER_NAMES[_layer(target)]})")
    assert not offenders, "A lower layer imports a higher one:\n" + "\n".join(offenders)


def test_modules_and_functions_stay_small():
    too_long = []
    for path in MODULES.values():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}(): {length} lines")
    assert not too_long, f"Over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function:\n" + \
        "\n".join(too_long)


@pytest.mark.parametrize("package", ["tensorlab", "tensorlab.tensordb", "tensorlab.widgets"])
def test_all_names_resolve(package):
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not have: {missing}"


def test_all_lists_every_public_name_of_the_root():
    import tensorlab

    defined_here = {name for name, value in vars(tensorlab).items()
                    if not name.startswith("_") and not inspect.ismodule(value)
                    and getattr(value, "__module__", "").startswith("tensorlab")}
    missing = (defined_here | set(tensorlab._LAZY)) - set(tensorlab.__all__)
    assert not missing, f"Public but not in tensorlab.__all__: {sorted(missing)}"


def _room(module: str) -> str | None:
    """The room of a tensordb module or package (None for tensordb itself, its own modules and everything else)."""
    parts = module.split(".")
    if len(parts) < 3 or ".".join(parts[:2]) != TENSORDB or parts[2] in TENSORDB_TOP:
        return None
    return parts[2]


TENSORDB_FOLDER = PACKAGE_DIRS["tensorlab"] / "tensordb"


def test_every_tensordb_module_is_in_a_room():
    folders = {path.parent.relative_to(TENSORDB_FOLDER).parts[0]
               for path in TENSORDB_FOLDER.rglob("*.py") if path.parent != TENSORDB_FOLDER}
    top = {path.stem for path in TENSORDB_FOLDER.glob("*.py")} - {"__init__"}
    unlisted = sorted(folders - set(ROOMS)) + sorted(f"{name}.py" for name in top - TENSORDB_TOP)
    assert not unlisted, ("Put these in a room of tensorlab/tensordb/ (or list a new room in tests/test_layout.py "
                          f"ROOMS, with what it may import): {unlisted}")
    missing = sorted(set(ROOMS) - folders) + sorted(f"{name}.py" for name in TENSORDB_TOP - top)
    assert not missing, f"tests/test_layout.py names rooms or modules that do not exist: {missing}"
    not_packages = sorted(room for room in ROOMS if not (TENSORDB_FOLDER / room / "__init__.py").exists())
    assert not not_packages, f"Rooms without an __init__.py: {not_packages}"


def test_rooms_form_a_dag_and_the_server_imports_no_store():
    unknown = {f"{room} -> {other}" for room, allowed in ROOMS.items() for other in allowed if other not in ROOMS}
    assert not unknown, f"ROOMS allows rooms it does not list: {sorted(unknown)}"
    placed: list[str] = []
    while len(placed) < len(ROOMS):
        ready = [room for room, allowed in ROOMS.items() if room not in placed and allowed <= set(placed)]
        assert ready, f"The rooms' allowed imports form a cycle among {sorted(set(ROOMS) - set(placed))}"
        placed += sorted(ready)
    assert not ROOMS["server"] & STORE_ROOMS, f"server/ may import no store: {sorted(ROOMS['server'] & STORE_ROOMS)}"


def test_rooms_import_only_the_rooms_they_may():
    offenders = []
    for module, path in MODULES.items():
        own = _room(module)
        if own is None:
            continue
        for target, line in _imports(module, path):
            if target != TENSORDB and not target.startswith(TENSORDB + "."):
                continue
            other = _room(target)
            if other is None:  # tensordb's package, its door or an alias: they import the rooms, not the reverse
                offenders.append(f"{path.relative_to(ROOT)}:{line} ({own}/) imports {target}, above every room")
            elif other != own and other not in ROOMS.get(own, set()):
                offenders.append(f"{path.relative_to(ROOT)}:{line} ({own}/) imports {target} ({other}/)")
    assert not offenders, "A room of tensorlab/tensordb/ imports what tests/test_layout.py ROOMS does not allow:\n" + \
        "\n".join(offenders)


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_each_room_says_what_it_holds_and_may_import(room):
    doc = ast.get_docstring(ast.parse((TENSORDB_FOLDER / room / "__init__.py").read_text())) or ""
    said = re.search(r"May import:(.*?)(?:\.\s|\.$)", doc, re.S)
    assert said, f"tensorlab/tensordb/{room}/__init__.py: say in its docstring what lives there, and 'May import: ...'"
    assert set(re.findall(r"(\w+)/", said.group(1))) == ROOMS[room], \
        f"tensorlab/tensordb/{room}/__init__.py says it may import {said.group(1).strip()!r}; ROOMS says {ROOMS[room]}"


def test_setup_packages_every_folder():
    setup = ast.parse((ROOT / "setup.py").read_text())
    keywords = {k.arg: ast.literal_eval(k.value) for node in ast.walk(setup) if isinstance(node, ast.Call)
                for k in node.keywords if k.arg in ("packages", "package_data")}
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    assert set(keywords["packages"]) == packages, \
        f"setup.py packages: missing {sorted(packages - set(keywords['packages']))}, " \
        f"extra {sorted(set(keywords['packages']) - packages)}"
    for package, patterns in keywords["package_data"].items():
        for pattern in patterns:
            assert list(MODULES[package].parent.glob(pattern)), \
                f"setup.py package_data {package}: {pattern} matches no file"


def test_readme_layout_shows_the_rooms():
    rows = {match.group(1): (match.group(2), match.group(3)) for match in re.finditer(
        r"^\| `(\w+)/` \| (.*?) \| (.*?) \|$", (ROOT / "README.md").read_text(), re.M)}
    assert set(rows) == set(ROOMS), f"README's room table lists {sorted(rows)}; the tree has {sorted(ROOMS)}"
    for room, (modules, may_import) in rows.items():
        listed = set(re.findall(r"`(\w+)`", modules.split(": ")[0]))
        present = {path.stem for path in (TENSORDB_FOLDER / room).glob("*.py")} - {"__init__"}
        assert listed == present, f"README lists {sorted(listed)} in {room}/; it holds {sorted(present)}"
        assert set(re.findall(r"`(\w+)/`", may_import)) == ROOMS[room], \
            f"README says {room}/ may import {may_import!r}; ROOMS says {ROOMS[room]}"
