"""Survival estimators in the scikit-survival API (``fit(X, y_structured)``, ``predict`` = risk)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator


class LassoCox(BaseEstimator):
    """LASSO-Cox (Tibshirani 1997, Stat. Med. 16:385) via scikit-survival's coordinate-descent
    ``CoxnetSurvivalAnalysis``; the penalty is chosen by ``cv_folds``-fold CV of Harrell's C over
    the α path: ``rule='max'`` takes the best mean, ``'1se'`` the largest α within one standard
    error of it (Breiman et al. 1984). ``predict`` returns the linear predictor (radiomics score).

    ``prescreen = k`` keeps only the ``k`` features with the largest univariable Cox score
    ``|z|`` (sure independence screening, Fan, Feng & Wu 2010) before the path, recomputed on the
    training rows of every CV fold (no leakage); the others get coefficient 0. ``tol`` is the
    coordinate-descent convergence tolerance of ``CoxnetSurvivalAnalysis``."""

    def __init__(self, l1_ratio: float = 1.0, n_alphas: int = 50, alpha_min_ratio: float = 0.01,
                 cv_folds: int = 5, rule: str = "max", seed: int = 0,
                 prescreen: int | None = None, tol: float = 1e-7) -> None:
        self.l1_ratio = l1_ratio
        self.n_alphas = n_alphas
        self.alpha_min_ratio = alpha_min_ratio
        self.cv_folds = cv_folds
        self.rule = rule
        self.seed = seed
        self.prescreen = prescreen
        self.tol = tol

    def _coxnet(self, alphas=None):
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        return CoxnetSurvivalAnalysis(l1_ratio=self.l1_ratio, n_alphas=self.n_alphas,
                                      alpha_min_ratio=self.alpha_min_ratio, alphas=alphas,
                                      max_iter=100000, tol=self.tol)

    def _screen(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Column indices kept by prescreening (all when off or when ``k ≥ p``)."""
        from radstore.stats.cox import cox_score_z

        if self.prescreen is None or self.prescreen >= X.shape[1]:
            return np.arange(X.shape[1])
        z = np.abs(cox_score_z(X, y["time"], y["event"]))
        return np.sort(np.argsort(-z, kind="mergesort")[: self.prescreen])

    def _fit_path(self, X: np.ndarray, y: np.ndarray, alphas=None):
        """Coxnet path on the screened columns; returns ``(alphas, coef[p, n_alphas])``."""
        keep = self._screen(X, y)
        m = self._coxnet(alphas).fit(X[:, keep], y)
        coef = np.zeros((X.shape[1], m.coef_.shape[1]))
        coef[keep] = m.coef_
        return m.alphas_, coef

    def fit(self, X: np.ndarray, y: np.ndarray) -> LassoCox:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import StratifiedKFold

        from radstore.stats.survival import harrell_c

        if self.rule not in ("max", "1se"):
            raise ValueError(f"rule must be 'max' or '1se', got {self.rule!r}")
        X = np.asarray(X, float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            alphas, path_coef = self._fit_path(X, y)
            scores = np.full((self.cv_folds, len(alphas)), np.nan)
            folds = StratifiedKFold(self.cv_folds, shuffle=True, random_state=self.seed)
            for f, (tr, va) in enumerate(folds.split(X, y["event"])):
                fold_alphas, fold_coef = self._fit_path(X[tr], y[tr], alphas)
                for j in range(len(fold_alphas)):
                    risk = X[va] @ fold_coef[:, j]
                    if y["event"][va].any():
                        try:
                            scores[f, j] = harrell_c(y["time"][va], y["event"][va], risk)
                        except ValueError:
                            scores[f, j] = np.nan
        mean = np.nanmean(scores, axis=0)
        se = np.nanstd(scores, axis=0, ddof=1) / np.sqrt(np.sum(np.isfinite(scores), axis=0))
        best = int(np.nanargmax(mean))
        if self.rule == "1se":
            ok = np.nonzero(mean >= mean[best] - se[best])[0]
            best = int(ok[np.argmax(alphas[ok])])
        self.alpha_ = float(alphas[best])
        self.coef_ = path_coef[:, best].copy()
        self.cv_results_ = pd.DataFrame({"alpha": alphas, "mean_c": mean, "se_c": se,
                                         "n_nonzero": (path_coef != 0).sum(axis=0)})
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, float) @ self.coef_


def factor_groups(names: list[str]) -> dict[str, str]:
    """Dummy columns ``<var>=<level>`` (from :class:`~radstore.models.preprocessing.FrameEncoder`)
    → their variable ``<var>``, so a categorical factor is screened and stepped as one term."""
    return {n: n.split("=", 1)[0] for n in names if "=" in n}


class CoxPH(BaseEstimator):
    """Cox model with the seeds' clinical-factor workflow: univariable screen (Wald p, or the
    LR test of a whole categorical factor, < ``screen_p``; None = keep all), then backward
    stepwise AIC (``stepwise='backward_aic'``) over the screened terms — a factor's dummies are
    dropped together, as R's ``step`` — then the final multivariable fit (Efron ties). ``feature_names``
    labels the covariates in tables and nomograms."""

    def __init__(self, screen_p: float | None = 0.05, stepwise: str | None = "backward_aic",
                 penalizer: float = 0.0, feature_names: list[str] | None = None) -> None:
        self.screen_p = screen_p
        self.stepwise = stepwise
        self.penalizer = penalizer
        self.feature_names = feature_names

    def fit(self, X: np.ndarray, y: np.ndarray) -> CoxPH:
        from radstore.stats.cox import backward_aic, fit_cox, univariable_screen

        X = np.asarray(X, float)
        names = list(self.feature_names) if self.feature_names is not None else [
            f"x{i}" for i in range(X.shape[1])]
        df = pd.DataFrame(X, columns=names)
        t, e = y["time"], y["event"]
        varying = [c for c in names if df[c].std() > 0]
        groups = factor_groups(varying)
        self.univariable_ = univariable_screen(df[varying], t, e, self.screen_p or 1.0, groups)
        cols = (list(self.univariable_.index[self.univariable_["selected"]])
                if self.screen_p is not None else varying)
        if not cols:  # nothing passes: keep the strongest single covariate or factor
            best = self.univariable_["p_factor"].idxmin()
            cols = [c for c in varying if groups.get(c, c) == groups.get(best, best)]
        self.path_ = None
        if self.stepwise == "backward_aic" and len(cols) > 1:
            cols, self.path_ = backward_aic(df[cols], t, e, groups=groups, penalizer=self.penalizer)
        elif self.stepwise not in (None, "backward_aic"):
            raise ValueError(f"stepwise must be 'backward_aic' or None, got {self.stepwise!r}")
        self.selected_ = cols
        self.index_ = np.array([names.index(c) for c in cols], dtype=int)
        self.result_ = fit_cox(df[cols], t, e, penalizer=self.penalizer)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, float)[:, self.index_] @ self.result_.coef
