"""``radstore register``: feature tables + catalog → Feast repo (apply + materialize)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("register")
    def register_cmd(
        ctx: typer.Context,
        studies: Annotated[Path, typer.Option(help="study specs that get feature services")] = Path(
            "studies"),
        template: Annotated[Path | None, typer.Option(
            help="feature_store.yaml to use (e.g. infra/feast/feature_store.yaml); default: keep the "
                 "store's, else feature_repo/feature_store.yaml", exists=True, dir_okay=False)] = None,
        materialize: Annotated[bool, typer.Option(help="load the online stores")] = True,
        feast_online: Annotated[str, typer.Option(
            help="views materialized into Feast's online store: all, services (only views a feature "
                 "service reads) or none; the packed online table always gets every patient view")] = "all",
    ) -> None:
        """Register the store's feature tables in Feast (<store>/feast) and materialize them."""
        from pipelines.commands._common import fail, settings_of
        from pipelines.register import RegisterError
        from pipelines.register import register as run
        from radstore.store.catalog import StoreError

        settings = settings_of(ctx)
        try:
            report = run(settings, studies_dir=studies, template=template, materialize=materialize,
                         feast_online=feast_online)  # type: ignore[arg-type]
        except (RegisterError, StoreError) as exc:
            fail(str(exc))
        typer.echo(f"feast repo: {report.repo}")
        for name, n in report.views.items():
            typer.echo(f"  view {name}: {n} rows")
        for s in report.services:
            typer.echo(f"  service {s}")
        for s, why in report.skipped_studies.items():
            typer.echo(f"  skipped study {s}: {why}")
        for r in report.removed:
            typer.echo(f"  removed {r}")
        if report.materialized:
            typer.echo(f"materialized {report.materialized[0]:%Y-%m-%d} .. {report.materialized[1]:%Y-%m-%d}"
                       f" into Feast: {', '.join(report.feast_materialized) or 'none'}")
            typer.echo(f"packed online table: {sum(report.packed.values())} rows written "
                       f"({len(report.packed)} views)")
