"""Cubic B-spline resampling onto an axis-aligned grid, separably, as SimpleITK's ``ResampleImageFilter``.

PyRadiomics resamples with ``sitk.ResampleImageFilter`` (identity transform, the input's direction):
every output voxel ``i`` along an axis sits at the input continuous index
``x_i = (spacing_in * origin_index + i * spacing_out) / spacing_in``, so the resampling is a product
of one linear map per axis. ITK evaluates the cubic B-spline voxel by voxel (64 coefficients each,
after decomposing the whole image into coefficients): ~0.4 s for a 1 mm grid around a 120k-voxel CT
tumour. Here each axis is a small dense matrix (``out x window``) and the volume takes three matrix
products over a window around the output grid: the same values up to float64 rounding, then cast
to the input pixel type as ITK casts (clamped, then truncated for integers).

The per-axis maps reproduce ITK 5:

- ``BSplineDecompositionImageFilter`` (order 3, mirror boundaries, tolerance 1e-10): gain
  ``(1 - z)(1 - 1/z)``, causal initialisation summed over ``ceil(log(1e-10) / log|z|)`` samples when
  the line is longer (else the full mirror sum), causal and anti-causal recursions with
  ``z = sqrt(3) - 2``: written as the matrix ``P`` (``c = P x``) by running the recursions on the
  identity. Its entries decay as ``|z|^d`` (``|z|^40 ~ 1e-23``), so a window of 40 samples beyond
  an output voxel's support holds everything that reaches float64.
- ``BSplineInterpolateImageFunction``: support ``floor(float32(x)) - 1 .. + 2``, ITK's weight
  formulas, mirrored indices (``-k``; ``2 (n - 1) - k``); a line of one sample is constant.
- ``ImageFunction::IsInsideBuffer``: a voxel with ``x < -0.5`` or ``x >= n - 0.5`` on any axis gets
  the default value 0. A position exactly on that boundary (or on a nearest-neighbour tie) in exact
  arithmetic falls on the side that ITK's rounding of its positions gives: :func:`positions`
  computes them as ITK 5.4 does (along a scan line, by interpolating between its ends), so the
  decisions are ITK's; ``imageops`` checks that once per process against SimpleITK and otherwise
  passes ITK's own decision (``inside``, from SimpleITK's nearest neighbour).

- The cast to the input pixel type (clamp, then truncate for integers): our sums differ from ITK's
  by rounding (~1e-14 of the image's magnitude), which truncation turns into a difference of 1 where
  the exact value is an integer: wherever the grid meets the input grid along every axis (the
  B-spline then returns the input values) and in constant regions. :func:`resample` reports such
  grids (None) and callers resample them with SimpleITK.

- Float64 output keeps the sums' rounding (~1e-15 of the magnitude); ties that ITK's rounding makes
  or breaks then reach order statistics downstream, so ``imageops`` resamples float64 images with
  SimpleITK.

Lines of exactly 2 samples are not handled (ITK's mirror reads outside the buffer there): callers use
SimpleITK for them (:func:`supported`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from radstore.radiomics import _compiled

BSPLINE_POLE = math.sqrt(3.0) - 2.0
DECOMPOSITION_TOLERANCE = 1e-10  # ITK BSplineDecompositionImageFilter's default
WINDOW_MARGIN = 40  # samples kept beyond the B-spline support: |z|^40 ~ 1e-23


def supported(interpolator: str, input_shape: tuple[int, ...]) -> bool:
    """Whether :func:`resample` reproduces SimpleITK for this interpolator and input size."""
    return interpolator == "sitkBSpline" and len(input_shape) == 3 and all(n != 2 for n in input_shape)


def positions(origin_index: float, spacing_in: float, spacing_out: float, size: int,
              scanline: bool = False) -> np.ndarray:
    """Input continuous indices of ``size`` output voxels along one axis (float64), in ITK 5.4's
    arithmetic for PyRadiomics' grid (input origin 0, identity direction): output origin
    ``o = spacing_in * origin_index``, voxel ``i`` at ``(o + i * spacing_out) * (1 / spacing_in)``.
    Along the scan line (``scanline``: the x axis, ITK's fastest) ITK evaluates that only at the
    line's first voxel and one past its last and interpolates between them:
    ``x_i = x_0 + (i / size) * (x_size - x_0)``; the results differ from the direct formula by a
    few ulps, which decide nearest-neighbour ties."""
    origin = spacing_in * origin_index
    inverse = 1.0 / spacing_in
    if not scanline:
        return (origin + np.arange(size) * spacing_out) * inverse
    first, end = (origin + np.array([0.0, float(size)]) * spacing_out) * inverse
    return first + (np.arange(size) / float(size)) * (end - first)


def _inside(x: np.ndarray, n: int) -> np.ndarray:
    return (x >= -0.5) & (x < n - 0.5)


def ambiguous(x_zyx: Sequence[np.ndarray], tolerance: float = 1e-9) -> bool:
    """Whether a position lies within ``tolerance`` of a nearest-neighbour tie (``k + 0.5``) or of
    the image border (``-0.5``, ``n - 0.5``): there the rounding of the position arithmetic decides.
    :func:`positions` reproduces ITK 5.4's, which callers check once per process
    (``imageops.itk_positions_reproduced``); where it does not, :func:`nearest` and
    ``-0.5 <= x < n - 0.5`` still give ITK's results away from such positions."""
    return any(bool((np.abs(x - np.floor(x) - 0.5) < tolerance).any()) for x in x_zyx)  # (borders too)


def nearest(image: np.ndarray, x_zyx: Sequence[np.ndarray]) -> np.ndarray:
    """``image`` [z, y, x] at the grid ``x_zyx`` by nearest neighbour (ITK: index ``floor(x + 0.5)``;
    0 outside ``-0.5 <= x < n - 0.5``): ITK's result at ITK's own positions (:func:`positions`),
    ties included."""
    axes = list(zip(x_zyx, image.shape, strict=True))
    out = image
    # one gather per axis (the grid is a product of axes), the most shrinking first
    for axis in sorted(range(len(axes)), key=lambda a: len(axes[a][0]) / axes[a][1]):
        x, n = axes[axis]
        out = out.take(np.clip(np.floor(x + 0.5).astype(np.int64), 0, n - 1), axis)
    for axis, (x, n) in enumerate(axes):
        outside = ~_inside(x, n)
        if outside.any():
            out[(slice(None),) * axis + (outside,)] = 0
    return out


@functools.lru_cache(maxsize=16)
def bspline_decomposition(n: int) -> np.ndarray:
    """ITK's cubic B-spline coefficients of a line of ``n`` samples as a matrix ``P`` [n, n]
    (``c = P x``; read-only)."""
    if n == 1:
        out = np.ones((1, 1))
        out.flags.writeable = False
        return out
    z = BSPLINE_POLE
    s = np.eye(n)  # row k: the coefficient at position k as a function of the n samples
    s *= 1.0 * (1.0 - z) * (1.0 - 1.0 / z)
    horizon = math.ceil(math.log(DECOMPOSITION_TOLERANCE) / math.log(abs(z)))
    if horizon < n:
        acc = s[0].copy()
        zn = z
        for k in range(1, horizon):
            acc += zn * s[k]
            zn *= z
        s[0] = acc
    else:
        iz = 1.0 / z
        zn = z
        z2n = z ** (n - 1)
        acc = s[0] + z2n * s[n - 1]
        z2n *= z2n * iz
        for k in range(1, n - 1):
            acc += (zn + z2n) * s[k]
            zn *= z
            z2n *= iz
        s[0] = acc / (1.0 - zn * zn)
    for k in range(1, n):
        s[k] += z * s[k - 1]
    s[n - 1] = (z / (z * z - 1.0)) * (z * s[n - 2] + s[n - 1])
    for k in range(n - 2, -1, -1):
        s[k] = z * (s[k + 1] - s[k])
    s.flags.writeable = False
    return s


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(idx)
    idx = np.where(idx < 0, -idx, idx)
    return np.where(idx >= n - 1, 2 * (n - 1) - idx, idx)


def bspline_axis(x: np.ndarray, n: int, zero_outside: bool = True) -> tuple[np.ndarray, slice]:
    """Cubic B-spline resampling of a line of ``n`` samples at positions ``x`` [m]: (matrix [m, w]
    over the input window, that window). Rows of positions outside the line are zero when
    ``zero_outside``, else evaluated as ITK would for a point it counts inside (mirrored support)."""
    if _compiled.ENABLED:  # (the same values from one compiled pass: ~20x faster on small grids)
        return _compiled.bspline_axis(x, n, bspline_decomposition(n), zero_outside, WINDOW_MARGIN)
    k1 = np.floor(x.astype(np.float32)).astype(np.int64)
    w = x - k1
    w3 = (1.0 / 6.0) * w * w * w
    w0 = (1.0 / 6.0) + 0.5 * w * (w - 1.0) - w3
    w2 = w + w0 - 2.0 * w3
    w1 = 1.0 - w0 - w2 - w3
    inside = _inside(x, n) if zero_outside else np.abs(x - (n - 1) / 2) <= (n + 1) / 2
    idx = np.clip(_mirror(k1[:, None] + np.arange(-1, 3), n), 0, n - 1)  # (clip: far outside, zeroed)
    used = idx[inside]
    if used.size == 0:
        return np.zeros((len(x), 0)), slice(0, 0)
    window = slice(max(int(used.min()) - WINDOW_MARGIN, 0), min(int(used.max()) + WINDOW_MARGIN + 1, n))
    p = bspline_decomposition(n)[:, window]
    out = np.zeros((len(x), window.stop - window.start))
    for j, wj in enumerate((w0, w1, w2, w3)):
        out += wj[:, None] * p[idx[:, j]]
    out[~inside] = 0.0
    return out, window


CAST_TOLERANCE = 1e-12  # x the window's largest |value|: 100x the largest difference from ITK's sums seen


def cast_ambiguous(values: np.ndarray, dtype: np.dtype, scale: float) -> bool:
    """Whether casting ``values`` (float64, differing from ITK's sums by rounding: at most ~1e-14 x
    ``scale``, the input's largest magnitude) to an integer ``dtype`` could truncate differently from
    ITK: a value within ``CAST_TOLERANCE * scale`` of a non-zero integer (truncation toward zero
    maps both sides of 0 to 0, the value of the voxels outside the image too). Such values are
    integers in exact arithmetic where the grid meets the input grid along every axis (the B-spline
    returns the input there: an axis kept at its spacing, 3 -> 1 mm) or in constant regions;
    elsewhere they are rare.
    Float types round to nearest: never ambiguous beyond one ulp of the output type."""
    if not np.issubdtype(dtype, np.integer) or values.size == 0:
        return False
    nearest = np.rint(values)
    near = np.abs(values - nearest) <= CAST_TOLERANCE * max(scale, 1.0)
    return bool((near & (nearest != 0)).any())


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """ITK's ``CastPixelWithBoundsChecking``: clamp to the type's range, then C cast (integers
    truncate toward zero, float32 rounds to nearest)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(values, info.min, info.max)
    return values.astype(dtype)


def resample(image: np.ndarray, x_zyx: Sequence[np.ndarray], inside: np.ndarray | None = None
             ) -> np.ndarray | None:
    """``image`` [z, y, x] sampled with the cubic B-spline at the grid of per-axis input continuous
    indices ``x_zyx`` (see :func:`positions`), in ``image``'s dtype; 0 where ``inside`` [z, y, x]
    (bool, the grid's shape) is False, or when it is None, outside ``-0.5 <= x < n - 0.5``.

    None when the result would not be ITK's for certain: an integer image with a value that ITK's
    truncation of its own (differently rounded) sum may put on the other side of an integer
    (:func:`cast_ambiguous`); callers then resample with SimpleITK. Float32 output may differ from
    ITK's by one float32 ulp in rare voxels; float64 by the rounding of the sums."""
    if image.ndim != 3 or len(x_zyx) != 3:
        raise ValueError(f"need a 3-D image and 3 position arrays, got {image.shape} and {len(x_zyx)}")
    if not supported("sitkBSpline", image.shape):
        raise ValueError(f"separable B-spline resampling needs lines of 1 or >= 3 samples, got {image.shape}")
    axes = [bspline_axis(x, n, inside is None) for x, n in zip(x_zyx, image.shape, strict=True)]
    mats, windows = [m for m, _ in axes], tuple(w for _, w in axes)
    mz, my, mx = mats
    if any(w.stop <= w.start for w in windows):  # the whole grid lies outside the image
        return np.zeros((len(mz), len(my), len(mx)), dtype=image.dtype)
    v = np.asarray(image[windows], dtype=np.float64)
    scale = float(np.abs(v).max())
    nz, ny, _ = v.shape
    # x, then y, then z (usually the upsampled axis): each product reads and writes C-order arrays
    v = (v.reshape(nz * ny, -1) @ mx.T).reshape(nz, ny, -1)
    v = np.matmul(my, v)
    v = (mz @ v.reshape(nz, -1)).reshape(len(mz), len(my), len(mx))
    if inside is not None:
        if inside.shape != v.shape:
            raise ValueError(f"inside {inside.shape} must have the grid's shape {v.shape}")
        v[~inside] = 0.0
    if cast_ambiguous(v, image.dtype, scale):
        return None
    return _cast(v, image.dtype)
