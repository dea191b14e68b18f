"""Categorical covariates in the clinical Cox workflow: a factor's dummies are screened and
dropped together (as R's ``step``), with AICs matching lifelines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radstore.models.estimators import CoxPH, factor_groups
from radstore.models.preprocessing import FrameEncoder
from radstore.stats.cox import backward_aic
from radstore.stats.survival import surv_array


def _data(seed: int = 0, n: int = 400) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = pd.DataFrame({
        "clinical__age": rng.normal(60, 10, n),
        "clinical__noise": rng.normal(size=n),
        "clinical__grade": rng.choice(["G1", "G2", "G3"], n),  # only G3 differs from G1
        "clinical__stage": rng.choice(["I", "II", "III", "IV"], n),  # no effect at all
    })
    lp = 0.04 * (raw["clinical__age"] - 60) + 1.0 * (raw["clinical__grade"] == "G3")
    t = rng.exponential(np.exp(-lp.to_numpy()))
    c = rng.exponential(2.0, n)
    enc = FrameEncoder(list(raw.columns)).fit(raw)
    x = pd.DataFrame(enc.transform(raw), columns=list(enc.get_feature_names_out()))
    return x, np.minimum(t, c), t <= c


def test_backward_aic_drops_whole_factors_with_lifelines_aic() -> None:
    lifelines = pytest.importorskip("lifelines")
    x, time, event = _data(seed=2)
    groups = factor_groups(list(x.columns))
    assert groups["clinical__grade=G2"] == groups["clinical__grade=G3"] == "clinical__grade"
    kept, path = backward_aic(x, time, event, groups=groups)
    # grade=G2 alone carries nothing, but the factor is kept with both of its dummies
    assert {"clinical__grade=G2", "clinical__grade=G3", "clinical__age"} <= set(kept)
    assert not any(c.startswith("clinical__stage") for c in kept)
    dropped = set(path["dropped"].dropna())
    assert "clinical__stage" in dropped and not any("=" in d for d in dropped)
    for factor in ("clinical__grade", "clinical__stage"):  # never split
        n_kept = sum(groups.get(c) == factor for c in kept)
        assert n_kept in (0, sum(v == factor for v in groups.values()))
    for row in path.itertuples():
        cols = row.covariates.split(",")
        df = x[cols].assign(T=time, E=event.astype(int))
        ref = lifelines.CoxPHFitter().fit(df, "T", "E").AIC_partial_
        assert row.aic == pytest.approx(ref, rel=1e-6)
    # without groups the dummies are separate terms: the per-column search splits the factor
    kept_cols, _ = backward_aic(x, time, event)
    assert "clinical__grade=G3" in kept_cols


def test_cox_estimator_screens_factors_by_likelihood_ratio() -> None:
    from scipy import stats

    from radstore.stats.cox import fit_cox

    x, time, event = _data(seed=1)
    m = CoxPH(screen_p=0.05, feature_names=list(x.columns)).fit(x.to_numpy(), surv_array(time, event))
    uni = m.univariable_
    g = ["clinical__grade=G2", "clinical__grade=G3"]
    joint = fit_cox(x[g], time, event)
    p_lr = stats.chi2.sf(2 * (joint.loglik - joint.loglik_null), 2)
    assert uni.loc[g, "p_factor"].tolist() == pytest.approx([p_lr, p_lr])
    assert set(g) <= set(m.selected_)
    assert not any(c.startswith("clinical__stage") for c in m.selected_)
