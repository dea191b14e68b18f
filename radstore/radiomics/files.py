"""File edge of the radiomics stage: read an image + mask from disk and extract (used by the CLI).

Image: any file SimpleITK reads (NIfTI, NRRD, MHA...) or a DICOM series folder. Mask: a label map
file on the same grid, or a DICOM RTSTRUCT or SEG (file, or a folder holding one) of which the ROI
of the label is rasterised onto the image grid (label n: the n-th ROI in ROI-number order, or
segment n; with ``path#NAME[,NAME...]`` the ROI of the n-th name), see :func:`read_mask`.

Batch mode (PyRadiomics' batch CSV): columns ``Image``, ``Mask`` and optionally ``Label``; relative
paths are relative to the CSV's folder; other columns are passed through. Cases run in groups of
``GROUP`` per ``extract_batch`` call, on ``jobs`` single-threaded worker processes (the per-ROI work
is GIL-bound Python: processes scale, threads do not; forked when that is safe, see
:func:`worker_start_method`); a case that cannot be read or extracted is
reported with its reason and the others go on.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from radstore.radiomics.settings import RadiomicsSettings, Setting
from radstore.volume import Volume


def _dicom_mask_file(path: Path) -> tuple[Path, str] | None:
    """The DICOM RTSTRUCT or SEG file ``path`` is, or holds (a folder), and its modality; else None
    (at once for a NIfTI/NRRD name: pydicom is not even imported)."""
    from radstore.io.volumes import is_volume_file

    if path.is_file() and is_volume_file(path):
        return None
    import pydicom

    candidates = sorted(path.glob("*")) if path.is_dir() else [path]
    for f in candidates:
        if not f.is_file():
            continue
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["Modality"])
        except Exception:  # not DICOM
            continue
        modality = str(ds.get("Modality", ""))
        if modality in ("RTSTRUCT", "SEG"):
            return f, modality
    return None


@contextlib.contextmanager
def _as_value_error() -> Iterator[None]:
    """A DICOM reader's :class:`ValidationFailure` as the ``ValueError`` this module raises."""
    from radstore.validation import ValidationFailure

    try:
        yield
    except ValidationFailure as exc:
        raise ValueError(f"{exc.message} [{exc.rule}]") from exc


def read_image(path: Path | str) -> Volume:
    """A DICOM series folder (``folder#<series number>`` for one of several series in a folder) or
    any SimpleITK-readable 3-D image file."""
    from radstore.io.dicom import split_series_ref

    ref, number = split_series_ref(str(path))
    path = Path(ref)
    if path.is_dir():
        from radstore.io.dicom import read_series

        with _as_value_error():
            return read_series(path, number)
    if number is not None:
        raise ValueError(f"{path}: '#{number}' names a series of a DICOM folder, and this is no folder")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    return Volume.from_sitk(_read_3d(path, "image"))


def _read_3d(path: Path, what: str) -> Any:
    """The 3-D SimpleITK image in file ``path``; ``ValueError`` naming the file and ``what`` it
    should hold otherwise."""
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path}: not an image SimpleITK can read") from exc
    if img.GetDimension() == 4 and img.GetSize()[3] == 1:  # (a 4-D file of one volume, as ingest reads it)
        img = img[:, :, :, 0]
    if img.GetDimension() != 3:
        raise ValueError(f"{path}: expected a 3-D {what}, got {img.GetDimension()}-D")
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{path}: expected a scalar {what}, got {img.GetNumberOfComponentsPerPixel()} "
                         "components per voxel (PyRadiomics' label_channel is not offered)")
    return img


ITK_COORDINATE_TOLERANCE = 1e-6  # SimpleITK's default coordinate and direction tolerance


