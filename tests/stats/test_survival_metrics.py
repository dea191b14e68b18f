"""Time-dependent AUC / iAUC, IBS, calibration at a horizon, decision curves and the maxstat
cutoff against hand computations and lifelines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radstore.stats.classification import decision_curve
from radstore.stats.survival import (
    calibration_at,
    integrated_brier,
    maxstat_cutoff,
    survival_decision_curve,
    time_dependent_auc,
)


def _uncensored(rng: np.random.Generator, n: int):
    lp = rng.normal(size=n)
    return rng.exponential(np.exp(-lp)), np.ones(n, bool), lp + rng.normal(scale=0.7, size=n)


def test_td_auc_and_iauc_by_definition_without_censoring() -> None:
    """No censoring ⇒ IPCW weights are 1: AUC(t) = P(r_i > r_j | T_i ≤ t < T_j), and
    iAUC = Σ AUC(t_k)(S(t_{k−1}) − S(t_k)) / (1 − S(t_K)) with S the empirical survival."""
    rng = np.random.default_rng(0)
    tr_t, tr_e, _ = _uncensored(rng, 300)
    t, e, r = _uncensored(rng, 200)
    hz = np.quantile(t, [0.2, 0.4, 0.6, 0.8])
    tt, auc, iauc = time_dependent_auc(tr_t, tr_e, t, e, r, hz)
    np.testing.assert_allclose(tt, hz)
    hand = []
    for h in hz:
        case, ctrl = r[t <= h], r[t > h]
        hand.append(((case[:, None] > ctrl[None, :]) + 0.5 * (case[:, None] == ctrl[None, :])).mean())
    np.testing.assert_allclose(auc, hand, rtol=1e-12)
    s = np.array([(t > h).mean() for h in hz])
    d = -np.diff(np.r_[1.0, s])
    assert iauc == pytest.approx(np.sum(np.array(hand) * d) / (1 - s[-1]), rel=1e-12)
    # horizons outside the follow-up are dropped, not extrapolated
    tt2, _, _ = time_dependent_auc(tr_t, tr_e, t, e, r, np.r_[hz, 10 * t.max()])
    np.testing.assert_allclose(tt2, hz)


def test_integrated_brier_by_definition_without_censoring() -> None:
    """BS(s) = mean_i (1[T_i > s] − S_i(s))², IBS = trapezoid(BS) / (s_K − s_1) over the grid."""
    rng = np.random.default_rng(1)
    tr_t, tr_e, _ = _uncensored(rng, 300)
    t, e, r = _uncensored(rng, 150)
    lam = np.exp(r)

    def surv_fn(grid: np.ndarray) -> np.ndarray:
        return np.exp(-np.outer(lam, grid))

    ibs = integrated_brier(tr_t, tr_e, t, e, surv_fn, n_grid=40)
    grid = np.linspace(*np.quantile(t, [0.1, 0.9]), 40)
    bs = ((t[:, None] > grid[None, :]) - surv_fn(grid)) ** 2
    hand = np.trapezoid(bs.mean(axis=0), grid) / (grid[-1] - grid[0])
    assert ibs == pytest.approx(hand, rel=1e-10)
    # with censoring, rows after the grid handled as censored give sksurv's value on the rows
    # inside the training follow-up (where sksurv is defined)
    from sksurv.metrics import integrated_brier_score

    from radstore.stats.survival import surv_array

    c = rng.exponential(2.0, len(t))
    tc, ec = np.minimum(t, c), t <= c
    trc = rng.exponential(2.0, len(tr_t))
    tr_tc, tr_ec = np.minimum(tr_t, trc), tr_t <= trc
    inside = tc < tr_tc.max()
    ours = integrated_brier(tr_tc, tr_ec, tc[inside], ec[inside],
                            lambda g: surv_fn(g)[inside], n_grid=30)
    grid = np.linspace(*np.quantile(tc[inside], [0.1, 0.9]), 30)
    ref = integrated_brier_score(surv_array(tr_tc, tr_ec), surv_array(tc[inside], ec[inside]),
                                 surv_fn(grid)[inside], grid)
    assert ours == pytest.approx(ref, rel=1e-12)


def test_calibration_at_matches_lifelines_km_per_group() -> None:
    lifelines = pytest.importorskip("lifelines")
    rng = np.random.default_rng(2)
    n = 200
    lp = rng.normal(size=n)
    tt = rng.exponential(10 * np.exp(-lp))
    c = rng.uniform(2, 30, n)
    time, event = np.minimum(tt, c), tt <= c
    pred = np.exp(-8.0 / (10 * np.exp(-lp)))  # true S(8 | lp)
    tab = calibration_at(time, event, pred, 8.0, groups=4)
    order = np.argsort(pred)
    for g, idx in enumerate(np.array_split(order, 4)):
        km = lifelines.KaplanMeierFitter().fit(time[idx], event[idx])
        row = tab.iloc[g]
        assert row["n"] == len(idx) and row["predicted"] == pytest.approx(pred[idx].mean())
        assert row["observed"] == pytest.approx(float(km.survival_function_at_times(8.0).iloc[0]))
    # well-specified predictions are calibrated within sampling error
    assert np.abs(tab["predicted"] - tab["observed"]).max() < 0.15


def test_binary_decision_curve_by_hand() -> None:
    y = np.array([1, 1, 0, 0, 1, 0])
    p = np.array([0.9, 0.6, 0.7, 0.2, 0.3, 0.1])
    dc = decision_curve(y, p, thresholds=np.array([0.25, 0.5])).set_index("threshold")
    # p_t = 0.5: treat rows 0,1,2 → TP 2, FP 1: NB = 2/6 − 1/6 · 1; treat-all = 3/6 − 3/6 · 1
    assert dc.loc[0.5, "net_benefit"] == pytest.approx(1 / 6)
    assert dc.loc[0.5, "treat_all"] == pytest.approx(0.0)
    # p_t = 0.25: treat rows 0,1,2,4 → TP 3, FP 1: NB = 3/6 − 1/6 · (1/3)
    assert dc.loc[0.25, "net_benefit"] == pytest.approx(0.5 - 1 / 18)
    assert dc.loc[0.25, "treat_all"] == pytest.approx(0.5 - 0.5 / 3)


def test_survival_decision_curve_by_hand() -> None:
    time = np.array([2.0, 3.0, 5.0, 8.0, 10.0, 12.0])
    event = np.array([1, 0, 1, 1, 0, 0], bool)
    risk = np.array([0.8, 0.7, 0.6, 0.4, 0.3, 0.1])
    dc = survival_decision_curve(time, event, risk, 6.0, thresholds=np.array([0.35, 0.5]))
    dc = dc.set_index("threshold")
    # p_t = 0.35: treated rows 0–3; KM at 6: (1 − 1/4)(1 − 1/2) = 3/8 (the censoring at 3
    # leaves {5, 8} at risk at 5); NB = (1 − 3/8)·4/6 − 3/8·4/6·0.35/0.65
    s = 3 / 8
    assert dc.loc[0.35, "net_benefit"] == pytest.approx((1 - s) * 4 / 6 - s * 4 / 6 * 0.35 / 0.65)
    # p_t = 0.5: treated rows 0–2; KM at 6 = (1 − 1/3)(1 − 1/1) = 0 → NB = 3/6
    assert dc.loc[0.5, "net_benefit"] == pytest.approx(0.5)
    # treat all: KM of everyone at 6 = (1 − 1/6)(1 − 1/4) = 5/8
    s_all = (1 - 1 / 6) * (1 - 1 / 4)
    assert dc.loc[0.5, "treat_all"] == pytest.approx((1 - s_all) - s_all)


def test_maxstat_cutoff_equals_brute_force_logrank_scan() -> None:
    lifelines = pytest.importorskip("lifelines")
    from lifelines.statistics import logrank_test

    rng = np.random.default_rng(7)
    n = 120
    risk = rng.normal(size=n)
    tt = rng.exponential(np.exp(-1.2 * (risk > 0.4)))
    c = rng.exponential(2.0, n)
    time, event = np.minimum(tt, c), tt <= c
    lo, hi = np.quantile(risk, [0.1, 0.9])
    best, best_c = -1.0, None
    for cut in np.unique(risk[(risk >= lo) & (risk < hi)]):
        g = risk > cut
        stat = logrank_test(time[g], time[~g], event[g], event[~g]).test_statistic
        if stat > best:
            best, best_c = stat, cut
    assert maxstat_cutoff(time, event, risk) == pytest.approx(best_c)
    assert abs(best_c - 0.4) < 0.3
    assert isinstance(lifelines.__version__, str) and not pd.isna(best)
