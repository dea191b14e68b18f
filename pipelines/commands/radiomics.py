"""``radstore radiomics``: PyRadiomics-compatible features of one image + mask, or of every row of a
PyRadiomics batch CSV (drop-in CLI)."""

from __future__ import annotations

import csv
import gc
import io
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
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


class PathFormat(StrEnum):
    absolute = "absolute"
    relative = "relative"
    basename = "basename"


class Mode(StrEnum):
    segment = "segment"
    voxel = "voxel"


@dataclass(frozen=True)
class OutputOptions:
    """How cases are written: format, destination, PyRadiomics' path formatting and NaN skipping,
    and the per-case folder (``--out-dir``)."""

    fmt: Format | None
    output: Path | None
    out_dir: Path | None
    format_path: PathFormat
    unix_path: bool
    skip_nans: bool

    def paths(self, image: str, mask: str, start: Path) -> dict[str, str]:
        """``Image`` and ``Mask`` as PyRadiomics' ``--format-path`` writes them (``relative`` to
        ``start``: the batch CSV's folder, or the working directory for one case)."""
        out = {}
        for key, value in (("Image", image), ("Mask", mask)):
            full = os.path.abspath(os.path.join(start, value))
            text = {PathFormat.absolute: full, PathFormat.relative: os.path.relpath(full, start),
                    PathFormat.basename: os.path.basename(full)}[self.format_path]
            out[key] = text.replace(os.sep, "/") if self.unix_path else text
        return out

    def features(self, values: dict[str, float]) -> dict[str, float]:
        """``values`` without NaNs when ``--skip-nans`` (our engine gives none; the pyradiomics
        backend may)."""
        return {k: v for k, v in values.items() if not math.isnan(v)} if self.skip_nans else values


def register(app: typer.Typer) -> None:
    @app.command("radiomics")
    def radiomics(
        image: Annotated[Path, typer.Argument(
            help="image file (NIfTI/NRRD/...) or DICOM series folder (FOLDER#N: series number N of a "
            "folder holding several); or a batch CSV (columns Image, Mask[, Label], paths relative to "
            "it) given alone")],
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
        out_dir: Annotated[Path | None, typer.Option(
            "--out-dir", "-od", help="also write each case to DIR/features_<n>.csv as it finishes; a "
            "re-run reads finished cases back (an interrupted batch resumes)")] = None,
        format_path: Annotated[PathFormat, typer.Option(
            "--format-path", help="Image and Mask in the output: absolute, relative (to the batch CSV) "
            "or basename")] = PathFormat.absolute,
        unix_path: Annotated[bool, typer.Option("--unix-path", "-up",
                                                help="write the output's paths with '/'")] = False,
        skip_nans: Annotated[bool, typer.Option("--skip-nans", help="leave out features whose value "
                                                "is NaN")] = False,
        mode: Annotated[Mode, typer.Option("--mode", "-m", help="segment (voxel-based feature maps "
                                           "are not offered)")] = Mode.segment,
        validate: Annotated[bool, typer.Option(
            "--validate", help="check the params and that every input exists, extract nothing")] = False,
        jobs: Annotated[int, typer.Option("--jobs", "-j", min=1,
                                          help="batch CSV: worker processes (one case at a time each)")] = 1,
    ) -> None:
        """Compute radiomics features (PyRadiomics names and values) for one ROI, or for every row
        of a batch CSV (input columns kept, one row per case; failed cases are listed, exit code 1).
        PyRadiomics' command-line options are accepted, except voxel mode and its logging options."""
        import json

        from pipelines.commands._common import fail
        from radstore.radiomics.engine import feature_names
        from radstore.radiomics.files import CaseFiles, extract_files
        from radstore.radiomics.imageops import ROIError
        from radstore.radiomics.settings import RadiomicsSettings, SettingsError

        gc.freeze()  # (the imported libraries live as long as the process: ~0.5 s less at its exit)
        if mode is Mode.voxel:
            fail("--mode voxel (feature maps) is not offered: radstore extracts one value per ROI "
                 "(segment mode)")
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            fail(f"--device must be cpu or cuda, got {device!r}")
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                fail("--device cuda requested but no CUDA device is available")
        overrides = _setting_overrides(setting or [])
        how = OutputOptions(fmt, output, out_dir, format_path, unix_path, skip_nans)
        if mask is None:
            if image.suffix.lower() != ".csv":
                fail("give IMAGE and MASK, or a batch CSV (columns Image, Mask[, Label]) alone")
            if label is not None:
                fail("--label applies to one ROI; a batch CSV takes a Label column")
            _batch(image, params, overrides, backend, device, how, jobs, validate)
            return
        try:
            settings = RadiomicsSettings.from_params(params, overrides)
            if validate:
                _report_validation(settings, [(image, mask)])
                return
            store = CaseFiles(out_dir, settings, feature_names(settings)) if out_dir else None
            stored = store.load(0) if store else None
            values = stored or extract_files(image, mask, settings, label, backend.value, device)
        except (SettingsError, ROIError, FileNotFoundError, ValueError) as exc:
            fail(str(exc))
        except ImportError as exc:
            fail(f"backend {backend.value} unavailable: {exc}")
        paths = how.paths(str(image), str(mask), Path.cwd())
        if store is not None and stored is None:
            store.save(0, paths, values)
        values = how.features(values)
        if fmt is None or fmt is Format.json:
            text = json.dumps(values, indent=2) + "\n"
        elif fmt is Format.txt:
            text = _txt_text({0: {**paths, **values}})
        else:  # (PyRadiomics' layout: a header row, then the case's row)
            text = _csv_text([*paths, *values], [[*paths.values(), *(repr(v) for v in values.values())]])
        _emit(text, output, f"wrote {len(values)} features to {output}")


