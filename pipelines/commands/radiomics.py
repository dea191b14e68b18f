"""``radstore radiomics``: PyRadiomics-compatible features of one image + mask (drop-in CLI)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Backend(StrEnum):
    torch = "torch"
    pyradiomics = "pyradiomics"


class Format(StrEnum):
    json = "json"
    csv = "csv"


def register(app: typer.Typer) -> None:
    @app.command("radiomics")
    def radiomics(
        image: Annotated[Path, typer.Argument(help="image file (NIfTI/NRRD/...) or DICOM series folder")],
        mask: Annotated[Path, typer.Argument(help="label map file, or DICOM RTSTRUCT (file or folder)")],
        params: Annotated[Path | None, typer.Option("--params", help="PyRadiomics params.yaml")] = None,
        label: Annotated[int | None, typer.Option("--label", help="label [default: params']")] = None,
        backend: Annotated[Backend, typer.Option("--backend")] = Backend.torch,
        device: Annotated[str, typer.Option("--device", help="cpu or cuda")] = "cpu",
        fmt: Annotated[Format, typer.Option("--format")] = Format.json,
        output: Annotated[Path | None, typer.Option("--output", help="write here instead of stdout")] = None,
    ) -> None:
        """Compute radiomics features (PyRadiomics names and values) for one ROI."""
        import csv
        import io
        import json

        from pipelines.commands._common import fail
        from radstore.radiomics.files import extract_files
        from radstore.radiomics.imageops import ROIError
        from radstore.radiomics.settings import RadiomicsSettings, SettingsError

        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            fail(f"--device must be cpu or cuda, got {device!r}")
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                fail("--device cuda requested but no CUDA device is available")
        try:
            settings = RadiomicsSettings.from_params(params)
            values = extract_files(image, mask, settings, label, backend.value, device)
        except (SettingsError, ROIError, FileNotFoundError, ValueError) as exc:
            fail(str(exc))
        except ImportError as exc:
            fail(f"backend {backend.value} unavailable: {exc}")
        if fmt is Format.json:
            text = json.dumps(values, indent=2) + "\n"
        else:
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(["feature", "value"])
            writer.writerows([k, repr(v)] for k, v in values.items())
            text = buf.getvalue()
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text)
            typer.echo(f"wrote {len(values)} features to {output}", err=True)
