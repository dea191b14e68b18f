"""``radstore serve <study>``: the scoring API for a study's champion model."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.commands._common import fail, settings_of


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        ctx: typer.Context,
        study: Annotated[str, typer.Argument(help="study name")],
        model: Annotated[str, typer.Option("--model", help="model name in the study")],
        host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port")] = 8000,
    ) -> None:
        """Serve models:/<study>-<model>@champion with online features from the store's Feast repo."""
        import uvicorn

        from pipelines.train import tracking_uri
        from services.scoring.app import create_app, feast_online_reader, load_champion

        settings = settings_of(ctx)
        try:
            m = load_champion(study, model, tracking_uri(settings))
        except Exception as exc:
            fail(f"cannot load champion of {study}-{model}: {exc}")
            return
        app_ = create_app(m, online=feast_online_reader(str(settings.layout.feast_repo)))
        uvicorn.run(app_, host=host, port=port)
