"""Scoring service: loads the champion from the registry and scores a raw row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from pipelines.promote import promote
from pipelines.train import tracking_uri, train_study
from radstore.io.tables import write_table
from radstore.study import StudySpec
from services.scoring.app import create_app, load_champion
from tests.models.mlflow_store import mlflow_settings
from tests.models.synthetic import binary_set

pytestmark = pytest.mark.integration


def test_champion_scores_a_row(tmp_path: Path) -> None:
    df = binary_set(n=160, p=10, seed=3, signal=2.0)
    d = tmp_path / "ts"
    write_table(df, d / "train.parquet")
    spec = StudySpec.model_validate({
        "name": "svc", "endpoint": {"kind": "binary", "label": "response"},
        "features": [{"feature_set": "radiomics_original", "phases": ["arterial"]}],
        "clinical": ["age", "sex"],
        "split": {"train_cohorts": ["h1"], "external_cohorts": ["h3"]},
        "models": [{"name": "lr", "kind": "lasso_logistic", "inputs": ["features", "clinical"],
                    "params": {"C": [0.1, 1.0], "cv_folds": 3}}],
        "gates": [{"metric": "auc", "cohort": "external", "min": 0.6}], "champion_model": "lr"})
    settings = mlflow_settings(tmp_path / "store")
    train_study(spec, d, settings, n_boot=20, plots=False)
    assert promote(spec, settings).promoted
    model = load_champion("svc", "lr", tracking_uri(settings))
    client = TestClient(create_app(model))
    assert client.get("/health").json()["status"] == "ok"
    row = df.iloc[[0]].drop(columns=["response"])
    row["resnet50__arterial__embedding"] = row["resnet50__arterial__embedding"].map(
        lambda v: [float(a) for a in v])
    r = client.post("/score", json={"rows": row.to_dict(orient="records")})
    assert r.status_code == 200, r.text
    p = r.json()["predictions"][0]
    expected = model.predict(df.iloc[[0]][model.metadata.get_input_schema().input_names()])
    assert 0.0 <= p["score"] <= 1.0 and np.isclose(p["score"], expected["score"].iloc[0])
    bad = client.post("/score", json={"rows": [{"clinical__age": 50}]})
    assert bad.status_code == 422 and "missing feature columns" in bad.json()["detail"]
