"""Train and evaluate a study's models on a training set; log everything to MLflow.

One MLflow experiment per study; one run per model with params (spec, kind params, feature
versions from the manifest), metrics ``<cohort>_<metric>``, artifacts (results table as Parquet,
Markdown and HTML; PNG plots; model card; manifest; feature list), the training set as the run's
dataset, and the model as an ``mlflow.pyfunc`` that scores raw training-set rows.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radstore.config import Settings
from radstore.study import StudySpec

MODEL_ARTIFACT = "model"


def tracking_uri(settings: Settings) -> str:
    """``settings.mlflow.tracking_uri`` or SQLite at ``StoreLayout.mlflow_db``."""
    if settings.mlflow.tracking_uri:
        return settings.mlflow.tracking_uri
    db = settings.layout.mlflow_db.resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def configure_mlflow(settings: Settings, study: str) -> str:
    """Point MLflow at the store and return the study's experiment id (created once, with its
    artifacts under ``StoreLayout.mlflow_artifacts/<study>``)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(settings))
    mlflow.set_registry_uri(settings.mlflow.registry_uri or tracking_uri(settings))
    exp = mlflow.get_experiment_by_name(study)
    if exp is not None:
        return exp.experiment_id
    art = (settings.layout.mlflow_artifacts / study).resolve()
    art.mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(study, artifact_location=art.as_uri())


def latest_training_set(settings: Settings, study: str) -> Path:
    """The newest ``training_sets/<study>/<hash>/`` holding a ``train.parquet``."""
    root = settings.layout.training_sets / study
    cands = sorted((p for p in root.glob("*/train.parquet")), key=lambda p: p.stat().st_mtime)
    if not cands:
        raise FileNotFoundError(f"no training set under {root}; run `radstore assemble {study}`")
    return cands[-1].parent


