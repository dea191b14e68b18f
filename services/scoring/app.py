"""FastAPI scoring app.

``POST /score`` scores raw feature rows (the training-set columns); ``POST /score/patients``
reads the model's features for the given patients from the online store and scores them: by
default the packed online table ``<store>/feast/online_vectors.db``
(:func:`packed_online_reader`, one primary-key read per patient), or Feast's
``get_online_features`` (:func:`feast_online_reader`). The model is
``models:/<study>-<model>@champion`` loaded once from the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

OnlineReader = Callable[[list[str], list[str]], pd.DataFrame]


class RowsRequest(BaseModel):
    rows: list[dict[str, Any]]


class PatientsRequest(BaseModel):
    patient_ids: list[str]


def load_champion(study: str, model: str, tracking_uri: str | None = None):
    """The registered ``<study>-<model>`` version with alias ``champion`` as a pyfunc model."""
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    return mlflow.pyfunc.load_model(f"models:/{study}-{model}@champion")


def feast_online_reader(repo_path: str) -> OnlineReader:
    """Adapter: columns ``<view>__<feature>`` ↔ Feast refs ``<view>:<feature>`` (the view name
    ``<feature_set>__<phase>`` or ``clinical``), entity ``patient_id``."""

    def read(patient_ids: list[str], columns: list[str]) -> pd.DataFrame:
        from feast import FeatureStore

        refs = {c: ":".join(c.rsplit("__", 1)) for c in columns}
        store = FeatureStore(repo_path=repo_path)
        got = store.get_online_features(features=list(refs.values()),
                                        entity_rows=[{"patient_id": p} for p in patient_ids]
                                        ).to_df()
        out = pd.DataFrame({"patient_id": patient_ids})
        for col, ref in refs.items():
            name = ref.split(":", 1)[1]
            src = ref.replace(":", "__") if ref.replace(":", "__") in got.columns else name
            out[col] = got[src].to_numpy()
        return out

    return read


def packed_online_reader(path: Path | str) -> OnlineReader:
    """Adapter over :class:`radstore.store.online.PackedOnlineVectors` at ``path``: the views are
    the ``<view>`` parts of the requested ``<view>__<feature>`` columns (one reader per view
    set, kept); unknown patients get ``None``; a column the table lacks raises KeyError."""
    from radstore.store.online import PackedOnlineVectors

    readers: dict[tuple[str, ...], PackedOnlineVectors] = {}

    def read(patient_ids: list[str], columns: list[str]) -> pd.DataFrame:
        views = tuple(sorted({c.rsplit("__", 1)[0] for c in columns}))
        reader = readers.get(views)
        if reader is None:
            reader = readers[views] = PackedOnlineVectors(path, views)
            missing = sorted(set(columns) - set(reader.names))
            if missing:
                del readers[views]
                raise KeyError(f"columns {missing[:10]} are not in the packed online table {path}")
        got = [reader(p) for p in patient_ids]
        return pd.DataFrame({"patient_id": patient_ids, **{c: [g[c] for g in got] for c in columns}})

    return read


def create_app(model: Any, columns: list[str] | None = None,
               online: OnlineReader | None = None) -> FastAPI:
    """App around a loaded pyfunc ``model``; ``columns`` are its raw inputs (from the signature
    when omitted); ``online`` reads feature rows for patient ids (:func:`packed_online_reader`
    or :func:`feast_online_reader`); features it cannot serve answer 503."""
    if columns is None:
        columns = model.metadata.get_input_schema().input_names()
    app = FastAPI(title="radstore scoring")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "inputs": len(columns)}

    def _score(frame: pd.DataFrame) -> list[dict[str, Any]]:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise HTTPException(422, f"missing feature columns: {missing[:10]}")
        pred = model.predict(frame[columns])
        return pred.to_dict(orient="records")

    @app.post("/score")
    def score(req: RowsRequest) -> dict[str, Any]:
        return {"predictions": _score(pd.DataFrame(req.rows))}

    @app.post("/score/patients")
    def score_patients(req: PatientsRequest) -> dict[str, Any]:
        if online is None:
            raise HTTPException(503, "no online feature store configured")
        try:
            frame = online(req.patient_ids, columns)
        except KeyError as exc:
            raise HTTPException(503, f"online features unavailable: {exc}") from exc
        preds = _score(frame)
        return {"predictions": [{"patient_id": p, **r}
                                for p, r in zip(req.patient_ids, preds, strict=True)]}

    return app
