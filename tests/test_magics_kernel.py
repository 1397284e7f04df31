"""The magics through a real Jupyter kernel (nbclient) against the real server."""

from __future__ import annotations

import base64

import nbformat
import pytest
from nbclient import NotebookClient

import tensorlab

pytest.importorskip("keras")

MODEL_CELL = """
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, activation="softmax")], name="{name}")
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model"""


def _run(cells: list[str]) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    return notebook


def _text(cell) -> str:
    return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs)


def test_every_magic_in_a_real_kernel(mongo_uri, db_name):
    notebook = _run([
        f"%load_ext tensorlab\n%tdb_connect {mongo_uri} --db {db_name} --study kernel",
        "import keras, numpy as np\nX = np.random.default_rng(0).normal(size=(256, 8)).astype('float32')\n"
        "Y = (X[:, 0] > 0).astype('int64')\n%tdb_import X Y --tag split=train",
        "%%tdb_train --name fg --epochs 2 --batch-size 32 --data tags.split=train\n" + MODEL_CELL.format(name="fg"),
        "%%tdb_train --name bg --epochs 300 --batch-size 8 --data tags.split=train --background\n"
        + MODEL_CELL.format(name="bg"),
        "returned_while_training = _tdb_run.status in ('starting', 'running') and not _tdb_run.done\n"
        "print('returned while training:', returned_while_training)",
        "_tdb_run.wait(300)\nprint('background run ended:', _tdb_run.status)",
        "ids = %tdb_push_job --model model --data tags.split=train --epochs 1 --grid lr=0.1,0.01 --grid units=32,64\n"
        "print(len(ids))",
        "%tdb_worker --max-jobs 4",
        "%tdb_jobs --status done",
        "%tdb_runs name=fg",
        "%tdb_compare fg bg --metric accuracy",
        "%tdb_data",
        "%tdb_status",
    ])
    cells = notebook.cells
    assert "study 'kernel'" in _text(cells[0])
    assert "imported 256 samples" in _text(cells[1])
    assert "returned while training: True" in _text(cells[4])
    assert "background run ended: finished" in _text(cells[5])
    assert _text(cells[6]).strip().endswith("4")
    assert "done 4" in _text(cells[7])
    assert "application/vnd.jupyter.widget-view+json" in cells[8].outputs[0]["data"]
    assert "finished" in _text(cells[9])
    for index in (10, 11):
        assert "application/vnd.jupyter.widget-view+json" in cells[index].outputs[0]["data"]
    assert not any(o.output_type == "error" for cell in cells for o in cell.outputs)

    db = tensorlab.connect(mongo_uri, db=db_name, study="kernel")
    try:
        fg = db.run_store.resolve("fg")
        assert fg["status"] == "finished" and len(db.logs(run="fg", kind="train")) == 2 * 8
        assert db.run_store.resolve("bg")["status"] == "finished"
        assert sorted(j["status"] for j in db.jobs.find()) == ["done"] * 4
    finally:
        db.client.drop_database(db_name)
        db.close()


def test_usage_errors_are_short_messages_not_tracebacks(mongo_uri):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext tensorlab\n%tdb_status"),
        nbformat.v4.new_code_cell("%tdb_push_job --epochs nope"),
    ])
    client = NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True)
    client.execute()
    first, second = (_text(cell) for cell in notebook.cells)
    # IPython shows a UsageError as one line on stderr: no traceback, no error output
    assert first.startswith("UsageError: Not connected") and "Traceback" not in first
    assert "UsageError: argument --epochs: invalid int value: 'nope'" in second and "Traceback" not in second
    assert not any(o.output_type == "error" for cell in notebook.cells for o in cell.outputs)


def test_tdb_train_runs_the_cell_as_a_cell_and_writes_only_tdb_run(mongo_uri, db_name):
    """The cell ends with model.compile(...), uses a magic, and a variable shares the run's name (#13)."""
    notebook = _run([
        f"%load_ext tensorlab\n%tdb_connect {mongo_uri} --db {db_name} --study cells",
        "import keras, numpy as np\nX = np.random.default_rng(0).normal(size=(64, 8)).astype('float32')\n"
        "Y = (X[:, 0] > 0).astype('int64')\n%tdb_import X Y --tag split=train\nmine = 'my own variable'",
        "%%tdb_train --name mine --epochs 1 --data tags.split=train\nunits = 3\n%time width = units + 1\n"
        "model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(width), keras.layers.Dense(2)])\n"
        "model.compile('adam', keras.losses.SparseCategoricalCrossentropy(from_logits=True))",
        "%%tdb_train --name ends_with_model --epochs 1 --data tags.split=train\nmodel",
        "print(mine, '|', type(_tdb_run).__name__, _tdb_run.status, '|', width)",
    ])
    cells = notebook.cells
    assert not any(o.output_type == "error" for cell in cells for o in cell.outputs)
    assert "Wall time" in _text(cells[2])  # the magic inside the cell ran
    assert "<Sequential" not in _text(cells[3])  # the model is taken, not printed
    assert _text(cells[4]).strip() == "my own variable | TrainingHandle finished | 4"
    db = tensorlab.connect(mongo_uri, db=db_name, study="cells")
    try:
        assert db.run_store.resolve("mine")["status"] == "finished"
        assert db.run_store.resolve("ends_with_model")["status"] == "finished"
    finally:
        db.client.drop_database(db_name)
        db.close()


