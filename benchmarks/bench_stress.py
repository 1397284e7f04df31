"""The model-based stress test, run for longer than CI does: writers importing, deleting, retagging, saving and
logging into one study, one SIGKILLed at random every round, every read checked against what was acknowledged
after every kill (tests/stress/). Prints operations and kills survived and writes benchmarks/results/stress.json.

    python benchmarks/bench_stress.py --rounds 60 --writers 4
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from save_results import write_results  # benchmarks/ is on sys.path when run as a script

import tensorlab
from tensorlab.tensordb.server.connection import resolve_uri

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from polling import wait_for_quiet  # noqa: E402
from stress.checks import check_against_model  # noqa: E402
from stress.model import run_stress  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--operations", type=int, default=8, help="operations each writer is asked for per round")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    db_name = f"tensorlab_bench_stress_{uuid.uuid4().hex[:8]}"
    uri = resolve_uri(None)  # $TENSORLAB_MONGODB_URI or the managed local server (started on demand)
    db = tensorlab.connect(uri, db=db_name, study="stress")
    checks = {"rounds_checked": 0}

    def check(model) -> None:
        check_against_model(db, model, wait_for_quiet)
        checks["rounds_checked"] += 1

    try:
        report = run_stress(uri, db_name, writers=args.writers, rounds=args.rounds, operations=args.operations,
                            seed=args.seed, check=check)
    finally:
        db.client.drop_database(db_name)
        db.close()
    report.update(checks, writers=args.writers, seed=args.seed)
    print(f"{'measure':<44} {'value':>10}")
    for key in ("operations", "kills", "rounds_checked", "imports", "uncertain_imports", "seconds"):
        print(f"{key.replace('_', ' '):<44} {report[key]:>10}")
    print("every check after every kill passed: nothing lost, nothing miscounted")
    write_results("stress", report)


if __name__ == "__main__":
    main()
