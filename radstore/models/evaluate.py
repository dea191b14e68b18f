"""Evaluate fitted study models on each cohort (train / internal / external) and build the seeds'
results table (model × cohort). Cutoffs come from training and are locked for validation."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from radstore.models.study_model import StudyModel, labels
from radstore.study import StudySpec

COHORTS = ("train", "internal", "external")


@dataclass
class CohortEval:
    model: str
    cohort: str
    metrics: dict[str, float]
    score: np.ndarray
    y: np.ndarray


def evaluate(sm: StudyModel, spec: StudySpec, frame: pd.DataFrame, n_boot: int = 1000,
             seed: int = 0) -> list[CohortEval]:
    """Metrics of ``sm`` on every cohort present in ``frame['split']``."""
    scored = sm.with_scores(frame)
    train = scored[scored["split"] == "train"]
    ytr = labels(train, spec)
    out = []
    for cohort in COHORTS:
        part = scored[scored["split"] == cohort]
        if len(part) < 5:
            continue
        y = labels(part, spec)
        s = part["score__" + sm.target].to_numpy()
        if spec.endpoint.kind == "survival":
            m = _survival_metrics(sm, part, y, s, ytr, spec, n_boot, seed)
        else:
            m = _binary_metrics(sm, y, s, n_boot, seed)
        out.append(CohortEval(sm.target, cohort, m, s, y))
    return out


def _survival_metrics(sm, part, y, s, ytr, spec, n_boot, seed) -> dict[str, float]:
    from radstore.stats import survival as sv

    t, e = y["time"], y["event"]
    m: dict[str, float] = {"n": len(y), "events": int(e.sum())}
    if e.sum() == 0:
        return m
    c = sv.concordance_ci(t, e, s, n_boot=n_boot, seed=seed)
    m.update(c_index=c.estimate, c_index_lo=c.lo, c_index_hi=c.hi)
    try:
        u = sv.concordance_ci(t, e, s, n_boot=max(n_boot // 5, 50), seed=seed, method="uno",
                              train_time=ytr["time"], train_event=ytr["event"])
        m.update(uno_c_index=u.estimate, uno_c_index_lo=u.lo, uno_c_index_hi=u.hi)
    except ValueError:
        pass
    g = sv.risk_group_hr(t, e, s, sm.model.cutoff)
    m.update(hr=g.hr, hr_lo=g.hr_lo, hr_hi=g.hr_hi, logrank_p=g.logrank_p, n_high=g.n_high)
    hz = np.asarray(spec.endpoint.horizons, float)
    try:
        tt, auc, iauc = sv.time_dependent_auc(ytr["time"], ytr["event"], t, e, s, hz)
        for h, a in zip(tt, auc, strict=True):
            m[f"td_auc_{h:g}"] = float(a)
        m["iauc"] = iauc
    except ValueError:
        pass
    with contextlib.suppress(ValueError):
        m["ibs"] = sv.integrated_brier(ytr["time"], ytr["event"], t, e,
                                       lambda grid: sm.model.survival(part, grid))
    return m


def evaluate_landmarks(sm: StudyModel, spec: StudySpec, frame: pd.DataFrame,
                       landmarks: tuple[float, ...] | None = None, n_boot: int = 1000,
                       seed: int = 0) -> list[CohortEval]:
    """Landmark analysis (van Houwelingen 2007, Scand. J. Stat. 34:70) of a survival model: for
    each landmark ``L`` (default ``spec.endpoint.landmarks``) and cohort, the patients still at
    risk at ``L`` with time measured from ``L``; Harrell's C with bootstrap CI and the HR /
    log-rank of the training-locked risk groups. Cohort labels are ``<cohort>_lm<L>``."""
    from radstore.stats import survival as sv

    ep = spec.endpoint
    if ep.kind != "survival":
        raise ValueError("landmark analysis needs a survival endpoint")
    lms = ep.landmarks if landmarks is None else landmarks
    time_col, event_col = ep.survival_columns()
    scored = sm.with_scores(frame)
    out = []
    for lm in lms:
        at_risk = sv.landmark(scored, float(lm), time_col, event_col)
        for cohort in COHORTS:
            part = at_risk[at_risk["split"] == cohort]
            if len(part) < 5:
                continue
            y = labels(part, spec)
            s = part["score__" + sm.target].to_numpy()
            t, e = y["time"], y["event"]
            m: dict[str, float] = {"n": len(y), "events": int(e.sum()), "landmark": float(lm)}
            if e.sum() > 0:
                with contextlib.suppress(ValueError):
                    c = sv.concordance_ci(t, e, s, n_boot=n_boot, seed=seed)
                    m.update(c_index=c.estimate, c_index_lo=c.lo, c_index_hi=c.hi)
                g = sv.risk_group_hr(t, e, s, sm.model.cutoff)
                m.update(hr=g.hr, hr_lo=g.hr_lo, hr_hi=g.hr_hi, logrank_p=g.logrank_p,
                         n_high=g.n_high)
            out.append(CohortEval(sm.target, f"{cohort}_lm{lm:g}", m, s, y))
    return out


def _binary_metrics(sm, y, s, n_boot, seed) -> dict[str, float]:
    from radstore.stats import classification as cl

    m: dict[str, float] = {"n": len(y), "positives": int(y.sum())}
    if y.min() == y.max():
        return m
    a = cl.auc_ci(y, s)
    cm = cl.confusion(y, s, sm.model.cutoff)
    hl = cl.hosmer_lemeshow(y, s, groups=min(10, max(3, len(y) // 10)))
    m.update(auc=a.auc, auc_lo=a.lo, auc_hi=a.hi, acc=cm.acc, sen=cm.sen, spc=cm.spc,
             tp=cm.tp, fp=cm.fp, tn=cm.tn, fn=cm.fn, hosmer_lemeshow_p=hl.p)
    return m


def results_table(evals: list[CohortEval], task: str) -> pd.DataFrame:
    """One row per model × cohort with formatted columns as in the seeds' tables, plus the raw
    numbers (Parquet keeps both)."""
    rows = []
    for ev in evals:
        m = ev.metrics
        row: dict[str, object] = {"model": ev.model, "cohort": ev.cohort, "n": int(m["n"])}
        if task == "survival":
            row["events"] = m.get("events")
            row["C-index (95% CI)"] = _fmt(m, "c_index")
            row["Uno C (95% CI)"] = _fmt(m, "uno_c_index")
            row["HR (95% CI)"] = _fmt(m, "hr", digits=2)
            row["log-rank p"] = _p(m.get("logrank_p"))
            row["iAUC"] = _num(m.get("iauc"))
            row["IBS"] = _num(m.get("ibs"))
        else:
            row["AUC (95% CI)"] = _fmt(m, "auc")
            for k in ("acc", "sen", "spc"):
                row[k.upper()] = _num(m.get(k), 2)
            row["HL p"] = _p(m.get("hosmer_lemeshow_p"))
        rows.append(row)
    return pd.DataFrame(rows)


def _num(v, digits: int = 3) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _p(v) -> str:
    if v is None or not np.isfinite(v):
        return "—"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def _fmt(m: dict, key: str, digits: int = 2) -> str:
    if key not in m or not np.isfinite(m[key]):
        return "—"
    return f"{m[key]:.{digits}f} ({m[key + '_lo']:.{digits}f}–{m[key + '_hi']:.{digits}f})"


def delong_table(evals: list[CohortEval]) -> pd.DataFrame:
    """Pairwise DeLong tests between models on each cohort (binary endpoints)."""
    from radstore.stats.classification import delong_test

    rows = []
    by_cohort: dict[str, list[CohortEval]] = {}
    for ev in evals:
        by_cohort.setdefault(ev.cohort, []).append(ev)
    for cohort, evs in by_cohort.items():
        for i in range(len(evs)):
            for j in range(i + 1, len(evs)):
                a, b = evs[i], evs[j]
                if a.y.min() == a.y.max():
                    continue
                r = delong_test(a.y, a.score, b.score)
                rows.append({"cohort": cohort, "model_a": a.model, "model_b": b.model,
                             "auc_a": r.auc_a, "auc_b": r.auc_b, "z": r.z, "p": r.p})
    return pd.DataFrame(rows)


def monte_carlo_cv(spec: StudySpec, frame: pd.DataFrame, model: str, n_splits: int = 100,
                   test_size: float = 0.3, seed: int = 0) -> pd.DataFrame:
    """Monte-Carlo CV (repeated random train/test splits of the ``train`` rows; seed 004 uses 100):
    each split refits the model (and its upstream) from scratch and scores the held-out rows
    (C-index or AUC). Returns one row per split; summarise with ``stats.survival.mean_se``."""
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    from radstore.models.study_model import fit_study
    from radstore.progress import track
    from radstore.stats.classification import auc_ci
    from radstore.stats.survival import harrell_c

    base = frame[frame["split"] == "train"].reset_index(drop=True)
    y = labels(base, spec)
    strat = y["event"] if spec.endpoint.kind == "survival" else y
    try:
        splitter = StratifiedShuffleSplit(n_splits, test_size=test_size, random_state=seed)
        splits = list(splitter.split(base, strat))
    except ValueError:
        splits = list(ShuffleSplit(n_splits, test_size=test_size, random_state=seed).split(base))
    rows = []
    for k, (tr, te) in enumerate(track(splits, f"MC-CV {model}", total=len(splits))):
        f = base.copy()
        f["split"] = "test"
        f.loc[tr, "split"] = "train"
        sm = fit_study(spec, f, seed=seed + k, only=[model])[model]
        held = f.iloc[te]
        s = sm.with_scores(held)["score__" + model].to_numpy()
        yt = labels(held, spec)
        if spec.endpoint.kind == "survival":
            v = harrell_c(yt["time"], yt["event"], s) if yt["event"].any() else float("nan")
        else:
            v = auc_ci(yt, s).auc if 0 < yt.sum() < len(yt) else float("nan")
        rows.append({"split": k, "metric": v})
    return pd.DataFrame(rows)