def _report_validation(settings: Any, pairs: list[tuple[Path, Path]], rows: list[int] | None = None) -> None:
    """PyRadiomics' ``--validate``: the params were read (``settings``); check that every image and
    mask exists, report, exit 1 when one does not."""
    from radstore.io.dicom import split_mask_ref, split_series_ref

    missing = []
    for k, (image, mask) in enumerate(pairs):
        where = f"row {rows[k]}: " if rows else ""
        if not Path(split_series_ref(str(image))[0]).exists():
            missing.append(f"{where}image {image} does not exist")
        if not Path(split_mask_ref(str(mask))[0]).exists():
            missing.append(f"{where}mask {mask} does not exist")
    for line in missing:
        typer.secho(f"invalid: {line}", fg=typer.colors.RED, err=True)
    typer.echo(f"params valid; {len(pairs)} case(s), inputs missing in {len(missing)} place(s)", err=True)
    if missing:
        raise typer.Exit(1)


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
           how: OutputOptions, jobs: int, validate: bool) -> None:
    """Batch mode of ``radstore radiomics``: every row of a PyRadiomics batch CSV."""
    import json

    from pipelines.commands._common import fail
    from radstore.progress import track
    from radstore.radiomics.engine import feature_names
    from radstore.radiomics.files import CaseFiles, extract_cases, n_groups, read_batch_csv
    from radstore.radiomics.settings import RadiomicsSettings, SettingsError

    try:
        settings = RadiomicsSettings.from_params(params, overrides)
        rows, cases = read_batch_csv(path)
        if validate:
            _report_validation(settings, [(c.image, c.mask) for c in cases], [c.index + 2 for c in cases])
            return
        names = feature_names(settings)
        store = CaseFiles(how.out_dir, settings, names) if how.out_dir else None
    except (SettingsError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
        return
    inputs = {i: {**row, **how.paths(row["Image"].strip(), row["Mask"].strip(), path.parent)}
              for i, row in enumerate(rows)}
    results: dict[int, dict[str, float] | str] = {}
    if store is not None:
        results = {c.index: got for c in cases if (got := store.load(c.index)) is not None}
        if results:
            typer.echo(f"{len(results)} of {len(cases)} cases read back from {how.out_dir}", err=True)
    pending = [c for c in cases if c.index not in results]
    groups = extract_cases(pending, settings, backend.value, device, jobs) if pending else iter(())
    try:
        for group in track(groups, f"radiomics {path.name} ({len(pending)} cases)",
                           total=n_groups(len(pending), jobs)):
            for i, result in group:
                results[i] = result
                if store is not None and isinstance(result, dict):
                    store.save(i, inputs[i], result)
    except ImportError as exc:
        fail(f"backend {backend.value} unavailable: {exc}")
    done = {i: how.features(r) for i, r in sorted(results.items()) if isinstance(r, dict)}
    if how.fmt is Format.json:  # (JSON Lines, as PyRadiomics' batch output: one object per case and line)
        text = "".join(json.dumps({**inputs[i], **feats}) + "\n" for i, feats in done.items())
    elif how.fmt is Format.txt:
        text = _txt_text({i: {**inputs[i], **feats} for i, feats in done.items()})
    else:  # (a NaN left out by --skip-nans is an empty cell, as PyRadiomics writes it)
        columns = list(rows[0])
        text = _csv_text([*columns, *names], ([inputs[i].get(c, "") for c in columns]
                                              + [repr(feats[n]) if n in feats else "" for n in names]
                                              for i, feats in done.items()))
    _emit(text, how.output, f"wrote {len(done)} of {len(cases)} cases to {how.output}")
    failed = {i: r for i, r in sorted(results.items()) if not isinstance(r, dict)}
    for i, why in failed.items():
        typer.secho(f"failed: row {i + 2} (Image {rows[i]['Image']}, Mask {rows[i]['Mask']}): {why}",
                    fg=typer.colors.RED, err=True)
    if failed:
        raise typer.Exit(1)
