"""What the GPU machine lacks, carried in one ignored folder (`.gpu-carry`), and installed there without an index.

The lent GPU machine has Python 3.12 (`python3`) with JAX + CUDA, PyTorch, numpy, pandas, scikit-learn, matplotlib,
psutil, tqdm and pytest, but no Keras, pymongo, lz4, IPython, Jupyter kernel packages, no Go and no package index,
and a call carries at most 64 MiB of ignored paths together with the working tree. So, here:

    python benchmarks/gpu_carry.py prepare [--python-version 3.12]   # wheels + stripped FerretDB into .gpu-carry

downloads, for that interpreter on manylinux x86_64, the wheels of TensorLab's runtime packages and of every
dependency the machine does not already hold (`DEVICE_HAS`, from the device docs' package list), following each
wheel's Requires-Dist until nothing is missing; builds FerretDB with TensorLab's patches
(`tensorlab.tensordb.server.ferretdb_build.install_ferretdb`, linked with `-ldflags "-s -w"`) and stores it
xz-compressed; and prints the folder's size against the limit. There (`benchmarks/gpu_check.sh` calls these):

    python3 benchmarks/gpu_carry.py install --site DIR   # pip --no-index --no-deps --target DIR; TensorLab; FerretDB
    python3 benchmarks/gpu_carry.py check                # imports, versions, the device packages the wheels rely on

`install` and `check` use the standard library only (and `packaging` where it is installed).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / ".gpu-carry"
LIMIT_MIB = 64  # the device tool's limit on the working tree plus carried paths
MARGIN_MIB = 6  # left for the working tree's own files beyond what is measured now

# TensorLab's runtime packages that the bench, the worker and a `%%tdb_train` cell through a kernel import
# (setup.py's install_requires and the kernel packages), minus TensorFlow (Keras runs on JAX or PyTorch there).
WANTED = ("keras>=3.11", "pymongo>=4.6", "lz4>=4.0", "ipython>=8.0", "ipywidgets>=8.0", "mongomock>=4.1",
          "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29")
IMPORTS = ("keras", "pymongo", "lz4.frame", "IPython", "ipywidgets", "mongomock", "nbclient", "nbformat", "ipykernel")

# The image 'cuda' of nvidia-h100-x1 / nvidia-h200 (/work/.library/device/KINDS.md, read 2026-11-17).
DEVICE_HAS = frozenset(re.sub(r"[-_.]+", "-", name).lower() for name in """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy
peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile
tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel
wrapt xarray xxhash yarl zipp
""".split())
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def mib(size: int) -> float:
    return size / 2**20


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def tree_size() -> int:
    """Bytes of what travels besides carried paths: tracked files and untracked files git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / os.fsdecode(name)).stat().st_size for name in listed
               if name and (ROOT / os.fsdecode(name)).is_file())


