"""A plain wheel install exposes tensorlab.magics and tensorlab.widgets, and no generic top-level names."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_subpackages_under_tensorlab(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
                   check=True)
    wheel = next((tmp_path / "dist").glob("tensorlab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"tensorlab"}
    assert "tensorlab/magics/__init__.py" in names and "tensorlab/widgets/__init__.py" in names

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    deps = sysconfig.get_paths()["purelib"]
    probe = ("import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]); "
             "import tensorlab, tensorlab.magics, tensorlab.widgets; print(tensorlab.__file__)")
    # -S: no site processing, so the editable install of the checkout cannot be picked up instead.
    out = subprocess.run([sys.executable, "-S", "-c", probe, str(target), deps], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    assert out.stdout.strip().startswith(str(target))
