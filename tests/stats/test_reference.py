"""Statistics against independent reference computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radstore.stats.classification import auc_ci, delong_components, delong_test, hosmer_lemeshow
from radstore.stats.cox import fit_cox, schoenfeld_test
from radstore.stats.reliability import feature_icc, icc
from radstore.stats.survival import concordance_ci


def test_cox_matches_lifelines_on_whas500() -> None:
    lifelines = pytest.importorskip("lifelines")
    from sksurv.datasets import load_whas500

    x, y = load_whas500()
    cols = ["age", "bmi", "hr", "sysbp", "diasbp"]
    x = x[cols].astype(float)
    res = fit_cox(x, y["lenfol"], y["fstat"])
    df = x.assign(T=y["lenfol"], E=y["fstat"].astype(int))
    ref = lifelines.CoxPHFitter().fit(df, "T", "E")
    np.testing.assert_allclose(res.coef, ref.params_[cols].to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(res.se, ref.standard_errors_[cols].to_numpy(), rtol=1e-4)
    assert res.loglik == pytest.approx(ref.log_likelihood_, rel=1e-8)


def test_schoenfeld_matches_lifelines_without_ties() -> None:
    lifelines = pytest.importorskip("lifelines")
    from lifelines.statistics import proportional_hazard_test

    rng = np.random.default_rng(4)
    n = 300
    x = rng.normal(size=(n, 2))
    # x1 has a time-varying effect (non-PH), x0 is proportional
    t = rng.weibull(np.where(x[:, 1] > 0, 0.6, 1.8)) * np.exp(-0.7 * x[:, 0])
    c = rng.uniform(0.2, 3, n)
    time, event = np.minimum(t, c), (t <= c).astype(int)
    res = fit_cox(x, time, event, names=["a", "b"])
    ours = schoenfeld_test(res, "rank")
    df = pd.DataFrame(x, columns=["a", "b"]).assign(T=time, E=event)
    ref = proportional_hazard_test(lifelines.CoxPHFitter().fit(df, "T", "E"), df,
                                   time_transform="rank").summary
    np.testing.assert_allclose(ours.loc[["a", "b"], "statistic"], ref.loc[["a", "b"], "test_statistic"],
                               rtol=1e-4)
    assert ours.loc["b", "p"] < 0.01 and ours.loc["GLOBAL", "df"] == 2


def _brute_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """DeLong 1988 by explicit structural components: V10_i = mean_j ψ(X_i, Y_j)."""
    def comps(s):
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)
    aa, v10a, v01a = comps(a)
    ab, v10b, v01b = comps(b)
    m, n = (y == 1).sum(), (y == 0).sum()
    s10 = np.cov(np.vstack([v10a, v10b]))
    s01 = np.cov(np.vstack([v01a, v01b]))
    s = s10 / m + s01 / n
    return aa, ab, s[0, 0] + s[1, 1] - 2 * s[0, 1]


def test_delong_matches_brute_force_and_bootstrap() -> None:
    rng = np.random.default_rng(0)
    n = 120
    y = (rng.uniform(size=n) < 0.4).astype(int)
    a = y * 1.0 + rng.normal(size=n)
    b = np.round(y * 0.5 + rng.normal(size=n), 1)  # ties
    aa, ab, var = _brute_delong(y, a, b)
    auc, cov = delong_components(y, np.vstack([a, b]))
    np.testing.assert_allclose(auc, [aa, ab], rtol=1e-12)
    assert cov[0, 0] + cov[1, 1] - 2 * cov[0, 1] == pytest.approx(var, rel=1e-10)
    r = delong_test(y, a, b)
    assert r.z == pytest.approx((aa - ab) / np.sqrt(var))
    # the DeLong SE agrees with a bootstrap SE of the AUC; resample b with row multiplicities
    # c_b has AUC = Σ_ij c_bi c_bj ψ_ij / (Σ_pos c_b · Σ_neg c_b) (all 1000 resamples at once)
    pos, neg = y == 1, y == 0
    psi = (a[pos][:, None] > a[neg][None, :]) + 0.5 * (a[pos][:, None] == a[neg][None, :])
    idx = rng.integers(0, n, (1000, n))
    c = np.stack([np.bincount(i, minlength=n) for i in idx]).astype(float)
    cp, cn = c[:, pos], c[:, neg]
    ok = (cp.sum(1) > 0) & (cn.sum(1) > 0)
    boots = np.einsum("bi,ij,bj->b", cp, psi, cn)[ok] / (cp.sum(1) * cn.sum(1))[ok]
    assert auc_ci(y, a).se == pytest.approx(np.std(boots), rel=0.15)


def test_hosmer_lemeshow_by_hand() -> None:
    y = np.array([0, 0, 1, 0, 1, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    hl = hosmer_lemeshow(y, p, groups=5)
    # groups of 2 in sorted order: O = [0,1,2,1,2], E = [.3,.5,.9,1.3,1.7], n = 2
    o = np.array([0, 1, 2, 1, 2])
    e = np.array([0.3, 0.5, 0.9, 1.3, 1.7])
    h = np.sum((o - e) ** 2 / (e * (1 - e / 2)))
    assert hl.statistic == pytest.approx(h) and hl.df == 3
    from scipy.stats import chi2

    assert hl.p == pytest.approx(chi2.sf(h, 3))


def test_icc_shrout_fleiss_table() -> None:
    # Shrout & Fleiss (1979) Table 2: 6 targets × 4 judges, and their Table 4 values
    x = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
                 float)
    expected = {"ICC(1,1)": 0.17, "ICC(2,1)": 0.29, "ICC(3,1)": 0.71, "ICC(1,k)": 0.44,
                "ICC(2,k)": 0.62, "ICC(3,k)": 0.91}
    for kind, v in expected.items():
        assert float(icc(x, kind)) == pytest.approx(v, abs=0.006), kind
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(50, 2))
    r1 = pd.DataFrame(truth + rng.normal(scale=[0.1, 3.0], size=(50, 2)), columns=["good", "bad"])
    r2 = pd.DataFrame(truth + rng.normal(scale=[0.1, 3.0], size=(50, 2)), columns=["good", "bad"])
    s = feature_icc(r1, r2)
    assert s["good"] > 0.9 and s["bad"] < 0.5


def test_concordance_ci_coverage() -> None:
    """The bootstrap 95% CI covers the population C (a 40 000-row estimate) in ≥ 85% of runs."""
    lifelines = pytest.importorskip("lifelines")

    def sim(rng, n):
        lp = rng.normal(size=n)
        t = rng.exponential(np.exp(-lp))
        c = rng.exponential(2.0, n)
        return np.minimum(t, c), (t <= c), lp

    rng = np.random.default_rng(11)
    tb, eb, lpb = sim(rng, 40000)
    truth = lifelines.utils.concordance_index(tb, -lpb, eb)
    hits = 0
    n_sim = 30
    for _ in range(n_sim):
        t, e, lp = sim(rng, 150)
        ci = concordance_ci(t, e, lp, n_boot=200, seed=int(rng.integers(1e9)))
        hits += ci.lo <= truth <= ci.hi
    assert hits / n_sim >= 0.85