def recipe_hash() -> str:
    """The FerretDB recipe as this tree has it: ferretdb_build.py and the Go files it adds."""
    digest = hashlib.sha256()
    server = ROOT / "tensorlab" / "tensordb" / "server"
    for path in [server / "ferretdb_build.py", *sorted((server / "ferretdb_patches").glob("*"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- prepare (here)

def _wheel_metadata(wheel: Path) -> tuple[str, str, list[str]]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        text = archive.read(name).decode("utf-8", "replace")
    headers = text.split("\n\n", 1)[0].splitlines()
    field = {k: v.strip() for k, _, v in (h.partition(":") for h in headers) if k in ("Name", "Version")}
    requires = [h.partition(":")[2].strip() for h in headers if h.startswith("Requires-Dist:")]
    return normalize(field["Name"]), field["Version"], requires


def _target_environment(python_version: str) -> dict[str, str]:
    return {"python_version": python_version, "python_full_version": f"{python_version}.0",
            "implementation_name": "cpython", "implementation_version": f"{python_version}.0",
            "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
            "platform_machine": "x86_64", "os_name": "posix", "platform_release": "", "platform_version": "",
            "extra": ""}


def _pip_download(specs: list[str], wheels: Path, python_version: str) -> None:
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    command = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
               "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp", *platforms,
               "-d", str(wheels), *specs]
    subprocess.run(command, check=True)


def download_wheels(wheels: Path, python_version: str, pin_from_env: bool = True) -> dict:
    """Wheels of WANTED and of every dependency the device lacks, one version each; returns what was found."""
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    environment = _target_environment(python_version)
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    wanted: dict[str, SpecifierSet] = {}
    wanted_by: dict[str, set[str]] = {}
    for spec in WANTED:
        requirement = Requirement(spec)
        wanted[normalize(requirement.name)] = requirement.specifier
        wanted_by.setdefault(normalize(requirement.name), set()).add("tensorlab")
    carried: dict[str, dict] = {}
    while True:
        missing = sorted(name for name in wanted if name not in carried and name not in DEVICE_HAS)
        if not missing:
            break
        specs = []
        for name in missing:
            try:  # the version the dev environment runs, when it satisfies every constraint
                here = importlib.metadata.version(name) if pin_from_env else None
            except importlib.metadata.PackageNotFoundError:
                here = None
            specs.append(f"{name}=={here}" if here and wanted[name].contains(here, prereleases=True)
                         else f"{name}{wanted[name]}")
        print(f"  downloading {len(specs)}: {' '.join(specs)}")
        _pip_download(specs, wheels, python_version)
        for wheel in sorted(wheels.glob("*.whl")):
            name, version, requires = _wheel_metadata(wheel)
            if name in carried:
                continue
            carried[name] = {"version": version, "wheel": wheel.name, "size": wheel.stat().st_size}
            for line in requires:
                requirement = Requirement(line)
                if requirement.marker and not requirement.marker.evaluate(environment):
                    continue
                dep = normalize(requirement.name)
                wanted[dep] = wanted.get(dep, SpecifierSet()) & requirement.specifier
                wanted_by.setdefault(dep, set()).add(name)
    for name, info in carried.items():
        if not wanted[name].contains(info["version"], prereleases=True):
            raise SystemExit(f"{info['wheel']}: {name} {info['version']} does not satisfy {wanted[name]} "
                             f"(asked by {sorted(wanted_by[name])}); pin it in WANTED.")
    relies_on = {name: str(wanted[name]) for name in sorted(wanted) if name in DEVICE_HAS}
    return {"carried": dict(sorted(carried.items())), "relies_on_device": relies_on}


def build_ferretdb(carry: Path, log=print) -> dict:
    """FerretDB with TensorLab's patches (ferretdb_build's own recipe), linked stripped, stored as ferretdb.xz."""
    sys.path.insert(0, str(ROOT))
    from tensorlab.tensordb.server import ferretdb_build

    real_go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(real_go).exists():
        raise SystemExit("No Go toolchain here (go on PATH or /usr/local/go/bin/go): FerretDB cannot be built.")
    saved = {key: os.environ.get(key) for key in ("PATH", "TENSORLAB_TOOLS_DIR")}
    with tempfile.TemporaryDirectory(prefix="tensorlab-gpu-ferretdb-") as scratch:
        # ferretdb_build runs `go install ./cmd/ferretdb` with its own GOFLAGS; a `go` first on PATH adds the
        # linker flags that drop the symbol table and DWARF (and builds one package at a time, niced).
        wrapper = Path(scratch) / "go-wrapper" / "go"
        wrapper.parent.mkdir()
        wrapper.write_text(f'#!/bin/sh\ncase "$1" in install|build) sub="$1"; shift; '
                           f'exec nice -n 10 "{real_go}" "$sub" -p 1 -ldflags="-s -w" "$@";; esac\n'
                           f'exec "{real_go}" "$@"\n')
        wrapper.chmod(0o755)
        os.environ["PATH"] = f"{wrapper.parent}{os.pathsep}{saved['PATH'] or ''}"
        os.environ["TENSORLAB_TOOLS_DIR"] = str(Path(scratch) / "tools")
        try:
            binary = ferretdb_build.install_ferretdb(force=True, log=log)
            stamp = (binary.parent / "ferretdb.build").read_text().strip()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        data = binary.read_bytes()
        if stamp != ferretdb_build.BUILD_STAMP or b"tensorlabAtomicWrites" not in data:
            raise SystemExit(f"{binary}: not built with TensorLab's patches (stamp {stamp!r}).")
        symbols = subprocess.run([real_go, "tool", "nm", str(binary)], capture_output=True, text=True)
        if symbols.returncode == 0 and symbols.stdout.strip():
            raise SystemExit(f"{binary} still has its symbol table: the -ldflags '-s -w' did not reach the link.")
        log(f"  stripped binary {mib(len(data)):.1f} MiB; compressing (xz) ...")
        (carry / "ferretdb.xz").write_bytes(lzma.compress(data, preset=6))
        (carry / "ferretdb.build").write_text(stamp + "\n")
    return {"stamp": stamp, "recipe": recipe_hash(), "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "xz_size": (carry / "ferretdb.xz").stat().st_size}


def report_size(carry: Path) -> bool:
    carried, tree = folder_size(carry), tree_size()
    total = carried + tree
    room = LIMIT_MIB - MARGIN_MIB
    fits = mib(total) <= room
    print(f"carried {carry.name}: {mib(carried):.1f} MiB; working tree (tracked + untracked, not ignored): "
          f"{mib(tree):.1f} MiB; together {mib(total):.1f} MiB of {LIMIT_MIB} MiB "
          f"({'fits' if fits else 'TOO LARGE'}, with {MARGIN_MIB} MiB kept for the tree to grow: limit {room} MiB)")
    return fits


def prepare(args: argparse.Namespace) -> int:
    carry = Path(args.dir).resolve()
    carry.mkdir(parents=True, exist_ok=True)
    manifest_path = carry / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    started = time.monotonic()
    print(f"== wheels for CPython {args.python_version}, manylinux x86_64, missing on the GPU machine")
    manifest = {"python_version": args.python_version, **download_wheels(carry / "wheels", args.python_version,
                                                                          pin_from_env=not args.latest)}
    print(f"  {len(manifest['carried'])} wheels, {mib(folder_size(carry / 'wheels')):.1f} MiB: "
          + ", ".join(f"{n} {i['version']}" for n, i in manifest["carried"].items()))
    print("  relied on from the device: " + ", ".join(f"{n}{s}" for n, s in manifest["relies_on_device"].items()))
    ferretdb = old.get("ferretdb")
    if (args.rebuild_ferretdb or not ferretdb or ferretdb.get("recipe") != recipe_hash()
            or not (carry / "ferretdb.xz").exists()):
        print("== FerretDB with TensorLab's patches, stripped")
        ferretdb = build_ferretdb(carry)
    else:
        print(f"== FerretDB: {carry / 'ferretdb.xz'} is current (recipe {ferretdb['recipe']}); --rebuild-ferretdb")
    manifest["ferretdb"] = ferretdb
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"  ferretdb {ferretdb['stamp']}: {mib(ferretdb['size']):.1f} MiB stripped, "
          f"{mib(ferretdb['xz_size']):.1f} MiB as ferretdb.xz")
    print(f"prepared in {time.monotonic() - started:.0f} s")
    return 0 if report_size(carry) else 1


def dry_venv(args: argparse.Namespace) -> int:
    """A venv shaped like the GPU machine's python3: its relevant packages (jax CPU-only) and nothing else."""
    manifest = json.loads((Path(args.dir) / "manifest.json").read_text())
    venv = Path(args.venv)
    subprocess.run([args.python, "-m", "venv", "--clear", str(venv)], check=True)
    packages = [args.jax, "numpy", "pandas", "scikit-learn", "matplotlib", "psutil", "tqdm", "pytest",
                "pytest-timeout", "setuptools", "wheel", *[n + s for n, s in manifest["relies_on_device"].items()]]
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *packages], check=True)
    print(f"{venv}: " + subprocess.run([str(venv / "bin" / "python"), "-c", "import sys; print(sys.version)"],
                                        capture_output=True, text=True, check=True).stdout.strip())
    return 0


