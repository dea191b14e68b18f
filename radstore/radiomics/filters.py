"""Derived images as PyRadiomics 3.1 builds them (``getLoGImage``, ``getWaveletImage``).

- LoG: SimpleITK ``LaplacianRecursiveGaussianImageFilter`` (normalised across scale, sigma in mm)
  on the whole (resampled) image; skipped by PyRadiomics when the image is smaller than 4 voxels in
  a dimension or than ``ceil(sigma/spacing) + 1`` — here that is an error, so columns never go
  silently missing.
- Wavelet: undecimated (stationary) transform, one level per step, ``pywt.swtn`` over the axes
  (x, y, z order as PyRadiomics; ``force2D`` drops ``force2Ddimension``), odd sizes padded by one
  wrapped voxel and cut back; sub-band names use L for approximation and H for detail.

The SimpleITK/PyWavelets calls are the same as PyRadiomics' so the filtered values are identical;
they run once per image and the filtered arrays feed every family.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pywt
import SimpleITK as sitk

from radstore.radiomics.imageops import ROIError


def log_image(image: sitk.Image, sigma: float) -> np.ndarray:
    """Laplacian of Gaussian (sigma in mm) of the whole image, float64 ``[z, y, x]``."""
    size = np.array(image.GetSize())
    spacing = np.array(image.GetSpacing())
    if size.min() < 4:
        raise ROIError(f"LoG needs an image of at least 4 voxels per dimension, got size {tuple(size)}")
    if not np.all(size >= np.ceil(sigma / spacing) + 1):
        raise ROIError(f"LoG sigma {sigma} mm is too large for image size {tuple(size)} at spacing "
                       f"{tuple(spacing)}")
    f = sitk.LaplacianRecursiveGaussianImageFilter()
    f.SetNormalizeAcrossScale(True)
    f.SetSigma(float(sigma))
    return sitk.GetArrayFromImage(f.Execute(image)).astype(np.float64, copy=False)


def wavelet_bands(image: np.ndarray, wavelet: str = "coif1", start_level: int = 0, level: int = 1,
                  force2d: bool = False, force2d_dimension: int = 0) -> dict[tuple[int, str], np.ndarray]:
    """All sub-bands ``{(level, "LLH"...): array}`` of the stationary wavelet transform (PyRadiomics
    ``_swt3``); the approximation of the last level is included as ``"LLL"`` (or ``"LL"`` in 2D)."""
    axes = [2, 1, 0]
    if force2d:
        axes.remove(force2d_dimension)
    data = np.asarray(image)
    shape = data.shape
    data = np.pad(data, [(0, 1 if d % 2 else 0) for d in shape], mode="wrap")
    cut = tuple(slice(None, -1 if d % 2 else None) for d in shape)
    w = pywt.Wavelet(wavelet)
    approx = "a" * len(axes)
    for _ in range(start_level):
        data = pywt.swtn(data, w, level=1, start_level=0, axes=axes)[0][approx].copy()
    out: dict[tuple[int, str], np.ndarray] = {}
    for lev in range(1, level + 1):
        dec = pywt.swtn(data, w, level=1, start_level=0, axes=axes)[0]
        data = dec[approx].copy()
        for key, band in dec.items():
            if key != approx:
                out[(lev, key.replace("a", "L").replace("d", "H"))] = band[cut].astype(np.float64, copy=False)
    out[(level, "L" * len(axes))] = data[cut].astype(np.float64, copy=False)
    return out


def derived_images(image: np.ndarray, sitk_image: Callable[[], sitk.Image],
                   image_types: list[tuple[str, str, dict[str, Any]]],
                   force2d: bool, force2d_dimension: int) -> dict[str, np.ndarray]:
    """Every derived image named as PyRadiomics names it (``original``, ``log-sigma-...``,
    ``wavelet-LLH``...), whole-image float64 arrays, from the image values ``image`` [z, y, x];
    ``sitk_image()`` gives the same image in SimpleITK (asked for only when LoG needs it)."""
    out: dict[str, np.ndarray] = {}
    bands: dict[tuple[int, str], np.ndarray] | None = None
    for name, kind, args in image_types:
        if kind == "Original":
            out[name] = image.astype(np.float64, copy=False)
        elif kind == "LoG":
            out[name] = log_image(sitk_image(), args["sigma"])
        elif kind == "Wavelet":
            if bands is None:
                bands = wavelet_bands(image, args["wavelet"], args["start_level"], args["level"], force2d,
                                      force2d_dimension)
            out[name] = bands[(args["band_level"], args["band"])]
    return out
