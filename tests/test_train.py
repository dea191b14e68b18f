"""`train_study`: runs, params, metrics per cohort (and per landmark), Monte-Carlo CV,
artifacts, dataset input, pyfunc with signature, the study-level results report; and the
`radstore train` CLI on the example study (slow)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.train import TrainResult, train_study
from radstore.io.tables import write_table
from radstore.study import StudySpec
from tests.models.mlflow_store import mlflow_settings
from tests.models.synthetic import survival_set

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
MCCV = 3


def _spec() -> StudySpec:
    return StudySpec.model_validate({
        "name": "train_small",
        "endpoint": {"kind": "survival", "time": "os_months", "event": "os_event",
                     "horizons": [12, 24], "landmarks": [6]},
        "features": [{"feature_set": "radiomics_original", "phases": ["arterial"]}],
        "clinical": ["age", "sex"],
        "split": {"train_cohorts": ["h1"], "external_cohorts": ["h3"]},
        "models": [
            {"name": "rad", "kind": "lasso_cox",
             "params": {"n_alphas": 10, "cv_folds": 3, "corr_threshold": 1.0}},
            {"name": "combined", "kind": "cox", "inputs": ["rad", "clinical"],
             "params": {"screen_p": 0.2}}],
    })


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[TrainResult, pd.DataFrame, object]:
    tmp = tmp_path_factory.mktemp("train")
    df, _ = survival_set(n=240, p=6, seed=2)
    ts = tmp / "store" / "training_sets" / "train_small" / "abc123"
    write_table(df, ts / "train.parquet")
    (ts / "manifest.json").write_text('{"hash": "abc123", "feature_versions": {"r": "v1"}}')
    settings = mlflow_settings(tmp / "store")
    before = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        res = train_study(_spec(), ts, settings, n_boot=30, mccv_splits=MCCV)
    # logging a model re-reads it from a local copy: no "Downloading artifacts" bar for that
    assert "Downloading artifacts" not in err.getvalue()
    assert os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR") == before
    return res, df, settings


def test_runs_params_metrics_dataset_and_pyfunc(trained) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    res, df, _ = trained
    client = MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    runs = {n: client.get_run(r) for n, r in res.run_ids.items()}
    assert set(runs) == {"rad", "combined"}
    comb = runs["combined"]
    p = comb.data.params
    assert p["kind"] == "cox" and p["training_set_hash"] == "abc123" and p["n_boot"] == "30"
    assert '"r": "v1"' in p["feature_versions"] and p["param.screen_p"] == "0.2"
    m = comb.data.metrics
    for cohort in ("train", "internal", "external"):
        assert 0.5 < m[f"{cohort}_c_index"] <= 1.0
        assert m[f"{cohort}_c_index_lo"] <= m[f"{cohort}_c_index"] <= m[f"{cohort}_c_index_hi"]
        assert m[f"{cohort}_n"] == (df["split"] == cohort).sum()
        assert {f"{cohort}_uno_c_index", f"{cohort}_hr", f"{cohort}_iauc",
                f"{cohort}_ibs"} <= set(m)
    # dataset input
    inputs = comb.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "train_small-training-set"
    # artifacts: results table in 3 formats, model card with the Cox tables, features, manifest
    arts = {a.path for a in client.list_artifacts(comb.info.run_id)}
    assert {"results", "plots", "model_card.md", "features.txt", "manifest.json"} <= arts
    res_arts = {a.path for a in client.list_artifacts(comb.info.run_id, "results")}
    assert {f"results/study_results.{x}" for x in ("parquet", "md", "html")} <= res_arts
    plots = {a.path for a in client.list_artifacts(comb.info.run_id, "plots")}
    assert {"plots/nomogram.png", "plots/km_external.png", "plots/calibration.png",
            "plots/decision_curve.png"} <= plots
    # pyfunc with a signature scores raw rows like the in-memory model
    model = mlflow.pyfunc.load_model(comb.data.tags["model_uri"])
    names = model.metadata.get_input_schema().input_names()
    assert "clinical__age" in names and "score__rad" not in names
    pred = model.predict(df.head(4)[names])
    assert list(pred.columns) == ["score", "high_risk", "survival_12", "survival_24"]
    assert model.metadata.get_output_schema() is not None
    import radstore.models.pyfunc as mlflow_pyfunc_module

    # logged as a model from code: the code file plus the fitted model as a joblib artifact
    flavor = model.metadata.flavors["python_function"]
    assert flavor["model_code_path"].endswith("pyfunc_model.py")
    assert flavor["artifacts"]["study_model"]["path"].endswith("study_model.joblib")
    assert "python_model" not in flavor  # no cloudpickled wrapper object
    local = Path(mlflow.artifacts.download_artifacts(comb.data.tags["model_uri"]))
    assert (local / "pyfunc_model.py").read_text() == (
        Path(mlflow_pyfunc_module.__file__).with_name("pyfunc_model.py").read_text())


def test_pyfunc_without_loaded_model_says_so() -> None:
    from radstore.models.pyfunc import StudyPyfunc

    with pytest.raises(RuntimeError, match="load_context"):
        StudyPyfunc().predict(None, pd.DataFrame({"a": [1.0]}))


def test_monte_carlo_cv_mean_se_logged(trained) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from radstore.models.evaluate import monte_carlo_cv
    from radstore.stats.survival import mean_se

    res, df, settings = trained
    m = MlflowClient(tracking_uri=mlflow.get_tracking_uri()).get_run(res.run_ids["rad"]).data.metrics
    cv = monte_carlo_cv(_spec(), df, "rad", n_splits=MCCV, seed=settings.seed)
    assert len(cv) == MCCV and cv["metric"].between(0, 1).all()
    mean, se = mean_se(cv["metric"].to_numpy())
    assert m["cv_c_index"] == pytest.approx(mean) and m["cv_c_index_se"] == pytest.approx(se)
    assert se == pytest.approx(np.std(cv["metric"], ddof=1) / np.sqrt(MCCV))


def test_landmark_metrics_per_visit(trained) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from radstore.stats.survival import harrell_c

    res, df, _ = trained
    m = MlflowClient(tracking_uri=mlflow.get_tracking_uri()).get_run(
        res.run_ids["rad"]).data.metrics
    ext = df[(df["split"] == "external") & (df["os_months"] > 6)]
    assert m["external_lm6_n"] == len(ext) < (df["split"] == "external").sum()
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(
        MlflowClient().get_run(res.run_ids["rad"]).data.tags["model_uri"])
    score = model.predict(ext[model.metadata.get_input_schema().input_names()])["score"]
    # C is invariant to the time shift, but only patients at risk at the landmark remain
    assert m["external_lm6_c_index"] == pytest.approx(
        harrell_c(ext["os_months"] - 6, ext["os_event"], score.to_numpy()), abs=1e-12)
    assert "external_lm6" in set(res.results["cohort"])


def test_study_results_report(trained) -> None:
    from radstore.io.tables import read_table

    res, _, settings = trained
    d = settings.layout.reports / "train_small"
    assert res.report_dir == d
    tab = read_table(d / "results.parquet")
    tab = tab.to_pandas() if hasattr(tab, "to_pandas") else tab
    assert len(tab) == len(res.results) == 2 * 6  # 2 models × (3 cohorts + 3 landmark cohorts)
    assert set(tab["model"]) == {"rad", "combined"}
    md = (d / "results.md").read_text()
    assert "C-index (95% CI)" in md and "| combined" in md
    assert "<table" in (d / "results.html").read_text()


@pytest.mark.slow
def test_cli_train_example_study_prints_table(tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from pipelines.cli import app

    df, _ = survival_set(n=300, p=12, seed=2)
    ts = tmp_path / "store" / "training_sets" / "example_models" / "abc123"
    write_table(df, ts / "train.parquet")
    (ts / "manifest.json").write_text('{"hash": "abc123"}')
    mlflow_settings(tmp_path / "store")
    r = CliRunner().invoke(app, ["--store", str(tmp_path / "store"), "train",
                                 str(REPO / "studies" / "example_models.yaml"), "--n-boot", "30"])
    assert r.exit_code == 0, r.output
    assert "example_models: results" in r.output and "combined" in r.output
    assert (tmp_path / "store" / "reports" / "example_models" / "results.md").is_file()
    client = MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    exp = client.get_experiment_by_name("example_models")
    runs = {x.data.tags["model"]: x for x in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"rad_score", "clinic", "combined"}
    comb = runs["combined"]
    for cohort in ("train", "internal", "external"):
        assert 0.5 < comb.data.metrics[f"{cohort}_c_index"] <= 1.0
    card = Path(client.download_artifacts(comb.info.run_id, "model_card.md", str(tmp_path))).read_text()
    assert "Proportional hazards" in card and "Multivariable Cox" in card
