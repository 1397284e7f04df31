"""The package list cached on disk between processes (environment_cache.py): read from the file while no
folder on sys.path has changed, read again (and the file rewritten) once a package is installed or removed, and
a torn or foreign file is never trusted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tensorlab import environment_cache
from tensorlab.provenance_capture import read_environment


def _install(folder: Path, name: str, version: str) -> None:
    """A distribution as pip leaves it: a NAME-VERSION.dist-info folder with its METADATA."""
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


@pytest.fixture()
def site(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.setenv("TENSORLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "path", [str(folder), *sys.path])
    return folder


def _refuse() -> dict:
    raise AssertionError("the package metadata was read although the cache was valid")


def test_a_second_read_comes_from_the_file_and_equals_the_metadata(site):
    _install(site, "tl-probe", "1.0")
    first = environment_cache.cached_environment(read_environment)
    assert "tl-probe==1.0" in first["packages"]
    assert first == read_environment()
    assert environment_cache.cached_environment(_refuse) == first


def test_installing_upgrading_or_removing_a_package_is_seen(site):
    _install(site, "tl-probe", "1.0")
    environment_cache.cached_environment(read_environment)
    _install(site, "tl-other", "2.0")
    assert "tl-other==2.0" in environment_cache.cached_environment(read_environment)["packages"]
    (site / "tl-probe-1.0.dist-info" / "METADATA").unlink()
    (site / "tl-probe-1.0.dist-info").rmdir()
    _install(site, "tl-probe", "1.1")
    packages = environment_cache.cached_environment(read_environment)["packages"]
    assert "tl-probe==1.1" in packages and "tl-probe==1.0" not in packages
    assert environment_cache.cached_environment(_refuse)["packages"] == packages


@pytest.mark.parametrize("content", ["", '{"key": [1', "[]", '{"key": null, "environment": {}}'])
def test_a_torn_or_foreign_cache_file_is_read_again_and_replaced(site, content):
    _install(site, "tl-probe", "1.0")
    environment_cache.cached_environment(read_environment)
    [path] = list(environment_cache.cache_folder().glob("environment-*.json"))
    path.write_text(content)
    assert "tl-probe==1.0" in environment_cache.cached_environment(read_environment)["packages"]
    assert json.loads(path.read_text())["key"] == environment_cache.environment_key()


def test_a_new_process_uses_the_file_another_process_wrote(site, tmp_path):
    """The point of the cache: a fresh kernel's first fit reads one file, not every package's metadata."""
    _install(site, "tl-probe", "1.0")
    probe = textwrap.dedent(f"""
        import sys, importlib.metadata
        sys.path.insert(0, {str(site)!r})
        calls = []
        real = importlib.metadata.distributions
        importlib.metadata.distributions = lambda *a, **k: calls.append(1) or real(*a, **k)
        from tensorlab.provenance_capture import environment
        found = environment()["packages"]
        print(len(calls), "tl-probe==1.0" in found)
    """)
    env = {**os.environ, "TENSORLAB_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout
            for _ in range(2)]
    assert runs == ["1 True\n", "0 True\n"]
