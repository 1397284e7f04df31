"""Every read path of the stress study against the model of what was acknowledged (model.py)."""

from __future__ import annotations

from typing import Any

from .model import LABELS, QUIET_COLLECTIONS, Acknowledged


def _key_query(owner: str, inc: str, k: int) -> dict[str, Any]:
    return {"tags.owner": owner, "tags.inc": inc, "tags.k": k}


def _found(db: Any, query: dict[str, Any]) -> int:
    """How many samples find_data returns (0 when it says none match)."""
    from tensorlab import NotFound

    try:
        X, y = db.find_data(query)
    except NotFound:
        return 0
    assert len(X) == len(y)
    return len(X)


def _exact(db: Any, query: dict[str, Any], expected: int | None = None) -> int:
    """data_count, find_data and the count documents agree (and equal `expected` when given)."""
    counted = db.data_count(query)
    assert _found(db, query) == counted, query
    assert db.data.count_from_documents(query) in (None, counted), query
    if expected is not None:
        assert counted == expected, (query, counted, expected)
    return counted


def check_against_model(db: Any, model: Acknowledged, wait_for_quiet: Any) -> None:
    assert wait_for_quiet(db, QUIET_COLLECTIONS)
    total = 0
    for (owner, inc, k), state in model.imports.items():
        query = _key_query(owner, inc, k)
        if state.uncertain:
            counted = _exact(db, query)
            assert counted <= state.size
        else:
            counted = _exact(db, query, state.count())
            for label in range(LABELS):
                _exact(db, {**query, "label": label}, state.count(label))
            _exact(db, {**query, "tags.flag": "x"}, state.flagged())
        total += counted
    _exact(db, {}, total)
    committed = [m["_id"] for m in db.collection("sample_imports").find({"study": "stress", "committed": True})]
    visible = db.collection("samples").count_documents({"study": "stress", "import_id": {"$in": committed}})
    assert visible == total  # the per-sample index of committed imports holds exactly what is visible
    for label in range(LABELS):
        _exact(db, {"label": label})
    _exact(db, {"tags.flag": "x"})
    for key, saved in model.saves.items():
        versions = db.find_all_parameters(_key_query(*key))
        assert saved <= len(versions) <= saved + (key in model.unsure_saves), key
        assert all(arrays[0].shape == (32, 32) for arrays in versions)
    for (owner, inc), rows in model.log_rows.items():
        frame = db.logs(run=f"{owner}-{inc}")
        steps = frame["step"].tolist() if len(frame) else []
        assert len(set(steps)) == len(steps), "a log row was stored twice"
        assert steps[:rows] == list(range(rows)), (owner, inc)
        assert len(steps) <= rows + model.unsure_rows.get((owner, inc), 0)
