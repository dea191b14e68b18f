"""Derived images as PyRadiomics 3.1 builds them (``getLoGImage``, ``getWaveletImage``), computed only
on a window around the ROI and returned cropped to the ROI box.

- LoG: SimpleITK ``LaplacianRecursiveGaussianImageFilter`` (normalised across scale, sigma in mm).
  PyRadiomics filters the whole (resampled) image; here the filter runs on the ROI box grown by
  ``LOG_MARGIN_SIGMAS * sigma`` (+2 voxels) per side, clipped to the image. The recursive (Deriche)
  Gaussian's response decays like ``exp(-1.7 d / sigma)``, so the values in the ROI box differ from
  the whole-image ones by ``~exp(-20)`` of the intensity jump at the window edge: float32 rounding
  (measured on the IBSI CT phantom: <= 3e-5 HU on LoG values of ~700, the output's own resolution).
  The size checks are PyRadiomics' on the whole image (it skips the filter when the image is smaller
  than 4 voxels in a dimension or than ``ceil(sigma/spacing) + 1``; here that is an error, so
  columns never go silently missing).
- Wavelet: undecimated (stationary) transform, one level per step, ``pywt.swtn`` over the axes
  (x, y, z order as PyRadiomics; ``force2D`` drops ``force2Ddimension``), odd sizes padded by one
  wrapped voxel and cut back; sub-band names use L for approximation and H for detail. Each step is
  a circular convolution with the ``dec_len``-tap filters, so a ROI voxel only sees voxels within
  ``(dec_len - 1) * steps`` along each axis: the transform of a window holding that reach (even
  length, not touching either image end) equals the whole image's inside the ROI box exactly; an axis
  where the reach leaves the image is taken whole (with PyRadiomics' wrap).

The SimpleITK/PyWavelets calls are PyRadiomics'; the filtered crops feed every family.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pywt
import SimpleITK as sitk

from radstore.radiomics.imageops import ROIError

Box = tuple[slice, slice, slice]
LOG_MARGIN_SIGMAS = 12.0


def _within(box: Box, window: tuple[slice, ...]) -> tuple[slice, ...]:
    """``box`` in the coordinates of ``window`` (which contains it)."""
    return tuple(slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, window, strict=True))


def log_crop(image: np.ndarray, spacing_zyx: tuple[float, float, float], box: Box, sigma: float
             ) -> np.ndarray:
    """Laplacian of Gaussian (sigma in mm) of ``image`` [z, y, x] inside ``box``, float64, computed on
    the box grown by ``LOG_MARGIN_SIGMAS * sigma`` mm (+2 voxels) per side."""
    size = np.array(image.shape[::-1])
    spacing = np.array(spacing_zyx[::-1], dtype=float)
    if size.min() < 4:
        raise ROIError(f"LoG needs an image of at least 4 voxels per dimension, got size {tuple(size)}")
    if not np.all(size >= np.ceil(sigma / spacing) + 1):
        raise ROIError(f"LoG sigma {sigma} mm is too large for image size {tuple(size)} at spacing "
                       f"{tuple(spacing)}")
    window = tuple(
        slice(max(b.start - m, 0), min(b.stop + m, n))
        for b, n, m in zip(box, image.shape,
                           (math.ceil(LOG_MARGIN_SIGMAS * sigma / s) + 2 for s in spacing_zyx), strict=True))
    img = sitk.GetImageFromArray(np.ascontiguousarray(image[window]))
    img.SetSpacing(spacing.tolist())
    f = sitk.LaplacianRecursiveGaussianImageFilter()
    f.SetNormalizeAcrossScale(True)
    f.SetSigma(float(sigma))
    out = sitk.GetArrayFromImage(f.Execute(img))
    return out[_within(box, window)].astype(np.float64)


def _wavelet_window(b: slice, n: int, reach: int) -> slice | None:
    """An even-length window around ``b`` holding ``reach`` voxels each side inside ``0..n``, or None
    (take the whole axis)."""
    lo, hi = b.start - reach, b.stop + reach
    if lo < 0 or hi > n:
        return None
    if (hi - lo) % 2:
        if hi < n:
            hi += 1
        elif lo > 0:
            lo -= 1
        else:
            return None
    return slice(lo, hi)


def wavelet_crops(image: np.ndarray, box: Box, wavelet: str = "coif1", start_level: int = 0, level: int = 1,
                  force2d: bool = False, force2d_dimension: int = 0) -> dict[tuple[int, str], np.ndarray]:
    """All sub-bands ``{(level, "LLH"...): float64 crop of box}`` of PyRadiomics' stationary wavelet
    transform (``_swt3``: ``start_level`` + ``level`` single-level ``swtn`` steps, each on the previous
    approximation); the approximation of the last level is included as ``"LLL"`` (or ``"LL"`` in 2D)."""
    axes = [2, 1, 0]
    if force2d:
        axes.remove(force2d_dimension)
    w = pywt.Wavelet(wavelet)
    reach = (w.dec_len - 1) * (start_level + level) + 1
    window: list[slice] = []
    whole: list[int] = []
    for ax, (b, n) in enumerate(zip(box, image.shape, strict=True)):
        win = _wavelet_window(b, n, reach) if ax in axes else b
        if win is None:
            win = slice(0, n)
            whole.append(ax)
        window.append(win)
    data = np.asarray(image)[tuple(window)]
    pad = [(0, 1 if ax in whole and data.shape[ax] % 2 else 0) for ax in range(3)]
    if any(p for _, p in pad):
        data = np.pad(data, pad, mode="wrap")
    cut = _within(box, tuple(window))
    approx = "a" * len(axes)
    for _ in range(start_level):
        data = pywt.swtn(data, w, level=1, start_level=0, axes=axes)[0][approx].copy()
    out: dict[tuple[int, str], np.ndarray] = {}
    for lev in range(1, level + 1):
        dec = pywt.swtn(data, w, level=1, start_level=0, axes=axes)[0]
        data = dec[approx].copy()
        for key, band in dec.items():
            if key != approx:
                out[(lev, key.replace("a", "L").replace("d", "H"))] = band[cut].astype(np.float64)
    out[(level, "L" * len(axes))] = data[cut].astype(np.float64)
    return out


def derived_crops(image: np.ndarray, spacing_zyx: tuple[float, float, float], box: Box,
                  image_types: list[tuple[str, str, dict[str, Any]]],
                  force2d: bool, force2d_dimension: int) -> dict[str, np.ndarray]:
    """Every derived image named as PyRadiomics names it (``original``, ``log-sigma-...``,
    ``wavelet-LLH``...) as a contiguous float64 crop of ``box``, from the (pre-processed) image
    values ``image`` [z, y, x]: the values PyRadiomics' whole-image filters give inside the box."""
    out: dict[str, np.ndarray] = {}
    bands: dict[tuple[int, str], np.ndarray] | None = None
    for name, kind, args in image_types:
        if kind == "Original":
            out[name] = np.ascontiguousarray(image[box], dtype=np.float64)
        elif kind == "LoG":
            out[name] = log_crop(image, spacing_zyx, box, args["sigma"])
        elif kind == "Wavelet":
            if bands is None:
                bands = wavelet_crops(image, box, args["wavelet"], args["start_level"], args["level"],
                                      force2d, force2d_dimension)
            out[name] = bands[(args["band_level"], args["band"])]
    return out
