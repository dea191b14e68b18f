"""DICOM I/O: CT series → :class:`Volume`, RTSTRUCT/SEG → label maps on the image grid, and the
writers the synthetic cohort and the tests use.

Geometry follows ITK: ``origin`` is the Image Position (Patient) of the first slice along the slice
normal ``n = r × c`` (``r``, ``c`` the row/column direction cosines of Image Orientation (Patient)),
``direction`` has columns ``(r, c, n)`` and ``spacing = (PixelSpacing[1], PixelSpacing[0], Δz)``
with ``Δz`` the median distance between consecutive slice positions projected on ``n``.

Every failure raises :class:`radstore.validation.ValidationFailure` with a rule name; messages name
the file (relative to the folder the caller passes) but never a header value that could be PHI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radstore import deid
from radstore.validation import Rule, ValidationFailure, check_slice_positions, check_slices_stacked
from radstore.volume import Volume

CT_IMAGE_STORAGE: Any = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT_STORAGE: Any = "1.2.840.10008.5.1.4.1.1.481.3"


@dataclass
class SeriesGroup:
    """All files of one SeriesInstanceUID found under a folder tree."""

    series_uid: str
    modality: str
    files: list[Path] = field(default_factory=list)
    frame_of_reference_uid: str | None = None
    series_description: str = ""
    acquisition: str | None = None
    referenced_series_uids: tuple[str, ...] = ()
    series_number: int | None = None


def _read(path: Path, *, stop_before_pixels: bool = False) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise ValidationFailure(Rule.UNREADABLE, f"{path.name}: not a readable DICOM file "
                                f"({type(exc).__name__})") from exc


def _acquisition_iso(ds: Any) -> str | None:
    """Acquisition date/time (Acquisition, then Series, then Study) as ISO 8601, or None."""
    for d_kw, t_kw in (("AcquisitionDate", "AcquisitionTime"), ("SeriesDate", "SeriesTime"),
                       ("StudyDate", "StudyTime")):
        d = str(ds.get(d_kw, "") or "")
        if len(d) == 8 and d.isdigit():
            t = str(ds.get(t_kw, "") or "").split(".")[0].ljust(6, "0")[:6]
            if not t.isdigit():
                t = "000000"
            try:
                return dt.datetime.strptime(d + t, "%Y%m%d%H%M%S").isoformat()
            except ValueError:
                continue
    return None


def _referenced_series(ds: Any) -> tuple[str, ...]:
    uids: list[str] = []
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        for st in fr.get("RTReferencedStudySequence", []):
            for se in st.get("RTReferencedSeriesSequence", []):
                if "SeriesInstanceUID" in se:
                    uids.append(str(se.SeriesInstanceUID))
    for se in ds.get("ReferencedSeriesSequence", []):
        if "SeriesInstanceUID" in se:
            uids.append(str(se.SeriesInstanceUID))
    return tuple(dict.fromkeys(uids))


def _frame_of_reference(ds: Any) -> str | None:
    if "FrameOfReferenceUID" in ds:
        return str(ds.FrameOfReferenceUID)
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        if "FrameOfReferenceUID" in fr:
            return str(fr.FrameOfReferenceUID)
    for roi in ds.get("StructureSetROISequence", []):
        if "ReferencedFrameOfReferenceUID" in roi:
            return str(roi.ReferencedFrameOfReferenceUID)
    return None


def scan_tree(root: Path | str, files: Iterable[Path] | None = None) -> list[SeriesGroup]:
    """Group every readable DICOM file under ``root`` by SeriesInstanceUID (unreadable files are
    skipped: discovery lists what it can use and validation reports the rest)."""
    import pydicom

    root = Path(root)
    groups: dict[str, SeriesGroup] = {}
    paths = sorted(files) if files is not None else sorted(p for p in root.rglob("*") if p.is_file())
    for p in paths:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:
            continue
        if "SeriesInstanceUID" not in ds:
            continue
        uid = str(ds.SeriesInstanceUID)
        g = groups.get(uid)
        if g is None:
            g = groups[uid] = SeriesGroup(
                series_uid=uid, modality=str(ds.get("Modality", "")),
                frame_of_reference_uid=_frame_of_reference(ds),
                series_description=str(ds.get("SeriesDescription", "") or ""),
                acquisition=_acquisition_iso(ds), referenced_series_uids=_referenced_series(ds),
                series_number=_series_number(ds))
        g.files.append(p)
    return sorted(groups.values(), key=lambda g: (str(g.files[0]), g.series_uid))


def _orientation(iop_values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    iop = np.asarray([float(v) for v in iop_values], dtype=float)
    r, c = iop[:3], iop[3:]
    return r, c, np.cross(r, c)


@dataclass(frozen=True)
class _Plane:
    """One image plane of a series: a single-frame file, or frame ``frame`` of a multi-frame one
    (Enhanced or Legacy Converted Enhanced CT), with its geometry and rescale."""

    path: Path
    ds: Any
    frame: int | None
    orientation: tuple[float, ...]
    position: tuple[float, ...]
    spacing: tuple[float, float]
    slope: float
    intercept: float

    @property
    def name(self) -> str:
        return self.path.name if self.frame is None else f"{self.path.name} (frame {self.frame + 1})"


_GEOMETRY = {"ImageOrientationPatient": ("PlaneOrientationSequence", "ImageOrientationPatient"),
             "ImagePositionPatient": ("PlanePositionSequence", "ImagePositionPatient"),
             "PixelSpacing": ("PixelMeasuresSequence", "PixelSpacing")}


def _planes(path: Path, ds: Any) -> list[_Plane]:
    """The planes of one file. A multi-frame file takes each frame's geometry and rescale from its
    per-frame functional groups, else from the shared ones (PS3.3 C.7.6.16)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        for kw in _GEOMETRY:
            if kw not in ds:
                raise ValidationFailure(Rule.INCONSISTENT_SERIES, f"{path.name}: no {kw}")
        return [_Plane(path, ds, None, tuple(ds.ImageOrientationPatient), tuple(ds.ImagePositionPatient),
                       tuple(ds.PixelSpacing), float(ds.get("RescaleSlope", 1) or 1),
                       float(ds.get("RescaleIntercept", 0) or 0))]
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]

    def attr(item: Any, group: str, kw: str) -> Any:
        for source in (item, shared):
            seq = source.get(group) if source is not None else None
            if seq and kw in seq[0]:
                return seq[0].data_element(kw).value
        return None

    out = []
    for i, item in enumerate(per_frame):
        values = {kw: attr(item, group, k) for kw, (group, k) in _GEOMETRY.items()}
        for kw, v in values.items():
            if v is None:
                raise ValidationFailure(Rule.INCONSISTENT_SERIES, f"{path.name}: frame {i + 1} has no {kw}")
        slope = attr(item, "PixelValueTransformationSequence", "RescaleSlope")
        inter = attr(item, "PixelValueTransformationSequence", "RescaleIntercept")
        out.append(_Plane(path, ds, i, tuple(values["ImageOrientationPatient"]),
                          tuple(values["ImagePositionPatient"]), tuple(values["PixelSpacing"]),
                          float(slope if slope not in (None, "") else ds.get("RescaleSlope", 1) or 1),
                          float(inter if inter not in (None, "") else ds.get("RescaleIntercept", 0) or 0)))
    return out


