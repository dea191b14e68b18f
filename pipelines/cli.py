"""``radstore`` command line: subcommands mirror the pipeline stages.

Commands are discovered from ``pipelines/commands/*.py`` (each module's ``register(app)``), so a
stage adds its command without touching this file. Heavy libraries are imported inside commands.
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from pathlib import Path
from typing import Annotated

import typer

import pipelines.commands as _commands
from pipelines.commands._common import CliState

app = typer.Typer(
    name="radstore",
    help="Feature store for CT deep-learning radiomics: cohorts in, features, training sets and "
    "models out.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="store root directory [default: ./radstore-data]",
                     envvar="RADSTORE_STORE"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML settings file", exists=True, dir_okay=False)
    ] = None,
) -> None:
    ctx.obj = CliState(store=store, config=config)
    warnings.showwarning = _show_warning


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    """Warnings as one ``warning: ...`` line on stderr (not the source line of the library that
    raised it)."""
    typer.echo(f"warning: {message}", err=True)


for _mod in sorted(m.name for m in pkgutil.iter_modules(_commands.__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"pipelines.commands.{_mod}").register(app)


if __name__ == "__main__":
    app()
