"""Derived images as PyRadiomics 3.1 builds them (``getLoGImage``, ``getWaveletImage``,
``getSquareImage``, ``getSquareRootImage``, ``getLogarithmImage``, ``getExponentialImage``,
``getGradientImage``, ``getLBP2DImage``, ``getLBP3DImage``), computed only on a window around the
ROI and returned cropped to the ROI box.

- LoG: SimpleITK's ``LaplacianRecursiveGaussianImageFilter`` (normalised across scale, sigma in mm),
  applied as the linear map it is. Along one line of length ``n`` ITK's recursive (Deriche) Gaussian
  of order 0 or 2, boundary handling included, is an ``n x n`` matrix: Toeplitz in its impulse
  response (read once from SimpleITK itself) plus the end-value extension ITK's initial conditions
  amount to, cached; the Laplacian is
  ``sum_d D_d S_e S_f / spacing_d^2`` (second derivative along ``d``, smoothing along the others),
  evaluated with matrix products that keep only the ROI box's rows, on the box grown by
  ``LOG_MARGIN_SIGMAS * sigma`` (+2 voxels) per side, clipped to the image, and shared between the
  three terms (7 products instead of ITK's 9 whole-window passes). Each product uses, per block of
  output rows, only the columns within that margin. The recursive Gaussian's response decays like
  ``exp(-1.7 d / sigma)``: what the margin leaves out is below float32 rounding (measured on CT-like
  images: <= 1e-4 HU on LoG values of ~500, the output's own resolution); the result is rounded to
  float32, PyRadiomics' LoG image type. The size checks are PyRadiomics' on the whole image (it
  skips the filter when the image is smaller than 4 voxels in a dimension or than
  ``ceil(sigma/spacing) + 1``; here that is an error, so columns never go silently missing).
- Wavelet: undecimated (stationary) transform, one level per step, ``pywt.swtn`` over the axes
  (x, y, z order as PyRadiomics; ``force2D`` drops ``force2Ddimension``), odd sizes padded by one
  wrapped voxel and cut back; sub-band names use L for approximation and H for detail. Each step is
  a circular convolution with the ``dec_len``-tap filters, so a ROI voxel only sees voxels within
  ``(dec_len - 1) * steps`` along each axis: the transform of a window holding that reach (even
  length, not touching either image end) equals the whole image's inside the ROI box exactly; an axis
  where the reach leaves the image is taken whole (with PyRadiomics' wrap).
- Square, SquareRoot, Logarithm, Exponential: PyRadiomics' pointwise maps of the float64 values,
  scaled by ``M = max |x|`` over the whole (pre-processed) image: only ``M`` needs the whole image.
- LBP2D: scikit-image's ``local_binary_pattern`` on each slice along ``force2Ddimension`` (the
  slices as PyRadiomics takes them: ``swapaxes``), in-plane from the image's first row and column
  (its sample positions ``row + R sin`` round differently at other origins, and a float image's
  comparisons with the centre then flip) to ``ceil(radius) + 1`` voxels past the box (its circle
  of samples, bilinear, 0 outside the image), stored in the image's pixel type as PyRadiomics does.
- LBP3D (Banerjee et al. 2013, as PyRadiomics computes it): at each ROI voxel, the image sampled
  (SciPy ``map_coordinates``, cubic spline, in the image's pixel type) at the vertices of a trimesh
  icosphere of ``lbp3DIcosphereRadius`` voxels; the kurtosis of those samples is ``lbp-3D-k``; their
  signs against the centre, projected on spherical harmonics and summed per degree ``n <
  lbp3DLevels``, give ``lbp-3D-m<n+1>`` as the L2 norm over the vertices. From a window of the ROI
  box grown by the sampling reach plus ``LBP3D_SPLINE_MARGIN`` voxels, clipped to the image: the
  cubic spline's prefilter is an IIR filter whose boundary start decays like ``0.27^d``, so at that
  margin the coefficients near the ROI are PyRadiomics' whole-image ones bit for bit. That matters:
  on a plateau a sample equals its centre in exact arithmetic and rounding decides the comparison
  (measured on plateaued float images: hundreds of flips at 20 voxels, a few at 30, none from 40).
- Gradient: SimpleITK's ``GradientMagnitudeImageFilter`` (central differences, zero-flux Neumann
  ends, in mm unless ``gradientUseSpacing: false``; float32) on the box grown by one voxel per
  side, clipped to the image: inside the box the same values as on the whole image.

The SimpleITK/PyWavelets calls are PyRadiomics'; the filtered crops feed every family.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pywt
import SimpleITK as sitk

from radstore.radiomics.imageops import ROIError

Box = tuple[slice, slice, slice]
LOG_MARGIN_SIGMAS = 12.0
LOG_ROW_BLOCK = 64  # output rows per block of a banded line-operator product
LBP3D_SPLINE_MARGIN = 48  # voxels past the sampling reach: the spline prefilter's start is forgotten
LBP3D_BLOCK_ELEMENTS = 1 << 21  # (voxels x vertices x harmonics) per block of the LBP3D projection


def _within(box: Box, window: tuple[slice, ...]) -> tuple[slice, ...]:
    """``box`` in the coordinates of ``window`` (which contains it)."""
    return tuple(slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, window, strict=True))


@functools.lru_cache(maxsize=32)
def _recursive_gaussian_kernels(sigma: float, spacing: float, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Impulse responses ``h[-reach..reach]`` (float64, length ``2 reach + 1``) of ITK's recursive
    Gaussian (SimpleITK ``RecursiveGaussianImageFilter``, normalised across scale, sigma in mm) at
    ``spacing`` mm: smoothing (order 0) and second derivative (order 2) divided by ``spacing**2``, as
    ``LaplacianRecursiveGaussianImageFilter`` sums it. Read from the filter run on a unit impulse in
    the middle of a line of ``2 reach + 1`` zeros (zero ends add nothing: see
    :func:`_recursive_gaussian_operators`). The filter's output is float32, so each read value
    carries a relative rounding error (~6e-8) and their sum misses ITK's DC gain (1 for smoothing,
    0 for the second derivative, which its coefficients are normalised to) by ~1e-8: a constant
    region of value c would get c * 1e-8 instead of ITK's ~0. The sums are restored exactly by the
    least-squares correction for errors proportional to the values, ``h += (gain - sum h) h^2 /
    sum h^2``."""
    n = 2 * reach + 1
    line = np.zeros((1, n))
    line[0, reach] = 1.0
    img = sitk.GetImageFromArray(line)
    img.SetSpacing((spacing, 1.0))
    out = []
    for order in (sitk.RecursiveGaussianImageFilter.ZeroOrder, sitk.RecursiveGaussianImageFilter.SecondOrder):
        f = sitk.RecursiveGaussianImageFilter()
        f.SetSigma(sigma)
        f.SetDirection(0)
        f.SetOrder(order)
        f.SetNormalizeAcrossScale(True)
        h = sitk.GetArrayFromImage(f.Execute(img))[0].astype(np.float64)
        gain = 1.0 if order == sitk.RecursiveGaussianImageFilter.ZeroOrder else 0.0
        h += (gain - h.sum()) * h**2 / np.sum(h**2)
        out.append(h)
    smooth, second = out
    second /= spacing**2
    for h in out:
        h.flags.writeable = False
    return smooth, second


