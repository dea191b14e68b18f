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
        online: Annotated[str, typer.Option(
            help="online feature reads: 'packed' (<store>/feast/online_vectors.db) or 'feast' "
                 "(get_online_features)")] = "packed",
    ) -> None:
        """Serve models:/<study>-<model>@champion with online features from the store (written by
        `radstore register`)."""
        import uvicorn

        from pipelines.train import tracking_uri
        from radstore.store.online import PACKED_FILE
        from services.scoring.app import create_app, feast_online_reader, load_champion, packed_online_reader

        settings = settings_of(ctx)
        repo = settings.layout.feast_repo
        if online not in ("packed", "feast"):
            fail(f"--online must be 'packed' or 'feast', not {online!r}")
        if online == "packed" and not (repo / PACKED_FILE).is_file():
            fail(f"no packed online table {repo / PACKED_FILE} (run `radstore register`, or --online feast)")
        try:
            m = load_champion(study, model, tracking_uri(settings))
        except Exception as exc:
            fail(f"cannot load champion of {study}-{model}: {exc}")
            return
        reader = (packed_online_reader(repo / PACKED_FILE) if online == "packed"
                  else feast_online_reader(str(repo)))
        app_ = create_app(m, online=reader)
        uvicorn.run(app_, host=host, port=port)
