"""Transformers (scikit-learn API) that turn raw training-set rows into a model matrix, all fitted
on training rows only: column selection with embedding expansion and categorical encoding, ICC,
variance and correlation filters."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

KEY_COLUMNS = ("cohort_id", "patient_id", "split")
CLINICAL_PREFIX = "clinical__"
SCORE_PREFIX = "score__"


def feature_columns(columns: list[str], views: tuple[str, ...] | None = None) -> list[str]:
    """Feature columns ``<view>__<feature>`` (not clinical, not model scores), optionally only of
    the given ``views`` (``<feature_set>__<phase>`` names or prefixes)."""
    out = []
    for c in columns:
        if "__" not in c or c.startswith((CLINICAL_PREFIX, SCORE_PREFIX)):
            continue
        if views and not any(c.startswith(v + "__") or c.split("__")[0] == v for v in views):
            continue
        out.append(c)
    return out


def select_input_columns(columns: list[str], inputs: tuple[str, ...],
                         views: tuple[str, ...] | None = None,
                         exclude: tuple[str, ...] = ()) -> list[str]:
    """Raw columns a model reads: ``features`` → feature columns, ``clinical`` → ``clinical__*``,
    any other name → the upstream model's score column ``score__<name>``."""
    cols: list[str] = []
    for i in inputs:
        if i == "features":
            cols += feature_columns(columns, views)
        elif i == "clinical":
            cols += [c for c in columns if c.startswith(CLINICAL_PREFIX)]
        else:
            cols.append(SCORE_PREFIX + i)
    return [c for c in cols if c not in exclude]


