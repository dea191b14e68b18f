"""``radstore promote <study>``: register a model; champion only through the study's gates."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.commands._common import fail, settings_of


def register(app: typer.Typer) -> None:
    @app.command("promote")
    def promote(
        ctx: typer.Context,
        study: Annotated[str, typer.Argument(help="study name (studies/<name>.yaml) or YAML path")],
        model: Annotated[str | None, typer.Option("--model", help="[default: champion_model]")] = None,
    ) -> None:
        """Register <study>-<model>; move alias 'champion' only if every gate passes."""
        from pipelines.promote import promote as run_promote
        from radstore.study import StudySpecError, find_study, load_study

        settings = settings_of(ctx)
        try:
            spec = load_study(find_study(study))
            res = run_promote(spec, settings, model)
        except (StudySpecError, LookupError, ValueError) as exc:
            fail(str(exc))
            return
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"{res.registered_model} v{res.version}: gates")
        for c in ("gate", "value", "requirement", "champion", "pass"):
            t.add_column(c)
        for r in res.gates.to_dict("records"):
            t.add_row(r["gate"], f"{r['value']:.4f}", r["requirement"], r["champion"],
                      "[green]pass[/]" if r["pass"] else "[red]FAIL[/]")
        Console().print(t)
        typer.echo(f"{res.registered_model} v{res.version} -> alias '{res.alias}': {res.reason}")
        if not res.promoted:
            raise typer.Exit(1)
