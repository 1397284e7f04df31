"""Index documents answer equality exactly as MongoDB does, and their keys never collide across studies."""

from __future__ import annotations

import random

import numpy as np

import tensorlab


def test_runs_match_numbers_by_value_and_arrays_by_element(tdb):
    tdb.run_store.start("int", hyper_parameters={"units": 64, "flag": True}, tags={"x": [1, 2]})
    tdb.run_store.start("float", hyper_parameters={"units": 64.0, "flag": 1}, tags={"x": 2})
    tdb.run_store.start("other", hyper_parameters={"units": 65}, tags={"x": [3]})
    names = lambda query: sorted(tdb.runs(query)["name"]) if len(tdb.runs(query)) else []  # noqa: E731
    assert names({"hyper_parameters.units": 64.0}) == ["float", "int"]
    assert names({"hyper_parameters.units": 64}) == ["float", "int"]
    assert names({"tags.x": 1}) == ["int"]
    assert names({"tags.x": 2}) == ["float", "int"]
    assert names({"hyper_parameters.flag": True}) == ["int"]  # True is not 1
    assert names({"hyper_parameters.flag": 1}) == ["float"]
    assert names({"tags.x": [3]}) == ["other"]  # a whole array: the collection answers
    assert names({"hyper_parameters.units": 64, "tags.x": 1}) == ["int"]


def test_parameters_and_jobs_match_like_mongodb(tdb):
    tdb.save_parameters([np.zeros(2)], tags={"k": [7, 8], "w": 0.5})
    tdb.save_parameters([np.ones(2)], tags={"k": 7.0, "w": 1})
    assert len(tdb.find_all_parameters({"tags.k": 7})) == 2
    assert len(tdb.find_all_parameters({"tags.k": 8.0})) == 1
    assert len(tdb.find_all_parameters({"tags.w": 1.0})) == 1
    tdb.push_job("a", tags={"size": 3})
    tdb.push_job("b", tags={"size": [3.0, 4]})
    assert len(tdb.jobs.find({"tags.size": 3})) == 2


def test_index_answers_equal_the_servers_on_random_runs(tdb):
    rng = random.Random(3)
    values = [0, 1, 1.0, 2, 2.5, True, False, "1", "a", [1, 2], [2.0], ["a", 1], 2 ** 60, float(2 ** 60)]
    for i in range(60):
        tdb.run_store.start(f"r{i}", hyper_parameters={"v": rng.choice(values), "w": rng.choice(values)},
                            tags={"t": rng.choice(values)})
    scalars = [v for v in values if not isinstance(v, list)]
    for field in ("hyper_parameters.v", "hyper_parameters.w", "tags.t"):
        for value in scalars:
            query = {field: value}
            expected = sorted(d["name"] for d in tdb.collection("runs").find({"study": "test", **query}))
            found = tdb.runs(query)
            assert (sorted(found["name"]) if len(found) else []) == expected, query


def test_count_documents_of_two_studies_never_share_a_key(tdb, mongo_uri):
    first = tensorlab.connect(mongo_uri, db=tdb.db_name, study="p")
    second = tensorlab.connect(mongo_uri, db=tdb.db_name, study="p\x1fq")
    try:
        first.import_data(np.zeros((3, 2)), np.zeros(3), tags={"q\x1fk": "v"})
        second.import_data(np.zeros((5, 2)), np.zeros(5), tags={"k": "v"})
        assert first.data_count({"tags.q\x1fk": "v"}) == 3
        assert second.data_count({"tags.k": "v"}) == 5
        colon = tensorlab.connect(mongo_uri, db=tdb.db_name, study="a:b")
        plain = tensorlab.connect(mongo_uri, db=tdb.db_name, study="a")
        colon.run_store.start("x", tags={"k": 1})
        plain.run_store.start("y", tags={"b:k": 1})
        assert colon.runs({"tags.k": 1})["name"].tolist() == ["x"]
        assert plain.runs({"tags.b:k": 1})["name"].tolist() == ["y"] and len(plain.runs({"tags.k": 1})) == 0
        colon.close()
        plain.close()
    finally:
        first.close()
        second.close()
