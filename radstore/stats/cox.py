"""Cox proportional-hazards regression (Efron ties) with Wald inference, univariable screening,
backward stepwise AIC and the Grambsch–Therneau proportional-hazards test. Pure numpy/scipy."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class CoxResult:
    """A fitted Cox model: coefficients, covariance (inverse observed information), log
    partial likelihood, and the data needed for residuals."""

    names: tuple[str, ...]
    coef: np.ndarray
    var: np.ndarray
    loglik: float
    loglik_null: float
    n: int
    n_events: int
    iterations: int
    _x: np.ndarray = field(repr=False)
    _time: np.ndarray = field(repr=False)
    _event: np.ndarray = field(repr=False)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.var))

    @property
    def aic(self) -> float:
        """Partial-likelihood AIC = −2 ℓ(β̂) + 2p (Akaike 1974)."""
        return -2.0 * self.loglik + 2 * len(self.coef)

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Per covariate: coef, HR = exp(coef), Wald CI of HR, z and two-sided p."""
        z = stats.norm.ppf(0.5 + level / 2)
        se = self.se
        zz = self.coef / se
        with np.errstate(over="ignore"):  # an unbounded CI is reported as inf, by design
            hr, lo, hi = np.exp(self.coef), np.exp(self.coef - z * se), np.exp(self.coef + z * se)
        return pd.DataFrame({
            "coef": self.coef, "se": se, "hr": hr, "hr_lo": lo, "hr_hi": hi,
            "z": zz, "p": 2 * stats.norm.sf(np.abs(zz)),
        }, index=list(self.names))

    def linear_predictor(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=float) @ self.coef