def grid_mismatch(image: Volume, mask: Any, tolerance: float | None = None) -> str | None:
    """Why the SimpleITK image ``mask`` does not lie on ``image``'s grid, or None. As ITK (and so
    PyRadiomics) tests it: equal size, origin and spacing within ``tolerance`` times the image's
    first spacing, direction cosines within ``tolerance`` (None: ITK's default, 1e-6)."""
    tol = ITK_COORDINATE_TOLERANCE if tolerance is None else tolerance
    size = tuple(int(n) for n in mask.GetSize())
    image_size = tuple(int(n) for n in image.shape[::-1])
    if size != image_size:
        return f"size (x, y, z) {size} differs from the image's {image_size}"
    coordinate_tol = abs(tol * image.spacing[0])
    for what, mine, theirs, t in (("origin", mask.GetOrigin(), image.origin, coordinate_tol),
                                  ("spacing", mask.GetSpacing(), image.spacing, coordinate_tol),
                                  ("direction", mask.GetDirection(), image.direction, tol)):
        diff = float(np.max(np.abs(np.asarray(mine, dtype=float) - np.asarray(theirs, dtype=float))))
        unit = "" if what == "direction" else " mm"
        if diff > t:
            return f"{what} differs from the image's by {diff:.4g}{unit} (tolerance {t:.3g}{unit})"
    return None


def _resample_onto(image: Volume, mask: Any, label: int, name: str) -> np.ndarray:
    """PyRadiomics' ``correctMask``: check that the ROI of ``label`` lies inside the image's physical
    extent (its bounding-box corners within the image's voxel edges, 1e-3 voxel tolerance), then
    resample the whole mask onto the image grid by nearest neighbour."""
    import SimpleITK as sitk

    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(mask, sitk.sitkUInt32))
    if label not in stats.GetLabels():
        raise ValueError(f"{name}: label {label} not present in mask "
                         f"(labels present: {list(stats.GetLabels())})")
    bb = np.asarray(stats.GetBoundingBox(label), dtype=float)  # lower index (x, y, z), then size
    ref = sitk.Image([int(n) for n in image.shape[::-1]], sitk.sitkUInt8)
    ref.SetSpacing(tuple(float(v) for v in image.spacing))
    ref.SetOrigin(tuple(float(v) for v in image.origin))
    ref.SetDirection(tuple(float(v) for v in image.direction))
    corners = [ref.TransformPhysicalPointToContinuousIndex(mask.TransformContinuousIndexToPhysicalPoint(
        tuple(float(v) for v in c))) for c in (bb[:3] - 0.5, bb[:3] + bb[3:] - 0.5)]
    lo, hi = np.min(corners, axis=0), np.max(corners, axis=0)
    if np.any(lo < -0.5 - 1e-3) or np.any(hi > np.asarray(ref.GetSize()) - 0.5 + 1e-3):
        raise ValueError(f"{name}: the ROI of label {label} extends outside the image; correctMask "
                         "cannot resample it onto the image grid")
    resampled = sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
    return sitk.GetArrayFromImage(resampled)


def read_mask(path: Path | str, image: Volume, setting: Setting | None = None,
              label: int | None = None) -> np.ndarray:
    """A label map on ``image``'s grid from a label-map file, or from a DICOM RTSTRUCT or SEG (file
    or folder) holding the ROI of ``label`` only (default the setting's label).

    A DICOM mask may be named ``path#NAME[,NAME...]``: label ``k`` is then the ROI (RTSTRUCT ROI
    Name, SEG Segment Label) of the ``k``-th name; without names label ``n`` is the ``n``-th ROI in
    ROI-number order (RTSTRUCT) or segment number ``n`` (SEG). Only that ROI is rasterised, so the
    others may overlap it. A label-map file must lie on the image's grid (:func:`grid_mismatch`,
    with ``setting``'s ``geometryTolerance``); otherwise, with ``correctMask``, it is resampled onto
    the image grid as PyRadiomics does (:func:`_resample_onto`), else a ``ValueError`` names the
    difference and both settings."""
    import SimpleITK as sitk

    from radstore.io.dicom import split_mask_ref

    s = setting or Setting()
    wanted = s.label if label is None else label
    ref, names = split_mask_ref(str(path))
    path = Path(ref)
    if not path.exists():
        raise FileNotFoundError(f"{path}: mask not found")
    dicom_mask = _dicom_mask_file(path)
    if dicom_mask is not None:
        return _read_dicom_roi(*dicom_mask, image, names, wanted)
    if names:
        raise ValueError(f"{path}: '#{','.join(names)}' names ROIs of a DICOM RTSTRUCT or SEG; a "
                         "label-map file takes a label (--label, or the Label column)")
    if path.is_dir():
        raise ValueError(f"{path}: folder holds no DICOM RTSTRUCT or SEG")
    mask = _read_3d(path, "mask")
    why = grid_mismatch(image, mask, s.geometryTolerance)
    if why is None:
        return sitk.GetArrayFromImage(mask)
    if not s.correctMask:
        raise ValueError(f"{path}: mask geometry mismatch: {why}. Set geometryTolerance to accept small "
                         "differences, or correctMask: true to resample the mask onto the image grid")
    return _resample_onto(image, mask, wanted, str(path))


