"""TensorLab packaging: `magics/` and `widgets/` install as `tensorlab.magics` and `tensorlab.widgets`.

The JupyterLab extension's front end is built from `labextension/` (`make labextension`: npm ci, tsc, webpack)
into `tensorlab/lab/labextension/` (not committed); every file there is installed as data under
share/jupyter/labextensions/tensorlab/, and jupyter-config/ enables the server half (`tensorlab.lab`).
"""

import sys
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
BUILT = "tensorlab/lab/labextension"  # outputDir of labextension/package.json
LABEXTENSION_DEST = "share/jupyter/labextensions/tensorlab"


def data_files() -> list[tuple[str, list[str]]]:
    """The server extension's config, and the built front end file by file (data_files takes folders one by one)."""
    files = {"etc/jupyter/jupyter_server_config.d": ["jupyter-config/server-config/tensorlab.json"]}
    built = HERE / BUILT
    if not (built / "package.json").exists():
        print(f"tensorlab: {BUILT} is not built (make labextension); installing without the JupyterLab front end",
              file=sys.stderr)
        return sorted(files.items())
    for path in sorted(built.rglob("*")):
        if path.is_file():
            folder = path.parent.relative_to(built).as_posix()
            target = LABEXTENSION_DEST if folder == "." else f"{LABEXTENSION_DEST}/{folder}"
            files.setdefault(target, []).append(path.relative_to(HERE).as_posix())
    return sorted(files.items())


setup(
    name="tensorlab",
    version="0.1.0",
    description="Notebook-first deep-learning experiments with everything logged to MongoDB (TensorDB).",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        "tensorlab",
        "tensorlab.tensordb",  # and its rooms (tensorlab/tensordb/__init__.py; tests/test_packaging.py checks the list)
        "tensorlab.tensordb.data",
        "tensorlab.tensordb.documents",
        "tensorlab.tensordb.integrity",
        "tensorlab.tensordb.jobs",
        "tensorlab.tensordb.logs",
        "tensorlab.tensordb.models",
        "tensorlab.tensordb.payloads",
        "tensorlab.tensordb.provenance",
        "tensorlab.tensordb.runs",
        "tensorlab.tensordb.server",
        "tensorlab.tensordb.transfer",
        "tensorlab.lab",  # the JupyterLab server extension (its front end: labextension/)
        "tensorlab.magics",
        "tensorlab.widgets",
    ],
    package_dir={"tensorlab": "tensorlab", "tensorlab.magics": "magics", "tensorlab.widgets": "widgets"},
    # the FerretDB build's patches; the notebook charts' view, built by `make labextension` (not committed)
    package_data={"tensorlab.tensordb.server": ["ferretdb_patches/*.go"], "tensorlab.widgets": ["static/*"]},
    install_requires=[
        "pymongo>=4.6",
        "lz4>=4.0",
        "numpy>=1.24",
        "keras>=3.11",  # earlier Keras 3 releases have known safe-mode bypasses when loading configs
        "tensorflow>=2.16",
        "tensorboard>=2.16",  # keras.callbacks.TensorBoard needs it, and TensorFlow 2.21 no longer brings it
        "ipython>=8.0",
        "ipywidgets>=8.0",
        "anywidget>=0.9",  # the notebook panels' charts: the lab extension's chart code as a widget view
        "jupyterlab>=4.0",
        "matplotlib>=3.7",
        "pandas>=2.0",
        "mongomock>=4.1",
        "scikit-learn>=1.3",
        "tqdm>=4.66",
        "psutil>=5.9",  # the run heartbeat's CPU and memory figures
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.2",
            "hypothesis>=6.100",  # random runs for the run-search equivalence tests
            "nbval>=0.11",
        "notebook>=7",  # the panels are checked in Notebook 7 as well as JupyterLab (tests/test_browser.py)
            "nbclient>=0.10",
            "nbformat>=5.9",
            "ipykernel>=6.29",
            "ruff>=0.6",
            "playwright>=1.45",
            "mlflow-skinny>=2.10",
            "build>=1.0",
            "jax[cpu]>=0.4",  # the backend-agnostic test trains on JAX with TensorFlow hidden
            "pytest-jupyter[server]>=0.10",  # jp_fetch: the lab extension's API against a real Jupyter server
        ],
    },
    data_files=data_files(),
    entry_points={"console_scripts": ["tensorlab=tensorlab.cli:main"]},
)
