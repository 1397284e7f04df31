"""System metrics (#18): each run records its machine's load with its heartbeat, and the live panel shows it."""

from __future__ import annotations

import pytest
from polling import wait_until
from tensorlab.widgets import LivePanel

import tensorlab
from tensorlab.datasets import load_digits

keras = pytest.importorskip("keras")


def test_a_run_records_cpu_and_memory_and_the_panel_shows_them(tdb):
    (x, y), _ = load_digits()
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")], name="loaded")
    model.compile("adam", "sparse_categorical_crossentropy")
    handle = tensorlab.train_in_background(tensorlab.Model(model, db=tdb), db=tdb, x=x, y=y, epochs=3,
                                           batch_size=64, run_name="loaded")
    panel = LivePanel(handle)
    assert handle.wait(120) and handle.status == "finished"
    system = tdb.run_store.resolve("loaded").get("system") or {}
    assert system["rss_bytes"] > 10_000_000 and system["cpu_percent"] >= 0 and system["cpu_count"] >= 1
    assert wait_until(lambda: "RSS" in panel.stats.value and "CPU" in panel.stats.value)
    panel.close()
