"""Panels tested through their widget state (no browser): feeding rows, buttons, best run, queue actions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from polling import wait_until
from tensorlab.widgets import ComparisonPanel, DataPanel, JobQueuePanel, LivePanel, line_chart

import tensorlab
from tensorlab.datasets import load_digits

keras = pytest.importorskip("keras")
(X, Y), (XV, YV) = load_digits()


def _mlp(lr=0.01, name="mlp"):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], name=name)
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model



def test_feeding_rows_updates_curves_and_progress(tdb):
    panel = LivePanel("some-run", tdb, auto_refresh=False)
    panel.feed_rows([{"kind": "train", "metrics": {"loss": 2.0 - i / 10, "accuracy": i / 20}, "time": i}
                     for i in range(10)])
    panel.feed_rows([{"kind": "valid", "epoch": 0, "metrics": {"val_loss": 1.5, "val_accuracy": 0.4}}])
    panel.refresh(force=True)
    assert panel.loss_chart.value.count("<polyline") == 2  # train loss and validation loss
    assert 'data-name="train loss (batch)"' in panel.loss_chart.value  # honest names (#15)
    assert 'data-name="validation loss"' in panel.loss_chart.value
    assert 'data-name="validation accuracy"' in panel.metric_chart.value
    assert 'class="tl-tip"' in panel.loss_chart.value and "train loss (batch): 10, 1.1" in panel.loss_chart.value
    assert "10 steps logged" in panel.stats.value
    bundle = panel._repr_mimebundle_()
    assert "<svg" in bundle["text/html"] and "application/vnd.jupyter.widget-view+json" in bundle


def test_chart_controls_log_axis_smoothing_series_and_zoom(tdb):
    panel = LivePanel("some-run", tdb, auto_refresh=False)
    panel.feed_rows([{"kind": "train", "metrics": {"loss": 1000.0 / (i + 1), "accuracy": i / 2000}, "time": i}
                     for i in range(2000)])
    panel.refresh(force=True)
    assert ">1,000<" in panel.loss_chart.value and "1e+03" not in panel.loss_chart.value
    panel.log_y.value = True
    assert "loss (log)" in panel.loss_chart.value
    panel.smoothing.value = 0.9
    assert 'class="raw"' in panel.loss_chart.value  # the exact values stay, faint, under the smoothed line
    panel.series.value = ["train loss (batch)"]
    assert "train accuracy (batch)" not in panel.metric_chart.value.split("<polyline", 1)[-1]
    panel.window.value = 100
    xs = [float(p.split(",")[0]) for p in panel.loss_chart.value.split('points="')[-1].split('"')[0].split()]
    assert len(xs) <= 101  # the last 100 steps of 2,000 are drawn
    assert panel.pan.value == 2000 and not panel.pan.disabled
    panel.pan.value = 500  # pan back: steps 400 to 500
    chart = panel.loss_chart.value
    assert ">400<" in chart and ">500<" in chart and ">2,000<" not in chart


def test_live_panel_follows_a_background_run_and_stop_stops_it(tdb):
    model = tensorlab.Model(_mlp(), db=tdb)
    handle = tensorlab.train_in_background(model, db=tdb, x=X, y=Y, validation_data=(XV, YV), epochs=300,
                                           batch_size=32, run_name="watched")
    panel = LivePanel(handle)
    assert wait_until(lambda: handle.progress.epoch >= 1 and "polyline" in panel.metric_chart.value)
    assert wait_until(lambda: "running" in panel.status.value)
    assert panel.progress_bar.value > 0 and "epoch" in panel.progress_label.value
    assert "cpu" in panel.title.value  # the device recorded in the run
    panel.checkpoint_button.click()
    assert wait_until(lambda: panel.checkpoints_saved == 1)
    panel.stop_button.click()
    assert "stopping" in panel.status.value or handle.done  # at once, and it stays until the run has ended
    assert "ETA" not in panel.progress_label.value
    assert handle.wait(60) and handle.status == "stopped"
    assert wait_until(lambda: "stopped" in panel.status.value and panel.stop_button.disabled)
    assert "ETA" not in panel.progress_label.value and "watched" in panel.title.value  # the name, not the id
    assert "status='stopped'" in panel._repr_mimebundle_()["text/plain"]
    run_id = tdb.run_store.resolve("watched")["_id"]
    assert tdb.parameters.find_doc({"run": run_id, "tags.manual": True})
    assert tdb.parameters.find_doc({"run": run_id, "tags.final": True})
    assert max(panel.update_costs_ms) < 1000  # sanity only; the cost per update is measured in benchmarks/
    panel.close()


TRAINER = """
import sys, keras, tensorlab
from tensorlab.datasets import load_digits
uri, db_name = sys.argv[1:3]
db = tensorlab.connect(uri, db=db_name, study="test")
(x, y), (xv, yv) = load_digits()
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
tensorlab.Model(model, db=db).fit(x, y, validation_data=(xv, yv), epochs=4, batch_size=64, run_name="remote")
db.close()
"""


def test_live_panel_follows_a_run_in_another_process(tdb, mongo_uri):
    trainer = subprocess.Popen([sys.executable, "-c", TRAINER, mongo_uri, tdb.db_name])
    assert wait_until(lambda: tdb.run_store.find({"name": "remote"}) != [], timeout=120)
    panel = LivePanel("remote", tdb, poll_interval_s=0.2)
    assert trainer.wait(180) == 0
    assert wait_until(lambda: "finished" in panel.status.value and panel._step == 4 * 23)
    assert 'data-name="validation accuracy"' in panel.metric_chart.value
    panel.stop_button.click()  # a remote run cannot be stopped from here: the panel says so, nothing raises
    assert panel.stop_button.disabled
    panel.close()


def test_comparison_picks_the_best_run_and_exports(tdb, tmp_path):
    for lr in (0.0005, 0.01, 0.002):
        tensorlab.Model(_mlp(lr), db=tdb).fit(X, Y, validation_data=(XV, YV), epochs=3, batch_size=64,
                                              run_name=f"lr={lr}", hyper_parameters={"lr": lr})
    finals = {d["name"]: d["summary"]["best"]["val_accuracy"] for d in tdb.run_store.find()}
    panel = ComparisonPanel(tdb, {"name": {"$regex": "^lr="}}, metric="val_accuracy", auto_refresh=False)
    assert panel.best_run() == max(finals, key=finals.get)
    table = panel.table()
    assert table["run"].tolist() == sorted(finals, key=finals.get, reverse=True)
    assert "hp.lr" in table.columns and panel.chart.value.count("<polyline") == 3
    assert 'class="tensorlab-best"' in panel.table_html.value
    parallel = panel.parallel.value  # hyper-parameters against the metric, one line per run (#15)
    assert parallel.count('class="run"') == 3 and ">lr<" in parallel and ">val_accuracy<" in parallel
    best = panel.best_run()
    assert f'data-name="{best}" fill="none" stroke="#d62728" stroke-width="3"' in parallel
    panel.descending.value = False
    assert panel.table()["run"].tolist()[0] == min(finals, key=finals.get)
    panel.x_picker.value = "time"
    assert "time" in panel.chart.value
    png = panel.to_png(str(tmp_path / "compare.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    panel.run_picker.value = panel.run_picker.value[:1]
    assert panel.chart.value.count("<polyline") == 1


def test_queue_panel_buttons_change_jobs_in_the_database(tdb):
    jobs = [tdb.push_job("arch", priority=i) for i in range(3)]
    panel = JobQueuePanel(tdb, auto_refresh=False)
    assert "queued: <b>3</b>" in panel.summary.value
    panel.job_picker.value = str(jobs[0])
    panel.cancel_button.click()
    assert tdb.jobs.get(jobs[0])["status"] == "cancelled" and "cancelled: <b>1</b>" in panel.summary.value
    panel.requeue_button.click()
    assert tdb.jobs.get(jobs[0])["status"] == "queued"
    panel.priority.value = 42
    panel.priority_button.click()
    assert tdb.jobs.get(jobs[0])["priority"] == 42
    tdb.pop_job("w1")
    panel.refresh()
    assert "running: <b>1</b>" in panel.summary.value and "w1" in panel.table_html.value
    panel.job_picker.value = str(jobs[1])
    tdb.jobs.cancel(jobs[1])
    panel.cancel_button.click()  # already cancelled: the panel reports it, nothing raises
    assert panel.message.outputs and "cancelled" in panel.message.outputs[0]["text"]


def test_data_panel_groups_and_previews_images(tdb):
    from sklearn.datasets import load_digits as raw_digits

    digits = raw_digits()
    tdb.import_data(digits.images[:100], digits.target[:100], {"dataset": "digits", "split": "train"})
    tdb.import_data(digits.images[100:150], digits.target[100:150], {"dataset": "digits", "split": "valid"})
    tdb.import_data(np.zeros((5, 3)), None, {"dataset": "table"})
    panel = DataPanel(tdb)
    groups = panel.groups().set_index("tags_text")
    assert groups.loc["dataset=digits, split=train", "samples"] == 100
    assert groups.loc["dataset=digits, split=valid", "samples"] == 50
    panel.dataset_picker.value = "dataset=digits, split=train"
    assert panel.preview.value[:8] == b"\x89PNG\r\n\x1a\n" and "first 16 samples" in panel.preview_text.value
    panel.dataset_picker.value = "dataset=table"
    assert "not images" in panel.preview_text.value


def test_svg_chart_handles_gaps_and_many_points():
    empty = line_chart({}, title="t")
    assert "waiting for data" in empty
    xs = list(range(10_000))
    svg = line_chart({"a": (xs, [float(x) for x in xs]), "b": ([0, 1, 2], [1.0, float("nan"), 3.0])})
    first = svg.split('points="')[1].split('"')[0]
    assert len(first.split()) == 400  # downsampled
    assert svg.split('points="')[2].split('"')[0].count(",") == 2  # the NaN point is skipped


def test_tables_pad_cells_show_a_dash_for_missing_values_and_jobs_show_hyper_parameters(tdb):
    import pandas as pd

    frame = pd.DataFrame([{"run": "a", "id": "1", "status": "running", "hp.lr": 0.1, "val_accuracy": float("nan")},
                          {"run": "b", "id": "2", "status": "finished", "hp.lr": 0.01, "val_accuracy": 0.91234}])
    table = ComparisonPanel._table_html(frame, "b")
    assert "nan" not in table and ">—<" in table and ">0.9123<" in table and "padding:3px 10px" in table
    tdb.push_job("arch", hyper_parameters={"lr": 0.1, "units": 64})
    panel = JobQueuePanel(tdb, auto_refresh=False)
    assert "lr=0.1, units=64" in panel.table_html.value and ">hyper-parameters<" in panel.table_html.value
    panel.close()
