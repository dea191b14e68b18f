"""Shared CLI plumbing: lazily validated settings and error reporting."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from radstore.config import Settings


@dataclass
class CliState:
    store: Path | None
    config: Path | None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        """Validated once, on first use (so ``--help`` never imports pydantic models)."""
        if self._settings is None:
            from pydantic import ValidationError

            from radstore.config import load_settings

            try:
                self._settings = load_settings(self.config, store=self.store)
            except (ValidationError, ValueError, FileNotFoundError) as exc:
                fail(f"invalid settings: {exc}")
        return self._settings


def settings_of(ctx: typer.Context) -> Settings:
    state = ctx.obj if isinstance(ctx.obj, CliState) else ctx.find_root().obj
    return state.settings()


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error (no traceback) and exit with ``code``."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)

