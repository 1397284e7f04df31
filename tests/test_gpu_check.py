"""The GPU check's carried folder, without a GPU or an index: the install step, the dependency walk, the script."""

from __future__ import annotations

import hashlib
import json
import lzma
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_carry  # noqa: E402


def _fake_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    metadata = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                        *[f"Requires-Dist: {line}\n" for line in requires], "\nA description.\n"])
    files = {f"{name}/__init__.py": "VALUE = 42\n", f"{info}/METADATA": metadata,
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def test_wheel_requirements_follow_the_target_python_and_skip_extras(tmp_path):
    wheel = _fake_wheel(tmp_path, "demo_pkg", "1.0", ["traitlets>=5.3", "colorama; sys_platform == 'win32'",
                                                       "exceptiongroup; python_version < '3.11'",
                                                       "pytest; extra == 'test'"])
    from packaging.requirements import Requirement

    name, version, requires = gpu_carry._wheel_metadata(wheel)
    environment = gpu_carry._target_environment("3.12")
    kept = [Requirement(line).name for line in requires
            if not Requirement(line).marker or Requirement(line).marker.evaluate(environment)]
    assert (name, version, kept) == ("demo-pkg", "1.0", ["traitlets"])


def test_what_is_carried_is_not_on_the_device_already():
    wanted = {gpu_carry.normalize(spec.split(">")[0]) for spec in gpu_carry.WANTED}
    assert not wanted & gpu_carry.DEVICE_HAS
    assert {"jax", "torch", "numpy", "pandas", "psutil", "pytest"} <= gpu_carry.DEVICE_HAS


def test_install_puts_wheels_tensorlab_and_ferretdb_in_the_site(tmp_path):
    carry, site = tmp_path / "carry", tmp_path / "site"
    (carry / "wheels").mkdir(parents=True)
    _fake_wheel(carry / "wheels", "demo_pkg", "1.0", [])
    binary = b"\x7fELF not really a server"
    (carry / "ferretdb.xz").write_bytes(lzma.compress(binary))
    (carry / "ferretdb.build").write_text("the stamp\n")
    manifest = {"python_version": f"{sys.version_info.major}.{sys.version_info.minor}", "carried": {},
                "relies_on_device": {}, "ferretdb": {"stamp": "the stamp", "recipe": gpu_carry.recipe_hash(),
                                                     "sha256": hashlib.sha256(binary).hexdigest()}}
    (carry / "manifest.json").write_text(json.dumps(manifest))
    assert gpu_carry.main(["--dir", str(carry), "install", "--site", str(site)]) == 0
    assert (site / "demo_pkg" / "__init__.py").is_file()
    assert (site / "tensorlab" / "magics" / "__init__.py").is_file()  # laid out as setup.py's package_dir does
    assert (site / "tensorlab" / "widgets" / "__init__.py").is_file()
    assert (site / "tensorlab" / "tensordb" / "server" / "ferretdb_patches").is_dir()
    assert (site / "tools" / "ferretdb").read_bytes() == binary
    assert (site / "tools" / "ferretdb.build").read_text().strip() == "the stamp"
    (carry / "ferretdb.xz").write_bytes(lzma.compress(b"another binary"))
    with pytest.raises(SystemExit, match="does not match"):
        gpu_carry.main(["--dir", str(carry), "install", "--site", str(site)])


def test_the_script_parses_and_asks_for_the_preparation_first(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    result = subprocess.run(["bash", str(script), "cpu"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "GPU_CARRY": str(tmp_path / "nothing")})
    assert result.returncode == 2 and "--prepare" in result.stderr


def test_the_carried_folder_is_ignored_so_it_travels_only_when_carried():
    result = subprocess.run(["git", "check-ignore", "-q", ".gpu-carry/wheels/x.whl"], cwd=ROOT)
    if result.returncode == 128:
        pytest.skip("not a git checkout")
    assert result.returncode == 0
