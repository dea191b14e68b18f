"""``radstore extract`` and ``radstore gradcam``: thin wrappers over :mod:`pipelines.extract`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.commands._common import fail, settings_of


def register(app: typer.Typer) -> None:
    @app.command("extract")
    def extract_cmd(
        ctx: typer.Context,
        feature_set: Annotated[list[str], typer.Option(
            "--feature-set", "-f",
            help="feature set name (feature_sets/<name>.yaml) or YAML path; repeatable")],
        cohort: Annotated[list[str] | None, typer.Option(
            "--cohort", help="cohort id; repeatable [default: all]")] = None,
        address: Annotated[str | None, typer.Option(
            "--address", help="Ray cluster address (ray://host:10001)")] = None,
        batch_size: Annotated[int, typer.Option(help="images per model batch")] = 32,
        num_actors: Annotated[int | None, typer.Option(help="model actors per feature set")] = None,
        device: Annotated[str | None, typer.Option(
            help="cpu, cuda or auto [default: settings.device]")] = None,
    ) -> None:
        """Extract deep and radiomic feature sets into Parquet feature tables (one Ray job)."""
        from pipelines.extract import extract
        from radstore.feature_sets import FeatureSetError

        settings = settings_of(ctx)
        try:
            summaries = extract(settings, feature_set, cohort or None, address=address,
                                batch_size=batch_size, num_actors=num_actors, device=device)
        except (FeatureSetError, FileNotFoundError, ValueError) as exc:
            fail(str(exc))
            return
        for s in summaries:
            dev = ",".join(sorted({a["device"] for a in s.actors})) or "-"
            typer.echo(f"{s.feature_set} v{s.version} ({s.kind}, {dev}): {s.done} extracted, "
                       f"{s.skipped} already present, {s.failed} failed of {s.scans} scans")
            if s.failures_path:
                typer.echo(f"  failures: {s.failures_path}")
        if any(s.failed for s in summaries):
            raise typer.Exit(1)

    @app.command("gradcam")
    def gradcam_cmd(
        ctx: typer.Context,
        feature_set: Annotated[str, typer.Option("--feature-set", "-f", help="a deep feature set")],
        scan_id: Annotated[str, typer.Option("--scan-id", help="scan id from the catalog")],
        out: Annotated[Path, typer.Option("--out", help="output folder for the PNGs")] = Path("gradcam"),
        lesion: Annotated[int | None, typer.Option(help="lesion label [default: every lesion]")] = None,
    ) -> None:
        """Grad-CAM heat maps (PNG overlays) of a deep feature set's backbone on one scan."""
        from pipelines.extract import gradcam_scan
        from radstore.feature_sets import FeatureSetError

        try:
            paths = gradcam_scan(settings_of(ctx), feature_set, scan_id, out, lesion)
        except (FeatureSetError, FileNotFoundError, KeyError, ValueError) as exc:
            fail(str(exc))
            return
        for p in paths:
            typer.echo(str(p))