def _read_dicom_roi(path: Path, modality: str, image: Volume, names: tuple[str, ...], label: int
                    ) -> np.ndarray:
    """The ROI that is ``label`` (see :func:`read_mask`) of RTSTRUCT/SEG ``path``, as a label map
    holding ``label`` on ``image``'s grid. Errors list the file's ROIs by label and name."""
    from radstore.io.dicom import mask_rois, rasterise_rtstruct, read_seg
    from radstore.validation import Rule, ValidationFailure

    def listing() -> str:
        with _as_value_error():
            rois = mask_rois(path)
        return ", ".join(f"{lab} {n!r}" for lab, n in rois.items()) or "none"

    if names and not 1 <= label <= len(names):
        raise ValueError(f"{path}: label {label} selects none of the {len(names)} ROI names after '#' "
                         f"(label k is the k-th name); the file's ROIs (label name): {listing()}")
    pick: str | int = names[label - 1] if names else label
    try:
        one = read_seg(path, image, segments=[pick]) if modality == "SEG" else rasterise_rtstruct(
            path, image, rois=[pick])[0]
    except ValidationFailure as exc:
        rois = f"; the file's ROIs (label name): {listing()}" if exc.rule == Rule.UNKNOWN_ROI else ""
        raise ValueError(f"{exc.message} [{exc.rule}]{rois}") from exc
    return np.where(one == 1, label, 0).astype(np.uint8 if label < 256 else np.uint16)


def extract_files(image: Path | str, mask: Path | str, settings: RadiomicsSettings,
                  label: int | None = None, backend: Literal["torch", "pyradiomics"] = "torch",
                  device: str = "cpu") -> dict[str, float]:
    """Features of ``label`` in ``mask`` over ``image`` (paths), with the chosen backend."""
    vol = read_image(image)
    m = read_mask(mask, vol, settings.setting, label)
    return _extractor(backend)(vol.array, m, vol.spacing_zyx, settings, label=label, device=device)


def _extractor(backend: Literal["torch", "pyradiomics"]) -> Callable[..., dict[str, float]]:
    """``extract`` of the chosen backend (the pyradiomics one is an optional extra)."""
    if backend == "pyradiomics":
        from radstore.radiomics import pyradiomics_backend

        return pyradiomics_backend.extract
    from radstore.radiomics import engine

    return engine.extract


GROUP = 8  # cases per extract_batch call in batch mode (small ROIs gain ~2x from batching)


@dataclass(frozen=True)
class Case:
    """One row of a batch CSV: ``index`` (0-based data row), resolved paths and label (None: the
    settings' label)."""

    index: int
    image: Path
    mask: Path
    label: int | None


