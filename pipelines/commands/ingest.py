"""``radstore ingest``: a cohort manifest (or a DICOM tree in discovery mode) into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.commands._common import fail, settings_of


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        ctx: typer.Context,
        cohort_id: Annotated[str, typer.Argument(help="cohort id: lowercase letters, digits, _ and -")],
        manifest: Annotated[Path | None, typer.Argument(
            help="manifest.csv / .yaml (paths relative to it); with --discover, where to write it")] = None,
        discover: Annotated[Path | None, typer.Option(
            "--discover", help="build the manifest from this DICOM folder tree and stop for review",
            file_okay=False)] = None,
        phase_rules: Annotated[Path | None, typer.Option(
            "--phase-rules", help="YAML list of {pattern, phase} tried before the default rules",
            dir_okay=False)] = None,
        no_report: Annotated[bool, typer.Option("--no-report", help="skip the QC report")] = False,
        prune: Annotated[bool, typer.Option(
            "--prune", help="delete the cohort's Zarr scans that are not in its catalog after this run "
            "(rows removed from the manifest, or rejected this run)")] = False,
    ) -> None:
        """Validate, pseudonymise and convert a cohort to Zarr + catalog (+ QC report)."""
        settings = settings_of(ctx)
        if discover is not None:
            from pipelines.ingest import discover_cohort

            if not discover.is_dir():
                fail(f"--discover: {discover} is not a folder")
            out = manifest or Path(f"{cohort_id}-manifest.csv")
            try:
                path, rows, warnings = discover_cohort(discover, out, phase_rules)
            except (ValueError, OSError) as exc:
                fail(str(exc))
            for w in warnings:
                typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)
            typer.echo(f"wrote {path} ({len(rows)} scans); review it (phase, acquisition_time), then "
                       f"run: radstore ingest {cohort_id} {path}")
            return
        if manifest is None:
            fail("give a manifest, or --discover <dicom_root>")
            return
        from pipelines.ingest import ingest_cohort

        try:
            rep = ingest_cohort(settings, cohort_id, manifest, qc_report=not no_report, prune=prune)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
        typer.echo(f"{cohort_id}: {rep.scans_ok} scans ok ({rep.written} written, {rep.unchanged} "
                   f"unchanged), {rep.rejected} rejected, clinical rows {rep.clinical_rows}, outcome "
                   f"rows {rep.outcome_rows}; tables written: {', '.join(rep.tables_written) or 'none'}")
        for r in rep.rejections:
            typer.echo(f"  rejected {r.input}: [{r.rule}] {r.message}")
        if rep.pruned:
            typer.echo(f"pruned {rep.pruned} Zarr scan(s) not in the catalog: {', '.join(rep.orphaned)}")
        elif rep.orphaned:
            typer.secho(f"warning: {len(rep.orphaned)} Zarr scan(s) not in the catalog (rerun with "
                        f"--prune to delete them): {', '.join(rep.orphaned)}", fg=typer.colors.YELLOW,
                        err=True)
        if rep.report_path:
            typer.echo(f"QC report: {rep.report_path}")
