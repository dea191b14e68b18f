"""ICC filter inside a model: a feature that a second reader cannot reproduce is dropped before
the LASSO-Cox fit (and reader-2 columns are never model inputs)."""

from __future__ import annotations

import numpy as np

from radstore.models.study_model import fit_study
from radstore.stats.reliability import icc
from radstore.study import StudySpec
from tests.models.synthetic import survival_set

R1, R2 = "radiomics_original__arterial", "radiomics_reader2__arterial"


def test_poorly_reproducible_feature_is_dropped() -> None:
    df, _ = survival_set(n=300, p=6, seed=4, beta=1.5,
                         splits={"train": 300, "internal": 0, "external": 0})
    rng = np.random.default_rng(0)
    for j in range(6):
        noise = 3.0 if j == 0 else 0.05  # f000 (the strongest predictor) is not reproducible
        df[f"{R2}__f{j:03d}"] = df[f"{R1}__f{j:03d}"] + rng.normal(scale=noise, size=len(df))
    spec = StudySpec.model_validate({
        "name": "icc", "endpoint": {"kind": "survival", "time": "os_months", "event": "os_event"},
        "features": [{"feature_set": "radiomics_original", "phases": ["arterial"]}],
        "split": {"train_cohorts": ["h1"]},
        "models": [{"name": "rad", "kind": "lasso_cox",
                    "params": {"n_alphas": 8, "cv_folds": 3, "corr_threshold": 1.0,
                               "icc_pairs": {R1: R2}, "icc_threshold": 0.8}}]})
    sm = fit_study(spec, df)["rad"]
    pipe = sm.model.estimator
    filt = pipe.named_steps["icc"]
    names = pipe.named_steps["encode"].get_feature_names_out()
    kept = set(names[filt.keep_])
    assert f"{R1}__f000" not in kept and {f"{R1}__f{j:03d}" for j in range(1, 6)} <= kept
    assert not any(k.startswith(R2) for k in kept)
    # the filter's ICCs are ICC(2,1) of the training rows' reader pairs
    expected = [float(icc(df[[f"{R1}__f{j:03d}", f"{R2}__f{j:03d}"]].to_numpy(), "ICC(2,1)"))
                for j in range(6)]
    np.testing.assert_allclose(sorted(filt.icc_), sorted(expected), rtol=1e-10)
    # the dropped feature and the reader-2 columns do not move the score
    row = df.iloc[[0]].copy()
    base = sm.model.score(row)
    row[f"{R1}__f000"] += 10.0
    row[[c for c in df.columns if c.startswith(R2)]] += 5.0
    np.testing.assert_allclose(sm.model.score(row), base)
    row[f"{R1}__f001"] += 1.0
    assert not np.allclose(sm.model.score(row), base)
