"""Intraclass correlation for feature reproducibility (re-segmentation by a second reader)."""

from __future__ import annotations

import numpy as np
import pandas as pd

ICC_KINDS = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)")


def icc(ratings: np.ndarray, kind: str = "ICC(2,1)") -> np.ndarray:
    """Intraclass correlation from two-way ANOVA mean squares (Shrout & Fleiss 1979, Psychol.
    Bull. 86:420; Koo & Li 2016, J. Chiropr. Med. 15:155 — ICC > 0.75 good, > 0.9 excellent).

    ``ratings``: ``[n_targets, k_raters]`` or ``[n_targets, k_raters, n_features]`` (vectorised
    over features). With ``BMS`` rows, ``JMS`` raters, ``EMS`` residual and ``WMS`` within-target
    mean squares:
    ICC(1,1) = (BMS−WMS)/(BMS+(k−1)WMS); ICC(2,1) = (BMS−EMS)/(BMS+(k−1)EMS+k(JMS−EMS)/n);
    ICC(3,1) = (BMS−EMS)/(BMS+(k−1)EMS); the ``k`` forms are the average-measure versions.
    """
    x = np.asarray(ratings, dtype=float)
    squeeze = x.ndim == 2
    if squeeze:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError("ratings must be [n_targets>=2, k_raters>=2(, n_features)]")
    if not np.all(np.isfinite(x)):
        raise ValueError("ratings contain NaN/inf")
    n, k, _ = x.shape
    grand = x.mean(axis=(0, 1))
    row_m = x.mean(axis=1)
    col_m = x.mean(axis=0)
    ss_total = ((x - grand) ** 2).sum(axis=(0, 1))
    ss_rows = k * ((row_m - grand) ** 2).sum(axis=0)
    ss_cols = n * ((col_m - grand) ** 2).sum(axis=0)
    ss_err = ss_total - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    jms = ss_cols / (k - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    wms = (ss_cols + ss_err) / (n * (k - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "ICC(1,1)": (bms - wms) / (bms + (k - 1) * wms),
            "ICC(2,1)": (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n),
            "ICC(3,1)": (bms - ems) / (bms + (k - 1) * ems),
            "ICC(1,k)": (bms - wms) / bms,
            "ICC(2,k)": (bms - ems) / (bms + (jms - ems) / n),
            "ICC(3,k)": (bms - ems) / bms,
        }
    if kind not in out:
        raise ValueError(f"kind must be one of {ICC_KINDS}, got {kind!r}")
    r = np.where(np.isfinite(out[kind]), out[kind], 0.0)  # constant features: no reliability
    return r[0] if squeeze else r


def feature_icc(reader1: pd.DataFrame, reader2: pd.DataFrame, kind: str = "ICC(2,1)") -> pd.Series:
    """ICC of each feature between two readers' feature tables (same rows = same patients/lesions
    in the same order, same columns). Returns a Series indexed by feature name."""
    if list(reader1.columns) != list(reader2.columns):
        raise ValueError("reader tables must have the same feature columns in the same order")
    if len(reader1) != len(reader2):
        raise ValueError(f"reader tables differ in rows: {len(reader1)} vs {len(reader2)}")
    x = np.stack([reader1.to_numpy(float), reader2.to_numpy(float)], axis=1)
    return pd.Series(icc(x, kind), index=reader1.columns, name=kind)


def reproducible_features(reader1: pd.DataFrame, reader2: pd.DataFrame, threshold: float = 0.8,
                          kind: str = "ICC(2,1)") -> list[str]:
    """Features with ICC ≥ ``threshold`` (0.8 as in the seeds; Koo & Li 2016)."""
    s = feature_icc(reader1, reader2, kind)
    return [c for c, v in s.items() if v >= threshold]
