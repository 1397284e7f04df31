"""The lab extension's front end: its TypeScript unit tests (vitest: incremental merge, downsampling, smoothing,
parallel coordinates) and its type check, run from pytest so `make test` runs them. Skipped only without Node."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FRONT_END = Path(__file__).resolve().parents[1] / "labextension"
pytestmark = pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None,
                                reason="Node.js and npm are not installed (labextension/ensure-node.sh installs them)")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """The front end's dependencies, installed from the lockfile when `make setup` has not already."""
    if not (FRONT_END / "node_modules" / ".bin" / "vitest").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=FRONT_END, check=True,
                       timeout=600)
    return FRONT_END / "node_modules"


def _npm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["npm", "run", *args], cwd=FRONT_END, capture_output=True, text=True, timeout=600)


def test_chart_modules_pass_their_unit_tests(node_modules):
    result = _npm("test", "--", "--reporter=verbose")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    for suite in ("mergeRows", "minMaxPerPixel", "emaSmooth", "RunSeries"):
        assert suite in result.stdout


def test_front_end_type_checks(node_modules):
    result = _npm("lint")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
