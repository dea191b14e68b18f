"""Pure validation rules for ingest (arrays and records in, failures out; no file access).

Every failure carries a stable rule name (:class:`Rule`) and a short message that names the input
but never a header value or table cell that could be PHI. The ingest pipeline records failures in
the ``rejections`` catalog table and goes on with the rest of the cohort.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from radstore.config import PHASES


class Rule(StrEnum):
    """Rule names as written to ``rejections.rule``."""

    UNREADABLE = "unreadable"
    MULTIPLE_SERIES = "multiple_series"
    INCONSISTENT_SERIES = "inconsistent_series"
    MISSING_SLICES = "missing_slices"
    UNEVEN_SLICE_SPACING = "uneven_slice_spacing"
    SHEARED_SLICES = "sheared_slices"
    GEOMETRY_MISMATCH = "mask_geometry_mismatch"
    FRAME_OF_REFERENCE = "mask_frame_of_reference"
    EMPTY_MASK = "empty_mask"
    MASK_NOT_LABELS = "mask_not_label_map"
    MASK_OUTSIDE_IMAGE = "mask_outside_image"
    MASK_OVERLAP = "mask_overlap"
    UNKNOWN_ROI = "unknown_roi"
    HU_RANGE = "hu_out_of_range"
    NOT_CT = "not_ct"
    DUPLICATE_SCAN = "duplicate_scan"
    UNKNOWN_PHASE = "unknown_phase"
    BAD_MANIFEST_ROW = "bad_manifest_row"
    BAD_TABLE_VALUE = "bad_table_value"
    CLINICAL_WITHOUT_SCANS = "clinical_without_scans"
    SCANS_WITHOUT_CLINICAL = "scans_without_clinical"
    OUTCOMES_WITHOUT_CLINICAL = "outcomes_without_clinical"
    MISSING_FILE = "missing_file"


class ValidationFailure(Exception):
    """A rule failed for one input; ``message`` is PHI-free by construction of the callers."""

    def __init__(self, rule: Rule | str, message: str) -> None:
        super().__init__(f"[{rule}] {message}")
        self.rule = str(rule)
        self.message = message


@dataclass(frozen=True)
class Issue:
    """A failure attached to an input (path relative to the manifest, or a table row)."""

    input: str
    rule: str
    message: str


def check_slice_positions(positions: Sequence[float], name: str, *, rel_tol: float = 0.05,
                          abs_tol: float = 0.01) -> float:
    """Slice positions along the normal (sorted) → the slice spacing Δz = median(diff).

    Fails ``missing_slices`` when a gap is ≥ 1.5·Δz (a slice is absent), ``uneven_slice_spacing``
    when any gap differs from Δz by more than ``max(rel_tol·Δz, abs_tol)`` mm or two slices share a
    position, and needs at least two slices.
    """
    p = np.asarray(positions, dtype=float)
    if p.size < 2:
        raise ValidationFailure(Rule.MISSING_SLICES, f"{name}: a volume needs at least 2 slices, "
                                f"found {p.size}")
    gaps = np.diff(p)
    if np.any(gaps <= abs_tol):
        raise ValidationFailure(Rule.UNEVEN_SLICE_SPACING,
                                f"{name}: two slices share a position")
    dz = float(np.median(gaps))
    big = gaps >= 1.5 * dz
    if np.any(big):
        missing = int(np.sum(np.rint(gaps[big] / dz) - 1))
        raise ValidationFailure(Rule.MISSING_SLICES,
                                f"{name}: {max(missing, 1)} slice(s) missing (gap of "
                                f"{float(gaps[big].max()):.2f} mm, spacing {dz:.2f} mm)")
    dev = float(np.max(np.abs(gaps - dz)))
    if dev > max(rel_tol * dz, abs_tol):
        raise ValidationFailure(Rule.UNEVEN_SLICE_SPACING,
                                f"{name}: slice spacing varies by {dev:.3f} mm around {dz:.3f} mm")
    return dz


def check_slices_stacked(positions: np.ndarray, normal: np.ndarray, pixel_spacing: float, name: str
                         ) -> None:
    """Slice positions (N×3 mm, sorted along ``normal``) must lie on one line along the normal, as
    a volume's grid assumes: fails ``sheared_slices`` when a slice is displaced in-plane from the
    first by more than half a pixel (gantry tilt, or slices of several stacks)."""
    rel = positions - positions[0]
    in_plane = rel - np.outer(rel @ normal, normal)
    drift = float(np.max(np.linalg.norm(in_plane, axis=1), initial=0.0))
    if drift > 0.5 * pixel_spacing:
        raise ValidationFailure(Rule.SHEARED_SLICES,
                                f"{name}: slices are displaced in-plane by up to {drift:.2f} mm along "
                                "the stack (gantry tilt?); a volume grid needs them stacked along "
                                "the slice normal: resample to an orthogonal grid first (e.g. dcm2niix)")


def check_geometry(image_grid: tuple, mask_grid: tuple, name: str, *, tol_mm: float = 1e-2,
                   tol_dir: float = 1e-3) -> None:
    """``(shape, spacing, origin, direction)`` of a mask must equal the image's within tolerance."""
    (ishape, isp, iorg, idir), (mshape, msp, morg, mdir) = image_grid, mask_grid
    if tuple(ishape) != tuple(mshape):
        raise ValidationFailure(Rule.GEOMETRY_MISMATCH,
                                f"{name}: mask size {tuple(mshape)} != image size {tuple(ishape)}")
    for what, a, b, tol in (("spacing", isp, msp, tol_mm), ("origin", iorg, morg, tol_mm),
                            ("direction", idir, mdir, tol_dir)):
        diff = float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))))
        if diff > tol:
            raise ValidationFailure(Rule.GEOMETRY_MISMATCH,
                                    f"{name}: mask {what} differs from the image's by {diff:.4g}")