def _technical_tags(ds: Any) -> dict[str, Any]:
    """:func:`radstore.deid.technical_tags`; a multi-frame file's missing ones are looked up in its
    functional groups (shared, then the first frame's: e.g. KVP in CT X-Ray Details, the slice
    thickness in Pixel Measures)."""
    from pydicom.dataset import Dataset

    out = deid.technical_tags(ds)
    found = Dataset()
    for seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(seq)
        for elem in (groups[0] if groups else []):
            item = elem.value[0] if elem.VR == "SQ" and elem.value else None
            for kw in deid.TECHNICAL_TAGS:
                if item is not None and kw in item and kw not in found:
                    found.add(item.data_element(kw))
    nested = deid.technical_tags(found)
    return {k: nested[k] if v is None else v for k, v in out.items()}


SIDE_FILE_NAMES = frozenset({"thumbs.db", "desktop.ini", "autorun.inf", "dicomdir"})
SIDE_FILE_SUFFIXES = frozenset({".txt", ".xml", ".json", ".csv", ".htm", ".html", ".pdf", ".md", ".ini",
                                ".inf", ".log", ".db", ".exe", ".jpg", ".jpeg", ".png", ".bmp", ".zip"})


def series_files(folder: Path) -> list[Path]:
    """The files of a series folder that may be DICOM images, sorted: not hidden, not the side
    files exports and file browsers leave there (``Thumbs.db``, ``README.TXT``, ``DICOMDIR``, a
    report PDF, ...). Anything else that is not DICOM is an error of the series."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.name.lower() not in SIDE_FILE_NAMES and p.suffix.lower() not in SIDE_FILE_SUFFIXES)


def _split_at_hash(ref: str, base: Path | str | None) -> tuple[str, str] | None:
    """``"path#tail"`` → ``("path", "tail")`` at the last ``#``; None without one, or when ``ref``
    itself names an existing path (relative to ``base``): a ``#`` in a file name."""
    path, sep, tail = ref.rpartition("#")
    if not sep or (Path(base or ".") / ref).exists():
        return None
    return path, tail


