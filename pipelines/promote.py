"""Register a study model and move the ``champion`` alias only when the study's gates hold.

Each gate reads ``<cohort>_<metric>`` of the candidate's run. With ``vs_champion`` the current
champion version is loaded and re-evaluated on the candidate's training set (same rows), and the
candidate must be at least as good. Failing candidates get the ``challenger`` alias and a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from radstore.config import Settings
from radstore.study import StudySpec

CHAMPION = "champion"
CHALLENGER = "challenger"
LOWER_IS_BETTER = {"ibs"}


@dataclass
class PromotionResult:
    registered_model: str
    version: str
    alias: str
    promoted: bool
    gates: pd.DataFrame
    reason: str


def registered_name(study: str, model: str) -> str:
    return f"{study}-{model}"


def latest_run(experiment_id: str, model: str):
    """The newest finished MLflow run of ``model`` in the study's experiment."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs([experiment_id], filter_string=f"tags.model = '{model}'",
                                      order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise LookupError(f"no trained run for model {model!r}; run `radstore train` first")
    return runs[0]


def _champion_metric(name: str, spec: StudySpec, training_set: str, metric: str,
                     cohort: str) -> tuple[float, str] | None:
    """Re-evaluate the current champion of ``name`` on ``training_set``; None if no champion."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipelines.train import load_training_set
    from radstore.models.evaluate import evaluate

    client = mlflow.tracking.MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}").unwrap_python_model()
    frame, _ = load_training_set(training_set)
    evs = [e for e in evaluate(model.study_model, spec, frame, n_boot=100) if e.cohort == cohort]
    if not evs or metric not in evs[0].metrics:
        return float("nan"), mv.version
    return float(evs[0].metrics[metric]), mv.version


def check_gates(spec: StudySpec, metrics: dict[str, float], champion=None) -> pd.DataFrame:
    """Table gate → value → threshold → pass. ``champion(metric, cohort)`` returns the current
    champion's value on the candidate's data (or None when there is no champion)."""
    rows = []
    for g in spec.gates:
        key = f"{g.cohort}_{g.metric}"
        v = metrics.get(key, float("nan"))
        ok = bool(np.isfinite(v))
        need = []
        if g.min is not None:
            ok &= v >= g.min
            need.append(f"≥ {g.min:g}")
        if g.max is not None:
            ok &= v <= g.max
            need.append(f"≤ {g.max:g}")
        champ_txt = ""
        if g.vs_champion and champion is not None:
            c = champion(g.metric, g.cohort)
            if c is not None:
                cv, ver = c
                better = v <= cv if g.metric in LOWER_IS_BETTER else v >= cv
                ok &= (bool(np.isfinite(cv)) and better) or not np.isfinite(cv)
                need.append(f"{'≤' if g.metric in LOWER_IS_BETTER else '≥'} champion v{ver}")
                champ_txt = f"{cv:.4f}"
            else:
                champ_txt = "none"
        rows.append({"gate": key, "value": v, "requirement": ", ".join(need) or "finite",
                     "champion": champ_txt, "pass": bool(ok)})
    return pd.DataFrame(rows, columns=["gate", "value", "requirement", "champion", "pass"])


def promote(spec: StudySpec, settings: Settings, model: str | None = None) -> PromotionResult:
    """Register the latest run of ``model`` (default ``spec.champion_model``) as
    ``<study>-<model>``; alias ``champion`` if every gate passes (no gates: refused), else
    ``challenger``."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from pipelines.train import MODEL_ARTIFACT, configure_mlflow

    model = model or spec.champion_model
    if model is None:
        raise ValueError(f"study {spec.name!r} has no champion_model; pass --model")
    if model not in {m.name for m in spec.models}:
        raise ValueError(f"model {model!r} is not in study {spec.name!r}")
    exp_id = configure_mlflow(settings, spec.name)
    run = latest_run(exp_id, model)
    name = registered_name(spec.name, model)
    client = MlflowClient()
    training_set = run.data.tags["training_set"]
    gates = check_gates(spec, run.data.metrics,
                        champion=lambda metric, cohort: _champion_metric(
                            name, spec, training_set, metric, cohort))
    uri = run.data.tags.get("model_uri", f"runs:/{run.info.run_id}/{MODEL_ARTIFACT}")
    mv = mlflow.register_model(uri, name)
    if not spec.gates:
        ok, reason = False, "the study defines no gates; nothing can be promoted without gates"
    else:
        ok = bool(gates["pass"].all())
        failed = gates[~gates["pass"]]
        reason = ("all gates pass" if ok else "failed: " + "; ".join(
            f"{r.gate}={r.value:.4f} needs {r.requirement}" for r in failed.itertuples()))
    alias = CHAMPION if ok else CHALLENGER
    client.set_registered_model_alias(name, alias, mv.version)
    client.set_model_version_tag(name, mv.version, "promotion", reason)
    client.set_model_version_tag(name, mv.version, "run_id", run.info.run_id)
    return PromotionResult(name, str(mv.version), alias, ok, gates, reason)
