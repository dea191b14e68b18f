"""``radstore demo``: the whole pipeline on a synthetic cohort (see :mod:`pipelines.demo`)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.commands._common import settings_of


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        ctx: typer.Context,
        patients: Annotated[int, typer.Option(help="patients per hospital")] = 40,
        hospitals: Annotated[int, typer.Option(help="hospitals (the last is external)")] = 3,
        n_boot: Annotated[int, typer.Option(help="bootstrap resamples for CIs")] = 200,
        seed: Annotated[int, typer.Option(help="synthetic cohort seed")] = 0,
    ) -> None:
        """synth → ingest → extract → register → sql → assemble → train → promote, into --store."""
        import logging
        import sys
        import warnings

        import feast  # noqa: F401  (imported first: its import resets the DeprecationWarning filter)
        import mlflow  # noqa: F401  (imported first: its import sets the mlflow loggers to INFO)
        from rich.console import Console
        from rich.table import Table

        from pipelines.demo import DemoConfig, run_demo

        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        logging.getLogger("mlflow").setLevel(logging.ERROR)

        console = Console(width=None if sys.stdout.isatty() else 160)  # logs: tables unwrapped
        settings = settings_of(ctx)
        cfg = DemoConfig(hospitals=hospitals, patients_per_hospital=patients, n_boot=n_boot, seed=seed)
        result = run_demo(settings, cfg, say=console.print)
        table = Table(title=f"radstore demo: store {settings.store}")
        table.add_column("stage")
        table.add_column("seconds", justify="right")
        for name, secs in result.timings.items():
            table.add_row(name, f"{secs:.1f}")
        table.add_row("total", f"{sum(result.timings.values()):.1f}")
        console.print(table)
        console.print(f"MLflow UI: mlflow ui --backend-store-uri sqlite:///{settings.layout.mlflow_db}")
        # Everything is written and closed; skip interpreter teardown, where DuckDB's nanobind
        # bindings (loaded through Feast) print a page of spurious reference-leak reports.
        import os
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
