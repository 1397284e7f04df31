"""Training from a query streams: 1 GiB of float32 samples trains with bounded memory (#13).

`Model.fit(data=query)` used to load the whole result with `find_data`. The trainer runs in its own
process so its peak RSS (VmHWM, reset before the fit) is measured apart from the importer's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("keras")

FEATURES = 16_384  # 64 KiB a sample
PARTS, PART_SAMPLES = 8, 2_048  # 8 x 128 MiB = 1 GiB
BATCH = 256
TRAINER = r"""
import json, sys
import keras
import tensorlab

uri, db_name, features, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

db = tensorlab.connect(uri, db=db_name, study="test")
model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(2, activation="softmax")], name="big")
model.compile("adam", "sparse_categorical_crossentropy")
wrapped = tensorlab.Model(model, db=db)
wrapped.fit(data={"tags.part": "warm"}, batch_size=batch, epochs=1, checkpoint=None)  # first trace, warm caches
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # resets VmHWM: the peak from here on
before = status("VmRSS")
history = wrapped.fit(data={"tags.split": "train"}, batch_size=batch, epochs=1, checkpoint=None)
print(json.dumps({"before": before, "peak": status("VmHWM"), "steps": wrapped.last_run.progress["step"],
                  "loss": history.history["loss"][-1]}))
"""


def test_one_epoch_over_a_gibibyte_query_grows_the_trainer_by_less_than_300_mb(tdb, mongo_uri):
    rng = np.random.default_rng(0)
    for _ in range(PARTS):
        X = rng.standard_normal((PART_SAMPLES, FEATURES), dtype=np.float32)
        tdb.import_data(X, (X[:, 0] > 0).astype("int64"), {"split": "train"})
        del X
    warm = rng.standard_normal((BATCH * 2, FEATURES), dtype=np.float32)
    tdb.import_data(warm, (warm[:, 0] > 0).astype("int64"), {"part": "warm"})
    assert tdb.data_count({"tags.split": "train"}) * FEATURES * 4 == 1 << 30
    out = subprocess.run([sys.executable, "-c", TRAINER, mongo_uri, tdb.db_name, str(FEATURES), str(BATCH)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    growth_mb = (report["peak"] - report["before"]) / 1e6
    print(f"trainer RSS before {report['before'] / 1e6:.0f} MB, peak {report['peak'] / 1e6:.0f} MB, "
          f"growth {growth_mb:.0f} MB over a 1,074 MB epoch")
    assert report["steps"] == PARTS * PART_SAMPLES // BATCH  # the whole GiB went through, at the caller's batch size
    assert growth_mb < 300
