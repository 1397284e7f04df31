"""Column reads of a run's history: ranges, metric subsets and downsampled reads equal a full read, sliced."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tensorlab
from tensorlab.tensordb.logs.log_frames import FRAME_COLUMNS, downsample


def _log_history(db, run, steps, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for step in steps:
        metrics = {"loss": float(rng.normal()), "acc": float(rng.random())}
        if step % 7 == 0:
            del metrics["acc"]  # rows that lack a metric
        if step % 97 == 0:
            metrics["loss"] = float("nan")
        db.train_log(run=run, step=int(step), epoch=int(step) // 500, **metrics)
        if step % 100 == 0:
            db.valid_log(run=run, step=int(step), val_loss=float(rng.random()))


def _expected(full: pd.DataFrame, rows: pd.Series | slice, metrics: list[str] | None) -> pd.DataFrame:
    """What a read limited to `rows` and `metrics` must return: the full read's rows, those metric columns (each
    only if some chosen row has it) and `non_finite` naming only those metrics."""
    part = full[rows].reset_index(drop=True)
    names = [c for c in part.columns if c not in (*FRAME_COLUMNS, "batch", "non_finite")]
    logged = {name for found in part["non_finite"] for name in found}  # logged as NaN/inf, not absent
    chosen = [name for name in names if (metrics is None or name in metrics)
              and (part[name].notna().any() or name in logged)]
    flagged = part["non_finite"].map(lambda found: [name for name in found if name in chosen])
    return part[[*FRAME_COLUMNS, *(["batch"] if "batch" in part else []), *chosen]].assign(non_finite=flagged)


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal rows and values; the same columns (metric columns in whatever order they were first met)."""
    assert sorted(got.columns) == sorted(expected.columns)
    columns = sorted(got.columns)
    pd.testing.assert_frame_equal(got[columns].reset_index(drop=True), expected[columns].reset_index(drop=True),
                                  check_dtype=False)


@pytest.fixture
def history(tdb, mongo_uri):
    run = tdb.run_store.start("long")
    _log_history(tdb, run, range(2300), seed=1)  # five buckets of 500 rows, and a partial one
    other = tensorlab.connect(mongo_uri, db=tdb.db_name, study="test")
    _log_history(other, run, range(5000, 5600), seed=2)  # a second writer of the same run
    assert other.flush_logs(timeout_s=30)
    other.close()
    assert tdb.flush_logs(timeout_s=30)
    return run


@pytest.mark.parametrize(("since", "until"), [(None, None), (500, 1499), (0, 0), (2250, None), (None, 120),
                                              (1000, 5100), (9000, None)])
@pytest.mark.parametrize("metrics", [None, ["loss"], ["acc", "val_loss"]])
def test_a_range_and_metric_read_equals_the_full_read_sliced(tdb, history, since, until, metrics):
    full = tdb.logs(run=history)
    rows = (full["step"] >= (since if since is not None else -1)) & (full["step"] <= (until if until is not None
                                                                                      else 10 ** 9))
    got = tdb.logs(run=history, since=since, until=until, metrics=metrics)
    if not rows.any():
        assert len(got) == 0
        return
    _assert_same(got, _expected(full, rows, metrics))


def test_a_range_read_fetches_only_the_buckets_that_hold_it(tdb, history):
    fetched = []
    buckets = tdb.collection("log_buckets")
    original = type(buckets).find_one

    def counting(self, *args, **kwargs):
        if self.name == "log_buckets":
            fetched.append(args[0]["_id"])
        return original(self, *args, **kwargs)

    type(buckets).find_one = counting
    try:
        tdb.logs(run=history, since=1000, until=1100, kind="train")
    finally:
        type(buckets).find_one = original
    assert len(fetched) == 1  # steps 1000-1100 live in the third bucket of the first writer only


def test_buckets_without_recorded_ranges_and_steps_out_of_order_read_exactly(tdb):
    run = tdb.run_store.start("shuffled")
    steps = np.random.default_rng(3).permutation(1200)  # logged out of order
    _log_history(tdb, run, steps, seed=4)
    assert tdb.flush_logs(timeout_s=30)
    full = tdb.logs(run=run)
    rows = (full["step"] >= 300) & (full["step"] <= 450)
    _assert_same(tdb.logs(run=run, since=300, until=450), _expected(full, rows, None))
    tdb.collection("log_index").update_many({}, {"$unset": {f"streams.{k}.ranges": "" for k in
                                                            tdb.collection("log_index").find_one()["streams"]}})
    _assert_same(tdb.logs(run=run, since=300, until=450), _expected(full, rows, None))  # an older index: all read


def test_a_downsampled_read_keeps_each_bins_extremes_and_equals_downsampling_the_full_read(tdb, history):
    full = tdb.logs(run=history, kind="train").sort_values("step", kind="stable").reset_index(drop=True)
    got = tdb.logs(run=history, kind="train", max_points=200)
    assert len(got) <= 200 * 2 + 2 < len(full)
    expected = downsample(tdb.logs(run=history, kind="train"), ["loss", "acc"], 200)
    _assert_same(got, expected)
    for name in ("loss", "acc"):
        assert got[name].min() == full[name].min() and got[name].max() == full[name].max()
    assert got["step"].min() == full["step"].min() and got["step"].max() == full["step"].max()
    merged = got.merge(full, on=["step", "kind"], suffixes=("", "_full"))
    assert len(merged) == len(got)  # every kept row is a real row
    assert np.allclose(merged["loss"], merged["loss_full"], equal_nan=True)


def test_bad_read_arguments_are_refused(tdb, history):
    for kwargs in ({"metrics": 5}, {"metrics": [""]}, {"since": 1.5}, {"until": "x"}, {"max_points": 2}):
        with pytest.raises(tensorlab.InvalidInput):
            tdb.logs(run=history, **kwargs)