# ------------------------------------------------------------------------------------------ install, check (there)

def install(args: argparse.Namespace) -> int:
    """Into --site: the carried wheels (no index, no dependency resolution), TensorLab, and FerretDB in tools/."""
    carry, site = Path(args.dir), Path(args.site)
    manifest = json.loads((carry / "manifest.json").read_text())
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if version != manifest["python_version"]:
        print(f"warning: the wheels were downloaded for Python {manifest['python_version']}, this is {version}")
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    wheels = sorted(str(w) for w in (carry / "wheels").glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
                    "--no-deps", "--no-compile", "--no-cache-dir", "--target", str(site), *wheels], check=True)
    # TensorLab as its setup.py lays it out (magics/ and widgets/ become tensorlab.magics and tensorlab.widgets).
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "tensorlab", site / "tensorlab", ignore=skip)
    shutil.copytree(ROOT / "magics", site / "tensorlab" / "magics", ignore=skip)
    shutil.copytree(ROOT / "widgets", site / "tensorlab" / "widgets", ignore=skip)
    tools = site / "tools"
    tools.mkdir()
    data = lzma.decompress((carry / "ferretdb.xz").read_bytes())
    if hashlib.sha256(data).hexdigest() != manifest["ferretdb"]["sha256"]:
        raise SystemExit("ferretdb.xz does not match the manifest: rerun the preparation.")
    (tools / "ferretdb").write_bytes(data)
    (tools / "ferretdb").chmod(0o755)
    shutil.copyfile(carry / "ferretdb.build", tools / "ferretdb.build")
    if manifest["ferretdb"]["recipe"] != recipe_hash():
        print("warning: tensorlab/tensordb/server/ferretdb_build.py or its patches changed since the carried FerretDB "
              "was built; rerun `bash benchmarks/gpu_check.sh --prepare` if the recipe did.")
    print(f"installed {len(wheels)} wheels, TensorLab and FerretDB ({manifest['ferretdb']['stamp']}) into {site}")
    return 0


