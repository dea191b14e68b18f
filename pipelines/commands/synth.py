"""``radstore synth``: write a synthetic multi-hospital CT cohort (thin wrapper of
:func:`radstore.synth.generate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.commands._common import fail, settings_of


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def synth(
        ctx: typer.Context,
        out_dir: Annotated[Path, typer.Argument(help="folder to write the cohorts into")],
        hospitals: Annotated[int, typer.Option(help="number of hospitals (cohorts)")] = 3,
        patients: Annotated[int, typer.Option(help="patients per hospital")] = 10,
        size: Annotated[str, typer.Option(help="'small' (tests, demo) or 'full' (512x512)")] = "small",
        seed: Annotated[int, typer.Option(help="random seed (same seed -> identical files)")] = 0,
        visits: Annotated[int, typer.Option(help="baseline + follow-ups at weeks 12..72")] = 1,
        second_reader: Annotated[bool, typer.Option(
            "--second-reader", help="also write a second reader's masks (gtv_r2)")] = False,
        phases: Annotated[str | None, typer.Option(
            help="comma-separated phases [default: non_contrast,arterial,venous]")] = None,
        overwrite: Annotated[bool, typer.Option(
            "--overwrite", help="replace existing synthetic cohort folders")] = False,
    ) -> None:
        """Generate hospitals with different scanners and formats (DICOM+RTSTRUCT, DICOM+NIfTI,
        NIfTI/NRRD), clinical and outcome tables with a planted signal; truth in OUT_DIR/_truth."""
        from pydantic import ValidationError
        from rich.console import Console
        from rich.table import Table

        from radstore.synth import SynthConfig, generate

        settings = settings_of(ctx)
        kwargs: dict[str, object] = {
            "hospitals": hospitals, "patients_per_hospital": patients, "size": size, "seed": seed,
            "visits": visits, "second_reader": second_reader}
        if phases is not None:
            kwargs["phases"] = tuple(p.strip() for p in phases.split(",") if p.strip())
        try:
            config = SynthConfig.model_validate(kwargs)
        except ValidationError as exc:
            fail(f"invalid synth options: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        try:
            result = generate(out_dir, config, overwrite=overwrite, progress=settings.progress)
        except FileExistsError as exc:
            fail(str(exc))

        table = Table(title=f"synthetic cohort in {result.out_dir}")
        for col in ("cohort", "format", "scanner", "mm", "pts", "scans", "deaths", "C*", "AUC*"):
            table.add_column(col, no_wrap=True)
        for c in result.cohorts:
            table.add_row(
                c.cohort_id, c.storage, c.manufacturer.split()[0],
                f"{c.pixel_spacing:.2f}x{c.slice_spacing:g}",
                str(c.patients), str(c.scans), str(c.os_events),
                "-" if c.oracle_c_os is None else f"{c.oracle_c_os:.3f}",
                "-" if c.oracle_auc_response is None else f"{c.oracle_auc_response:.3f}")
        overall = result.summary["overall"]
        table.add_row("all", "", "", "", str(overall["patients"]),
                      str(sum(c.scans for c in result.cohorts)), str(overall["os_events"]),
                      f"{overall['oracle_c_index_os']:.3f}" if overall["oracle_c_index_os"] else "-",
                      f"{overall['oracle_auc_response']:.3f}" if overall["oracle_auc_response"] else "-")
        console = Console()
        if console.width < 110:
            console = Console(width=110)
        console.print(table)
        typer.echo("C*, AUC*: oracle Harrell C (OS) and response AUC of the true model")
        typer.echo(f"truth (keep away from ingestion): {result.truth_dir}")
