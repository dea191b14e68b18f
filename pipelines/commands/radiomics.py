"""``radstore radiomics``: PyRadiomics-compatible features of one image + mask, or of every row of a
PyRadiomics batch CSV (drop-in CLI)."""

from __future__ import annotations

import csv
import gc
import io
import os
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer


class Backend(StrEnum):
    torch = "torch"
    pyradiomics = "pyradiomics"


class Format(StrEnum):
    json = "json"
    csv = "csv"
    txt = "txt"


def register(app: typer.Typer) -> None:
    @app.command("radiomics")
    def radiomics(
        image: Annotated[Path, typer.Argument(
            help="image file (NIfTI/NRRD/...) or DICOM series folder; or a batch CSV (columns Image, "
            "Mask[, Label], paths relative to it) given alone")],
        mask: Annotated[Path | None, typer.Argument(
            help="label map file, or DICOM RTSTRUCT or SEG (file or folder; label n: the n-th ROI, "
            "or with MASK#NAME[,NAME...] the ROI of the n-th name)")] = None,
        params: Annotated[Path | None, typer.Option("--params", "--param", "-p",
                                                    help="PyRadiomics params.yaml")] = None,
        setting: Annotated[list[str] | None, typer.Option(
            "--setting", "-s", help="KEY:VALUE overriding the params' setting section (repeatable; the "
            "value as YAML, e.g. binWidth:10 or resampledPixelSpacing:[1,1,1]), as PyRadiomics' CLI")] = None,
        label: Annotated[int | None, typer.Option("--label", "-l", help="label [default: params']")] = None,
        backend: Annotated[Backend, typer.Option("--backend")] = Backend.torch,
        device: Annotated[str, typer.Option("--device", help="cpu or cuda")] = "cpu",
        fmt: Annotated[Format | None, typer.Option(
            "--format", "-f", help="json, csv or txt, laid out as PyRadiomics' [default: json for one ROI, "
            "csv for a batch CSV]")] = None,
        output: Annotated[Path | None, typer.Option(
            "--output", "--out", "-o", help="write here (replacing the file) instead of stdout")] = None,
        jobs: Annotated[int, typer.Option("--jobs", "-j", min=1,
                                          help="batch CSV: worker processes (one case at a time each)")] = 1,
    ) -> None:
        """Compute radiomics features (PyRadiomics names and values) for one ROI, or for every row
        of a batch CSV (input columns kept, one row per case; failed cases are listed, exit code 1)."""
        import json

        from pipelines.commands._common import fail
        from radstore.radiomics.files import extract_files
        from radstore.radiomics.imageops import ROIError
        from radstore.radiomics.settings import RadiomicsSettings, SettingsError

        gc.freeze()  # (the imported libraries live as long as the process: ~0.5 s less at its exit)
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            fail(f"--device must be cpu or cuda, got {device!r}")
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                fail("--device cuda requested but no CUDA device is available")
        overrides = _setting_overrides(setting or [])
        if mask is None:
            if image.suffix.lower() != ".csv":
                fail("give IMAGE and MASK, or a batch CSV (columns Image, Mask[, Label]) alone")
            if label is not None:
                fail("--label applies to one ROI; a batch CSV takes a Label column")
            _batch(image, params, overrides, backend, device, fmt or Format.csv, output, jobs)
            return
        try:
            settings = RadiomicsSettings.from_params(params, overrides)
            values = extract_files(image, mask, settings, label, backend.value, device)
        except (SettingsError, ROIError, FileNotFoundError, ValueError) as exc:
            fail(str(exc))
        except ImportError as exc:
            fail(f"backend {backend.value} unavailable: {exc}")
        paths = {"Image": os.path.abspath(image), "Mask": os.path.abspath(mask)}  # (as PyRadiomics)
        if fmt is None or fmt is Format.json:
            text = json.dumps(values, indent=2) + "\n"
        elif fmt is Format.txt:
            text = _txt_text({0: {**paths, **values}})
        else:  # (PyRadiomics' layout: a header row, then the case's row)
            text = _csv_text([*paths, *values], [[*paths.values(), *(repr(v) for v in values.values())]])
        _emit(text, output, f"wrote {len(values)} features to {output}")


def _setting_overrides(items: list[str]) -> dict[str, Any]:
    """``["binWidth:10", "resampledPixelSpacing:[1,1,1]"]`` as a dict, each value read as YAML."""
    import yaml

    from pipelines.commands._common import fail

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            fail(f"--setting takes KEY:VALUE (e.g. binWidth:10), got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            fail(f"--setting {item!r}: the value is not valid YAML: {exc}")
    return out


def _csv_text(header: list[str], rows: Iterable[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _txt_text(cases: dict[int, dict[str, Any]]) -> str:
    """PyRadiomics' ``txt`` output: a line ``Case-<n>_<key>: <value>`` per key of each case (``n``
    counts the batch CSV's cases from 1)."""
    return "".join(f"Case-{i + 1}_{key}: {value}\n"
                   for i, case in cases.items() for key, value in case.items())


def _emit(text: str, output: Path | None, summary: str) -> None:
    """``text`` to stdout, or to ``output`` with ``summary`` on stderr."""
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(summary, err=True)


def _batch(path: Path, params: Path | None, overrides: dict[str, Any], backend: Backend, device: str,
           fmt: Format, output: Path | None, jobs: int) -> None:
    """Batch mode of ``radstore radiomics``: every row of a PyRadiomics batch CSV."""
    import json

    from pipelines.commands._common import fail
    from radstore.progress import track
    from radstore.radiomics.engine import feature_names
    from radstore.radiomics.files import extract_cases, n_groups, read_batch_csv
    from radstore.radiomics.settings import RadiomicsSettings, SettingsError

    try:
        settings = RadiomicsSettings.from_params(params, overrides)
        rows, cases = read_batch_csv(path)
    except (SettingsError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
        return
    names = feature_names(settings)
    results: dict[int, dict[str, float] | str] = {}
    groups = extract_cases(cases, settings, backend.value, device, jobs)
    try:
        for group in track(groups, f"radiomics {path.name} ({len(cases)} cases)",
                           total=n_groups(len(cases), jobs)):
            results.update(group)
    except ImportError as exc:
        fail(f"backend {backend.value} unavailable: {exc}")
    done = {i: r for i, r in sorted(results.items()) if isinstance(r, dict)}
    if fmt is Format.json:  # (JSON Lines, as PyRadiomics' batch output: one object per case and line)
        text = "".join(json.dumps({**rows[i], **feats}) + "\n" for i, feats in done.items())
    elif fmt is Format.txt:
        text = _txt_text({i: {**rows[i], **feats} for i, feats in done.items()})
    else:
        columns = list(rows[0])
        text = _csv_text([*columns, *names], ([rows[i].get(c, "") for c in columns]
                                              + [repr(feats[n]) for n in names] for i, feats in done.items()))
    _emit(text, output, f"wrote {len(done)} of {len(cases)} cases to {output}")
    failed = {i: r for i, r in sorted(results.items()) if not isinstance(r, dict)}
    for i, why in failed.items():
        typer.secho(f"failed: row {i + 2} (Image {rows[i]['Image']}, Mask {rows[i]['Mask']}): {why}",
                    fg=typer.colors.RED, err=True)
    if failed:
        raise typer.Exit(1)