def load_training_set(path: Path | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``train.parquet`` + ``manifest.json`` of a training-set directory (checked for keys)."""
    from radstore.io.tables import read_table

    path = Path(path)
    tp = path / "train.parquet"
    if not tp.is_file():
        raise FileNotFoundError(f"{tp} not found")
    frame = read_table(tp)
    frame = frame.to_pandas() if hasattr(frame, "to_pandas") else frame
    missing = [c for c in ("patient_id", "split") if c not in frame.columns]
    if missing:
        raise ValueError(f"{tp}: missing key columns {missing}")
    bad = sorted(set(frame["split"]) - {"train", "internal", "external"})
    if bad:
        raise ValueError(f"{tp}: split values must be train/internal/external, got {bad}")
    mp = path / "manifest.json"
    manifest = json.loads(mp.read_text()) if mp.is_file() else {}
    return frame, manifest


@dataclass
class TrainResult:
    study: str
    experiment_id: str
    run_ids: dict[str, str]
    results: pd.DataFrame
    training_set: Path
    report_dir: Path


def train_study(spec: StudySpec, training_set: Path | str, settings: Settings,
                models: list[str] | None = None, n_boot: int = 1000,
                mccv_splits: int = 0, plots: bool = True) -> TrainResult:
    """Fit all (or ``models``) of the study's models on the training rows, evaluate each on every
    cohort (and, when ``endpoint.landmarks`` is set, on each landmark data set), and log one MLflow
    run per model. ``mccv_splits`` > 0 adds Monte-Carlo CV (mean ± SE as ``cv_*`` metrics);
    ``plots=False`` skips the PNG figures. The study-level results table (all models × cohorts)
    is also written to ``<store>/reports/<study>/results.{md,parquet,html}``."""
    import mlflow

    from radstore.models.evaluate import (
        evaluate,
        evaluate_landmarks,
        monte_carlo_cv,
        results_table,
    )
    from radstore.models.study_model import fit_study
    from radstore.stats.survival import mean_se

    frame, manifest = load_training_set(training_set)
    exp_id = configure_mlflow(settings, spec.name)
    fitted = fit_study(spec, frame, seed=settings.seed, only=models)
    evals = {name: evaluate(sm, spec, frame, n_boot=n_boot, seed=settings.seed)
             for name, sm in fitted.items()}
    lm_evals = {name: (evaluate_landmarks(sm, spec, frame, n_boot=n_boot, seed=settings.seed)
                       if spec.endpoint.landmarks else []) for name, sm in fitted.items()}
    table = results_table([e for name in fitted for e in evals[name] + lm_evals[name]],
                          spec.endpoint.kind)
    report_dir = write_results(table, settings.layout.reports / spec.name)
    run_ids: dict[str, str] = {}
    ts_hash = str(manifest.get("hash") or manifest.get("content_hash") or Path(training_set).name)
    for name, sm in fitted.items():
        ms = next(m for m in spec.models if m.name == name)
        with mlflow.start_run(experiment_id=exp_id, run_name=name) as run:
            mlflow.set_tags({"study": spec.name, "model": name, "kind": ms.kind,
                             "training_set": str(Path(training_set).resolve()),
                             "training_set_hash": ts_hash})
            mlflow.log_params({"kind": ms.kind, "inputs": ",".join(ms.inputs),
                               "endpoint": spec.endpoint.kind, "training_set_hash": ts_hash,
                               "seed": settings.seed, "n_boot": n_boot,
                               **{f"param.{k}": _short(v) for k, v in sm.model.info["params"].items()},
                               "feature_versions": _short(_feature_versions(manifest)),
                               "cutoff": sm.model.cutoff})
            metrics = {f"{e.cohort}_{k}": float(v) for e in evals[name] + lm_evals[name]
                       for k, v in e.metrics.items() if v is not None and np.isfinite(v)}
            if mccv_splits:
                cv = monte_carlo_cv(spec, frame, name, n_splits=mccv_splits, seed=settings.seed)
                mean, se = mean_se(cv["metric"].to_numpy())
                key = "c_index" if spec.endpoint.kind == "survival" else "auc"
                metrics.update({f"cv_{key}": mean, f"cv_{key}_se": se})
            mlflow.log_metrics(metrics)
            _log_dataset(frame, spec.name, Path(training_set))
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp)
                _write_artifacts(out, spec, sm, frame, manifest, table, evals[name], metrics,
                                 plots)
                mlflow.log_artifacts(str(out))
            _log_model(sm, frame)
            run_ids[name] = run.info.run_id
    return TrainResult(spec.name, exp_id, run_ids, table, Path(training_set), report_dir)


def write_results(table: pd.DataFrame, out_dir: Path) -> Path:
    """The study-level results table as ``results.parquet``, ``results.md`` and ``results.html``
    in ``out_dir`` (created); returns ``out_dir``."""
    from radstore.io.tables import write_table

    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(table, out_dir / "results.parquet")
    (out_dir / "results.md").write_text(table.to_markdown(index=False) + "\n")
    (out_dir / "results.html").write_text(table.to_html(index=False))
    return out_dir


def _short(v: Any) -> str:
    s = json.dumps(v, default=str, sort_keys=True) if not isinstance(v, str) else v
    return s if len(s) <= 5000 else s[:4990] + "…"


def _feature_versions(manifest: dict[str, Any]) -> Any:
    for k in ("feature_versions", "features", "inputs"):
        if k in manifest:
            return manifest[k]
    return {}


def _log_dataset(frame: pd.DataFrame, study: str, source: Path) -> None:
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    ds = from_pandas(frame, source=str(source.resolve()), name=f"{study}-training-set")
    mlflow.log_input(ds, context="training")


def _log_model(sm, frame: pd.DataFrame) -> None:
    import mlflow
    from mlflow.models import infer_signature

    from radstore.models.pyfunc import log_study_model

    example = frame[sm.raw_columns].head(5).copy()
    for c in example.columns:  # embeddings as float64 lists: JSON rows arrive as doubles
        if example[c].map(lambda v: isinstance(v, list | np.ndarray)).any():
            example[c] = example[c].map(lambda v: [float(a) for a in v])
    sig = infer_signature(example, sm.predict(example))
    info = log_study_model(sm, MODEL_ARTIFACT, signature=sig, input_example=example,
                           pip_requirements=["radstore"])
    mlflow.set_tag("model_uri", info.model_uri)


def _write_artifacts(out: Path, spec: StudySpec, sm, frame: pd.DataFrame, manifest: dict,
                     table: pd.DataFrame, evals, metrics: dict[str, float],
                     plots: bool = True) -> None:
    from radstore.io.tables import write_table

    res = out / "results"
    res.mkdir()
    write_table(table, res / "study_results.parquet")
    (res / "study_results.md").write_text(table.to_markdown(index=False))
    (res / "study_results.html").write_text(table.to_html(index=False))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    (out / "features.txt").write_text("\n".join(sm.raw_columns) + "\n")
    if plots:
        (out / "plots").mkdir()
        extra = _plots(out / "plots", spec, sm, frame, evals)
    else:
        extra = _cox_tables(sm) if sm.model.kind == "cox" else ""
    (out / "model_card.md").write_text(_model_card(spec, sm, table, metrics, manifest, extra))


def _plots(plots: Path, spec: StudySpec, sm, frame: pd.DataFrame, evals) -> str:
    import matplotlib.pyplot as plt

    from radstore.stats import plots as P
    from radstore.stats.classification import calibration_table, decision_curve
    from radstore.stats.survival import calibration_at, survival_decision_curve

    m = sm.model
    notes = []
    scored = sm.with_scores(frame)
    if spec.endpoint.kind == "survival":
        cal, dca = {}, {}
        h = float(spec.endpoint.horizons[len(spec.endpoint.horizons) // 2]) if spec.endpoint.horizons \
            else float(np.median(scored[spec.endpoint.time]))
        for ev in evals:
            part = scored[scored["split"] == ev.cohort]
            t, e = ev.y["time"], ev.y["event"]
            fig = P.km_plot(t, e, (ev.score > m.cutoff).astype(int), f"{m.name} — {ev.cohort}",
                            ev.metrics.get("logrank_p"))
            fig.savefig(plots / f"km_{ev.cohort}.png", dpi=100)
            plt.close(fig)
            s_h = m.survival(part, np.array([h]))[:, 0]
            cal[ev.cohort] = calibration_at(t, e, s_h, h)
            dca[ev.cohort] = survival_decision_curve(t, e, 1 - s_h, h)
        fig = P.calibration_plot(cal, f"{m.name}: calibration at t={h:g}")
        fig.savefig(plots / "calibration.png", dpi=100)
        plt.close(fig)
        fig = P.decision_curve_plot(dca, f"{m.name}: decision curve at t={h:g}")
        fig.savefig(plots / "decision_curve.png", dpi=100)
        plt.close(fig)
        if m.kind == "cox":
            notes.append(_cox_extras(plots, spec, sm, scored))
    else:
        curves = {ev.cohort: (ev.y, ev.score) for ev in evals}
        fig = P.roc_plot(curves, f"{m.name}: ROC")
        fig.savefig(plots / "roc.png", dpi=100)
        plt.close(fig)
        cal = {ev.cohort: calibration_table(ev.y, ev.score, bins=5).rename(
            columns={"mean_predicted": "predicted", "observed_rate": "observed"})
            for ev in evals if ev.y.min() != ev.y.max()}
        fig = P.calibration_plot(cal, f"{m.name}: calibration")
        fig.savefig(plots / "calibration.png", dpi=100)
        plt.close(fig)
        fig = P.decision_curve_plot({ev.cohort: decision_curve(ev.y, ev.score) for ev in evals},
                                    f"{m.name}: decision curve")
        fig.savefig(plots / "decision_curve.png", dpi=100)
        plt.close(fig)
    return "\n\n".join(notes)


def _cox_extras(plots: Path, spec: StudySpec, sm, scored: pd.DataFrame) -> str:
    """Univariable/multivariable tables, Schoenfeld PH test and the nomogram of a Cox model."""
    import matplotlib.pyplot as plt

    from radstore.stats.plots import nomogram

    m = sm.model
    cox = m.estimator.named_steps["model"]
    train = scored[scored["split"] == "train"]
    x = m.estimator.named_steps["encode"].transform(train[m.columns])[:, cox.index_]
    base_t, base_h = m.baseline
    h0 = {float(h): float(base_h[max(np.searchsorted(base_t, h, side="right") - 1, 0)])
          for h in spec.endpoint.horizons}
    fig = nomogram(cox.selected_, cox.result_.coef, x, h0, f"{m.name} nomogram")
    fig.savefig(plots / "nomogram.png", dpi=100)
    plt.close(fig)
    return _cox_tables(sm)


def _cox_tables(sm) -> str:
    """Univariable / multivariable Cox tables and the Schoenfeld PH test as Markdown."""
    from radstore.stats.cox import schoenfeld_test

    cox = sm.model.estimator.named_steps["model"]
    ph = schoenfeld_test(cox.result_)
    return ("## Univariable Cox\n" + cox.univariable_.round(4).to_markdown() +
            "\n\n## Multivariable Cox\n" + cox.result_.summary().round(4).to_markdown() +
            "\n\n## Proportional hazards (scaled Schoenfeld residuals, Grambsch & Therneau)\n" +
            ph.round(4).to_markdown())


def _model_card(spec: StudySpec, sm, table: pd.DataFrame, metrics: dict, manifest: dict,
                extra: str) -> str:
    m = sm.model
    mine = table[table["model"] == m.name]
    return (f"# {spec.name} — {m.name}\n\n{spec.description}\n\n"
            f"- kind: `{m.kind}` ({m.task}); inputs: {', '.join(m.inputs)}\n"
            f"- upstream models: {', '.join(m.upstream) or 'none'}\n"
            f"- encoded inputs: {m.info['n_inputs']}; training cutoff (locked): {m.cutoff:.4g}\n"
            f"- training set: {manifest.get('hash', '')} rows per split "
            f"{manifest.get('rows', manifest.get('counts', ''))}\n\n"
            f"## Results\n{mine.to_markdown(index=False)}\n\n{extra}\n")
