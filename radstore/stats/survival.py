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


def _fenwick_chains(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index chains of a 1-based Fenwick tree of size ``n`` (Fenwick 1994, Softw. Pract. Exp.
    24:327), padded with a zero slot: ``query[p]`` sums prefix ``1..p``, ``update[p]`` are the
    nodes covering position ``p`` (padding ``n + 1`` is a scratch slot)."""
    depth = max(int(n).bit_length(), 1) + 1
    query = np.zeros((n + 1, depth), dtype=np.int64)
    update = np.full((n + 1, depth), n + 1, dtype=np.int64)
    for p in range(1, n + 1):
        k, d = p, 0
        while k > 0:
            query[p, d] = k
            k -= k & -k
            d += 1
        k, d = p, 0
        while k <= n:
            update[p, d] = k
            k += k & -k
            d += 1
    return query, update


def concordance_counts(time: np.ndarray, event: np.ndarray, risk: np.ndarray,
                       counts: np.ndarray | None = None, row_weight: np.ndarray | None = None,
                       tied_tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator of the (weighted) concordance index for ``B`` resamples at once,
    with scikit-survival's ``concordance_index_censored`` pair rules: ``(i, j)`` is comparable
    when ``i`` is an event and ``t_j > t_i`` or (``t_j = t_i`` and ``j`` censored); it scores 1
    when ``r_j < r_i − tol``, ½ when ``|r_j − r_i| ≤ tol``.

    ``counts`` ``[B, n]`` are the multiplicities of each row in each resample (bootstrap), so
    ``num_b = Σ_i ω_i c_bi Σ_j c_bj ψ_ij`` and ``den_b = Σ_i ω_i c_bi Σ_j c_bj 1[(i,j) comparable]``
    with ``ω`` the per-row weights (1 for Harrell, ``1/Ĝ(t_i)²`` for Uno). Rows are swept in
    descending time into a Fenwick tree over risk ranks that holds a ``B``-vector per node:
    ``O(n log n · B)``. Returns ``(num[B], den[B])``."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, float)
    n = len(time)
    if not (len(event) == n == len(risk)):
        raise ValueError(f"time, event, risk differ in length: {n}, {len(event)}, {len(risk)}")
    if not (np.all(np.isfinite(time)) and np.all(np.isfinite(risk))):
        raise ValueError("time and risk must be finite")
    c = np.ones((1, n)) if counts is None else np.atleast_2d(np.asarray(counts, float))
    if c.shape[1] != n:
        raise ValueError(f"counts must have {n} columns, got {c.shape}")
    w = np.ones(n) if row_weight is None else np.asarray(row_weight, float)
    order_r = np.argsort(risk, kind="mergesort")
    sorted_r = risk[order_r]
    pos = np.empty(n, dtype=np.int64)
    pos[order_r] = np.arange(1, n + 1)
    lo = np.searchsorted(sorted_r, risk - tied_tol, side="left")
    hi = np.searchsorted(sorted_r, risk + tied_tol, side="right")
    query, update = _fenwick_chains(n)
    ct = np.ascontiguousarray(c.T)  # [n, B]
    tree = np.zeros((n + 2, c.shape[0]))
    total = np.zeros(c.shape[0])
    num = np.zeros(c.shape[0])
    den = np.zeros(c.shape[0])
    order_t = np.argsort(-time, kind="mergesort")
    t_sorted = time[order_t]
    starts = np.flatnonzero(np.r_[True, t_sorted[1:] != t_sorted[:-1]])
    ends = np.r_[starts[1:], n]
    for s, e in zip(starts, ends, strict=True):
        group = order_t[s:e]
        ev = group[event[group]]
        for j in group[~event[group]]:  # censored at t are comparable to events at t
            tree[update[pos[j]]] += ct[j]
            total += ct[j]
        for i in ev:
            below = tree[query[lo[i]]].sum(axis=0)
            upto = tree[query[hi[i]]].sum(axis=0)
            f = w[i] * ct[i]
            num += f * (below + 0.5 * (upto - below))
            den += f * total
        for i in ev:
            tree[update[pos[i]]] += ct[i]
            total += ct[i]
    return num, den


def _c_from_counts(num: np.ndarray, den: np.ndarray) -> float:
    if den[0] <= 0:
        raise ValueError("no comparable pairs: cannot estimate the concordance index")
    return float(num[0] / den[0])


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C (Harrell et al. 1982, JAMA 247:2543): the fraction of comparable pairs
    (the shorter time is an event) ordered by risk, risk ties count ½ — equal to
    scikit-survival's ``concordance_index_censored`` (see :func:`concordance_counts`), in
    ``O(n log n)``. Raises ``ValueError`` when no pair is comparable."""
    event = np.asarray(event).astype(bool)
    if not event.any():
        raise ValueError("all samples are censored")
    return _c_from_counts(*concordance_counts(time, event, risk))


def uno_weights(time: np.ndarray, event: np.ndarray, train_time: np.ndarray,
                train_event: np.ndarray, tau: float | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Uno's IPCW pair weights ``ω_i = 1/Ĝ(t_i)²`` for events with ``t_i < τ`` (else 0), with
    ``Ĝ`` the Kaplan–Meier censoring survival of the training rows (scikit-survival
    ``CensoringDistributionEstimator``). ``τ`` defaults to (and is capped at) the largest
    training time; rows at or beyond it are left out (``keep`` mask). Returns ``(ω, keep)``."""
    from sksurv.nonparametric import CensoringDistributionEstimator

    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    tmax = float(np.max(train_time))
    tau = tmax if tau is None or tau > tmax else float(tau)
    keep = time < tmax  # IPCW needs test times inside the training follow-up
    use = keep & event & (time < tau)
    g = CensoringDistributionEstimator().fit(surv_array(train_time, train_event)).predict_proba(
        time[use])
    if np.any(g <= 0):
        raise ValueError("censoring survival function is zero at one or more event times")
    w = np.zeros(len(time))
    w[use] = 1.0 / g**2
    return w, keep


def uno_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray, train_time: np.ndarray,
          train_event: np.ndarray, tau: float | None = None) -> float:
    """Uno's IPCW C-statistic truncated at ``tau`` (Uno et al. 2011, Stat. Med. 30:1105); the
    censoring distribution is estimated on the training rows. Equals scikit-survival's
    ``concordance_index_ipcw`` on the rows inside the training follow-up."""
    w, keep = uno_weights(time, event, train_time, train_event, tau)
    event = np.asarray(event).astype(bool)
    if not event[keep].any():
        raise ValueError("all samples are censored")
    return _c_from_counts(*concordance_counts(np.asarray(time, float)[keep], event[keep],
                                              np.asarray(risk, float)[keep], row_weight=w[keep]))


@dataclass(frozen=True)
class EstimateCI:
    estimate: float
    lo: float
    hi: float
    se: float
    n_boot: int


def bootstrap_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Row multiplicities ``[n_boot, n]`` of ``n_boot`` resamples with replacement; resample
    ``b`` draws the same rows as the ``b``-th ``rng.integers(0, n, n)`` call of a
    ``default_rng(seed)`` generator."""
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    flat = (idx + n * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(float)


def concordance_ci(time: np.ndarray, event: np.ndarray, risk: np.ndarray, n_boot: int = 1000,
                   seed: int = 0, level: float = 0.95, method: str = "harrell",
                   train_time: np.ndarray | None = None, train_event: np.ndarray | None = None,
                   tau: float | None = None) -> EstimateCI:
    """C-index with a percentile bootstrap CI (Efron & Tibshirani 1993, ch. 13): resample rows
    with replacement ``n_boot`` times (seeded), recompute C, take the ``(1±level)/2`` quantiles.
    All resamples are evaluated at once as multiplicity vectors (:func:`concordance_counts`);
    resamples without a comparable pair are skipped (``n_boot`` reports those used).
    ``method``: ``harrell`` or ``uno`` (needs the training time/event for the censoring weights)."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    risk = np.asarray(risk, float)
    if method == "harrell":
        est = harrell_c(time, event, risk)
        w = np.ones(len(time))
        keep = np.ones(len(time), dtype=bool)
    elif method == "uno":
        if train_time is None or train_event is None:
            raise ValueError("Uno's C needs train_time and train_event")
        est = uno_c(time, event, risk, train_time, train_event, tau)
        w, keep = uno_weights(time, event, train_time, train_event, tau)
    else:
        raise ValueError(f"method must be 'harrell' or 'uno', got {method!r}")
    counts = bootstrap_counts(len(time), n_boot, seed)[:, keep]
    step = max(1, 4_000_000 // max(int(keep.sum()), 1))
    num, den = [], []
    for b0 in range(0, n_boot, step):
        nb, db = concordance_counts(time[keep], event[keep], risk[keep], counts[b0:b0 + step],
                                    row_weight=w[keep])
        num.append(nb)
        den.append(db)
    nu, de = np.concatenate(num), np.concatenate(den)
    b = nu[de > 0] / de[de > 0]
    if len(b) < 2:
        raise ValueError("fewer than two bootstrap resamples have comparable pairs")
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
    Horizons outside the follow-up are dropped. Events after the last horizon enter as
    censored there: they are controls at every horizon either way (controls carry no censoring
    weight) and the KM weights of iAUC stop at the last horizon, so the result is unchanged while
    ``Ĝ`` is never needed beyond the training follow-up. Returns ``(times, auc, iauc)``."""
    from sksurv.metrics import cumulative_dynamic_auc

    t = valid_times(train_time, time, event, times)
    if len(t) == 0:
        return t, np.array([]), float("nan")
    ev = np.asarray(event).astype(bool) & (np.asarray(time, float) <= t.max())
    auc, mean = cumulative_dynamic_auc(surv_array(train_time, train_event), surv_array(time, ev),
                                       np.asarray(risk, float), t)
    return t, np.atleast_1d(auc), float(mean)


def integrated_brier(train_time: np.ndarray, train_event: np.ndarray, time: np.ndarray,
                     event: np.ndarray, surv_fn, n_grid: int = 50) -> float:
    """Integrated Brier score (Graf et al. 1999, Stat. Med. 18:2529) with IPCW over a grid between
    the 10th and 90th percentile of observed times; ``surv_fn(times) -> S[n, len(times)]``.
    Rows observed after the grid enter as censored just after its last point (a row with
    ``T > s`` scores ``(1 − S)²/Ĝ(s)`` whatever its status and exact time), so ``Ĝ`` is never
    needed beyond the training follow-up."""
    from sksurv.metrics import integrated_brier_score

    t = np.asarray(time, float)
    lo, hi = np.quantile(t, [0.1, 0.9])
    grid = np.linspace(lo, hi, n_grid)
    grid = valid_times(train_time, time, event, grid)
    if len(grid) < 2:
        return float("nan")
    late = t > grid.max()
    ev = np.asarray(event).astype(bool) & ~late
    t_eff = np.where(late, np.nextafter(grid.max(), np.inf), t)
    return float(integrated_brier_score(surv_array(train_time, train_event),
                                        surv_array(t_eff, ev), surv_fn(grid), grid))


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