@functools.lru_cache(maxsize=16)
def _recursive_gaussian_operators(length: int, sigma: float, spacing: float, reach: int
                                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(S, D)``: the filters of :func:`_recursive_gaussian_kernels` along a line of ``length``
    voxels as matrices (``M[i, j]`` = response at ``i`` to a unit impulse at ``j``), read-only.

    ITK starts its causal and anti-causal recursions in the steady state of the line's first and
    last values, i.e. it filters the line continued by its end values to infinity, so
    ``M[i, j] = h[i - j]`` (zero beyond ``reach``) plus, in column 0, ``sum_{m > i} h[m]`` and, in
    column ``length - 1``, ``sum_{m < i - length + 1} h[m]`` (tested equal to the filter run on an
    identity image, to its float32 output rounding)."""
    i = np.arange(length)
    d = i[:, None] - i[None, :]
    inside = np.abs(d) <= reach
    out = []
    for h in _recursive_gaussian_kernels(sigma, spacing, reach):
        op = np.where(inside, h[np.clip(d + reach, 0, 2 * reach)], 0.0)
        cum = np.concatenate([[0.0], np.cumsum(h)])  # cum[k] = h[-reach] + ... + h[k - 1 - reach]
        op[:, 0] += cum[-1] - cum[np.clip(i + 1 + reach, 0, 2 * reach + 1)]
        op[:, -1] += cum[np.clip(i - length + 1 + reach, 0, 2 * reach + 1)]
        op.flags.writeable = False
        out.append(op)
    return out[0], out[1]


def _line_product(op: np.ndarray, a: np.ndarray, axis: int, rows: slice, reach: int) -> np.ndarray:
    """``op[rows]`` applied along ``axis`` of ``a`` (3D), by blocks of ``LOG_ROW_BLOCK`` rows, each
    with the columns within ``reach`` of its rows only."""
    n = a.shape[axis]
    parts = []
    for r0 in range(rows.start, rows.stop, LOG_ROW_BLOCK):
        r1 = min(r0 + LOG_ROW_BLOCK, rows.stop)
        c0, c1 = max(r0 - reach, 0), min(r1 + reach, n)
        block = op[r0:r1, c0:c1]
        if axis == 0:
            sub = a[c0:c1]
            parts.append((block @ sub.reshape(c1 - c0, -1)).reshape(r1 - r0, *a.shape[1:]))
        elif axis == 1:
            parts.append(np.matmul(block, a[:, c0:c1]))
        else:
            sub = np.ascontiguousarray(a[:, :, c0:c1])
            parts.append((sub.reshape(-1, c1 - c0) @ block.T).reshape(*a.shape[:2], r1 - r0))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=axis)


def log_crop(image: np.ndarray, spacing_zyx: tuple[float, float, float], box: Box, sigma: float
             ) -> np.ndarray:
    """Laplacian of Gaussian (sigma in mm) of ``image`` [z, y, x] inside ``box`` as PyRadiomics'
    ``getLoGImage`` gives it (float32 values, returned as float64), from the box grown by
    ``LOG_MARGIN_SIGMAS * sigma`` mm (+2 voxels) per side:
    ``sum_d D_d S_e S_f x`` with the line operators of ``_recursive_gaussian_operators``."""
    size = np.array(image.shape[::-1])
    spacing = np.array(spacing_zyx[::-1], dtype=float)
    if size.min() < 4:
        raise ROIError(f"LoG needs an image of at least 4 voxels per dimension, got size {tuple(size)}")
    if not np.all(size >= np.ceil(sigma / spacing) + 1):
        raise ROIError(f"LoG sigma {sigma} mm is too large for image size {tuple(size)} at spacing "
                       f"{tuple(spacing)}")
    reach = [math.ceil(LOG_MARGIN_SIGMAS * sigma / s) + 2 for s in spacing_zyx]
    window = tuple(slice(max(b.start - m, 0), min(b.stop + m, n))
                   for b, n, m in zip(box, image.shape, reach, strict=True))
    a = np.asarray(image[window], dtype=np.float64)
    rows = _within(box, window)
    ops = [_recursive_gaussian_operators(a.shape[ax], float(sigma), float(spacing_zyx[ax]), reach[ax])
           for ax in range(3)]
    full = a.shape
    kept = [r.stop - r.start for r in rows]

    def cost(order: tuple[int, ...]) -> float:
        """Multiply-adds of the 7 products when the axes are reduced in this order (a product
        along ``ax`` costs its output size times ``full[ax]``)."""
        p, q, r = order
        n1 = math.prod(full) / full[p] * kept[p]
        n2 = n1 / full[q] * kept[q]
        return 2 * n1 * full[p] + 3 * n2 * full[q] + 2 * n2 * kept[r]

    p, q, r = min(itertools.permutations(range(3)), key=cost)

    def product(which: int, x: np.ndarray, ax: int) -> np.ndarray:
        return _line_product(ops[ax][which], x, ax, rows[ax], reach[ax])

    smooth_p, second_p = product(0, a, p), product(1, a, p)
    smooth_pq = product(0, smooth_p, q)
    second_q_or_p = product(1, smooth_p, q) + product(0, second_p, q)
    out = product(1, smooth_pq, r) + product(0, second_q_or_p, r)
    return out.astype(np.float32).astype(np.float64)


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


def _swtn_level_cropped(data: np.ndarray, w: pywt.Wavelet, axes: list[int], cut: tuple[slice, ...]
                        ) -> dict[str, np.ndarray]:
    """``pywt.swtn(data, w, level=1, axes=axes)[0]`` restricted to ``cut``, bit for bit: swtn filters
    one axis after another (``pywt.swt`` along it, the same C routine), and a later filter along
    another axis never mixes positions along an earlier one, so each sub-band is cropped along an
    axis as soon as that axis is filtered (on a small ROI's window the transform then costs a third)."""
    coeffs: list[tuple[str, np.ndarray]] = [("", data)]
    for axis in axes:
        keep = tuple(cut[ax] if ax == axis else slice(None) for ax in range(data.ndim))
        new: list[tuple[str, np.ndarray]] = []
        for subband, x in coeffs:
            ((ca, cd),) = pywt.swt(x, w, level=1, start_level=0, axis=axis)
            new += [(subband + "a", ca[keep]), (subband + "d", cd[keep])]
        coeffs = new
    return dict(coeffs)


def wavelet_crops(image: np.ndarray, box: Box, wavelet: str = "coif1", start_level: int = 0, level: int = 1,
                  force2d: bool = False, force2d_dimension: int = 0) -> dict[tuple[int, str], np.ndarray]:
    """All sub-bands ``{(level, "LLH"...): float64 crop of box}`` of PyRadiomics' stationary wavelet
    transform (``_swt3``: ``start_level`` + ``level`` single-level ``swtn`` steps, each on the previous
    approximation); the approximation of the last level is included as ``"LLL"`` (or ``"LL"`` in 2D).
    The last step is computed on the crop only (:func:`_swtn_level_cropped`)."""
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
        if lev < level:
            dec = pywt.swtn(data, w, level=1, start_level=0, axes=axes)[0]
            data = dec[approx].copy()
            bands = {key: band[cut] for key, band in dec.items()}
        else:
            bands = _swtn_level_cropped(data, w, axes, cut)
        for key, band in bands.items():
            if key != approx:
                out[(lev, key.replace("a", "L").replace("d", "H"))] = band.astype(np.float64)
        if lev == level:
            out[(level, "L" * len(axes))] = bands[approx].astype(np.float64)
    return out


POINTWISE_KINDS = ("Square", "SquareRoot", "Logarithm", "Exponential")


def pixel_type(kind: str, image_dtype: np.dtype) -> np.dtype:
    """The pixel type of PyRadiomics' derived image of ``kind`` made from a pre-processed image of
    ``image_dtype``: float32 for LoG and Gradient (SimpleITK's filter outputs) and for the original,
    wavelet and LBP2D images of a float32 image (pywt and LBP2D keep float32); float64 for the
    pointwise maps and LBP3D (computed in float64) and otherwise. PyRadiomics' bin edges are
    computed in this type (:func:`radstore.radiomics.imageops.bin_edges`)."""
    if kind in POINTWISE_KINDS or kind == "LBP3D":
        return np.dtype(np.float64)
    if kind in ("LoG", "Gradient") or np.dtype(image_dtype) == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def max_abs(image: np.ndarray) -> float:
    """``max |x|`` over ``image`` in float64 (from its min and max: no copy, no int16 overflow)."""
    return max(abs(float(image.max())), abs(float(image.min())))


def pointwise_crop(image: np.ndarray, box: Box, kind: str, m: float | None = None) -> np.ndarray:
    """PyRadiomics' pointwise image of ``kind`` inside ``box``: with ``x`` the float64 values and
    ``M = max |x|`` over the whole ``image``, Square ``(x / sqrt(M))^2``, SquareRoot
    ``sign(x) sqrt(|x| M)``, Logarithm ``sign(x) log(|x| + 1) M / log(M + 1)`` (its maximum
    ``|.|`` rescaled to ``M``) and Exponential ``exp(x log(M) / M)``, in PyRadiomics' order of
    operations (``m``: ``M`` when known). ``M = 0`` (an all-zero image) gives NaN, as in PyRadiomics."""
    m = max_abs(image) if m is None else m
    x = np.array(image[box], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "Square":
            return (1 / np.sqrt(m) * x) ** 2
        if kind == "SquareRoot":
            pos, neg = x > 0, x < 0
            x[pos] = np.sqrt(x[pos] * m)
            x[neg] = -np.sqrt(-x[neg] * m)
            return x
        if kind == "Logarithm":
            pos, neg = x > 0, x < 0
            x[pos] = np.log(x[pos] + 1)
            x[neg] = -np.log(-(x[neg] - 1))
            return x * (m / np.log(m + 1))  # (max |log image| is at |x| = M: log(M + 1))
        if kind == "Exponential":
            return np.exp(np.log(m) / m * x)
    raise ValueError(f"not a pointwise image type: {kind!r}")


def lbp2d_crop(image: np.ndarray, box: Box, radius: float, samples: int, method: str, axis: int
               ) -> np.ndarray:
    """PyRadiomics' ``getLBP2DImage`` inside ``box``: ``local_binary_pattern(P=samples, R=radius,
    method)`` of each slice along ``axis`` of ``image`` [z, y, x] (``swapaxes(0, axis)``, as
    PyRadiomics slices it), written back into an array of the image's pixel type (so truncated for
    an integer image, as PyRadiomics' in-place assignment does; the NaN that the ``var`` method
    gives a flat neighbourhood becomes 0 there, the value that cast gives PyRadiomics on x86 and
    ARM, without its undefined-cast warning); float64 out."""
    from skimage.feature import local_binary_pattern

    margin = math.ceil(radius) + 1  # (from index 0 in-plane: the same sample positions, bit for bit)
    window = tuple(b if d == axis else slice(0, min(b.stop + margin, n))
                   for d, (b, n) in enumerate(zip(box, image.shape, strict=True)))
    planes = np.array(image[window]).swapaxes(0, axis)
    with warnings.catch_warnings():  # (its note on float images: PyRadiomics passes them as they are)
        warnings.simplefilter("ignore", UserWarning)
        for k in range(planes.shape[0]):
            codes = local_binary_pattern(planes[k], P=samples, R=radius, method=method)
            if planes.dtype.kind in "iu":
                codes = np.nan_to_num(codes, nan=0.0)
            planes[k] = codes
    return np.ascontiguousarray(planes.swapaxes(0, axis)[_within(box, window)], dtype=np.float64)


def legacy_sph_harm(m: int, n: int, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """SciPy's ``sph_harm(m, n, theta, phi)`` as SciPy <= 1.14 computed it, bit for bit:
    ``Y = P_n^|m|(cos phi) [(-1)^|m| (n-|m|)!/(n+|m|)! if m < 0] sqrt((2n+1) (n-m)!/(n+m)! / (4 pi))
    e^{i m theta}`` (azimuth ``theta``, polar angle ``phi``; ``lpmv`` and ``poch`` in that order).
    PyRadiomics' LBP3D calls it; SciPy 1.15-1.16 routed it through ``sph_harm_y`` (values ~1 ulp
    apart) and 1.17 removed it."""
    from scipy.special import lpmv, poch

    mp = abs(m)
    a = lpmv(mp, n, np.cos(phi))
    if m < 0:
        a = a * (float((-1) ** mp) * poch(n + mp + 1, -2 * mp))
    a = a * math.sqrt((2 * n + 1) * poch(n + m + 1, -2 * m) / (4 * math.pi))
    angle = m * np.asarray(theta, dtype=np.float64)
    return a * np.cos(angle) + 1j * (a * np.sin(angle))


@functools.lru_cache(maxsize=16)
def lbp3d_basis(levels: int, radius: float, subdivision: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyRadiomics' LBP3D sampling sphere and harmonics: the ``(Nv, 3)`` vertices (index axes
    z, y, x) of ``trimesh.creation.icosphere(subdivision, radius)``, the ``(Nv, J)`` spherical
    harmonics ``Y`` for degrees ``n < levels`` and orders ``-n..n`` (``J = levels^2``), and each
    column's degree. As PyRadiomics: ``sph_harm(m, n, theta, phi)`` (:func:`legacy_sph_harm`, whose
    ``theta`` is the azimuth) with ``theta = arccos(x / r)`` and ``phi = arctan2(y, z)`` of each
    vertex [z, y, x], conventions and all."""
    from trimesh.creation import icosphere

    vertices = np.array(icosphere(subdivision, radius).vertices, dtype=np.float64)
    theta = np.arccos(np.true_divide(vertices[:, 2], radius))
    phi = np.arctan2(vertices[:, 1], vertices[:, 0])
    columns, degrees = [], []
    for n in range(levels):
        for m in range(-n, n + 1):
            columns.append(legacy_sph_harm(m, n, theta, phi))
            degrees.append(n)
    return vertices, np.column_stack(columns), np.array(degrees)


def lbp3d_crops(image: np.ndarray, mask: np.ndarray, box: Box, levels: int, radius: float,
                subdivision: int, threads: int = 1) -> dict[str, np.ndarray]:
    """PyRadiomics' ``getLBP3DImage`` inside ``box`` of ``image`` [z, y, x], at the voxels of the
    ROI ``mask`` (bool, same grid): ``{"m1": ..., "m<levels>": ..., "k": ...}``, float64 crops of
    ``box``, 0 outside the ROI (PyRadiomics leaves those voxels unset; no feature reads them).
    Per ROI voxel ``p`` with samples ``f_v`` (cubic spline at ``p + vertex_v``): ``k = kurtosis_v f``
    (Fisher, biased: NaN where the samples are all equal), ``s_v = [f_v >= image[p]]``,
    ``c_j = sum_v s_v Y_vj`` and ``m<n+1> = Re sqrt(sum_v (sum_{j of degree n} c_j Y_vj)^2)`` (the
    complex square, as PyRadiomics writes it), in PyRadiomics' order of operations, blocks of
    voxels at a time, on ``threads`` threads (SciPy's sampling, most of the time, releases the GIL;
    each voxel's values do not depend on its block)."""
    from scipy.ndimage import map_coordinates, spline_filter
    from scipy.stats import kurtosis

    vertices, harmonics, degrees = lbp3d_basis(levels, radius, subdivision)
    reach = math.ceil(radius) + 2 + LBP3D_SPLINE_MARGIN  # (cubic spline: 2 voxels past a sample)
    window = tuple(slice(max(b.start - reach, 0), min(b.stop + reach, n))
                   for b, n in zip(box, image.shape, strict=True))
    values = np.ascontiguousarray(image[window])
    spline = spline_filter(values, 3, output=np.float64, mode="constant")  # (map_coordinates' own step)
    origin = np.array([w.start for w in window], dtype=np.float64)
    roi = np.nonzero(mask[box])
    centres = np.stack([r + b.start for r, b in zip(roi, box, strict=True)], axis=1)  # (Np, 3) image index
    at_centre = image[tuple(centres.T)]
    out = {f"m{n + 1}": np.zeros(tuple(b.stop - b.start for b in box)) for n in range(levels)}
    out["k"] = np.zeros_like(out["m1"])
    block = max(1, LBP3D_BLOCK_ELEMENTS // (len(vertices) * harmonics.shape[1]))
    if threads > 1:  # (at least one block per thread)
        block = min(block, max(1, -(-len(centres) // threads)))

    def block_values(start: int) -> tuple[np.ndarray, np.ndarray]:
        """(norms (P, levels), kurtosis (P,)) of the voxels ``start:start + block``."""
        part = slice(start, start + block)
        coords = centres[part][None, :, :] + vertices[:, None, :]  # (Nv, P, 3), PyRadiomics' sums
        samples = map_coordinates(spline, (coords - origin).T, output=values.dtype, order=3,
                                  mode="constant", prefilter=False)  # (P, Nv); "- origin" is exact
        with np.errstate(all="ignore"):
            k = kurtosis(samples, axis=1)
        signs = np.greater_equal(samples, at_centre[part][:, None]).astype(int)
        c = np.multiply(signs[:, :, None], harmonics[None, :, :]).sum(axis=1)  # (P, J)
        per_degree = np.empty((len(c), len(vertices), levels), dtype=harmonics.dtype)  # (P, Nv, levels)
        per_degree[:, :, 0] = np.multiply(c[:, None, 0], harmonics[None, :, 0])  # (degree 0: one order)
        for n in range(1, levels):
            of_n = degrees == n
            per_degree[:, :, n] = np.sum(np.multiply(c[:, None, of_n], harmonics[None, :, of_n]), axis=2)
        return np.real(np.sqrt(np.sum(per_degree ** 2, axis=1))), np.real(k)

    starts = range(0, len(centres), block)
    with warnings.catch_warnings():  # (kurtosis of equal samples: NaN, reported by the engine)
        warnings.simplefilter("ignore", RuntimeWarning)
        if threads > 1 and len(starts) > 1:
            with ThreadPoolExecutor(max_workers=min(threads, len(starts))) as pool:
                results = list(pool.map(block_values, starts))
        else:
            results = [block_values(start) for start in starts]
    for start, (norms, k) in zip(starts, results, strict=True):
        where = tuple(r[start : start + block] for r in roi)
        for n in range(levels):
            out[f"m{n + 1}"][where] = norms[:, n]
        out["k"][where] = k
    return out


def gradient_crop(image: np.ndarray, spacing_zyx: tuple[float, float, float], box: Box,
                  use_spacing: bool) -> np.ndarray:
    """Gradient magnitude of ``image`` [z, y, x] inside ``box`` as PyRadiomics' ``getGradientImage``
    gives it (SimpleITK ``GradientMagnitudeImageFilter``: float32 values, returned as float64),
    from the box grown by one voxel per side, clipped to the image (the filter's central
    differences reach one voxel; at the image's ends both see the same boundary)."""
    window = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n))
                   for b, n in zip(box, image.shape, strict=True))
    im = sitk.GetImageFromArray(np.ascontiguousarray(image[window]))
    im.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    f = sitk.GradientMagnitudeImageFilter()
    f.SetUseImageSpacing(use_spacing)
    magnitude = f.Execute(im)  # (held: an array view does not keep its image alive)
    return np.array(sitk.GetArrayViewFromImage(magnitude)[_within(box, window)], dtype=np.float64)


def derived_crops(image: np.ndarray, spacing_zyx: tuple[float, float, float], box: Box,
                  image_types: list[tuple[str, str, dict[str, Any]]],
                  force2d: bool, force2d_dimension: int, mask: np.ndarray | None = None,
                  threads: int = 1) -> dict[str, np.ndarray]:
    """Every derived image named as PyRadiomics names it (``original``, ``log-sigma-...``,
    ``wavelet-LLH``...) as a contiguous float64 crop of ``box``, from the (pre-processed) image
    values ``image`` [z, y, x]: the values PyRadiomics' whole-image filters give inside the box
    (LBP3D: inside the ROI ``mask``, bool on the image's grid, which it needs; on ``threads``)."""
    out: dict[str, np.ndarray] = {}
    bands: dict[tuple[int, str], np.ndarray] | None = None
    lbp3d: dict[str, np.ndarray] | None = None
    m: float | None = None
    for name, kind, args in image_types:
        if kind == "Original":
            out[name] = np.ascontiguousarray(image[box], dtype=np.float64)
        elif kind == "LoG":
            out[name] = log_crop(image, spacing_zyx, box, args["sigma"])
        elif kind in POINTWISE_KINDS:
            if m is None:
                m = max_abs(image)
            out[name] = pointwise_crop(image, box, kind, m)
        elif kind == "Gradient":
            out[name] = gradient_crop(image, spacing_zyx, box, args["gradientUseSpacing"])
        elif kind == "LBP2D":
            out[name] = lbp2d_crop(image, box, args["lbp2DRadius"], args["lbp2DSamples"], args["lbp2DMethod"],
                                   args.get("force2Ddimension", force2d_dimension))
        elif kind == "LBP3D":
            if mask is None:
                raise ValueError("the LBP3D image needs the ROI mask")
            if lbp3d is None:
                lbp3d = lbp3d_crops(image, mask, box, args["lbp3DLevels"], args["lbp3DIcosphereRadius"],
                                    args["lbp3DIcosphereSubdivision"], threads)
            out[name] = lbp3d[args["lbp3d_image"]]
        elif kind == "Wavelet":
            if bands is None:
                bands = wavelet_crops(image, box, args["wavelet"], args["start_level"], args["level"],
                                      force2d, force2d_dimension)
            out[name] = bands[(args["band_level"], args["band"])]
    return out
