"""Fit a study's models on the training rows of a training set, and score raw rows.

A :class:`StudyModel` is self-contained: it holds the fitted model and every upstream model whose
score it uses (combined / fusion models), so it scores raw training-set rows (same columns as
``train.parquet``) — what the MLflow pyfunc and the scoring service call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from radstore.models.preprocessing import SCORE_PREFIX, FrameEncoder, select_input_columns
from radstore.models.registry import get_kind, validate_params
from radstore.study import ModelSpec, StudySpec


@dataclass
class FittedModel:
    """One fitted model: its raw input columns, the fitted estimator, the risk-group / Youden
    cutoff fixed on training, and (survival) the Breslow baseline hazard of its score."""

    name: str
    kind: str
    task: str
    inputs: tuple[str, ...]
    columns: list[str]
    estimator: Any
    cutoff: float = float("nan")
    baseline: tuple[np.ndarray, np.ndarray] | None = None
    upstream: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Survival: linear predictor (higher = higher risk); binary: P(y = 1)."""
        x = frame[self.columns]
        if self.task == "survival":
            return np.asarray(self.estimator.predict(x), float)
        return np.asarray(self.estimator.predict_proba(x)[:, 1], float)

    def survival(self, frame: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        """Predicted ``S(t | x)`` from the Breslow baseline (survival models only)."""
        from radstore.stats.cox import survival_at

        if self.baseline is None:
            raise ValueError(f"model {self.name!r} is not a survival model")
        return survival_at(*self.baseline, self.score(frame), times)


@dataclass
class StudyModel:
    """A target model with its upstream models, scoring raw rows."""

    study: str
    target: str
    endpoint: dict[str, Any]
    models: dict[str, FittedModel]

    @property
    def model(self) -> FittedModel:
        return self.models[self.target]

    @property
    def raw_columns(self) -> list[str]:
        cols: list[str] = []
        for m in self.models.values():
            cols += [c for c in m.columns if not c.startswith(SCORE_PREFIX) and c not in cols]
        return cols

    def with_scores(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` plus ``score__<name>`` for every model, upstream first."""
        out = frame.copy()
        for name in _topological(self.models):
            out[SCORE_PREFIX + name] = self.models[name].score(out)
        return out

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score, risk group (score above the training cutoff) and, for survival, ``S(h)`` at the
        endpoint horizons."""
        scored = self.with_scores(frame)
        m = self.model
        s = scored[SCORE_PREFIX + m.name].to_numpy()
        out = pd.DataFrame({"score": s, "high_risk": (s > m.cutoff if m.task == "survival"
                                                      else s >= m.cutoff).astype(int)},
                           index=frame.index)
        if m.task == "survival":
            hz = np.asarray(self.endpoint.get("horizons", ()), float)
            if len(hz):
                surv = m.survival(scored, hz)
                for j, h in enumerate(hz):
                    out[f"survival_{h:g}"] = surv[:, j]
        return out


def _topological(models: dict[str, FittedModel]) -> list[str]:
    order: list[str] = []

    def visit(n: str) -> None:
        if n in order:
            return
        for u in models[n].upstream:
            visit(u)
        order.append(n)

    for n in models:
        visit(n)
    return order


def labels(frame: pd.DataFrame, spec: StudySpec) -> np.ndarray:
    """The endpoint as the estimator's ``y``: a scikit-survival structured array or 0/1 labels."""
    from radstore.stats.survival import surv_array

    ep = spec.endpoint
    if ep.kind == "survival":
        for c in (ep.time, ep.event):
            if c not in frame.columns:
                raise KeyError(f"training set lacks endpoint column {c!r}")
        return surv_array(frame[ep.time].to_numpy(float), frame[ep.event].to_numpy().astype(bool))
    if ep.label not in frame.columns:
        raise KeyError(f"training set lacks endpoint column {ep.label!r}")
    return frame[ep.label].to_numpy().astype(int)


def fit_model(ms: ModelSpec, spec: StudySpec, train: pd.DataFrame, seed: int = 0) -> FittedModel:
    """Fit one model on the training rows (``train`` already holds upstream ``score__*``)."""
    from radstore.stats.cox import breslow_baseline
    from radstore.stats.survival import maxstat_cutoff, median_cutoff

    kind = get_kind(ms.kind)
    if kind.task != spec.endpoint.kind:
        raise ValueError(f"model {ms.name!r}: kind {ms.kind} is for {kind.task} endpoints, study "
                         f"{spec.name!r} has a {spec.endpoint.kind} endpoint")
    params = validate_params(ms.name, ms.kind, ms.params)
    views = getattr(params, "views", None)
    reader2 = tuple(getattr(params, "icc_pairs", {}).values())
    cols = select_input_columns(list(train.columns), ms.inputs, views)
    cols = [c for c in cols if not any(c.startswith(v + "__") for v in reader2)] + [
        c for c in train.columns if any(c.startswith(v + "__") for v in reader2)]
    if not cols:
        raise ValueError(f"model {ms.name!r}: inputs {list(ms.inputs)} select no columns")
    names = list(FrameEncoder(cols).fit(train).get_feature_names_out())
    est = kind.build(cols, params, seed, names)
    y = labels(train, spec)
    est.fit(train[cols], y)
    fm = FittedModel(ms.name, ms.kind, kind.task, ms.inputs, cols, est,
                     upstream=tuple(i for i in ms.inputs if i not in ("features", "clinical")),
                     info={"params": params.model_dump(), "n_inputs": len(names)})
    s = fm.score(train)
    if kind.task == "survival":
        fm.baseline = breslow_baseline(y["time"], y["event"], s)
        rule = getattr(params, "cutoff", "median")
        fm.cutoff = (maxstat_cutoff(y["time"], y["event"], s) if rule == "maxstat"
                     else median_cutoff(s))
    else:
        from radstore.stats.classification import youden_cutoff

        fm.cutoff = youden_cutoff(y, s)
    return fm


def fit_study(spec: StudySpec, frame: pd.DataFrame, seed: int = 0,
              only: list[str] | None = None) -> dict[str, StudyModel]:
    """Fit the study's models (or ``only`` these and their upstream) on ``split == 'train'`` rows,
    in dependency order. Returns one :class:`StudyModel` per fitted model."""
    specs = {m.name: m for m in spec.models}
    if not specs:
        raise ValueError(f"study {spec.name!r} defines no models")
    wanted = list(specs) if only is None else list(only)
    unknown = [w for w in wanted if w not in specs]
    if unknown:
        raise ValueError(f"unknown models {unknown}; study {spec.name!r} has {list(specs)}")
    for m in spec.models:
        validate_params(m.name, m.kind, m.params)
    train = frame[frame["split"] == "train"].copy()
    if len(train) == 0:
        raise ValueError("training set has no rows with split == 'train'")
    fitted: dict[str, FittedModel] = {}

    def fit(name: str) -> None:
        if name in fitted:
            return
        ms = specs[name]
        for u in ms.inputs:
            if u in specs:
                fit(u)
                if SCORE_PREFIX + u not in train.columns:
                    train[SCORE_PREFIX + u] = fitted[u].score(train)
        fitted[name] = fit_model(ms, spec, train, seed)

    for w in wanted:
        fit(w)
    out = {}
    for w in wanted:
        deps: dict[str, FittedModel] = {}

        def collect(n: str, deps: dict[str, FittedModel] = deps) -> None:
            for u in fitted[n].upstream:
                collect(u)
            deps[n] = fitted[n]

        collect(w)
        out[w] = StudyModel(spec.name, w, spec.endpoint.model_dump(), deps)
    return out
