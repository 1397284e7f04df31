"""The lab extension in a real browser: JupyterLab headless + Debian's Chromium through Playwright, no notebook open.

A separate process logs a run: the side bar lists it as running, its tab's curve grows, and once the process is
SIGKILLed the run shows crashed (RunStore's liveness rule: its pid is gone on this host). Selected runs open a
comparison with the best run marked; a queued job is cancelled from the jobs tab and is cancelled in the database.
Screenshots of the side bar and the run, comparison and jobs tabs go to docs/screenshots/.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tensorlab

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
BUILT = ROOT / "tensorlab" / "lab" / "labextension"
SCREENSHOTS = ROOT / "docs" / "screenshots"
ARTIFACTS = ROOT / "tests" / "artifacts" / "lab"
STUDY = "lab"
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed; .ci/run installs it"),
    pytest.mark.skipif(not (BUILT / "package.json").exists(),
                       reason="the lab extension is not built (make labextension)"),
]

WRITER = """
import sys, time, tensorlab
db = tensorlab.connect(sys.argv[1], db=sys.argv[2], study=sys.argv[3])
run = db.run_store.start("live-writer", hyper_parameters={"lr": 0.003, "units": 32}, device="cpu")
print(run, flush=True)
step = 0
while True:
    db.train_log(loss=2.0 / (1 + step / 200), accuracy=1 - 1 / (1 + step / 300), step=step, epoch=step // 100, run=run)
    if step % 100 == 99:
        db.valid_log(val_loss=2.2 / (1 + step / 200), val_accuracy=0.95 - 1 / (1 + step / 300), step=step,
                     epoch=step // 100, run=run)
    step += 1
    time.sleep(0.01)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_lab(tmp_path: Path, mongo_uri: str, db_name: str, study: str = STUDY) -> tuple[subprocess.Popen, str]:
    """JupyterLab with only this checkout's lab extension (linked through JUPYTER_PATH, enabled by a config file)."""
    data = tmp_path / "data" / "labextensions"
    data.mkdir(parents=True)
    (data / "tensorlab").symlink_to(BUILT)
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"jpserver_extensions": {"tensorlab.lab": True}},
        "TensorLab": {"db": db_name, "study": study}}))
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "TENSORLAB_MONGODB_URI": mongo_uri, "JUPYTER_CONFIG_DIR": str(config),
           "JUPYTER_PATH": str(tmp_path / "data"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.port_retries=0",
         f"--LabApp.workspaces_dir={tmp_path / 'ws'}", f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
         "--allow-root", "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=open(tmp_path / "jupyterlab.log", "w"), stderr=subprocess.STDOUT)
    return server, f"http://127.0.0.1:{port}/lab?token={token}"


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def open_browser(playwright, url: str, width: int = 1400, height: int = 900):
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"])
    page = browser.new_page(viewport={"width": width, "height": height})
    deadline = time.time() + 60
    while True:  # the server may still be starting
        try:
            page.goto(url, timeout=60_000)
            break
        except Exception:  # noqa: BLE001 - connection refused until it listens
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    page.wait_for_selector(".lm-TabBar-tab[data-id='tensorlab-sidebar']", timeout=90_000)
    page.click(".lm-TabBar-tab[data-id='tensorlab-sidebar']")
    page.wait_for_selector("#tensorlab-sidebar .tl-runs-section", timeout=30_000)
    return browser, page


@contextlib.contextmanager
def lab_page(url: str, failure: str) -> Iterator[Any]:
    """A Chromium page on the lab (side bar open); a screenshot ARTIFACTS/`failure` when the block fails."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = open_browser(playwright, url)
        try:
            yield page
        except Exception:
            page.screenshot(path=str(ARTIFACTS / failure))
            raise
        finally:
            browser.close()


def _seed(db) -> dict:
    """Two finished runs to compare, and jobs: one queued, one running, one failed."""
    finished = []
    for index, lr in enumerate((0.1, 0.01)):
        run = db.run_store.start(f"sweep-lr{lr}", hyper_parameters={"lr": lr, "units": 64 * (index + 1)})
        for epoch in range(10):
            db.valid_log(val_loss=1.0 / (epoch + 1 + 5 * lr), val_accuracy=0.5 + epoch * lr * 0.4, step=epoch,
                         epoch=epoch, run=run)
        db.run_store.finish(run, summary={"best": {"val_accuracy": 0.5 + 9 * lr * 0.4}})
        finished.append(str(run))
    code = "def build():\n    pass"
    queued = db.push_job(code=code, data={"tags.split": "train"}, hyper_parameters={"lr": 0.3}, priority=1)
    db.push_job(code=code, data={"tags.split": "train"}, hyper_parameters={"lr": 0.03}, priority=5)
    db.jobs.heartbeat(db.pop_job("gpu-box:4242", allow_code=True), "gpu-box:4242", progress={"epoch": 3, "step": 120})
    db.push_job(code=code, data={"tags.split": "train"}, hyper_parameters={"lr": 9.0}, priority=9)
    failed = db.pop_job("gpu-box:777", allow_code=True)
    db.jobs.fail(failed, "gpu-box:777", "FloatingPointError: loss is nan", "Traceback (most recent call last):\n"
                 "  File \"train.py\", line 12, in fit\nFloatingPointError: loss is nan", retry=False,
                 failure_class="code")
    db.flush_logs()
    return {"finished": finished, "queued": str(queued), "best": finished[0]}


def _points(page, run: str) -> int:
    return int(page.get_attribute(f".tl-run-panel[data-run='{run}']", "data-points") or 0)


def test_lab_extension_live_crash_compare_and_cancel(tmp_path, mongo_uri, db_name):

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    db = tensorlab.connect(mongo_uri, db=db_name, study=STUDY)
    seeded = _seed(db)
    lab, url = start_lab(tmp_path, mongo_uri, db_name)
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), mongo_uri, db_name, STUDY],
                              stdout=subprocess.PIPE, text=True)
    try:
        run = writer.stdout.readline().strip()
        with lab_page(url, "failure.png") as page:
            _live_run_then_crash(page, db, writer, run)
            _compare(page, seeded)
            _cancel_from_the_jobs_tab(page, db, seeded["queued"])
    finally:
        stop(writer)
        stop(lab)
        db.client.drop_database(db_name)
        db.close()


def _live_run_then_crash(page, db, writer, run: str) -> None:
    item = f"#tensorlab-sidebar .tl-run[data-run='{run}']"
    page.wait_for_selector(f"{item}[data-status='running']", timeout=30_000)
    page.click(f"{item} .tl-run-name")
    panel = f".tl-run-panel[data-run='{run}']"
    page.wait_for_selector(f"{panel} .tl-chart[data-chart='loss'] canvas", timeout=30_000)
    first = _points(page, run)
    page.wait_for_function(f"Number(document.querySelector(\"{panel}\").dataset.points) > {first + 100}",
                           timeout=20_000)  # the curve grows while the other process writes
    time.sleep(1.0)
    page.screenshot(path=str(SCREENSHOTS / "lab_run_tab.png"))
    page.locator("#tensorlab-sidebar").screenshot(path=str(SCREENSHOTS / "lab_sidebar.png"))
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    page.wait_for_selector(f"{item}[data-status='crashed']", timeout=20_000)
    page.wait_for_selector(f"{panel}[data-status='crashed']", timeout=20_000)
    assert db.run_store.resolve(run)["status"] == "crashed"
    grown = _points(page, run)
    assert grown > first + 100


def _compare(page, seeded: dict) -> None:
    for run in seeded["finished"]:
        page.check(f"#tensorlab-sidebar .tl-run[data-run='{run}'] input[type=checkbox]")
    page.click("#tensorlab-sidebar .tl-compare")
    page.wait_for_selector(f".tl-compare-panel tr.tl-best[data-run='{seeded['best']}']", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('.tl-compare-panel .tl-parallel polyline').length == 2",
                           timeout=20_000)
    page.wait_for_selector(".tl-compare-panel .tl-chart canvas", timeout=20_000)
    diff = page.wait_for_selector(".tl-compare-panel .tl-diff-table", timeout=20_000)  # what differs: lr, units
    assert {"lr", "units"} <= {cell.inner_text() for cell in diff.query_selector_all("td:nth-child(2)")}
    page.click(".tl-compare-panel th:text-is('hp.lr')")  # sortable: ascending by lr puts the best last
    page.click(".tl-compare-panel th:text-is('hp.lr')")
    time.sleep(1.0)
    page.screenshot(path=str(SCREENSHOTS / "lab_comparison_tab.png"))


def _cancel_from_the_jobs_tab(page, db, queued: str) -> None:
    page.click("#tensorlab-sidebar .tl-open-jobs")
    row = f".tl-jobs-panel tr.tl-job[data-job='{queued}']"
    page.wait_for_selector(f"{row}[data-status='queued']", timeout=30_000)
    page.wait_for_selector(".tl-jobs-panel tr.tl-job[data-status='failed']", timeout=10_000)
    page.screenshot(path=str(SCREENSHOTS / "lab_jobs_tab.png"))
    page.click(f"{row} .tl-cancel")
    deadline = time.time() + 15
    while db.jobs.get(queued)["status"] != "cancelled":
        assert time.time() < deadline, "the job was not cancelled in the database"
        time.sleep(0.2)
    page.wait_for_selector(f"{row}[data-status='cancelled']", timeout=15_000)


def test_tdb_open_opens_the_run_tab_from_a_notebook(tmp_path, mongo_uri, db_name):
    """`%tdb_open RUN` in a notebook: the extension's renderer opens the run's tab (once) and shows a link."""
    import nbformat

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    db = tensorlab.connect(mongo_uri, db=db_name, study=STUDY)
    run = str(db.run_store.start("opened-from-a-notebook"))
    db.train_log(loss=0.5, step=0, run=run)
    db.flush_logs()
    cell = f"%load_ext tensorlab\n%tdb_connect --db {db_name} --study {STUDY}\n%tdb_open opened-from-a-notebook"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "open.ipynb")
    lab, url = start_lab(tmp_path, mongo_uri, db_name)
    try:
        with lab_page(url.replace("/lab?", "/lab/tree/open.ipynb?"), "tdb_open_failure.png") as page:
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
            try:  # JupyterLab may ask which kernel to start, though the notebook names one
                page.click(".jp-Dialog .jp-mod-accept", timeout=5_000)
            except Exception:  # noqa: BLE001 - no dialog: nothing to dismiss
                pass
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
            # the link stays in the notebook, behind the run tab it opened
            page.wait_for_selector(".tl-open-run .tl-open-link", state="attached", timeout=90_000)
            page.wait_for_selector(f".tl-run-panel[data-run='{run}'] .tl-chart canvas", timeout=30_000)
            assert page.locator(f".tl-run-panel[data-run='{run}']").count() == 1
    finally:
        stop(lab)
        db.client.drop_database(db_name)
        db.close()


def test_the_run_tab_reruns_a_run_as_a_job_and_draws_its_lineage(tmp_path, mongo_uri, db_name):
    """#32 in the lab: "Rerun as a job" queues a job pinned to what the run saw; the lineage opens as a picture."""
    keras = pytest.importorskip("keras")
    import numpy as np

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    db = tensorlab.connect(mongo_uri, db=db_name, study=STUDY)
    rng = np.random.default_rng(0)
    db.import_data(rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 2, 64), tags={"split": "train"})
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    tensorlab.Model(model, db=db).fit(data={"tags.split": "train"}, epochs=2, batch_size=16, seed=5,
                                      run_name="reproducible")
    run = str(db.run_store.resolve("reproducible")["_id"])
    lab, url = start_lab(tmp_path, mongo_uri, db_name)
    try:
        with lab_page(url, "reproduce_failure.png") as page:
            page.click(f"#tensorlab-sidebar .tl-run[data-run='{run}'] .tl-run-name")
            panel = f".tl-run-panel[data-run='{run}']"
            page.locator(f"{panel} .tl-rerun").scroll_into_view_if_needed()
            page.click(f"{panel} .tl-rerun")
            message = page.locator(f"{panel} .tl-rerun-message")
            page.wait_for_function(  # the answer, whichever it is: a queued job or the server's error
                f"(document.querySelector(\"{panel} .tl-rerun-message\")?.textContent ?? '').startsWith('queued') "
                f"|| document.querySelector(\"{panel} .tl-rerun-message.tl-error\") !== null", timeout=90_000)
            assert message.get_attribute("data-job"), message.inner_text()
            job = db.jobs.get(message.get_attribute("data-job"))
            assert job["status"] == "queued" and job["seed"] == 5 and str(job["rerun_of"]) == run
            page.click(f"{panel} .tl-lineage-section summary")
            page.wait_for_selector(f"{panel} .tl-lineage-box[data-nodes]", timeout=30_000)
            kinds = page.eval_on_selector_all(f"{panel} .tl-lineage-node", "ns => ns.map(n => n.dataset.kind)")
            assert {"import", "run", "parameters"} <= set(kinds) and kinds.count("parameters") == 2, kinds
            page.locator(f"{panel} .tl-reproduce-section").scroll_into_view_if_needed()
            page.locator(f"{panel} .tl-reproduce-section").screenshot(
                path=str(SCREENSHOTS / "lab_run_reproduce.png"))
    finally:
        stop(lab)
        db.client.drop_database(db_name)
        db.close()