def read_batch_csv(path: Path | str) -> tuple[list[dict[str, str]], list[Case]]:
    """The rows (as read, for pass-through) and :class:`Case` s of a PyRadiomics batch CSV. Raises
    ``ValueError`` naming the file and row for a missing ``Image``/``Mask`` column or value or a
    non-integer ``Label``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: batch CSV not found")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("Image", "Mask") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: batch CSV needs columns Image and Mask (PyRadiomics' names); "
                             f"missing {', '.join(missing)}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: batch CSV has no cases")
    cases = []
    for i, row in enumerate(rows):
        image, mask = (row.get("Image") or "").strip(), (row.get("Mask") or "").strip()
        if not image or not mask:
            raise ValueError(f"{path}: row {i + 2}: empty Image or Mask")
        label_text = (row.get("Label") or "").strip()
        try:
            label = int(label_text) if label_text else None
        except ValueError:
            raise ValueError(f"{path}: row {i + 2}: Label {label_text!r} is not an integer") from None
        cases.append(Case(i, path.parent / image, path.parent / mask, label))
    return rows, cases


def _read_case(case: Case, label: int, settings: RadiomicsSettings
               ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    vol = read_image(case.image)
    m = read_mask(case.mask, vol, settings.setting, label)
    roi = m == label
    if not roi.any():
        present = [int(v) for v in np.unique(m) if v != 0]
        raise ValueError(f"label {label} is not in the mask (labels present: {present})")
    return vol.array, roi.view(np.uint8), vol.spacing_zyx


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def extract_group(cases: Sequence[Case], settings: RadiomicsSettings,
                  backend: Literal["torch", "pyradiomics"] = "torch", device: str = "cpu"
                  ) -> list[tuple[int, dict[str, float] | str]]:
    """``(case index, features or the reason it failed)`` for each case: the readable ones in one
    ``extract_batch`` call (torch backend), one by one when that call fails (to isolate the case).
    Any error of one case (unreadable file, bad ROI, a library error) is recorded as its reason, so
    one case never stops a cohort."""
    from radstore.radiomics import engine

    out: dict[int, dict[str, float] | str] = {}
    rois: dict[int, tuple[np.ndarray, np.ndarray, tuple[float, float, float]]] = {}
    for case in cases:
        try:
            label = settings.setting.label if case.label is None else case.label
            rois[case.index] = _read_case(case, label, settings)
        except Exception as exc:  # recorded per case: the batch goes on
            out[case.index] = _why(exc)
    extract_one = _extractor(backend)
    batched = None
    if backend == "torch" and len(rois) > 1:
        try:
            batched = engine.extract_batch(list(rois.values()), settings, label=1, device=device)
        except Exception:  # one case is bad: found one by one below
            batched = None
    for k, (i, roi) in enumerate(rois.items()):
        if batched is not None:
            out[i] = batched[k]
            continue
        try:
            out[i] = extract_one(*roi, settings, label=1, device=device)
        except Exception as exc:  # recorded per case: the batch goes on
            out[i] = _why(exc)
    return [(c.index, out[c.index]) for c in cases]


def _single_threaded() -> None:
    import SimpleITK as sitk
    import torch

    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def _group_size(n_cases: int, jobs: int, group: int) -> int:
    return max(1, min(group, -(-n_cases // jobs)))


def n_groups(n_cases: int, jobs: int, group: int | None = None) -> int:
    """How many groups :func:`extract_cases` makes of ``n_cases`` (for a progress bar)."""
    size = _group_size(n_cases, jobs, GROUP if group is None else group)
    return -(-n_cases // size)


def worker_start_method() -> Literal["fork", "spawn"]:
    """``"fork"`` while the only threads of this process besides the main one are the pools of its
    OpenBLAS libraries (NumPy's, SciPy's; OpenBLAS stops and restarts them around ``fork()``): forked
    workers start with torch, numba and the rest imported, where a spawned one spends ~4 s importing
    them. Otherwise ``"spawn"``: a child forked beside another thread (an OpenMP pool once torch ran
    an op, a progress bar) can inherit a lock that thread held, and hang. Threads are counted in
    ``/proc/self/task`` (so, off Linux, always ``"spawn"``)."""
    import threading

    from threadpoolctl import threadpool_info

    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError:
        return "spawn"
    blas_pools = sum(max(0, int(lib["num_threads"]) - 1) for lib in threadpool_info()
                     if lib["internal_api"] == "openblas")
    return "fork" if threading.active_count() == 1 and threads == 1 + blas_pools else "spawn"


def extract_cases(cases: Sequence[Case], settings: RadiomicsSettings,
                  backend: Literal["torch", "pyradiomics"] = "torch", device: str = "cpu", jobs: int = 1,
                  group: int | None = None) -> Iterator[list[tuple[int, dict[str, float] | str]]]:
    """:func:`extract_group` over groups of up to ``group`` cases (fewer when that keeps every worker
    busy), in this process (``jobs`` 1) or on ``jobs`` single-threaded worker processes (started
    here, before the first result is asked for, by :func:`worker_start_method`); yields each group's
    results in input order. Iterate the result to the end (or close it): that stops the workers."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    size = _group_size(len(cases), jobs, GROUP if group is None else group)
    groups = [list(cases[i:i + size]) for i in range(0, len(cases), size)]
    if jobs == 1:
        return (extract_group(g, settings, backend, device) for g in groups)
    method = worker_start_method()
    freeze = method == "fork" and gc.get_freeze_count() == 0  # (not when the caller froze already)
    if freeze:
        gc.freeze()  # (the workers' copies of the imported modules: no collections, a quick exit)
    try:
        pool = ProcessPoolExecutor(min(jobs, len(groups)), mp_context=multiprocessing.get_context(method),
                                   initializer=_single_threaded)
        n = len(groups)
        try:  # (map submits every group now: with fork, all workers start before any thread here)
            results = pool.map(extract_group, groups, [settings] * n, [backend] * n, [device] * n)
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    finally:
        if freeze:
            gc.unfreeze()
    return _drain(pool, results)