class FrameEncoder(BaseEstimator, TransformerMixin):
    """DataFrame → float matrix. List columns (deep embeddings, ``<view>__embedding``) are expanded
    to ``<col>_<i>``; string/categorical columns are one-hot encoded with the training categories
    (first level dropped, unseen levels → all zeros); missing numbers are imputed with the training
    median. ``columns`` fixes the raw columns read."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y=None) -> FrameEncoder:
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise KeyError(f"training set lacks columns {missing[:5]}")
        self.list_len_: dict[str, int] = {}
        self.categories_: dict[str, list[str]] = {}
        for c in self.columns:
            s = X[c]
            first = s.dropna().iloc[0] if s.notna().any() else None
            if isinstance(first, list | np.ndarray):
                self.list_len_[c] = len(first)
            elif s.dtype == object or isinstance(s.dtype, pd.CategoricalDtype):
                self.categories_[c] = sorted(str(v) for v in s.dropna().unique())
        names: list[str] = []
        for c in self.columns:
            if c in self.list_len_:
                names += [f"{c}_{i}" for i in range(self.list_len_[c])]
            elif c in self.categories_:
                names += [f"{c}={v}" for v in self.categories_[c][1:]]
            else:
                names.append(c)
        self.feature_names_out_ = np.asarray(names, dtype=object)
        raw = self._raw(X)
        with np.errstate(all="ignore"):
            med = np.nanmedian(raw, axis=0) if raw.size else np.zeros(raw.shape[1])
        self.col_median_ = np.where(np.isfinite(med), med, 0.0)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        out = self._raw(X)
        return np.where(np.isnan(out), self.col_median_, out)

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        blocks = []
        for c in self.columns:
            if c not in X.columns:
                raise KeyError(f"input lacks column {c!r}")
            s = X[c]
            if c in self.list_len_:
                n = self.list_len_[c]
                arr = np.full((len(s), n), np.nan)
                for i, v in enumerate(s.to_numpy()):
                    if v is not None and not (np.isscalar(v) and pd.isna(v)):
                        arr[i] = np.asarray(v, dtype=float)
                blocks.append(arr)
            elif c in self.categories_:
                vals = s.astype("string").to_numpy()
                blocks.append(np.stack([(vals == lvl) for lvl in self.categories_[c][1:]], axis=1)
                              .astype(float) if len(self.categories_[c]) > 1
                              else np.zeros((len(s), 0)))
            else:
                v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
                blocks.append(np.where(np.isfinite(v), v, np.nan)[:, None])
        return np.hstack(blocks) if blocks else np.zeros((len(X), 0))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return self.feature_names_out_


class IccFilter(BaseEstimator, TransformerMixin):
    """Keep features whose ICC between reader 1 and reader 2 is ≥ ``threshold`` (Shrout & Fleiss
    1979; Koo & Li 2016). ``pairs`` maps a reader-1 column index to its reader-2 column index in
    the encoded matrix; reader-2 columns are always dropped, unpaired columns are kept."""

    def __init__(self, pairs: dict[int, int], threshold: float = 0.8, kind: str = "ICC(2,1)") -> None:
        self.pairs = pairs
        self.threshold = threshold
        self.kind = kind

    def fit(self, X: np.ndarray, y=None) -> IccFilter:
        from radstore.stats.reliability import icc

        X = np.asarray(X, float)
        r1 = np.array(list(self.pairs.keys()), dtype=int)
        r2 = np.array(list(self.pairs.values()), dtype=int)
        self.icc_ = (icc(np.stack([X[:, r1], X[:, r2]], axis=1), self.kind)
                     if len(r1) else np.array([]))
        drop = set(r2.tolist()) | set(r1[self.icc_ < self.threshold].tolist())
        self.keep_ = np.array([i for i in range(X.shape[1]) if i not in drop], dtype=int)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, float)[:, self.keep_]


class CorrelationFilter(BaseEstimator, TransformerMixin):
    """Greedy Pearson-correlation filter: walking columns in order of decreasing variance, drop any
    column with ``|r| > threshold`` to an already kept one (the usual radiomics redundancy step)."""

    def __init__(self, threshold: float = 0.9) -> None:
        self.threshold = threshold

    def fit(self, X: np.ndarray, y=None) -> CorrelationFilter:
        X = np.asarray(X, float)
        if X.shape[1] <= 1 or self.threshold >= 1.0:
            self.keep_ = np.arange(X.shape[1])
            return self
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.abs(np.corrcoef(X, rowvar=False))
        r = np.nan_to_num(r)
        order = np.argsort(-X.var(axis=0), kind="mergesort")
        kept: list[int] = []
        for j in order:
            if not kept or r[j, kept].max() <= self.threshold:
                kept.append(int(j))
        self.keep_ = np.sort(np.asarray(kept, dtype=int))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, float)[:, self.keep_]


class UnivariateSelector(BaseEstimator, TransformerMixin):
    """Keep features whose two-group test p-value (Welch t-test or Mann–Whitney U) between y = 1
    and y = 0 is < ``p_max``; at least ``min_features`` and at most ``max_features`` of the smallest
    p-values. A feature constant over the fold (to rounding: its range within ``64 eps`` of its
    magnitude) has p = 1, as has an undefined p-value. Fitted inside each CV fold when used in a
    Pipeline (no selection leakage; Ambroise & McLachlan 2002, PNAS 99:6562)."""

    def __init__(self, test: str = "ttest", p_max: float = 0.05, min_features: int = 1,
                 max_features: int | None = 50) -> None:
        self.test = test
        self.p_max = p_max
        self.min_features = min_features
        self.max_features = max_features

    def fit(self, X: np.ndarray, y: np.ndarray) -> UnivariateSelector:
        from scipy import stats

        X = np.asarray(X, float)
        y = np.asarray(y).astype(int)
        a, b = X[y == 1], X[y == 0]
        if self.test not in ("ttest", "mannwhitney"):
            raise ValueError(f"test must be 'ttest' or 'mannwhitney', got {self.test!r}")
        # SciPy's "precision loss" warning flags groups of (nearly) equal values: constant features
        # get p = 1 below, and a group constant against a different one is rightly p ~ 0
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
            if self.test == "ttest":
                p = stats.ttest_ind(a, b, axis=0, equal_var=False).pvalue
            else:
                p = stats.mannwhitneyu(a, b, axis=0, alternative="two-sided").pvalue
        flat = np.ptp(X, axis=0) <= 64 * np.finfo(float).eps * np.abs(X).max(axis=0, initial=0.0)
        p = np.where(np.isfinite(p) & ~flat, p, 1.0)
        order = np.argsort(p, kind="mergesort")
        n_sig = int((p < self.p_max).sum())
        n = max(self.min_features, n_sig)
        if self.max_features is not None:
            n = min(n, self.max_features)
        self.pvalues_ = p
        self.keep_ = np.sort(order[: max(1, min(n, X.shape[1]))])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, float)[:, self.keep_]
