"""Writers SIGKILLed at random while others write: every read equals what was acknowledged (stress/model.py).

Bounded here (a few minutes); `benchmarks/bench_stress.py` runs the same driver for longer.
"""

from __future__ import annotations

from polling import wait_for_quiet
from stress.checks import check_against_model
from stress.model import run_stress

import tensorlab


def test_random_kills_of_concurrent_writers_lose_and_miscount_nothing(mongo_uri, db_name):
    db = tensorlab.connect(mongo_uri, db=db_name, study="stress")
    try:
        report = run_stress(mongo_uri, db_name, writers=3, rounds=6, operations=6, seed=26,
                            check=lambda model: check_against_model(db, model, wait_for_quiet))
        print(f"stress: {report}")
        assert report["kills"] == 6 and report["operations"] >= 30
    finally:
        db.client.drop_database(db_name)
        db.close()
