"""Survival-model evaluation: C-index with bootstrap CI (Harrell, Uno), risk groups with a locked
cutoff, HR and log-rank, time-dependent AUC / iAUC, integrated Brier score, calibration at fixed
times, decision curves, landmark data sets. Arrays in, numbers/tables out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def surv_array(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """scikit-survival structured array ``[('event', bool), ('time', float)]``."""
    out = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    out["event"] = np.asarray(event).astype(bool)
    out["time"] = np.asarray(time, dtype=float)
    return out


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C (Harrell et al. 1982, JAMA 247:2543): the fraction of comparable pairs
    (the shorter time is an event) ordered by risk, risk ties count ½ (scikit-survival)."""
    from sksurv.metrics import concordance_index_censored

    return float(concordance_index_censored(np.asarray(event).astype(bool),
                                            np.asarray(time, float), np.asarray(risk, float))[0])


def uno_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray, train_time: np.ndarray,
          train_event: np.ndarray, tau: float | None = None) -> float:
    """Uno's IPCW C-statistic truncated at ``tau`` (Uno et al. 2011, Stat. Med. 30:1105); the
    censoring distribution is estimated on the training rows."""
    from sksurv.metrics import concordance_index_ipcw

    tr = surv_array(train_time, train_event)
    te = surv_array(time, event)
    tmax = tr["time"].max()
    if tau is None or tau > tmax:
        tau = tmax
    keep = te["time"] < tmax  # IPCW needs test times inside the training follow-up
    return float(concordance_index_ipcw(tr, te[keep] if not keep.all() else te,
                                        np.asarray(risk, float)[keep], tau=tau)[0])


@dataclass(frozen=True)
class EstimateCI:
    estimate: float
    lo: float
    hi: float
    se: float
    n_boot: int