def split_series_ref(ref: str, base: Path | str | None = None) -> tuple[str, int | None]:
    """An image reference ``"study#3"`` → ``("study", 3)``: a folder and the Series Number of the
    series to read from it, for a folder holding several series (a flat study export). Without
    ``#`` (or when ``ref`` itself names an existing path, relative to ``base``) None. Raises
    ``ValueError`` when the part after ``#`` is not a whole number."""
    split = _split_at_hash(ref, base)
    if split is None:
        return ref, None
    path, number = split
    if not number.strip().isdigit() or not path.strip():
        raise ValueError(f"image reference {ref!r}: give 'folder#<series number>' (a whole number)")
    return path.strip(), int(number)


def _series_number(ds: Any) -> int | None:
    try:
        return int(ds.SeriesNumber)
    except (AttributeError, TypeError, ValueError):
        return None


def _numbers(images: Sequence[tuple[Path, Any]]) -> str:
    numbers = sorted({n for _, ds in images if (n := _series_number(ds)) is not None})
    return ", ".join(map(str, numbers)) or "none"


def read_series(folder: Path | str, series_number: int | None = None) -> Volume:
    """Read a CT series folder into a :class:`Volume` of HU (float32 → caller casts to int16): one
    file per slice, or multi-frame files (Enhanced / Legacy Converted Enhanced CT), any transfer
    syntax pydicom + pylibjpeg decode. ``series_number`` takes the series of that Series Number
    from a folder holding several (:func:`split_series_ref`).

    ``meta`` holds the de-identified technical tags (:func:`radstore.deid.technical_tags`) plus,
    under keys starting with ``_``, UIDs and slice positions needed for mask matching (never
    stored). Raises :class:`ValidationFailure` (rules ``unreadable``, ``multiple_series``,
    ``inconsistent_series``, ``missing_slices``, ``uneven_slice_spacing``, ``sheared_slices``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValidationFailure(Rule.UNREADABLE, f"{folder.name}: DICOM series folder not found")
    files = series_files(folder)
    images = []
    for p in files:
        ds = _read(p)
        if "PixelData" not in ds or str(ds.get("Modality", "")) in ("RTSTRUCT", "SEG"):
            continue
        images.append((p, ds))
    if not images:
        raise ValidationFailure(Rule.UNREADABLE, f"{folder.name}: no image slices in the folder")
    if series_number is not None:
        chosen = [(p, ds) for p, ds in images if _series_number(ds) == series_number]
        if not chosen:
            raise ValidationFailure(Rule.UNREADABLE, f"{folder.name}: no series numbered {series_number} "
                                    f"in the folder (its series numbers: {_numbers(images)})")
        images = chosen
    uids = {str(ds.get("SeriesInstanceUID", "")) for _, ds in images}
    if len(uids) > 1:
        raise ValidationFailure(Rule.MULTIPLE_SERIES, (
            f"{folder.name}: {len(uids)} series numbered {series_number}: put each series in its own folder"
            if series_number is not None else
            f"{folder.name}: {len(uids)} series in one folder (series numbers {_numbers(images)}): name "
            f"one as '{folder.name}#<series number>', or put each series in its own folder"))
    planes = [plane for p, ds in images for plane in _planes(p, ds)]
    first = planes[0]
    r, c, n = _orientation(first.orientation)
    ref = (int(first.ds.Rows), int(first.ds.Columns), tuple(float(v) for v in first.spacing))
    for pl in planes:
        cur = (int(pl.ds.Rows), int(pl.ds.Columns), tuple(float(v) for v in pl.spacing))
        if cur != ref or not np.allclose(np.concatenate(_orientation(pl.orientation)[:2]),
                                         np.concatenate([r, c]), atol=1e-4):
            raise ValidationFailure(Rule.INCONSISTENT_SERIES,
                                    f"{pl.name}: size, pixel spacing or orientation differs from "
                                    "the rest of the series")
    pos = np.asarray([[float(v) for v in pl.position] for pl in planes])
    proj = pos @ n
    order = np.argsort(proj, kind="stable")
    planes = [planes[i] for i in order]
    proj, pos = proj[order], pos[order]
    dz = check_slice_positions(proj, folder.name)
    check_slices_stacked(pos, n, min(ref[2]), folder.name)
    arr = np.empty((len(planes), ref[0], ref[1]), dtype=np.float32)  # exact for 16-bit HU
    decoded: dict[Path, np.ndarray] = {}
    for k, pl in enumerate(planes):
        try:
            if pl.path not in decoded:
                decoded[pl.path] = np.asarray(pl.ds.pixel_array)
            px = decoded[pl.path] if pl.frame is None else decoded[pl.path][pl.frame]
        except Exception as exc:
            raise ValidationFailure(Rule.UNREADABLE, f"{pl.name}: pixel data cannot be decoded "
                                    f"({type(exc).__name__})") from exc
        if px.shape != ref[:2]:
            raise ValidationFailure(Rule.UNREADABLE, f"{pl.name}: pixel data has shape {px.shape}, "
                                    f"header says {ref[:2]}")
        if pl.slope == 1.0:
            np.add(px, pl.intercept, out=arr[k], casting="unsafe")
        else:
            arr[k] = px.astype(np.float32) * np.float32(pl.slope) + np.float32(pl.intercept)
    direction = np.stack([r, c, n], axis=1)
    meta: dict[str, Any] = _technical_tags(first.ds)
    meta.update({
        "_series_uid": next(iter(uids)),
        "_modality": str(first.ds.get("Modality", "")),
        "_frame_of_reference_uid": _frame_of_reference(first.ds),
        "_sop_uids": [str(pl.ds.get("SOPInstanceUID", "")) for pl in planes],
        "_slice_positions": proj.tolist(),
        "_acquisition": _acquisition_iso(first.ds),
        "_files": list(dict.fromkeys(pl.path for pl in planes)),
    })
    return Volume(array=arr, spacing=(ref[2][1], ref[2][0], dz),
                  origin=(float(pos[0][0]), float(pos[0][1]), float(pos[0][2])),
                  direction=tuple(float(v) for v in direction.ravel()), meta=meta)


def _world_to_index(image: Volume, pts: np.ndarray) -> np.ndarray:
    """Continuous ``(x, y, z)`` indices of physical points ``pts`` (N×3, mm)."""
    d = np.asarray(image.direction, dtype=float).reshape(3, 3)
    m = d * np.asarray(image.spacing, dtype=float)[None, :]
    return np.linalg.solve(m, (pts - np.asarray(image.origin, dtype=float)).T).T


def _check_frame_of_reference(image: Volume, mask_for: str | None, name: str) -> None:
    img_for = image.meta.get("_frame_of_reference_uid")
    if img_for and mask_for and img_for != mask_for:
        raise ValidationFailure(Rule.FRAME_OF_REFERENCE,
                                f"{name}: frame of reference differs from the image's")


def split_mask_ref(ref: str, base: Path | str | None = None) -> tuple[str, tuple[str, ...]]:
    """A mask reference ``"rs.dcm#GTV,GTV 2"`` → ``("rs.dcm", ("GTV", "GTV 2"))``: the path and the
    names of the RTSTRUCT ROIs (ROI Name) or SEG segments (Segment Label) to take, label ``k`` being
    the ``k``-th name. Without ``#`` (or when ``ref`` itself names an existing file, relative to
    ``base``) no names. Raises ``ValueError`` for an empty name or a name given twice."""
    split = _split_at_hash(ref, base)
    if split is None:
        return ref, ()
    path, tail = split
    names = tuple(n.strip() for n in tail.split(","))
    if not path.strip() or any(not n for n in names):
        raise ValueError(f"mask reference {ref!r}: give 'path#NAME[,NAME...]' with non-empty names")
    if len(set(names)) < len(names):
        raise ValueError(f"mask reference {ref!r}: a ROI name is given twice")
    return path.strip(), names


def _choose(available: Sequence[tuple[int, str]], select: Sequence[str | int] | None, what: str,
            name: str, *, label_is_position: bool) -> list[int]:
    """The numbers of the ``available`` ``(number, name)`` items (sorted by number) that ``select``
    picks, in label order: all for None; an ``int`` picks the item that is that label in the full
    map (its 1-based position if ``label_is_position``, else its number), a ``str`` the item of
    that name (exact, else ignoring case and surrounding space). Messages name numbers only."""
    nums = [num for num, _ in available]
    if select is None:
        return nums
    out: list[int] = []
    for item in select:
        if isinstance(item, int):
            if label_is_position:
                hits = [nums[item - 1]] if 1 <= item <= len(nums) else []
            else:
                hits = [item] if item in nums else []
            asked = f"label {item}"
        else:
            hits = [num for num, n in available if n == item] or [
                num for num, n in available if n.strip().casefold() == item.strip().casefold()]
            asked = f"name {item!r}"
        if not hits:
            raise ValidationFailure(Rule.UNKNOWN_ROI, f"{name}: no {what} with {asked} ({len(nums)} "
                                    f"{what}{'s' * (len(nums) != 1)}, number{'s' * (len(nums) != 1)} "
                                    f"{', '.join(map(str, nums)) or 'none'})")
        if len(hits) > 1:
            raise ValidationFailure(Rule.UNKNOWN_ROI, f"{name}: {what} {asked} is ambiguous "
                                    f"({what} numbers {', '.join(map(str, hits))})")
        if hits[0] in out:
            raise ValidationFailure(Rule.UNKNOWN_ROI, f"{name}: {what} number {hits[0]} selected twice")
        out.append(hits[0])
    return out


def _paint(mask: np.ndarray, k: int, plane: np.ndarray, label: int,
           overlaps: dict[tuple[int, int], int]) -> None:
    """``mask[k][plane] = label``, counting the voxels another label held in ``overlaps``."""
    held = mask[k][plane]
    held = held[(held != 0) & (held != label)]
    for other, n in zip(*np.unique(held, return_counts=True), strict=True):
        key = (int(other), label)
        overlaps[key] = overlaps.get(key, 0) + int(n)
    mask[k][plane] = label


def _refuse_overlaps(overlaps: dict[tuple[int, int], int], number_of: Mapping[int, int], what: str,
                     name: str) -> None:
    if not overlaps:
        return
    pairs = "; ".join(f"{what}s {number_of[a]} and {number_of[b]} in {n} voxels"
                      for (a, b), n in sorted(overlaps.items()))
    raise ValidationFailure(Rule.MASK_OVERLAP, f"{name}: {what}s overlap ({pairs}); a label map holds "
                            f"one {what} per voxel: name the {what}s to take, as '{name}#NAME[,NAME...]'")


def _available_rois(ds: Any) -> list[tuple[int, str]]:
    """``(number, name)`` of an RTSTRUCT's ROIs (ROI Number, ROI Name) or a SEG's segments (Segment
    Number, Segment Label), sorted by number."""
    if str(ds.get("Modality", "")) == "SEG":
        return sorted((int(sg.SegmentNumber), str(sg.get("SegmentLabel", ""))) for sg in ds.SegmentSequence)
    rois = ds.get("StructureSetROISequence", [])
    return sorted((int(r.ROINumber), str(r.get("ROIName", ""))) for r in rois)


def mask_rois(path: Path | str) -> dict[int, str]:
    """``{label: name}`` of a DICOM RTSTRUCT's ROIs (label = position in ROI-number order) or a
    SEG's segments (label = segment number), as the full label maps of :func:`rasterise_rtstruct`
    and :func:`read_seg` number them."""
    path = Path(path)
    ds = _read(path, stop_before_pixels=True)
    modality = str(ds.get("Modality", ""))
    if modality == "RTSTRUCT":
        return {i + 1: n for i, (_, n) in enumerate(_available_rois(ds))}
    if modality == "SEG":
        return dict(_available_rois(ds))
    raise ValidationFailure(Rule.UNREADABLE, f"{path.name}: DICOM {modality or '?'} is neither "
                            "RTSTRUCT nor SEG")


def rasterise_rtstruct(path: Path | str, image: Volume, *, rois: Sequence[str | int] | None = None,
                       z_tol: float = 0.25) -> tuple[np.ndarray, dict[int, str]]:
    """RTSTRUCT contours → label map on ``image``'s grid. Returns ``(mask [z,y,x] uint8/uint16,
    {label: roi_name})``. All ROIs become labels 1..n in ROI-number order; ``rois`` takes only
    those named (ROI Name; an ``int`` n: the ROI that is label n of the full map), as labels 1..k in
    the order given (:class:`ValidationFailure` ``unknown_roi`` when one is missing or ambiguous).

    Contours are matched to slices by position (the contour plane's index along the slice normal,
    within ``z_tol`` voxels), not by referenced SOP UIDs, and must share the image's frame of
    reference. A voxel is inside when its centre is inside the polygon; several contours of one
    ROI on a slice combine by XOR (even–odd rule: inner contours are holes). ROIs that share a voxel
    cannot be one label map: ``mask_overlap`` names them (select the ROIs that do not overlap).
    """
    from skimage.draw import polygon as draw_polygon

    path = Path(path)
    ds = _read(path)
    if str(ds.get("Modality", "")) != "RTSTRUCT" or "ROIContourSequence" not in ds:
        raise ValidationFailure(Rule.UNREADABLE, f"{path.name}: not an RTSTRUCT with contours")
    _check_frame_of_reference(image, _frame_of_reference(ds), path.name)
    available = _available_rois(ds)
    chosen = _choose(available, rois, "ROI", path.name, label_is_position=True)
    label_of = {num: i + 1 for i, num in enumerate(chosen)}
    names = {label_of[num]: n for num, n in available if num in label_of}
    nz, ny, nx = image.shape
    mask = np.zeros(image.shape, dtype=np.uint16 if len(chosen) > 255 else np.uint8)
    overlaps: dict[tuple[int, int], int] = {}
    for rc in ds.ROIContourSequence:
        label = label_of.get(int(rc.ReferencedROINumber))
        if label is None:
            continue
        planes: dict[int, np.ndarray] = {}
        for contour in rc.get("ContourSequence", []):
            if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) not in ("CLOSED_PLANAR",):
                continue
            pts = np.asarray([float(v) for v in contour.ContourData], dtype=float).reshape(-1, 3)
            idx = _world_to_index(image, pts)
            zc = float(np.mean(idx[:, 2]))
            k = round(zc)
            outside_xy = (idx[:, 0].max() < -0.5 or idx[:, 0].min() > nx - 0.5
                          or idx[:, 1].max() < -0.5 or idx[:, 1].min() > ny - 0.5)
            if not 0 <= k < nz or abs(zc - k) > z_tol or outside_xy:
                where = ("between two image slices: was it drawn on another series?"
                         if 0 <= k < nz and not outside_xy else "outside the image")
                raise ValidationFailure(
                    Rule.MASK_OUTSIDE_IMAGE,
                    f"{path.name}: a contour of ROI number {int(rc.ReferencedROINumber)} lies "
                    f"{where} (slice index {zc:.2f} of {nz})")
            rr, cc = draw_polygon(idx[:, 1], idx[:, 0], shape=(ny, nx))
            plane = planes.setdefault(k, np.zeros((ny, nx), dtype=bool))
            fill = np.zeros((ny, nx), dtype=bool)
            fill[rr, cc] = True
            plane ^= fill
        for k, plane in planes.items():
            _paint(mask, k, plane, label, overlaps)
    _refuse_overlaps(overlaps, {lab: num for num, lab in label_of.items()}, "ROI", path.name)
    return mask, names


def read_seg(path: Path | str, image: Volume, *, segments: Sequence[str | int] | None = None,
             tol_mm: float = 1e-2) -> np.ndarray:
    """DICOM SEG → label map on ``image``'s grid (label = segment number); ``segments`` takes only
    those named (Segment Label; an ``int``: the segment number) as labels 1..k in the order given.
    Frames are placed by their Image Position (Patient) projected on the slice normal; a fractional
    SEG is binarised at half its maximum. Segments sharing a voxel raise ``mask_overlap``."""
    path = Path(path)
    ds = _read(path)
    if str(ds.get("Modality", "")) != "SEG":
        raise ValidationFailure(Rule.UNREADABLE, f"{path.name}: not a DICOM SEG")
    _check_frame_of_reference(image, _frame_of_reference(ds), path.name)
    nz, ny, nx = image.shape
    if (int(ds.Rows), int(ds.Columns)) != (ny, nx):
        raise ValidationFailure(Rule.GEOMETRY_MISMATCH,
                                f"{path.name}: SEG frames are {int(ds.Rows)}x{int(ds.Columns)}, "
                                f"image slices {ny}x{nx}")
    try:
        frames = np.asarray(ds.pixel_array)
    except Exception as exc:
        raise ValidationFailure(Rule.UNREADABLE, f"{path.name}: SEG pixel data cannot be decoded "
                                f"({type(exc).__name__})") from exc
    if frames.ndim == 2:
        frames = frames[None]
    if str(ds.get("SegmentationType", "BINARY")) == "FRACTIONAL":
        frames = frames >= (int(ds.get("MaximumFractionalValue", 255)) / 2)
    available = _available_rois(ds)
    chosen = _choose(available, segments, "segment", path.name, label_is_position=False)
    label_of = {num: (i + 1 if segments is not None else num) for i, num in enumerate(chosen)}
    mask = np.zeros(image.shape, dtype=np.uint16 if max(label_of.values(), default=0) > 255 else np.uint8)
    overlaps: dict[tuple[int, int], int] = {}
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]

    def group(item: Any, kw: str) -> Any:
        """A functional group from the per-frame item, else from the shared groups."""
        return item.get(kw) or (shared.get(kw) if shared is not None else None)

    for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        sid, pp = group(item, "SegmentIdentificationSequence"), group(item, "PlanePositionSequence")
        if not sid or not pp:
            raise ValidationFailure(Rule.UNREADABLE, f"{path.name}: frame {f + 1} has no segment "
                                    "number or no position")
        label = label_of.get(int(sid[0].ReferencedSegmentNumber))
        if label is None:
            continue
        idx = _world_to_index(image, np.asarray([[float(v) for v in pp[0].ImagePositionPatient]]))[0]
        k = round(float(idx[2]))
        sp = np.asarray(image.spacing)
        if np.any(np.abs(idx[:2]) * sp[:2] > tol_mm) or abs(idx[2] - k) * sp[2] > max(tol_mm, 0.1):
            raise ValidationFailure(Rule.GEOMETRY_MISMATCH,
                                    f"{path.name}: frame {f + 1} is not on an image slice")
        if not 0 <= k < nz:
            raise ValidationFailure(Rule.MASK_OUTSIDE_IMAGE,
                                    f"{path.name}: frame {f + 1} lies outside the image")
        _paint(mask, k, frames[f].astype(bool), label, overlaps)
    _refuse_overlaps(overlaps, {lab: num for num, lab in label_of.items()}, "segment", path.name)
    return mask


# --------------------------------------------------------------------------- writers (synth, tests)

def _uid() -> Any:
    from pydicom.uid import generate_uid

    return generate_uid()


def write_ct_series(
    volume: Volume,
    folder: Path | str,
    *,
    patient: Mapping[str, str] | None = None,
    series_description: str = "CT",
    acquisition: dt.datetime | None = None,
    technical: Mapping[str, Any] | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
) -> list[Any]:
    """Write ``volume`` (HU, ``[z,y,x]``) as a CT series, one file per slice (uint16 stored values,
    RescaleIntercept −1024). ``patient`` sets header fields such as ``PatientName``,
    ``PatientID``, ``PatientBirthDate``, ``AccessionNumber``, ``InstitutionName``; ``technical``
    sets e.g. ``Manufacturer``, ``KVP``, ``ConvolutionKernel``. Returns the written datasets."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or _uid()
    study_uid = study_uid or _uid()
    for_uid = frame_of_reference_uid or _uid()
    acq = acquisition or dt.datetime(2020, 1, 1, 12, 0, 0)
    d = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    sx, sy, sz = volume.spacing
    stored = np.clip(np.rint(volume.array) + 1024, 0, 65535).astype(np.uint16)
    out = []
    for k in range(volume.shape[0]):
        pos = np.asarray(volume.origin) + d[:, 2] * sz * k
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = _uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        fname = folder / f"IM{k:05d}.dcm"
        ds = FileDataset(str(fname), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, for_uid
        ds.SeriesDescription = series_description
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = acq.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = acq.strftime("%H%M%S")
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID",
                   "ReferringPhysicianName", "AccessionNumber"):  # type 2: present, maybe empty
            setattr(ds, kw, "")
        for kw, val in {**dict(patient or {}), **dict(technical or {})}.items():
            setattr(ds, kw, val)
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*d[:, 0], *d[:, 1])]
        ds.PixelSpacing = [f"{sy:.6f}", f"{sx:.6f}"]
        ds.SliceThickness = f"{technical.get('SliceThickness', sz) if technical else sz:.6f}"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
        ds.PixelData = stored[k].tobytes()
        ds.save_as(fname, enforce_file_format=True)
        out.append(ds)
    return out