def test_job_panel_in_a_fresh_kernel_imports_neither_keras_nor_tensorflow(mongo_uri, db_name):
    notebook = _run([
        f"%load_ext tensorlab\n%tdb_connect {mongo_uri} --db {db_name} --study fresh\n%tdb_jobs",
        "import sys\nprint(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))\n"
        "_tdb.client.drop_database(_tdb.db_name)",
    ])
    assert "application/vnd.jupyter.widget-view+json" in notebook.cells[0].outputs[-1]["data"]
    assert _text(notebook.cells[1]).strip() == "[]"


def _panel_outputs(cell) -> list[dict]:
    return [o["data"] for o in cell.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
            and "LivePanel(" in o["data"].get("text/plain", "")]


def test_saved_outputs_show_the_final_state_of_foreground_and_background_runs(mongo_uri, db_name):
    """A saved notebook showed 'running · epoch 1/? · step 0' for a run that had finished (#15), and no curve at
    all without widget state (#31): executed headless, each training cell holds the final curves as a PNG."""
    notebook = _run([
        f"%load_ext tensorlab\n%tdb_connect {mongo_uri} --db {db_name} --study saved",
        "import keras, numpy as np, tensorlab\nfrom tensorlab.widgets import LivePanel\n"
        "X = np.random.default_rng(0).normal(size=(128, 8)).astype('float32')\n"
        "Y = (X[:, 0] > 0).astype('int64')\n%tdb_import X Y --tag split=train",
        "%%tdb_train --name fg --epochs 2 --batch-size 32 --data tags.split=train\n" + MODEL_CELL.format(name="fg"),
        "handle = tensorlab.train_in_background(tensorlab.Model(model, db=_tdb), db=_tdb, x=X, y=Y, epochs=3, "
        "batch_size=32, run_name='bg')\npanel = LivePanel(handle).show()",
        "handle.wait(300)\nprint('final state written:', panel.finished.wait(60))",
    ])
    foreground, background = _panel_outputs(notebook.cells[2]), _panel_outputs(notebook.cells[3])
    assert len(foreground) == 1 and len(background) == 1
    assert "final state written: True" in _text(notebook.cells[4])
    for data, name in ((foreground[0], "fg"), (background[0], "bg")):
        assert f"run='{name}'" in data["text/plain"] and "status='finished'" in data["text/plain"]
        assert "finished" in data["text/html"] and "ETA" not in data["text/html"]
    for cell, name in ((notebook.cells[2], "fg"), (notebook.cells[3], "bg")):  # the final curves, as a picture
        pictures = [o["data"] for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(pictures) == 1 and base64.b64decode(pictures[0]["image/png"])[:4] == b"\x89PNG"
        assert pictures[0]["text/plain"].startswith(f"run {name} finished") and " loss " in pictures[0]["text/plain"]
    db = tensorlab.connect(mongo_uri, db=db_name, study="saved")
    db.client.drop_database(db_name)
    db.close()


QUIET_SCRIPT = """
import sys
from IPython.testing.globalipapp import start_ipython
ip = start_ipython()
if sys.argv[1] == "load_ext":
    ip.run_line_magic("load_ext", "tensorlab")
import keras
keras.layers.Dense(2)
print("imported")
"""


@pytest.mark.parametrize("load_ext", [False, True])
def test_load_ext_keeps_tensorflow_start_up_lines_out_of_the_notebook(tmp_path, load_ext):
    """`import keras` showed a red block of C++ log lines on fd 2, which kernels show in cells (#15)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | {"HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", QUIET_SCRIPT, "load_ext" if load_ext else "plain"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "imported" in out.stdout, out.stderr
    log = tmp_path / ".tensorlab" / "logs" / "tensorflow-startup.log"
    if load_ext:
        assert "I0000" not in out.stderr and "I0000" in log.read_text()  # kept in the log file, not lost
    else:
        assert "I0000" in out.stderr and not log.exists()  # what users saw without it



def test_a_pasted_keras_io_example_trains_logged_in_a_real_kernel(mongo_uri, db_name):
    """keras-io's mnist_convnet.py (data made up, one epoch) in a `%%tdb_train` cell: its own fit is the run (#28)."""
    from test_keras_as_written import MNIST_CONVNET

    notebook = _run([
        f"%load_ext tensorlab\n%tdb_connect {mongo_uri} --db {db_name} --study pasted",
        "%%tdb_train --name convnet\n" + MNIST_CONVNET,
        "print(type(history).__name__, _tdb_run.status)",
    ])
    assert not any(o.output_type == "error" for cell in notebook.cells for o in cell.outputs)
    assert "Test loss:" in _text(notebook.cells[1]) and _panel_outputs(notebook.cells[1])
    assert _text(notebook.cells[2]).strip() == "History finished"
    db = tensorlab.connect(mongo_uri, db=db_name, study="pasted")
    try:
        assert db.run_store.resolve("convnet")["status"] == "finished"
        assert "val_accuracy" in db.logs(run="convnet", kind="valid").columns
    finally:
        db.client.drop_database(db_name)
        db.close()
