"""Figures (matplotlib, Agg): Kaplan–Meier by risk group, ROC, calibration, decision curves and
the Cox nomogram. Each function returns a Figure; callers save it as PNG."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def km_plot(time: np.ndarray, event: np.ndarray, high: np.ndarray, title: str, p: float | None = None):
    """Kaplan–Meier curves of the low/high risk groups with the log-rank p."""
    from sksurv.nonparametric import kaplan_meier_estimator

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    for g, label in ((0, "low risk"), (1, "high risk")):
        sel = np.asarray(high) == g
        if sel.sum() == 0:
            continue
        t, s = kaplan_meier_estimator(np.asarray(event)[sel].astype(bool), np.asarray(time)[sel])
        ax.step(np.r_[0, t], np.r_[1, s], where="post", label=f"{label} (n={sel.sum()})")
    ax.set_xlabel("time")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    ax.set_title(title + (f"  log-rank p={p:.3g}" if p is not None and np.isfinite(p) else ""))
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def roc_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str):
    """ROC curves ``{label: (y, score)}`` with their AUCs."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for label, (y, s) in curves.items():
        if np.min(y) == np.max(y):
            continue
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{label} AUC={roc_auc_score(y, s):.2f}")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def calibration_plot(tables: dict[str, pd.DataFrame], title: str, x: str = "predicted",
                     y: str = "observed"):
    """Predicted vs observed per group, one line per cohort/horizon, with the identity line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for label, t in tables.items():
        ax.plot(t[x], t[y], "o-", label=label)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("observed")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def decision_curve_plot(curves: dict[str, pd.DataFrame], title: str):
    """Net benefit vs threshold probability, with treat-all / treat-none references."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4))
    ref = None
    for label, t in curves.items():
        ax.plot(t["threshold"], t["net_benefit"], label=label)
        ref = t
    if ref is not None:
        ax.plot(ref["threshold"], ref["treat_all"], "k--", lw=0.8, label="treat all")
        ax.axhline(0, color="k", lw=0.8, label="treat none")
        top = max(0.05, float(np.nanmax([c["net_benefit"].max() for c in curves.values()])))
        ax.set_ylim(-0.05, top * 1.1)
    ax.set_xlabel("threshold probability")
    ax.set_ylabel("net benefit")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def nomogram(names: list[str], coef: np.ndarray, x_train: np.ndarray, baseline_h0_at: dict[float, float],
             title: str = "nomogram"):
    """Cox nomogram (Iasonos et al. 2008, J. Clin. Oncol. 26:1364): each covariate's contribution
    ``β_j x_j`` is mapped to points, 100 points = the largest contribution range; total points map
    back to the linear predictor ``lp`` and to ``S(h) = exp(−H0(h) e^{lp})`` for each horizon ``h``
    (``baseline_h0_at = {h: H0(h)}``)."""
    plt = _plt()
    x = np.asarray(x_train, float)
    coef = np.asarray(coef, float)
    lo, hi = x.min(axis=0), x.max(axis=0)
    contrib_lo = np.minimum(coef * lo, coef * hi)
    span = np.abs(coef) * (hi - lo)
    scale = 100.0 / span.max() if span.max() > 0 else 1.0
    rows = len(names) + 2 + len(baseline_h0_at)
    fig, ax = plt.subplots(figsize=(8, 0.55 * rows + 1))
    ax.set_xlim(-5, 105)
    ax.set_ylim(-rows, 1)
    ax.axis("off")

    def axis_line(row: int, label: str, positions: np.ndarray, ticks: list[str]) -> None:
        y = -row
        ax.plot([positions.min(), positions.max()], [y, y], "k-", lw=1)
        for p, t in zip(positions, ticks, strict=True):
            ax.plot([p, p], [y, y + 0.12], "k-", lw=1)
            ax.text(p, y + 0.18, t, ha="center", va="bottom", fontsize=7)
        ax.text(-6, y, label, ha="right", va="center", fontsize=8)

    axis_line(0, "Points", np.linspace(0, 100, 11), [f"{v:.0f}" for v in np.linspace(0, 100, 11)])
    for j, n in enumerate(names):
        vals = np.unique(x[:, j]) if len(np.unique(x[:, j])) <= 3 else np.linspace(lo[j], hi[j], 5)
        pts = (coef[j] * vals - contrib_lo[j]) * scale
        axis_line(j + 1, n, pts, [f"{v:.3g}" for v in vals])
    max_total = float(span.sum() * scale)
    total_ticks = np.linspace(0, max_total, 6)
    pos = total_ticks / max_total * 100 if max_total > 0 else total_ticks
    axis_line(len(names) + 1, "Total points", pos, [f"{v:.0f}" for v in total_ticks])
    lp_min = float(contrib_lo.sum())
    fine = np.linspace(0, max_total, 200)
    for k, (h, h0) in enumerate(baseline_h0_at.items()):
        lp = lp_min + fine / scale
        s = np.exp(-h0 * np.exp(lp))
        want = [v for v in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1) if s.min() <= v <= s.max()]
        if not want:
            continue
        p_at = np.interp(want, s[::-1], fine[::-1]) / max_total * 100
        axis_line(len(names) + 2 + k, f"S({h:g})", np.asarray(p_at), [f"{v:.1f}" for v in want])
    ax.set_title(title)
    fig.tight_layout()
    return fig
