"""A plain wheel install exposes tensorlab.magics and tensorlab.widgets, and no generic top-level names; it carries
the built JupyterLab extension and the config enabling its server half, and Jupyter sees both enabled."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILT = ROOT / "tensorlab" / "lab" / "labextension"
LABEXTENSION = "share/jupyter/labextensions/tensorlab/"
SERVER_CONFIG = "etc/jupyter/jupyter_server_config.d/tensorlab.json"
needs_built_front_end = pytest.mark.skipif(not (BUILT / "package.json").exists(),
                                           reason="the lab extension is not built (make labextension)")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder), str(ROOT)], check=True)
    return next(folder.glob("tensorlab-*.whl"))


def _jupyter(*args: str, env: dict | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, env=env,
                            timeout=120)
    return re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # without colour codes


def test_wheel_installs_subpackages_under_tensorlab(wheel, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"tensorlab"}
    assert "tensorlab/magics/__init__.py" in names and "tensorlab/widgets/__init__.py" in names
    assert "tensorlab/lab/__init__.py" in names

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    deps = sysconfig.get_paths()["purelib"]
    probe = ("import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]); "
             "import tensorlab, tensorlab.magics, tensorlab.widgets, tensorlab.lab; print(tensorlab.__file__)")
    # -S: no site processing, so the editable install of the checkout cannot be picked up instead.
    out = subprocess.run([sys.executable, "-S", "-c", probe, str(target), deps], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    assert out.stdout.strip().startswith(str(target))


@needs_built_front_end
def test_wheel_carries_the_lab_extension_and_jupyter_enables_it(wheel, tmp_path):
    data = {name.split(".data/data/", 1)[1] for name in zipfile.ZipFile(wheel).namelist() if ".data/data/" in name}
    assert SERVER_CONFIG in data and f"{LABEXTENSION}package.json" in data
    assert any(name.startswith(f"{LABEXTENSION}static/remoteEntry.") for name in data)
    assert f"{LABEXTENSION}schemas/tensorlab/plugin.json" in data
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip would first uninstall this checkout's own (editable) install
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--prefix",
                    str(prefix), str(wheel)], check=True)
    site = next(prefix.glob("lib/python*/site-packages"))
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{sysconfig.get_paths()['purelib']}",
           "JUPYTER_PATH": str(prefix / "share" / "jupyter"), "JUPYTER_CONFIG_PATH": str(prefix / "etc" / "jupyter"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_PREFER_ENV_PATH": "0"}
    labextensions = _jupyter("labextension", "list", env=env)
    assert re.search(rf"{re.escape(str(prefix))}.*\n(\s+.*\n)*?\s+tensorlab v0\.1\.0 enabled\s+OK", labextensions), \
        labextensions
    server = _jupyter("server", "extension", "list", env=env)
    assert re.search(r"tensorlab\.lab enabled\s*\n\s*- Validating tensorlab\.lab\.\.\.", server), server
    assert re.search(r"tensorlab\.lab\s+OK", server), server


@needs_built_front_end
def test_development_install_is_enabled_in_this_environment():
    """What `make setup` leaves in .venv: the built front end linked, the server half enabled."""
    linked = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "tensorlab"
    if not linked.exists():
        pytest.skip("this environment has no development install of the lab extension (make setup)")
    assert (linked / "package.json").exists()
    assert re.search(r"tensorlab v0\.1\.0 enabled\s+OK", _jupyter("labextension", "list"))
    server = _jupyter("server", "extension", "list")
    assert re.search(r"tensorlab\.lab enabled", server) and re.search(r"tensorlab\.lab\s+OK", server), server
