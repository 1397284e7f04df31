"""Panels tested through their widget state (no browser): feeding rows, buttons, best run, queue actions."""

from __future__ import annotations

import base64
import subprocess
import sys

import numpy as np
import pytest
from polling import wait_until
from tensorlab.widgets import ChartFeed, ComparisonPanel, DataPanel, JobQueuePanel, LivePanel

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



class Wire:
    """What a chart sends its views: the custom messages and their float64 buffers, decoded."""

    def __init__(self, chart: ChartFeed) -> None:
        self.messages: list[tuple[dict, dict[str, tuple[list, list]]]] = []
        chart.send = self.record  # the widget's comm, as the front end would receive it

    def record(self, content: dict, buffers: list) -> None:
        points = {item["key"]: (np.frombuffer(buffers[2 * i]).tolist(), np.frombuffer(buffers[2 * i + 1]).tolist())
                  for i, item in enumerate(content["series"])}
        self.messages.append((content, points))


def _train_rows(start, stop):
    return [{"kind": "train", "metrics": {"loss": 2.0 - i / 10, "accuracy": i / 20}, "time": i}
            for i in range(start, stop)]


def test_feeding_rows_sends_only_new_points_under_honest_names(tdb):
    panel = LivePanel("some-run", tdb, auto_refresh=False)
    wire = Wire(panel.chart)
    panel.feed_rows(_train_rows(0, 10))
    panel.feed_rows([{"kind": "valid", "epoch": 0, "metrics": {"val_loss": 1.5, "val_accuracy": 0.4}}])
    panel.refresh(force=True)
    charts = {line["key"]: line["chart"] for line in panel.chart.lines}  # honest names (#15)
    assert charts == {"train loss (batch)": "loss", "validation loss": "loss", "train accuracy (batch)": "metrics",
                      "validation accuracy": "metrics"}
    content, points = wire.messages[-1]
    assert points["train loss (batch)"] == (list(range(1, 11)), [2.0 - i / 10 for i in range(10)])
    assert points["validation loss"] == ([10], [1.5]) and "<" not in str(content)  # numbers, never markup
    panel.feed_rows(_train_rows(10, 13))
    panel.refresh(force=True)
    content, points = wire.messages[-1]  # the next update carries the 3 new rows only
    assert points == {"train loss (batch)": ([11, 12, 13], [2.0 - i / 10 for i in (10, 11, 12)]),
                      "train accuracy (batch)": ([11, 12, 13], [i / 20 for i in (10, 11, 12)])}
    assert not content["reset"] and panel.chart.points_sent == 2 * 10 + 2 + 2 * 3
    panel.refresh(force=True)
    assert len(wire.messages) == 2  # nothing new, nothing sent
    assert "13 steps logged" in panel.stats.value
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "some-run" in bundle["text/html"]


def test_a_view_that_opens_late_gets_everything_once_and_gaps_stay_gaps(tdb):
    chart = ChartFeed(charts=[{"key": "loss", "title": "loss"}], lines=[{"key": "a", "label": "a", "chart": "loss"}])
    wire = Wire(chart)
    xs, ys = [0, 1, 2], [1.0, None, float("inf")]
    chart.track("a", xs, ys)
    chart.flush()
    xs.append(3)
    ys.append(0.5)
    chart._on_view_message(chart, {"type": "sync"}, [])  # a second view (or a reloaded page) asks for all
    content, points = wire.messages[-1]
    assert content["reset"] and points["a"][0] == [0, 1, 2, 3]
    assert np.isnan(points["a"][1][1]) and points["a"][1][2] == float("inf") and points["a"][1][3] == 0.5
    chart.track("a", [0], [9.0])  # shorter than what was sent: the line starts over
    chart.flush()
    content, points = wire.messages[-1]
    assert content["drop"] == ["a"] and points == {"a": ([0], [9.0])}
    chart.clear()
    chart.flush()
    assert wire.messages[-1][0]["reset"] and wire.messages[-1][1] == {}


def test_the_final_picture_is_a_png_of_the_curves_with_a_summary_in_words(tdb):
    panel = LivePanel("some-run", tdb, auto_refresh=False)
    panel.feed_rows(_train_rows(0, 50))
    panel.feed_rows([{"kind": "valid", "epoch": 0, "metrics": {"val_loss": 1.5, "val_accuracy": 0.4}}])
    panel.refresh(force=True)
    final = panel.final_curves()._repr_mimebundle_()
    png = base64.b64decode(final["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    assert "validation loss 1.5" in final["text/plain"] and "validation accuracy 0.4" in final["text/plain"]
    assert "(batch)" not in final["text/plain"]  # running means within an epoch are no final figures


def test_live_panel_follows_a_background_run_and_stop_stops_it(tdb):
    model = tensorlab.Model(_mlp(), db=tdb)
    handle = tensorlab.train_in_background(model, db=tdb, x=X, y=Y, validation_data=(XV, YV), epochs=300,
                                           batch_size=32, run_name="watched")
    panel = LivePanel(handle)
    assert wait_until(lambda: handle.progress.epoch >= 1 and panel.chart.points_sent > 0
                      and any(line["key"] == "validation accuracy" for line in panel.chart.lines))
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
    assert len(panel.chart.series("validation accuracy")[1]) == 4  # one point per epoch
    assert wait_until(panel.finished.is_set)  # a remote run's end is noticed: the final picture is drawn
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
    assert "hp.lr" in table.columns and sorted(line["label"] for line in panel.chart.lines) == sorted(finals)
    assert all(len(panel.chart.series(line["key"])[0]) == 3 for line in panel.chart.lines)  # 3 epochs each
    assert 'class="tensorlab-best"' in panel.table_html.value
    parallel = panel.chart.parallel  # hyper-parameters against the metric, one line per run (#15)
    assert parallel["axes"] == ["lr", "val_accuracy"] and parallel["best"] == panel.best_run()
    assert {run["label"]: run["values"]["lr"] for run in parallel["runs"]} == {f"lr={lr}": lr for lr in
                                                                               (0.0005, 0.01, 0.002)}
    panel.descending.value = False
    assert panel.table()["run"].tolist()[0] == min(finals, key=finals.get)
    epochs = panel.chart.series(panel.chart.lines[0]["key"])[0]
    panel.x_picker.value = "time"  # the chart starts over on the new axis
    assert panel.chart.x_label == "seconds since the run started"
    assert panel.chart.series(panel.chart.lines[0]["key"])[0] != epochs
    png = panel.to_png(str(tmp_path / "compare.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    panel.run_picker.value = panel.run_picker.value[:1]
    assert len(panel.chart.lines) == 1


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