def write_rtstruct(
    image_datasets: Sequence[Any],
    image: Volume,
    mask: np.ndarray,
    path: Path | str,
    roi_names: Mapping[int, str] | None = None,
    *,
    z_offset_mm: float = 0.0,
) -> Path:
    """Write the labels of ``mask`` (on ``image``'s grid; or ROI ``n`` = ``mask[n - 1]`` of a 4-D
    stack of binary masks, which may overlap) as RTSTRUCT ROIs (ROI number = label),
    one closed planar contour per connected outline per slice (``skimage.measure.find_contours``
    at level 0.5, so voxel centres inside the contour are exactly the mask's). ``z_offset_mm``
    shifts every contour along the slice normal (used to make broken test inputs)."""
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence as DSeq
    from pydicom.uid import ExplicitVRLittleEndian
    from skimage.measure import find_contours

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first = image_datasets[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_STORAGE
    meta.MediaStorageSOPInstanceUID = _uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = RTSTRUCT_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID, ds.StudyInstanceUID = _uid(), first.StudyInstanceUID
    for kw in ("PatientName", "PatientID", "StudyDate", "StudyTime"):
        if kw in first:
            setattr(ds, kw, first.data_element(kw).value)
    ds.StructureSetLabel = "RTSTRUCT"
    for_uid = str(first.FrameOfReferenceUID)
    contour_images = DSeq()
    for im in image_datasets:
        ci = Dataset()
        ci.ReferencedSOPClassUID, ci.ReferencedSOPInstanceUID = im.SOPClassUID, im.SOPInstanceUID
        contour_images.append(ci)
    rse = Dataset()
    rse.SeriesInstanceUID, rse.ContourImageSequence = first.SeriesInstanceUID, contour_images
    rst = Dataset()
    rst.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    rst.ReferencedSOPInstanceUID = first.StudyInstanceUID
    rst.RTReferencedSeriesSequence = DSeq([rse])
    rfr = Dataset()
    rfr.FrameOfReferenceUID, rfr.RTReferencedStudySequence = for_uid, DSeq([rst])
    ds.ReferencedFrameOfReferenceSequence = DSeq([rfr])
    d = np.asarray(image.direction, dtype=float).reshape(3, 3)
    m = d * np.asarray(image.spacing, dtype=float)[None, :]
    org = np.asarray(image.origin, dtype=float)
    stack = mask.ndim == 4
    labels = list(range(1, mask.shape[0] + 1)) if stack else [int(v) for v in np.unique(mask) if v != 0]
    names = dict(roi_names or {})
    ssroi, roic, obs = DSeq(), DSeq(), DSeq()
    for lab in labels:
        r = Dataset()
        r.ROINumber, r.ReferencedFrameOfReferenceUID = lab, for_uid
        r.ROIName, r.ROIGenerationAlgorithm = names.get(lab, f"GTV-{lab}"), "MANUAL"
        ssroi.append(r)
        contours = DSeq()
        roi = mask[lab - 1] != 0 if stack else mask == lab
        for k in range(roi.shape[0]):
            sl = np.pad(roi[k], 1).astype(float)
            for c in find_contours(sl, 0.5):
                ij = c - 1.0  # undo the padding; columns: (row=y, col=x)
                idx = np.stack([ij[:, 1], ij[:, 0], np.full(len(ij), float(k))], axis=1)
                pts = org + idx @ m.T + d[:, 2] * z_offset_mm
                ct = Dataset()
                ct.ContourGeometricType = "CLOSED_PLANAR"
                ct.NumberOfContourPoints = len(pts)
                ct.ContourData = [f"{v:.4f}" for v in pts.ravel()]
                contours.append(ct)
        rc = Dataset()
        rc.ReferencedROINumber, rc.ROIDisplayColor, rc.ContourSequence = lab, [255, 0, 0], contours
        roic.append(rc)
        ob = Dataset()
        ob.ObservationNumber, ob.ReferencedROINumber, ob.RTROIInterpretedType = lab, lab, "GTV"
        ob.ROIInterpreter = ""
        obs.append(ob)
    ds.StructureSetROISequence, ds.ROIContourSequence = ssroi, roic
    ds.RTROIObservationsSequence = obs
    ds.save_as(path, enforce_file_format=True)
    return path

