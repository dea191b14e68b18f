"""Volume <-> Zarr v3 store: ``volumes.zarr/<cohort_id>/<patient_id>/<scan_id>/``.

Each scan group holds ``image`` (int16 HU, ``[z, y, x]``, Blosc-zstd chunks) and
``masks/<segmentation_id>`` (uint8/uint16 label maps on the same grid). Group attributes hold the
geometry and acquisition metadata (no PHI); each mask array's attributes hold, per label, the
bounding box and voxel count so readers fetch only the ROI's chunks.

Writes are atomic: a scan is built in a hidden sibling directory and renamed into place, so a
crash leaves either the whole scan or nothing visible.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from radstore.volume import Volume

DEFAULT_CHUNKS: tuple[int, int, int] = (32, 128, 128)
DEFAULT_COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle)
LAYOUT_VERSION = 1
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class LabelInfo:
    """Where one label of a mask lies: ``bbox`` is ``(z0, z1, y0, y1, x0, x1)``, half-open."""

    label: int
    bbox: tuple[int, int, int, int, int, int]
    voxels: int

    def slices(self, margin: tuple[int, int, int] = (0, 0, 0), shape: tuple[int, ...] | None = None
               ) -> tuple[slice, slice, slice]:
        z0, z1, y0, y1, x0, x1 = self.bbox
        lo = [z0 - margin[0], y0 - margin[1], x0 - margin[2]]
        hi = [z1 + margin[0], y1 + margin[1], x1 + margin[2]]
        if shape is not None:
            lo = [max(0, v) for v in lo]
            hi = [min(s, v) for s, v in zip(shape, hi, strict=True)]
        return (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))


def label_infos(mask: np.ndarray) -> dict[int, LabelInfo]:
    """Bounding box and voxel count of every non-zero label of ``mask`` (one bincount pass and
    one ``find_objects`` pass; no sort of the volume)."""
    from scipy import ndimage

    if mask.dtype.kind not in "iub":
        raise TypeError(f"mask must be an integer label map, got {mask.dtype}")
    flat = mask.ravel()
    if flat.size and flat.min() < 0:
        raise ValueError("mask labels must be non-negative")
    counts = np.bincount(flat.astype(np.intp, copy=False)) if flat.size else np.zeros(1, np.intp)
    labels = [int(v) for v in np.flatnonzero(counts) if v != 0]
    if not labels:
        return {}
    objs = ndimage.find_objects(mask if mask.dtype.kind != "b" else mask.view(np.uint8),
                                max_label=labels[-1])
    infos: dict[int, LabelInfo] = {}
    for lab in labels:
        sl = objs[lab - 1]
        bbox = (sl[0].start, sl[0].stop, sl[1].start, sl[1].stop, sl[2].start, sl[2].stop)
        infos[lab] = LabelInfo(lab, tuple(int(b) for b in bbox), int(counts[lab]))  # type: ignore[arg-type]
    return infos


def _geometry_attrs(vol: Volume) -> dict[str, Any]:
    return {
        "spacing": [float(s) for s in vol.spacing],
        "origin": [float(o) for o in vol.origin],
        "direction": [float(d) for d in vol.direction],
        "shape": [int(s) for s in vol.shape],
    }


def _ensure_group(root: Path, rel: str) -> None:
    """Create ``rel`` and its parents as explicit Zarr groups (idempotent, safe when threads
    race to create the same parent)."""
    from zarr.errors import ContainsGroupError

    parts = [p for p in rel.split("/") if p]
    for i in range(len(parts) + 1):
        sub = root.joinpath(*parts[:i])
        if not (sub / "zarr.json").exists():
            try:
                zarr.open_group(store=str(sub), mode="a", zarr_format=3)
            except ContainsGroupError:
                continue


def write_scan(
    root: Path | str,
    group_path: str,
    image: Volume,
    masks: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any],
    *,
    chunks: tuple[int, int, int] = DEFAULT_CHUNKS,
    compressor: Any = DEFAULT_COMPRESSOR,
    overwrite: bool = False,
) -> Path:
    """Write one scan atomically and return its directory.

    ``image.array`` must be int16 HU; each mask an integer label map on the image grid. ``attrs``
    must be JSON-able and PHI-free (the caller's contract); geometry attributes are added here.
    Raises ``FileExistsError`` if the scan exists and ``overwrite`` is false.
    """
    root = Path(root)
    final = root / group_path
    if final.exists() and not overwrite:
        raise FileExistsError(f"scan already in store: {group_path}")
    if image.array.dtype != np.int16:
        raise TypeError(f"image must be int16 HU, got {image.array.dtype}")
    parent_rel, name = group_path.rsplit("/", 1)
    _ensure_group(root, parent_rel)
    tmp = root / parent_rel / f"{TMP_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
    try:
        grp = zarr.open_group(store=str(tmp), mode="w", zarr_format=3)
        ch = tuple(min(c, s) for c, s in zip(chunks, image.shape, strict=True))
        arr = grp.create_array("image", shape=image.shape, dtype="int16", chunks=ch,
                               compressors=[compressor], fill_value=-1024)
        arr[...] = image.array
        mgrp = grp.create_group("masks")
        for seg_id, mask in masks.items():
            if mask.shape != image.shape:
                raise ValueError(f"mask {seg_id!r} shape {mask.shape} != image shape {image.shape}")
            dtype = "uint8" if mask.max(initial=0) < 256 else "uint16"
            m = mgrp.create_array(seg_id, shape=mask.shape, dtype=dtype, chunks=ch,
                                  compressors=[compressor], fill_value=0)
            m[...] = mask.astype(dtype, copy=False)
            m.attrs["labels"] = {
                str(k): {"bbox": list(v.bbox), "voxels": v.voxels}
                for k, v in label_infos(mask).items()
            }
        grp.attrs.update({**dict(attrs), **_geometry_attrs(image), "layout_version": LAYOUT_VERSION})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


@dataclass
class ScanHandle:
    """A lazily-read scan: nothing but metadata is loaded until an array is sliced."""

    group: Any
    path: str

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def image(self) -> Any:
        """The ``zarr.Array`` of HU values; slice it to read only the chunks needed."""
        return self.group["image"]

    @property
    def segmentation_ids(self) -> list[str]:
        return sorted(k for k, _ in self.group["masks"].arrays())

    def mask(self, segmentation_id: str) -> Any:
        return self.group["masks"][segmentation_id]

    def labels(self, segmentation_id: str) -> dict[int, LabelInfo]:
        raw = self.mask(segmentation_id).attrs.get("labels", {})
        return {int(k): LabelInfo(int(k), tuple(v["bbox"]), int(v["voxels"])) for k, v in raw.items()}

    def geometry(self, array: np.ndarray | None = None) -> Volume:
        """A :class:`Volume` on this scan's grid (``array`` defaults to the full image)."""
        a = self.attrs
        return Volume(
            array=self.image[...] if array is None else array,
            spacing=tuple(a["spacing"]),
            origin=tuple(a["origin"]),
            direction=tuple(a["direction"]),
        )

    def read_roi(
        self, segmentation_id: str, label: int, margin_vox: tuple[int, int, int] = (0, 0, 0)
    ) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice, slice]]:
        """Image crop, label-``label`` boolean mask crop and the slices used (ROI chunks only)."""
        info = self.labels(segmentation_id).get(label)
        if info is None:
            raise KeyError(f"{self.path}: label {label} not in mask {segmentation_id!r}")
        sl = info.slices(margin_vox, self.image.shape)
        img = self.image[sl]
        msk = self.mask(segmentation_id)[sl] == label
        return np.asarray(img), np.asarray(msk), sl