def _drain(pool: ProcessPoolExecutor, results: Iterator[Any]) -> Iterator[Any]:
    with pool:
        yield from results


class CaseFiles:
    """PyRadiomics' ``--out-dir``: a CSV per finished case, ``features_<n>.csv`` (``n`` counts the
    cases from 1; a header and one row: the case's input columns, then its features), written as
    soon as the case is done (atomically) and read back instead of extracted when the batch runs
    again, so an interrupted batch resumes where it stopped. ``radstore-settings.json`` in the
    folder holds the settings' version: a folder of other settings' results raises ``ValueError``
    (PyRadiomics would mix them in silently)."""

    MARKER = "radstore-settings.json"

    def __init__(self, folder: Path | str, settings: RadiomicsSettings, names: Sequence[str]) -> None:
        import json

        from radstore import ids

        self.folder, self.names = Path(folder), list(names)
        version = ids.settings_version(settings)
        marker = self.folder / self.MARKER
        if marker.is_file():
            held = json.loads(marker.read_text()).get("version")
            if held != version:
                raise ValueError(f"{self.folder}: holds results of other settings (version {held}; these "
                                 f"are {version}): give another --out-dir, or empty this one")
            return
        if self.folder.is_dir() and any(self.folder.glob("features_*.csv")):
            raise ValueError(f"{self.folder}: holds features_*.csv of unknown settings (no {self.MARKER}): "
                             "give another --out-dir, or empty this one")
        self.folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"version": version, "settings": settings.model_dump(mode="json")},
                                     indent=2) + "\n")

    def path(self, index: int) -> Path:
        return self.folder / f"features_{index + 1}.csv"

    def load(self, index: int) -> dict[str, float] | None:
        """The features of case ``index`` (0-based) if its file holds every feature, else None."""
        path = self.path(index)
        if not path.is_file():
            return None
        with open(path, newline="") as fh:
            row = next(csv.DictReader(fh), None)
        if row is None or any(not row.get(n) for n in self.names):
            return None
        return {n: float(row[n]) for n in self.names}

    def save(self, index: int, inputs: dict[str, str], features: dict[str, float]) -> None:
        path = self.path(index)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow([*inputs, *features])
            writer.writerow([*inputs.values(), *(repr(v) for v in features.values())])
        os.replace(tmp, path)
