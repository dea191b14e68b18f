"""Binary-outcome statistics: AUC with DeLong CI and test, Youden cutoff, confusion metrics,
Hosmer–Lemeshow calibration and decision curves. Arrays in, numbers/tables out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

_Z95 = stats.norm.ppf(0.975)


def _check_binary(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y).astype(int).ravel()
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError("labels must be 0/1")
    if y.min() == y.max():
        raise ValueError("AUC needs both classes; got only one")
    return y


def delong_components(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of ``k`` score vectors and their DeLong covariance matrix, by the fast midrank
    algorithm (Sun & Xu 2014, IEEE Signal Process. Lett. 21:1389; DeLong et al. 1988,
    Biometrics 44:837).

    With ``m`` positives and ``n`` negatives, ``T_z`` the midranks in the pooled sample and
    ``T_x``, ``T_y`` within each class: ``AUC = (ΣT_z[pos]/m − (m+1)/2)/n``, structural components
    ``V10 = (T_z[pos] − T_x)/n``, ``V01 = 1 − (T_z[neg] − T_y)/m``, ``S = S10/m + S01/n``.
    ``scores``: shape ``(n_samples,)`` or ``(k, n_samples)``. Returns ``(auc[k], cov[k, k])``.
    """
    y = _check_binary(y)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    pos, neg = s[:, y == 1], s[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    tx = np.apply_along_axis(stats.rankdata, 1, pos)
    ty = np.apply_along_axis(stats.rankdata, 1, neg)
    tz = np.apply_along_axis(stats.rankdata, 1, np.concatenate([pos, neg], axis=1))
    auc = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return auc, s10 / m + s01 / n


@dataclass(frozen=True)
class AucCI:
    auc: float
    lo: float
    hi: float
    se: float


def auc_ci(y: np.ndarray, score: np.ndarray, level: float = 0.95) -> AucCI:
    """AUC with a DeLong (1988) normal-approximation CI, clipped to [0, 1]."""
    auc, cov = delong_components(y, score)
    se = float(np.sqrt(max(cov[0, 0], 0.0)))
    z = stats.norm.ppf(0.5 + level / 2)
    a = float(auc[0])
    return AucCI(a, max(0.0, a - z * se), min(1.0, a + z * se), se)


@dataclass(frozen=True)
class DelongResult:
    auc_a: float
    auc_b: float
    z: float
    p: float


def delong_test(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> DelongResult:
    """Two-sided DeLong test of AUC_a = AUC_b for two scores on the same cases (DeLong et al.
    1988; fast algorithm Sun & Xu 2014): ``z = (A_a − A_b)/sqrt(S_aa + S_bb − 2 S_ab)``."""
    auc, cov = delong_components(y, np.vstack([score_a, score_b]))
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    if var <= 1e-15:
        z = 0.0 if np.isclose(auc[0], auc[1]) else np.inf * np.sign(auc[0] - auc[1])
    else:
        z = float((auc[0] - auc[1]) / np.sqrt(var))
    p = float(2 * stats.norm.sf(abs(z)))
    return DelongResult(float(auc[0]), float(auc[1]), float(z), p)


def youden_cutoff(y: np.ndarray, score: np.ndarray) -> float:
    """Threshold maximising Youden's J = sensitivity + specificity − 1 (Youden 1950, Cancer 3:32);
    predictions are positive when ``score >= cutoff``."""
    from sklearn.metrics import roc_curve

    y = _check_binary(y)
    fpr, tpr, thr = roc_curve(y, score)
    finite = np.isfinite(thr)
    j = np.where(finite, tpr - fpr, -np.inf)
    return float(thr[int(np.argmax(j))])


@dataclass(frozen=True)
class Confusion:
    tn: int
    fp: int
    fn: int
    tp: int

    @property
    def acc(self) -> float:
        return (self.tp + self.tn) / max(self.tp + self.tn + self.fp + self.fn, 1)

    @property
    def sen(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def spc(self) -> float:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else float("nan")


def confusion(y: np.ndarray, score: np.ndarray, cutoff: float) -> Confusion:
    """Confusion matrix of ``score >= cutoff`` against ``y``; ACC, SEN (recall), SPC properties."""
    y = np.asarray(y).astype(int)
    pred = np.asarray(score) >= cutoff
    return Confusion(
        tn=int(np.sum(~pred & (y == 0))), fp=int(np.sum(pred & (y == 0))),
        fn=int(np.sum(~pred & (y == 1))), tp=int(np.sum(pred & (y == 1))),
    )


@dataclass(frozen=True)
class HosmerLemeshow:
    statistic: float
    df: int
    p: float
    table: pd.DataFrame


def hosmer_lemeshow(y: np.ndarray, prob: np.ndarray, groups: int = 10) -> HosmerLemeshow:
    """Hosmer–Lemeshow goodness-of-fit test (Hosmer & Lemeshow 1980, Commun. Stat. A9:1043).

    Cases sorted by predicted probability are split into ``groups`` near-equal groups;
    ``H = Σ_g (O_g − E_g)² / (E_g (1 − E_g/n_g))`` with ``O_g`` observed events, ``E_g = Σ p``;
    ``H ~ χ²(groups − 2)``.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(prob, dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    order = np.argsort(p, kind="mergesort")
    rows = []
    for idx in np.array_split(order, groups):
        if len(idx) == 0:
            continue
        rows.append({"n": len(idx), "observed": y[idx].sum(), "expected": p[idx].sum(),
                     "mean_predicted": p[idx].mean()})
    tab = pd.DataFrame(rows)
    e = tab["expected"].to_numpy()
    denom = e * (1 - e / tab["n"].to_numpy())
    h = float(np.sum(np.where(denom > 0, (tab["observed"].to_numpy() - e) ** 2 / np.where(
        denom > 0, denom, 1.0), 0.0)))
    df = len(tab) - 2
    return HosmerLemeshow(h, df, float(stats.chi2.sf(h, df)), tab)


def calibration_table(y: np.ndarray, prob: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Observed event rate vs mean predicted probability in quantile bins (reliability diagram)."""
    hl = hosmer_lemeshow(y, prob, groups=bins)
    t = hl.table.copy()
    t["observed_rate"] = t["observed"] / t["n"]
    return t[["n", "mean_predicted", "observed_rate"]]


def decision_curve(y: np.ndarray, prob: np.ndarray,
                   thresholds: np.ndarray | None = None) -> pd.DataFrame:
    """Net benefit of treating when ``prob >= p_t`` (Vickers & Elkin 2006, Med. Decis. Making
    26:565): ``NB = TP/n − FP/n · p_t/(1 − p_t)``, with the treat-all and treat-none references."""
    y = np.asarray(y).astype(int)
    prob = np.asarray(prob, dtype=float)
    th = np.linspace(0.01, 0.99, 99) if thresholds is None else np.asarray(thresholds, float)
    n = len(y)
    prev = y.mean()
    rows = []
    for pt in th:
        pred = prob >= pt
        tp = np.sum(pred & (y == 1)) / n
        fp = np.sum(pred & (y == 0)) / n
        w = pt / (1 - pt)
        rows.append({"threshold": pt, "net_benefit": tp - fp * w,
                     "treat_all": prev - (1 - prev) * w, "treat_none": 0.0})
    return pd.DataFrame(rows)
