"""``radstore assemble <study>``: study spec → training_sets/<study>/<hash>/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("assemble")
    def assemble_cmd(
        ctx: typer.Context,
        study: Annotated[str, typer.Argument(help="study name (studies/<name>.yaml) or a YAML path")],
        studies: Annotated[Path, typer.Option(help="directory of study specs")] = Path("studies"),
    ) -> None:
        """Build the study's point-in-time-correct, content-hashed training set."""
        from pipelines.assemble import AssemblyError, assemble
        from pipelines.commands._common import fail, settings_of
        from radstore.store.catalog import StoreError

        settings = settings_of(ctx)
        try:
            ts = assemble(settings, study, studies_dir=studies)
        except (AssemblyError, StoreError) as exc:
            fail(str(exc))
        m = ts.manifest
        counts = ", ".join(f"{k} {v}" for k, v in m["row_counts"].items())
        typer.echo(f"{ts.parquet}  ({m['rows']} patients: {counts}; "
                   f"{sum(len(v) for v in m['columns']['features'].values())} feature columns)")
        typer.echo(f"content hash {m['content_hash']}")