def open_scan(root: Path | str, group_path: str) -> ScanHandle:
    path = Path(root) / group_path
    if not (path / "zarr.json").exists():
        raise FileNotFoundError(f"no scan at {path}")
    return ScanHandle(zarr.open_group(store=str(path), mode="r", zarr_format=3), group_path)


def iter_scans(root: Path | str, cohort_id: str | None = None) -> Iterator[str]:
    """Group paths ``cohort/patient/scan`` of every committed scan (of ``cohort_id`` only when
    given; temp dirs are skipped)."""
    root = Path(root)
    if not root.exists():
        return
    for img in sorted(root.glob(f"{cohort_id or '*'}/*/*/image/zarr.json")):
        scan_dir = img.parent.parent
        if scan_dir.name.startswith(TMP_PREFIX):
            continue
        yield scan_dir.relative_to(root).as_posix()


def remove_scan(root: Path | str, group_path: str) -> None:
    """Delete the committed scan ``cohort/patient/scan`` under ``root``, and its patient group when
    that holds no other scan. Raises ``FileNotFoundError`` when there is no such scan."""
    scan = Path(root) / group_path
    if len(Path(group_path).parts) != 3 or not (scan / "image" / "zarr.json").is_file():
        raise FileNotFoundError(f"no scan at {scan}")
    shutil.rmtree(scan)
    patient = scan.parent
    if not any(p.is_dir() for p in patient.iterdir()):
        shutil.rmtree(patient)


def remove_stale_temps(root: Path | str) -> int:
    """Delete leftovers of crashed writes; returns how many were removed."""
    n = 0
    for tmp in Path(root).glob(f"*/*/{TMP_PREFIX}*"):
        shutil.rmtree(tmp, ignore_errors=True)
        n += 1
    return n