def check(args: argparse.Namespace) -> int:
    """Import what the check needs; compare the device's own packages with what the carried wheels ask of them."""
    manifest = json.loads((Path(args.dir) / "manifest.json").read_text())
    failed = []
    for module in IMPORTS:
        try:
            __import__(module)
        except Exception as error:  # noqa: BLE001 - report every missing piece at once
            failed.append(f"{module}: {type(error).__name__}: {error}")
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:
        SpecifierSet = None  # noqa: N806
    for name, spec in manifest["relies_on_device"].items():
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            failed.append(f"{name}: not installed here, and not carried")
            continue
        if spec and SpecifierSet and not SpecifierSet(spec).contains(version, prereleases=True):
            print(f"warning: {name} {version} here; a carried wheel asks for {name}{spec}")
    for line in failed:
        print(f"missing: {line}")
    shown = ("keras", "jax", "jaxlib", "torch", "numpy", "pymongo", "ipykernel", "ipython")
    versions = []
    for name in shown:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    print(f"python {sys.version.split()[0]}: " + ", ".join(versions))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=str(CARRY), help="the carried folder (default .gpu-carry)")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare", help="here: wheels and stripped FerretDB into the carried folder")
    p.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    p.add_argument("--latest", action="store_true", help="newest allowed versions, not the ones installed here")
    p.add_argument("--rebuild-ferretdb", action="store_true")
    p.set_defaults(handler=prepare)
    p = commands.add_parser("size", help="the carried folder plus the working tree, against the limit")
    p.set_defaults(handler=lambda args: 0 if report_size(Path(args.dir)) else 1)
    p = commands.add_parser("dry-venv", help="here: a venv with the GPU machine's package set (jax CPU-only)")
    p.add_argument("venv")
    p.add_argument("--python", required=True, help="the interpreter, of the GPU machine's version")
    p.add_argument("--jax", default="jax[cpu]==0.11.2", help="JAX as the GPU machine has it, CPU-only")
    p.set_defaults(handler=dry_venv)
    p = commands.add_parser("install", help="there: carried wheels, TensorLab and FerretDB into --site")
    p.add_argument("--site", required=True)
    p.set_defaults(handler=install)
    p = commands.add_parser("check", help="there: imports and versions")
    p.set_defaults(handler=check)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
