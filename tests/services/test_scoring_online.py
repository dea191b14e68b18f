"""Scoring service over the packed online table: ``POST /score/patients`` reads each patient's
features with one primary-key lookup and scores them (a linear stand-in model; the MLflow
champion path is in test_scoring.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from fastapi.testclient import TestClient

from radstore.store.online import PACKED_FILE, write_packed_view
from services.scoring.app import create_app, packed_online_reader

T0 = datetime(2021, 3, 1, tzinfo=UTC)
COLUMNS = ["rad__venous__glcm", "deep__venous__embedding", "clinical__age"]


class LinearModel:
    """score = glcm + 10·embedding[1] + 100·age (per row)."""

    def __init__(self) -> None:
        self.frames: list[pd.DataFrame] = []

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.frames.append(frame)
        emb = np.stack(frame["deep__venous__embedding"].to_numpy())
        score = frame["rad__venous__glcm"] + 10 * emb[:, 1] + 100 * frame["clinical__age"]
        return pd.DataFrame({"score": score})


def packed_store(tmp_path: Path) -> Path:
    db = tmp_path / "feast" / PACKED_FILE
    ts = pa.array([T0] * 2, pa.timestamp("us", tz="UTC"))
    base = {"patient_id": ["P1", "P2"], "event_timestamp": ts}
    write_packed_view(db, "rad__venous", pa.table({**base, "glcm": [0.5, 1.5], "other": [9.0, 9.0]}),
                      ["glcm", "other"])
    write_packed_view(db, "deep__venous", pa.table({**base, "embedding": pa.array(
        [[0.0, 1.0, 2.0], [0.0, 3.0, 4.0]], pa.list_(pa.float32()))}), ["embedding"])
    write_packed_view(db, "clinical", pa.table({**base, "age": [60, 70]}), ["age"])
    return db


def test_score_patients_from_packed_table(tmp_path: Path) -> None:
    model = LinearModel()
    read = packed_online_reader(packed_store(tmp_path))
    client = TestClient(create_app(model, columns=COLUMNS, online=read))
    r = client.post("/score/patients", json={"patient_ids": ["P2", "P1"]})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [{"patient_id": "P2", "score": 1.5 + 30 + 7000},
                                       {"patient_id": "P1", "score": 0.5 + 10 + 6000}]
    frame = model.frames[-1]
    assert list(frame.columns) == COLUMNS and frame["deep__venous__embedding"].iloc[0].dtype == np.float32


def test_packed_reader_unknown_patient_and_missing_columns(tmp_path: Path) -> None:
    db = packed_store(tmp_path)
    read = packed_online_reader(db)
    frame = read(["P1", "P_unknown"], COLUMNS)
    assert frame.loc[1, COLUMNS].isna().all() and frame.loc[0, "clinical__age"] == 60
    client = TestClient(create_app(LinearModel(), columns=[*COLUMNS, "rad__venous__absent"],
                                   online=packed_online_reader(db)))
    r = client.post("/score/patients", json={"patient_ids": ["P1"]})
    assert r.status_code == 503 and "rad__venous__absent" in r.json()["detail"]
    no_view = TestClient(create_app(LinearModel(), columns=["rad__arterial__glcm"], online=read))
    r = no_view.post("/score/patients", json={"patient_ids": ["P1"]})
    assert r.status_code == 503 and "rad__arterial" in r.json()["detail"]
