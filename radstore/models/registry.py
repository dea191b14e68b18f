"""Model kinds a study spec may name (``models[].kind``) and their validated ``params``.

| kind             | task     | what it builds |
|------------------|----------|----------------|
| ``lasso_cox``    | survival | filters → standardise → [PCA] → LASSO-Cox, CV-chosen α (max or 1-SE) |
| ``cox``          | survival | univariable Cox screen (p < ``screen_p``) → backward stepwise AIC → Cox |
| ``svm``          | binary   | filters → standardise → univariate selection per fold → SVM, grid |
| ``lasso_logistic``| binary  | same with L1 logistic regression, grid over ``C`` |
| ``logistic``     | binary   | standardise → logistic regression (fusion: model scores + clinical) |

Common feature-reduction params (``lasso_cox``, ``svm``, ``lasso_logistic``): ``views`` (restrict
``features`` to these ``<feature_set>__<phase>`` views), ``icc_pairs`` ({reader-1 view: reader-2
view}; reader-2 views are never model inputs) with ``icc_threshold`` (0.8) and ``icc_kind``,
``variance_threshold`` (0.0), ``corr_threshold`` (0.9; 1.0 disables), ``pca_components`` (None).
``lasso_cox`` also takes ``prescreen`` (keep the top-k features by univariable Cox score inside
each fold before the path; None = off) and ``tol`` (coordinate-descent tolerance, 1e-7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReductionParams(_Params):
    views: tuple[str, ...] | None = None
    icc_pairs: dict[str, str] = Field(default_factory=dict)
    icc_threshold: float = Field(0.8, ge=0, le=1)
    icc_kind: str = "ICC(2,1)"
    variance_threshold: float = Field(0.0, ge=0)
    corr_threshold: float = Field(0.9, gt=0, le=1)
    pca_components: int | None = Field(None, ge=1)


class LassoCoxParams(ReductionParams):
    l1_ratio: float = Field(1.0, gt=0, le=1)
    n_alphas: int = Field(50, ge=5)
    alpha_min_ratio: float = Field(0.01, gt=0, lt=1)
    cv_folds: int = Field(5, ge=2)
    rule: Literal["max", "1se"] = "max"
    cutoff: Literal["median", "maxstat"] = "median"
    prescreen: int | None = Field(None, ge=1)
    tol: float = Field(1e-7, gt=0, lt=1)


class CoxParams(_Params):
    screen_p: float | None = Field(0.05, gt=0, le=1)
    stepwise: Literal["backward_aic"] | None = "backward_aic"
    penalizer: float = Field(0.0, ge=0)
    cutoff: Literal["median", "maxstat"] = "median"


class SvmParams(ReductionParams):
    test: Literal["ttest", "mannwhitney"] = "ttest"
    p_max: float = Field(0.05, gt=0, le=1)
    max_features: int | None = Field(20, ge=1)
    kernel: Literal["linear", "rbf"] = "rbf"
    C: tuple[float, ...] = (0.1, 1.0, 10.0)
    gamma: tuple[str | float, ...] = ("scale",)
    cv_folds: int = Field(5, ge=2)
    class_weight: Literal["balanced"] | None = None


class LassoLogisticParams(ReductionParams):
    test: Literal["ttest", "mannwhitney"] = "ttest"
    p_max: float = Field(0.05, gt=0, le=1)
    max_features: int | None = Field(50, ge=1)
    C: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    cv_folds: int = Field(5, ge=2)
    class_weight: Literal["balanced"] | None = None


class LogisticParams(_Params):
    C: float = Field(1e4, gt=0)
    class_weight: Literal["balanced"] | None = None


@dataclass(frozen=True)
class Kind:
    name: str
    task: Literal["survival", "binary"]
    params: type[_Params]
    build: Callable[[list[str], Any, int, list[str] | None], Any]
    description: str


def _reduction_steps(cols: list[str], p: ReductionParams, encoded_names: list[str] | None):
    from sklearn.decomposition import PCA
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.preprocessing import StandardScaler

    from radstore.models.preprocessing import CorrelationFilter, FrameEncoder, IccFilter

    steps: list[tuple[str, Any]] = [("encode", FrameEncoder(cols))]
    if p.icc_pairs:
        if encoded_names is None:
            raise ValueError("icc_pairs needs the encoded feature names")
        pairs = {}
        idx = {n: i for i, n in enumerate(encoded_names)}
        for v1, v2 in p.icc_pairs.items():
            for n, i in idx.items():
                if n.startswith(v1 + "__"):
                    partner = v2 + n[len(v1):]
                    if partner in idx:
                        pairs[i] = idx[partner]
        if not pairs:
            raise ValueError(f"icc_pairs {p.icc_pairs} matched no feature columns")
        steps.append(("icc", IccFilter(pairs, p.icc_threshold, p.icc_kind)))
    steps += [("variance", VarianceThreshold(p.variance_threshold)), ("scale", StandardScaler())]
    if p.corr_threshold < 1.0:
        steps.append(("corr", CorrelationFilter(p.corr_threshold)))
    if p.pca_components:
        steps.append(("pca", PCA(n_components=p.pca_components, random_state=0)))
    return steps


def _lasso_cox(cols, p: LassoCoxParams, seed, names):
    from sklearn.pipeline import Pipeline

    from radstore.models.estimators import LassoCox

    model = LassoCox(p.l1_ratio, p.n_alphas, p.alpha_min_ratio, p.cv_folds, p.rule, seed,
                     p.prescreen, p.tol)
    return Pipeline([*_reduction_steps(cols, p, names), ("model", model)])


def _cox(cols, p: CoxParams, seed, names):
    from sklearn.pipeline import Pipeline

    from radstore.models.estimators import CoxPH
    from radstore.models.preprocessing import FrameEncoder

    return Pipeline([("encode", FrameEncoder(cols)),
                     ("model", CoxPH(p.screen_p, p.stepwise, p.penalizer, names))])


def _grid(cols, p, seed, names, clf, grid):
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline

    from radstore.models.preprocessing import UnivariateSelector

    select = UnivariateSelector(p.test, p.p_max, 1, p.max_features)
    pipe = Pipeline([*_reduction_steps(cols, p, names), ("select", select), ("clf", clf)])
    return GridSearchCV(pipe, grid, scoring="roc_auc", refit=True,
                        cv=StratifiedKFold(p.cv_folds, shuffle=True, random_state=seed))


def _svm(cols, p: SvmParams, seed, names):
    """SVM whose probabilities are Platt-scaled (a sigmoid on the decision values, fitted on 5-fold
    cross-validated ones; the SVM itself on all rows): what ``SVC(probability=True)`` did, which
    scikit-learn 1.9 deprecates and 1.11 removes."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    svc = SVC(kernel=p.kernel, class_weight=p.class_weight, random_state=seed)
    clf = CalibratedClassifierCV(svc, method="sigmoid", cv=5, ensemble=False)
    grid: dict[str, list[str | float]] = {"clf__estimator__C": list(p.C)}
    if p.kernel == "rbf":
        grid["clf__estimator__gamma"] = list(p.gamma)
    return _grid(cols, p, seed, names, clf, grid)


