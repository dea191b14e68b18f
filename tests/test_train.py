"""`radstore train` on the example study: runs, metrics per cohort, artifacts, pyfunc model."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from radstore.io.tables import write_table
from tests.models.synthetic import survival_set

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[1]


def test_train_example_study_logs_runs(tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    df, _ = survival_set(n=300, p=12, seed=2)
    ts = tmp_path / "store" / "training_sets" / "example_models" / "abc123"
    write_table(df, ts / "train.parquet")
    (ts / "manifest.json").write_text('{"hash": "abc123"}')
    r = CliRunner().invoke(app, ["--store", str(tmp_path / "store"), "train",
                                 str(REPO / "studies" / "example_models.yaml"), "--n-boot", "30"])
    assert r.exit_code == 0, r.output
    client = MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    exp = client.get_experiment_by_name("example_models")
    runs = {x.data.tags["model"]: x for x in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"rad_score", "clinic", "combined"}
    comb = runs["combined"]
    for cohort in ("train", "internal", "external"):
        assert 0.5 < comb.data.metrics[f"{cohort}_c_index"] <= 1.0
    arts = {a.path for a in client.list_artifacts(comb.info.run_id, "plots")}
    assert {"plots/nomogram.png", "plots/km_external.png", "plots/calibration.png"} <= arts
    card = Path(client.download_artifacts(comb.info.run_id, "model_card.md", str(tmp_path))).read_text()
    assert "Proportional hazards" in card and "Multivariable Cox" in card
    model = mlflow.pyfunc.load_model(comb.data.tags["model_uri"])
    pred = model.predict(df.head(3)[model.metadata.get_input_schema().input_names()])
    assert list(pred.columns[:2]) == ["score", "high_risk"] and "survival_24" in pred.columns