def _efron_terms(beta: np.ndarray, x: np.ndarray, time: np.ndarray, event: np.ndarray,
                 hessian: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Efron (1977) log partial likelihood, gradient and Hessian (``x`` sorted by time desc)."""
    _n, p = x.shape
    eta = x @ beta
    eta_max = eta.max()
    w = np.exp(eta - eta_max)
    cw = np.cumsum(w)
    cwx = np.cumsum(w[:, None] * x, axis=0)
    cwxx = np.cumsum(w[:, None, None] * (x[:, :, None] * x[:, None, :]), axis=0) if hessian else None
    ll = 0.0
    grad = np.zeros(p)
    hess = np.zeros((p, p))
    # groups of equal time: last index of each group in descending order = full risk set
    ev_times = np.unique(time[event])
    for t in ev_times:
        idx_all = np.nonzero(time == t)[0]
        last = idx_all[-1]
        d_idx = idx_all[event[idx_all]]
        d = len(d_idx)
        s0, s1 = cw[last], cwx[last]
        d0 = w[d_idx].sum()
        d1 = (w[d_idx, None] * x[d_idx]).sum(axis=0)
        ll += eta[d_idx].sum() - d * eta_max
        grad += x[d_idx].sum(axis=0)
        if cwxx is not None:
            s2 = cwxx[last]
            d2 = (w[d_idx, None, None] * (x[d_idx, :, None] * x[d_idx, None, :])).sum(axis=0)
        for k in range(d):
            f = k / d
            a0 = s0 - f * d0
            a1 = s1 - f * d1
            ll -= np.log(a0)
            grad -= a1 / a0
            if hessian:
                a2 = s2 - f * d2
                hess -= a2 / a0 - np.outer(a1, a1) / a0**2
    return ll, grad, hess


def _sorted(x: np.ndarray, time: np.ndarray, event: np.ndarray):
    order = np.argsort(-time, kind="mergesort")
    return x[order], time[order], event[order].astype(bool)


def fit_cox(x: np.ndarray | pd.DataFrame, time: np.ndarray, event: np.ndarray,
            names: list[str] | None = None, max_iter: int = 50, tol: float = 1e-9,
            penalizer: float = 0.0) -> CoxResult:
    """Maximise the Efron partial likelihood by Newton–Raphson with step halving (Cox 1972;
    Efron 1977, JASA 72:557). ``penalizer`` adds ``−½ λ ‖β‖²`` (ridge) for separation-prone data.
    ``var`` = inverse of the observed information at β̂."""
    if isinstance(x, pd.DataFrame):
        names = list(x.columns) if names is None else names
        x = x.to_numpy(dtype=float)
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if x.shape[0] != len(time):
        x = x.T if x.shape[1] == len(time) else x
    n, p = x.shape
    names = [f"x{i}" for i in range(p)] if names is None else list(names)
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    if not np.all(np.isfinite(x)):
        raise ValueError("Cox covariates contain NaN/inf")
    if event.sum() == 0:
        raise ValueError("Cox model needs at least one event")
    xs, ts, es = _sorted(x, time, event)
    beta = np.zeros(p)
    ll, g, h = _efron_terms(beta, xs, ts, es)
    ll0 = ll
    ll -= 0.5 * penalizer * float(beta @ beta)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        g_pen = g - penalizer * beta
        h_pen = h - penalizer * np.eye(p)
        try:
            step = np.linalg.solve(-h_pen, g_pen)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(-h_pen, g_pen, rcond=None)[0]
        scale, accepted = 1.0, False
        while scale >= 1e-6 and np.all(np.isfinite(step)):
            nb = beta + scale * step
            nll, ng, nh = _efron_terms(nb, xs, ts, es)
            nll -= 0.5 * penalizer * float(nb @ nb)
            if np.isfinite(nll) and nll >= ll - 1e-12:
                accepted = True
                break
            scale /= 2
        if not accepted:  # no finite ascent step left: keep the last finite β
            break
        converged = abs(nll - ll) < tol * (abs(ll) + 1)
        beta, ll, g, h = nb, nll, ng, nh
        if converged:
            break
    info = -(h - penalizer * np.eye(p))
    if not np.all(np.isfinite(info)):
        raise ValueError("Cox fit diverged (likely separation by a covariate); "
                         "use a penalizer or fewer covariates")
    var = np.linalg.pinv(info)
    return CoxResult(tuple(names), beta, var, float(ll), float(ll0), n, int(event.sum()), it,
                     xs, ts, es)


def _group_map(cols: list[str], groups: dict[str, str] | None) -> dict[str, list[str]]:
    """Covariate groups in column order: ``groups`` maps a column to its factor name (all dummy
    columns of one categorical variable share it); unmapped columns are their own group."""
    out: dict[str, list[str]] = {}
    for c in cols:
        out.setdefault((groups or {}).get(c, c), []).append(c)
    return out


def univariable_screen(df: pd.DataFrame, time: np.ndarray, event: np.ndarray,
                       p_max: float = 0.05, groups: dict[str, str] | None = None) -> pd.DataFrame:
    """One Cox model per covariate; a categorical factor (its dummy columns, see ``groups``) is
    fitted jointly and tested by the likelihood-ratio test on its ``k`` df (as R's ``anova``).
    Returns per column HR, CI, Wald p, the factor and its p (``p_factor``: Wald for a single
    column, LR for a factor), and ``selected`` (``p_factor < p_max``; whole factors)."""
    rows = []
    for g, cols in _group_map(list(df.columns), groups).items():
        res = fit_cox(df[cols], time, event)
        summ = res.summary()
        if len(cols) == 1:
            p_factor = float(summ["p"].iloc[0])
        else:
            lr = 2.0 * (res.loglik - res.loglik_null)
            p_factor = float(stats.chi2.sf(lr, len(cols)))
        for c in cols:
            rows.append({"covariate": c, **summ.loc[c].to_dict(), "factor": g, "p_factor": p_factor})
    out = pd.DataFrame(rows).set_index("covariate")
    out["selected"] = out["p_factor"] < p_max
    return out


def backward_aic(df: pd.DataFrame, time: np.ndarray, event: np.ndarray,
                 keep: tuple[str, ...] = (), groups: dict[str, str] | None = None,
                 penalizer: float = 0.0) -> tuple[list[str], pd.DataFrame]:
    """Backward stepwise elimination by AIC (as R's ``step(direction='backward')``): repeatedly
    drop the term whose removal lowers AIC most; stop when no removal lowers it. A term is a
    column or a whole categorical factor (all its dummy columns, mapped by ``groups``), so
    factors are kept or dropped together. Terms named in ``keep`` are never dropped. Returns the
    kept columns and the elimination path. A subset whose fit diverges (separation) has AIC
    +inf, so it is never kept while an estimable subset exists."""
    terms = _group_map(list(df.columns), groups)

    def aic(names: list[str]) -> float:
        try:
            return fit_cox(df[names], time, event, penalizer=penalizer).aic
        except ValueError:
            return np.inf

    def columns(names: list[str]) -> list[str]:
        return [c for t in names for c in terms[t]]

    current_terms = list(terms)
    cols = columns(current_terms)
    current = aic(cols) if cols else np.inf
    path = [{"step": 0, "dropped": None, "aic": current, "covariates": ",".join(cols)}]
    while len(current_terms) > 1:
        trials = []
        for t in current_terms:
            if t in keep:
                continue
            rest = columns([k for k in current_terms if k != t])
            trials.append((aic(rest), t))
        if not trials:
            break
        best_aic, drop = min(trials)
        if best_aic >= current:
            break
        current_terms.remove(drop)
        current = best_aic
        path.append({"step": len(path), "dropped": drop, "aic": current,
                     "covariates": ",".join(columns(current_terms))})
    return columns(current_terms), pd.DataFrame(path)


def schoenfeld_residuals(res: CoxResult) -> tuple[np.ndarray, np.ndarray]:
    """Schoenfeld (1982) residuals ``x_i − x̄(t_i)`` at each event (Efron-weighted risk-set means
    for tied events), ordered by event time ascending. Returns ``(event_times, residuals[d, p])``."""
    x, t, e = res._x, res._time, res._event
    w = np.exp(x @ res.coef - (x @ res.coef).max())
    cw = np.cumsum(w)
    cwx = np.cumsum(w[:, None] * x, axis=0)
    times, resid = [], []
    for tt in np.unique(t[e]):
        idx_all = np.nonzero(t == tt)[0]
        last = idx_all[-1]
        d_idx = idx_all[e[idx_all]]
        d = len(d_idx)
        d0 = w[d_idx].sum()
        d1 = (w[d_idx, None] * x[d_idx]).sum(axis=0)
        xbar = np.mean([(cwx[last] - (k / d) * d1) / (cw[last] - (k / d) * d0) for k in range(d)],
                       axis=0)
        for i in d_idx:
            times.append(tt)
            resid.append(x[i] - xbar)
    return np.asarray(times), np.asarray(resid)


def _transform_time(times: np.ndarray, kind: str, res: CoxResult) -> np.ndarray:
    if kind == "identity":
        return times.astype(float)
    if kind == "log":
        return np.log(times)
    if kind == "rank":
        return stats.rankdata(times)
    if kind == "km":
        from sksurv.nonparametric import kaplan_meier_estimator

        kt, ks = kaplan_meier_estimator(res._event, res._time)
        pos = np.searchsorted(kt, times, side="left") - 1
        left = np.where(pos >= 0, ks[np.clip(pos, 0, None)], 1.0)  # S(t−)
        return 1.0 - left
    raise ValueError(f"time transform must be identity|log|rank|km, got {kind!r}")


def schoenfeld_test(res: CoxResult, time_transform: str = "km") -> pd.DataFrame:
    """Proportional-hazards test on scaled Schoenfeld residuals vs g(t) (Grambsch & Therneau
    1994, Biometrika 81:515; the approximation of R ``cox.zph`` < 3.0 and lifelines
    ``proportional_hazard_test``). With residuals ``r_k``, ``d`` events, ``V = I⁻¹`` and
    ``ĝ = g − mean(g)``: per covariate ``T_j = (Σ ĝ_k r*_kj)² / (d V_jj Σ ĝ²)`` with
    ``r* = d r V``, and globally ``T = (Σ ĝ_k r_k)ᵀ V (Σ ĝ_k r_k) d / Σ ĝ²`` (χ², 1 and p df).
    Returns a table with rows per covariate and ``GLOBAL``."""
    times, r = schoenfeld_residuals(res)
    d = len(times)
    g = _transform_time(times, time_transform, res)
    g = g - g.mean()
    v = res.var
    scaled = d * r @ v
    gg = float(g @ g)
    t_j = (g @ scaled) ** 2 / (d * np.diag(v) * gg)
    u = g @ r
    t_glob = float(u @ v @ u * d / gg)
    p = len(res.coef)
    out = pd.DataFrame({"statistic": t_j, "df": 1, "p": stats.chi2.sf(t_j, 1)}, index=list(res.names))
    out.loc["GLOBAL"] = [t_glob, p, stats.chi2.sf(t_glob, p)]
    out["df"] = out["df"].astype(int)
    return out


def breslow_baseline(time: np.ndarray, event: np.ndarray, lp: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Breslow (1972) cumulative baseline hazard ``H0(t) = Σ_{t_i ≤ t} d_i / Σ_{R(t_i)} exp(lp)``
    at the distinct event times. Returns ``(event_times, H0)``."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    lp = np.asarray(lp, float)
    shift = lp.max()
    w = np.exp(lp - shift)
    ut = np.unique(time[event])
    order = np.argsort(time)
    ts, ws = time[order], w[order]
    at_risk = np.cumsum(ws[::-1])[::-1]
    first = np.searchsorted(ts, ut, side="left")
    d = np.array([np.sum((time == t) & event) for t in ut])
    h = np.cumsum(d / at_risk[first]) * np.exp(-shift)
    return ut, h


def survival_at(h_times: np.ndarray, h0: np.ndarray, lp: np.ndarray,
                times: np.ndarray) -> np.ndarray:
    """``S(t | x) = exp(−H0(t) exp(lp))`` for each row of ``lp`` at each of ``times``
    (step function, right-continuous). Shape ``(len(lp), len(times))``."""
    idx = np.searchsorted(h_times, np.asarray(times, float), side="right") - 1
    H = np.where(idx >= 0, h0[np.clip(idx, 0, None)], 0.0)
    return np.exp(-np.outer(np.exp(np.asarray(lp, float)), H))


def cox_score_z(x: np.ndarray, time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Univariable Cox score statistics at β = 0 for every column at once (Breslow risk sets):
    ``U_j = Σ_events (x_ij − x̄_j(R_i))``, ``I_j = Σ_events Var_{R_i}(x_j)``, returns
    ``z_j = U_j / √I_j`` (0 for constant columns) — the log-rank score per feature, used for
    sure independence screening (Fan, Feng & Wu 2010, IMS Collections 6:70). ``O(n p)``."""
    x = np.asarray(x, float)
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    order = np.argsort(-time, kind="mergesort")
    xs, ts, es = x[order], time[order], event[order]
    n = len(ts)
    s0 = np.arange(1, n + 1, dtype=float)
    s1 = np.cumsum(xs, axis=0)
    s2 = np.cumsum(xs * xs, axis=0)
    # risk set of row k (sorted by descending time) = rows up to the last one tied with it
    last = np.searchsorted(-ts, -ts, side="right") - 1
    ev = np.flatnonzero(es)
    r0, r1, r2 = s0[last[ev], None], s1[last[ev]], s2[last[ev]]
    mean = r1 / r0
    u = (xs[ev] - mean).sum(axis=0)
    info = (r2 / r0 - mean**2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(info > 1e-12 * max(len(ev), 1), u / np.sqrt(info), 0.0)
    return z
