"""Independent RTSTRUCT rasteriser for the tests: contour points (patient mm) are mapped back to
voxel indices with the CT series' own geometry tags and filled with ``skimage.draw.polygon``
(even-odd rule per slice, so inner contours are holes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from skimage.draw import polygon


def ct_geometry(series_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int], tuple]:
    """Origin (x, y, z of the lowest slice), spacing (x, y, z), sorted slice z positions, map
    SOPInstanceUID -> slice index, and (rows, cols) read from the CT files' tags."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(series_dir.glob("*.dcm"))]
    headers.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    zs = np.array([float(d.ImagePositionPatient[2]) for d in headers])
    first = headers[0]
    origin = np.array([float(v) for v in first.ImagePositionPatient])
    row_sp, col_sp = (float(v) for v in first.PixelSpacing)
    spacing = np.array([col_sp, row_sp, float(np.median(np.diff(zs))) if len(zs) > 1 else 1.0])
    uid_index = {str(d.SOPInstanceUID): k for k, d in enumerate(headers)}
    return origin, spacing, zs, uid_index, (int(first.Rows), int(first.Columns))


def rasterise(rtstruct: Path, series_dir: Path) -> np.ndarray:
    """Label map ``[z, y, x]`` (ROI number = label) of an RTSTRUCT on its CT series' grid."""
    origin, spacing, zs, uid_index, (rows, cols) = ct_geometry(series_dir)
    ds = pydicom.dcmread(rtstruct)
    out = np.zeros((len(zs), rows, cols), dtype=np.uint16)
    for roi in ds.ROIContourSequence:
        label = int(roi.ReferencedROINumber)
        layer = np.zeros_like(out, dtype=bool)
        for c in getattr(roi, "ContourSequence", []):
            pts = np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
            k = int(np.argmin(np.abs(zs - pts[0, 2])))
            assert abs(zs[k] - pts[0, 2]) < 1e-3, "contour not on a slice"
            ref = c.ContourImageSequence[0].ReferencedSOPInstanceUID
            assert uid_index[str(ref)] == k, "contour references the wrong CT image"
            col = (pts[:, 0] - origin[0]) / spacing[0]
            row = (pts[:, 1] - origin[1]) / spacing[1]
            rr, cc = polygon(row, col, shape=(rows, cols))
            fill = np.zeros((rows, cols), dtype=bool)
            fill[rr, cc] = True
            layer[k] ^= fill
        out[layer] = label
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())
