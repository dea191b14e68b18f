"""``radstore train <study>``: fit, evaluate and log a study's models to MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.commands._common import fail, settings_of


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        ctx: typer.Context,
        study: Annotated[str, typer.Argument(help="study name (studies/<name>.yaml) or YAML path")],
        training_set: Annotated[Path | None, typer.Option(
            "--training-set", help="training-set dir [default: newest under the store]")] = None,
        model: Annotated[list[str] | None, typer.Option("--model", help="only these models")] = None,
        n_boot: Annotated[int, typer.Option(help="bootstrap resamples for CIs")] = 1000,
        mccv: Annotated[int, typer.Option(help="Monte-Carlo CV splits (0 = off)")] = 0,
        plots: Annotated[bool, typer.Option("--plots/--no-plots", help="log PNG figures")] = True,
    ) -> None:
        """Train all models of STUDY, evaluate per cohort, log runs to MLflow."""
        from pipelines.train import latest_training_set, train_study
        from radstore.study import StudySpecError, find_study, load_study

        settings = settings_of(ctx)
        try:
            spec = load_study(find_study(study))
            ts = training_set or latest_training_set(settings, spec.name)
            res = train_study(spec, ts, settings, models=model or None, n_boot=n_boot,
                              mccv_splits=mccv, plots=plots)
        except (StudySpecError, FileNotFoundError, ValueError, KeyError) as exc:
            fail(str(exc))
            return
        from rich.console import Console

        from radstore.progress import frame_table

        Console().print(frame_table(res.results, f"{spec.name}: results (training set {ts})"))
        for name, rid in res.run_ids.items():
            typer.echo(f"{name}: run {rid}")
        typer.echo(f"results table: {res.report_dir}/results.{{md,parquet,html}}")
