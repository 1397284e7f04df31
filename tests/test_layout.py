"""The package's shape: one folder speaks MongoDB, layers only import downwards, modules stay small.

Layers, lowest first:
  0 base      errors, clock, validation, table rows: plain Python, no database, no Keras
  1 storage   tensorlab/tensordb/: the only code that imports pymongo, gridfs or bson
  2 training  Keras glue above TensorDB: model, callback, background, workers, sweeps, continuous learning
  3 interface what people touch: the CLI, magics and widgets
The package root re-exports from every layer and is importable only from the interface layer.
"""

from __future__ import annotations

import ast
import importlib
import inspect
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
    "tensorlab.system_metrics": TRAINING, "tensorlab.halving": TRAINING, "tensorlab.fit_arguments": TRAINING,
    "tensorlab.cli": INTERFACE, "tensorlab.magics": INTERFACE, "tensorlab.widgets": INTERFACE,
}
ROOT_PACKAGE = "tensorlab"
MONGODB_PACKAGES = {"pymongo", "gridfs", "bson", "mongomock"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


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