def check_label_map(mask: np.ndarray, name: str) -> np.ndarray:
    """A label map is integer-valued and ≥ 0 with at least one non-zero voxel; returns it as an
    unsigned integer array."""
    if not np.issubdtype(mask.dtype, np.integer) and (
            not np.all(np.isfinite(mask)) or not np.array_equal(mask, np.rint(mask))):
        raise ValidationFailure(Rule.MASK_NOT_LABELS,
                                f"{name}: mask values are not integers (a probability map?)")
    if mask.size and mask.min() < 0:
        raise ValidationFailure(Rule.MASK_NOT_LABELS, f"{name}: negative mask labels")
    top = int(mask.max(initial=0))
    if top == 0:
        raise ValidationFailure(Rule.EMPTY_MASK, f"{name}: the mask has no foreground voxel")
    if top > 65535:
        raise ValidationFailure(Rule.MASK_NOT_LABELS, f"{name}: label {top} exceeds 65535")
    return mask.astype(np.uint8 if top < 256 else np.uint16)


def check_hu(array: np.ndarray, name: str, *, lo: float = -3100.0, hi: float = 4095.0) -> np.ndarray:
    """CT values must be finite HU within ``[lo, hi]`` (−3100 admits scanners' padding values such
    as −3024; 4095 is the 12-bit ceiling); returns ``int16`` (rounded)."""
    amin, amax = float(array.min()), float(array.max())  # NaN/inf propagate into min/max
    if not (np.isfinite(amin) and np.isfinite(amax)):
        raise ValidationFailure(Rule.HU_RANGE, f"{name}: image has non-finite values")
    if amin < lo or amax > hi:
        raise ValidationFailure(Rule.HU_RANGE, f"{name}: values span [{amin:.0f}, {amax:.0f}], "
                                f"outside the plausible CT range [{lo:.0f}, {hi:.0f}] HU")
    if amax - amin < 50:
        raise ValidationFailure(Rule.HU_RANGE, f"{name}: values span only {amax - amin:.1f} "
                                "units: not a CT in HU")
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int16, copy=False)
    return np.rint(array).astype(np.int16)


def check_phase(phase: str, name: str) -> str:
    p = str(phase).strip().lower()
    if p not in PHASES:
        raise ValidationFailure(Rule.UNKNOWN_PHASE,
                                f"{name}: phase {phase!r} is not one of {', '.join(PHASES)}")
    return p


def duplicate_keys(keys: Iterable[tuple]) -> set[tuple]:
    """Keys (e.g. patient, phase, acquisition time) that occur more than once."""
    c = Counter(keys)
    return {k for k, n in c.items() if n > 1}