def _lasso_logistic(cols, p: LassoLogisticParams, seed, names):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(l1_ratio=1.0, solver="liblinear", class_weight=p.class_weight,
                             random_state=seed, max_iter=2000)
    return _grid(cols, p, seed, names, clf, {"clf__C": list(p.C)})


def _logistic(cols, p: LogisticParams, seed, names):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from radstore.models.preprocessing import FrameEncoder

    return Pipeline([("encode", FrameEncoder(cols)), ("scale", StandardScaler()),
                     ("clf", LogisticRegression(C=p.C, class_weight=p.class_weight, max_iter=5000))])


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("lasso_cox", "survival", LassoCoxParams, _lasso_cox,
         "feature reduction → LASSO-Cox with CV-chosen penalty → radiomics score"),
    Kind("cox", "survival", CoxParams, _cox,
         "univariable Cox screen → backward stepwise AIC → multivariable Cox (clinical/combined)"),
    Kind("svm", "binary", SvmParams, _svm,
         "feature reduction → univariate selection in each fold → SVM, grid search, stratified CV"),
    Kind("lasso_logistic", "binary", LassoLogisticParams, _lasso_logistic,
         "feature reduction → univariate selection in each fold → L1 logistic, grid over C"),
    Kind("logistic", "binary", LogisticParams, _logistic,
         "standardise → logistic regression (fusion of model scores and clinical factors)"),
)}


def get_kind(name: str) -> Kind:
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r}; available: {sorted(KINDS)}")
    return KINDS[name]


def validate_params(model_name: str, kind: str, params: dict[str, Any]) -> _Params:
    """Validate a model's ``params`` against its kind; the error names the model and the field."""
    k = get_kind(kind)
    try:
        return k.params.model_validate(params)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"model {model_name!r} (kind {kind}): params {msgs}") from exc