def concordance_ci(time: np.ndarray, event: np.ndarray, risk: np.ndarray, n_boot: int = 1000,
                   seed: int = 0, level: float = 0.95, method: str = "harrell",
                   train_time: np.ndarray | None = None, train_event: np.ndarray | None = None,
                   tau: float | None = None) -> EstimateCI:
    """C-index with a percentile bootstrap CI (Efron & Tibshirani 1993, ch. 13): resample rows
    with replacement ``n_boot`` times (seeded), recompute C, take the ``(1±level)/2`` quantiles.
    ``method``: ``harrell`` or ``uno`` (needs the training time/event for the censoring weights)."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, float)
    if method == "harrell":
        def fn(idx: np.ndarray) -> float:
            return harrell_c(time[idx], event[idx], risk[idx])
    elif method == "uno":
        if train_time is None or train_event is None:
            raise ValueError("Uno's C needs train_time and train_event")

        def fn(idx: np.ndarray) -> float:
            return uno_c(time[idx], event[idx], risk[idx], train_time, train_event, tau)
    else:
        raise ValueError(f"method must be 'harrell' or 'uno', got {method!r}")
    est = fn(np.arange(len(time)))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(time), len(time))
        if not event[idx].any():
            continue
        try:
            boots.append(fn(idx))
        except ValueError:  # no comparable pairs in this resample
            continue
    b = np.asarray(boots)
    a = (1 - level) / 2
    return EstimateCI(est, float(np.quantile(b, a)), float(np.quantile(b, 1 - a)),
                      float(b.std(ddof=1)), len(b))


def logrank(time: np.ndarray, event: np.ndarray, group: np.ndarray) -> tuple[float, float]:
    """Log-rank test (Mantel 1966) between groups; returns ``(chi2, p)`` (scikit-survival)."""
    from sksurv.compare import compare_survival

    chi2, p = compare_survival(surv_array(time, event), np.asarray(group))
    return float(chi2), float(p)


def median_cutoff(risk: np.ndarray) -> float:
    """Median of the training risk scores; ``high = risk > cutoff``."""
    return float(np.median(risk))


def maxstat_cutoff(time: np.ndarray, event: np.ndarray, risk: np.ndarray,
                   min_prop: float = 0.1) -> float:
    """Maximally selected log-rank statistic (Lausen & Schumacher 1992, Biometrics 48:73): the
    candidate cutoff (risk values between the ``min_prop`` and ``1−min_prop`` quantiles) whose
    split ``risk > c`` has the largest log-rank χ²."""
    risk = np.asarray(risk, float)
    lo, hi = np.quantile(risk, [min_prop, 1 - min_prop])
    cands = np.unique(risk[(risk >= lo) & (risk < hi)])
    best, best_c = -1.0, float(np.median(risk))
    for c in cands:
        g = risk > c
        if g.all() or (~g).all():
            continue
        chi2, _ = logrank(time, event, g.astype(int))
        if chi2 > best:
            best, best_c = chi2, float(c)
    return best_c


@dataclass(frozen=True)
class GroupComparison:
    hr: float
    hr_lo: float
    hr_hi: float
    p_wald: float
    logrank_chi2: float
    logrank_p: float
    n_high: int
    n_low: int


def risk_group_hr(time: np.ndarray, event: np.ndarray, risk: np.ndarray,
                  cutoff: float) -> GroupComparison:
    """HR (Cox, high vs low) with 95% Wald CI and log-rank p for groups ``risk > cutoff`` where
    ``cutoff`` was fixed on the training cohort (locked for validation)."""
    from radstore.stats.cox import fit_cox

    g = (np.asarray(risk, float) > cutoff).astype(float)
    nh, nl = int(g.sum()), int(len(g) - g.sum())
    if nh == 0 or nl == 0 or not np.asarray(event).any():
        nan = float("nan")
        return GroupComparison(nan, nan, nan, nan, nan, nan, nh, nl)
    s = fit_cox(g[:, None], time, event, names=["high_risk"]).summary().iloc[0]
    chi2, p = logrank(time, event, g)
    return GroupComparison(float(s.hr), float(s.hr_lo), float(s.hr_hi), float(s.p), chi2, p, nh, nl)


def valid_times(train_time: np.ndarray, time: np.ndarray, event: np.ndarray,
                times: np.ndarray) -> np.ndarray:
    """Horizons usable for IPCW metrics on this cohort: inside both follow-up ranges."""
    hi = min(np.max(train_time), np.max(np.asarray(time)[np.asarray(event).astype(bool)])
             if np.any(event) else 0.0)
    lo = np.min(time)
    t = np.asarray(times, float)
    return t[(t > lo) & (t < hi)]


def time_dependent_auc(train_time: np.ndarray, train_event: np.ndarray, time: np.ndarray,
                       event: np.ndarray, risk: np.ndarray, times: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, float]:
    """Cumulative/dynamic AUC(t) with IPCW (Uno et al. 2007; Hung & Chiang 2010) at ``times``
    and iAUC (their survival-weighted mean, Lambert & Chevret 2016) — scikit-survival.
    Horizons outside the follow-up are dropped. Returns ``(times, auc, iauc)``."""
    from sksurv.metrics import cumulative_dynamic_auc

    t = valid_times(train_time, time, event, times)
    if len(t) == 0:
        return t, np.array([]), float("nan")
    auc, mean = cumulative_dynamic_auc(surv_array(train_time, train_event), surv_array(time, event),
                                       np.asarray(risk, float), t)
    return t, np.atleast_1d(auc), float(mean)


def integrated_brier(train_time: np.ndarray, train_event: np.ndarray, time: np.ndarray,
                     event: np.ndarray, surv_fn, n_grid: int = 50) -> float:
    """Integrated Brier score (Graf et al. 1999, Stat. Med. 18:2529) with IPCW over a grid between
    the 10th and 90th percentile of observed times; ``surv_fn(times) -> S[n, len(times)]``."""
    from sksurv.metrics import integrated_brier_score

    t = np.asarray(time, float)
    grid = np.linspace(*np.quantile(t, [0.1, 0.9]), n_grid)
    grid = valid_times(train_time, time, event, grid)
    if len(grid) < 2:
        return float("nan")
    return float(integrated_brier_score(surv_array(train_time, train_event),
                                        surv_array(time, event), surv_fn(grid), grid))


def km_at(time: np.ndarray, event: np.ndarray, t: float) -> float:
    """Kaplan–Meier (1958) survival estimate at ``t``."""
    from sksurv.nonparametric import kaplan_meier_estimator

    kt, ks = kaplan_meier_estimator(np.asarray(event).astype(bool), np.asarray(time, float))
    i = np.searchsorted(kt, t, side="right") - 1
    return float(ks[i]) if i >= 0 else 1.0


def calibration_at(time: np.ndarray, event: np.ndarray, surv_pred: np.ndarray, t: float,
                   groups: int = 4) -> pd.DataFrame:
    """Calibration at horizon ``t``: rows grouped by quantiles of predicted ``S(t)``; mean
    predicted vs Kaplan–Meier observed survival per group (the seeds' calibration curves)."""
    sp = np.asarray(surv_pred, float)
    order = np.argsort(sp)
    rows = []
    for g, idx in enumerate(np.array_split(order, groups)):
        if len(idx) == 0:
            continue
        rows.append({"group": g + 1, "n": len(idx), "horizon": t, "predicted": sp[idx].mean(),
                     "observed": km_at(time[idx], event[idx], t)})
    return pd.DataFrame(rows)


def survival_decision_curve(time: np.ndarray, event: np.ndarray, risk_prob: np.ndarray, t: float,
                            thresholds: np.ndarray | None = None) -> pd.DataFrame:
    """Decision curve for a survival endpoint at horizon ``t`` (Vickers et al. 2008, BMC Med.
    Inform. Decis. Mak. 8:53): treat when predicted ``P(T ≤ t) ≥ p_t``;
    ``NB = (1 − S_KM(t | treated)) P(treated) − S_KM(t | treated) P(treated) p_t/(1 − p_t)``."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    p = np.asarray(risk_prob, float)
    th = np.linspace(0.01, 0.99, 99) if thresholds is None else np.asarray(thresholds, float)
    s_all = km_at(time, event, t)
    rows = []
    for pt in th:
        treat = p >= pt
        frac = treat.mean()
        w = pt / (1 - pt)
        if frac == 0:
            nb = 0.0
        else:
            s = km_at(time[treat], event[treat], t)
            nb = (1 - s) * frac - s * frac * w
        rows.append({"threshold": pt, "net_benefit": nb,
                     "treat_all": (1 - s_all) - s_all * w, "treat_none": 0.0})
    return pd.DataFrame(rows)


def landmark(df: pd.DataFrame, landmark_time: float, time: str, event: str) -> pd.DataFrame:
    """Landmark data set (van Houwelingen 2007, Scand. J. Stat. 34:70): keep patients still at
    risk at ``landmark_time`` and measure time from the landmark."""
    out = df[df[time] > landmark_time].copy()
    out[time] = out[time] - landmark_time
    return out


def mean_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the mean (Monte-Carlo CV summaries, as seed 004 reports)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


