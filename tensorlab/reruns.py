"""`db.rerun(run)` / `tensorlab rerun RUN`: train a run again, as it was trained, on the data it saw; in this
process, or as a job for a worker (`push_rerun`, `tensorlab rerun RUN --job`, the lab run tab's Rerun button).

What a rerun takes from the run: its stored architecture (rebuilt under the recorded seed, as the original was
built under it by `%%tdb_train` and by workers), its hyper-parameters, epochs and batch size, the seed, and its
data snapshot (the imports and counts each query resolved to, so data imported later under the same tags is not
used). Refused, before anything is stored, when the run lacks one of them, with the reason: a run trained on
arrays held in memory (TensorLab has no copy), one with no stored architecture, one from before provenance.
A model built outside TensorLab's seeding (your own `keras.Sequential(...)` passed to `Model.fit`) got its
initial weights before the seed was set: its rerun starts from the seed's initialisation, not the original's.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidInput
from .tensordb.data.snapshot import pinned_query
from .tensordb.documents.query_text import query_from_text

FIT_KEYS = ("epochs", "batch_size")


def rerun_plan(doc: dict[str, Any]) -> dict[str, Any]:
    """What `rerun` will train, from the run document; InvalidInput naming what is missing."""
    name, provenance = doc.get("name"), doc.get("provenance") or {}
    if provenance.get("seed") is None:
        raise InvalidInput(f"Run {name!r} recorded no seed (it was trained before TensorLab recorded provenance, "
                           "or by a DBLogger in your own fit); it cannot be rerun exactly.")
    data = provenance.get("data") or {}
    train = data.get("data") or data.get("x")
    if train is None:
        raise InvalidInput(f"Run {name!r} trained on arrays held in memory; TensorLab stores no copy of them, so it "
                           "cannot rerun it. Import them (db.import_data) and train with data={...} to make runs "
                           "that can be rerun.")
    if doc.get("architecture") is None:
        raise InvalidInput(f"Run {name!r} has no stored architecture (its model could not be serialised); it "
                           "cannot be rebuilt for a rerun.")
    hyper = dict(doc.get("hyper_parameters") or {})
    fit = {key: hyper.pop(key) for key in FIT_KEYS if hyper.get(key) is not None}
    validation = data.get("validation")
    return {"architecture": doc["architecture"], "seed": int(provenance["seed"]), "hyper_parameters": hyper,
            "data": pinned_query(query_from_text(train["query"]), train),
            "validation_data": pinned_query(query_from_text(validation["query"]), validation) if validation else None,
            "epochs": int(fit.get("epochs", 1)), "batch_size": fit.get("batch_size")}


def rerun(db: Any, run: Any, name: str | None = None) -> dict[str, Any]:
    """Train `run` (id or name) again in this process; returns the new run's document (`rerun_of` names the
    original)."""
    import keras

    from .model import Model

    doc = db.run_store.resolve(run)
    plan = rerun_plan(doc)
    keras.utils.set_random_seed(plan["seed"])  # the model is rebuilt under the seed, as the original was built
    model = Model.from_db(db, {"_id": plan["architecture"]}, params=None)
    if not getattr(model.keras_model, "compiled", False):
        raise InvalidInput(f"The architecture of run {doc.get('name')!r} was stored without its compile settings; "
                           "compile the rebuilt model yourself and call Model.fit(seed=...) with the run's data.")
    model.fit(db=db, data=plan["data"], validation_data=plan["validation_data"], epochs=plan["epochs"],
              batch_size=plan["batch_size"], seed=plan["seed"], hyper_parameters=plan["hyper_parameters"] or None,
              run_name=name or f"{doc.get('name')}-rerun", run_details={"rerun_of": doc["_id"]})
    return db.run_store.resolve(model.last_run.run_id)


def push_rerun(db: Any, run: Any, *, priority: int = 0, queue: str = "default") -> Any:
    """Queue `run` (id or name) to be trained again by a worker; returns the job's id. The job pins what `rerun`
    pins (architecture, hyper-parameters, seed, epochs, batch size, the data snapshot), and its run records
    `rerun_of`. Refused, before anything is stored, for the same reasons as `rerun`."""
    doc = db.run_store.resolve(run)
    plan = rerun_plan(doc)
    return db.push_job(plan["architecture"], data=plan["data"], validation_data=plan["validation_data"],
                       epochs=plan["epochs"], batch_size=int(plan["batch_size"] or 32),
                       hyper_parameters=plan["hyper_parameters"] or None, seed=plan["seed"], rerun_of=doc["_id"],
                       tags={"rerun_of": doc.get("name") or str(doc["_id"])}, priority=priority, queue=queue)
