"""Promotion through gates on a real MLflow (SQLite in a tmp store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.promote import promote
from pipelines.train import train_study
from radstore.io.tables import write_table
from radstore.study import StudySpec
from tests.models.mlflow_store import mlflow_settings
from tests.models.synthetic import survival_set

pytestmark = pytest.mark.integration


def _spec(beta_gate: float) -> StudySpec:
    return StudySpec.model_validate({
        "name": "gate_study",
        "endpoint": {"kind": "survival", "time": "os_months", "event": "os_event",
                     "horizons": [12, 24]},
        "features": [{"feature_set": "radiomics_original", "phases": ["arterial"]}],
        "split": {"train_cohorts": ["h1"], "external_cohorts": ["h3"]},
        "models": [{"name": "rad", "kind": "lasso_cox",
                    "params": {"n_alphas": 8, "cv_folds": 3, "corr_threshold": 1.0}}],
        "gates": [{"metric": "c_index", "cohort": "external", "min": beta_gate, "vs_champion": True}],
        "champion_model": "rad",
    })


def _training_set(root: Path, name: str, beta: float, seed: int, only_f000: bool = False) -> Path:
    df, _ = survival_set(n=200, p=6, seed=seed, beta=beta)
    if only_f000:  # break the outcome link of f001, f002: the model can only learn f000
        rng = np.random.default_rng(seed)
        for c in ("radiomics_original__arterial__f001", "radiomics_original__arterial__f002"):
            df[c] = rng.permutation(df[c].to_numpy())
    d = root / name
    write_table(df, d / "train.parquet")
    (d / "manifest.json").write_text(f'{{"hash": "{name}"}}')
    return d


def test_gates_refuse_worse_and_promote_better(tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    settings = mlflow_settings(tmp_path / "store")
    spec = _spec(0.55)
    partial = _training_set(tmp_path, "partial", beta=1.0, seed=1, only_f000=True)
    strong = _training_set(tmp_path, "strong", beta=1.0, seed=1)
    weak = _training_set(tmp_path, "weak", beta=0.0, seed=2)

    train_study(spec, partial, settings, n_boot=20, plots=False)
    first = promote(spec, settings)
    assert first.promoted and first.alias == "champion", first.gates
    assert first.gates.loc[0, "champion"] == "none"

    # a model without signal: external C ≈ 0.5 < 0.55 gate and < champion → challenger
    train_study(spec, weak, settings, n_boot=20, plots=False)
    second = promote(spec, settings)
    assert not second.promoted and second.alias == "challenger"
    assert "external_c_index" in second.reason and "needs" in second.reason
    client = MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    assert str(client.get_model_version_by_alias("gate_study-rad", "champion").version) == first.version

    # trained where all three signal features are learnable: better than the champion
    # re-evaluated on the same (strong) data, so it passes and the alias moves
    train_study(spec, strong, settings, n_boot=20, plots=False)
    third = promote(spec, settings)
    assert third.gates.loc[0, "champion"] not in ("", "none")
    assert third.promoted, third.gates
    assert str(client.get_model_version_by_alias("gate_study-rad", "champion").version) == third.version
    assert third.version != first.version
