"""Pre-processing as PyRadiomics 3.1 does it (``radiomics.imageoperations``), on in-memory arrays.

Order (PyRadiomics ``RadiomicsFeatureExtractor.execute``): label map -> normalise -> resample (image
with the chosen interpolator, mask with nearest neighbour, then crop to the ROI box + padDistance)
or preCrop -> mask checks -> re-segmentation -> shape on the ROI box -> filters (PyRadiomics runs
them on the whole (resampled) image; :mod:`radstore.radiomics.filters` on a window around the ROI,
giving the same values) -> crop every filtered image to the ROI box -> discretise once per image type.
SimpleITK is used for normalisation, resampling and pre-cropping so that values are PyRadiomics' bit for
bit; without any of them the arrays are used as they are (a SimpleITK round trip is the identity).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from radstore.radiomics import resample
from radstore.radiomics._neighbours import bounding_box, cpu_method
from radstore.radiomics.settings import Setting


class ROIError(ValueError):
    """The ROI cannot give features under these settings (empty, one voxel, too few dimensions...)."""


@dataclass
class Prepared:
    """An image and its ROI after normalisation/resampling/checks (arrays ``[z, y, x]``)."""

    array: np.ndarray            # whole (or resampled/pre-cropped) image values, input pixel type kept
    mask: np.ndarray             # bool ROI on the same grid (after re-segmentation if any)
    shape_mask: np.ndarray       # bool ROI used for shape (before re-segmentation unless resegmentShape)
    bbox: tuple[slice, slice, slice]  # ROI bounding box on that grid
    spacing_zyx: tuple[float, float, float]
    itk: sitk.Image | None = None  # the same image in SimpleITK when a SimpleITK step produced it


# pixel types SimpleITK keeps as they are (GetImageFromArray -> GetArrayFromImage is the identity)
_SITK_NATIVE = frozenset(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                               np.int64, np.uint64, np.float32, np.float64))


def _to_sitk(array: np.ndarray, spacing_zyx: tuple[float, float, float]) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    return img


def _check(mask: np.ndarray, s: Setting, label: int) -> tuple[slice, slice, slice]:
    """PyRadiomics ``checkMask``: label present, > 1 voxel, >= minimumROIDimensions, > minimumROISize."""
    bb = bounding_box(mask)
    if bb is None:
        raise ROIError(f"label {label} not present in mask")
    n = int(np.count_nonzero(mask[bb]))
    ndims = sum((b.stop - b.start) > 1 for b in bb)
    if ndims == 0:
        raise ROIError("mask only contains 1 segmented voxel: features are undefined for a single voxel")
    if ndims < s.minimumROIDimensions:
        raise ROIError(f"mask has too few dimensions ({ndims}, "
                       f"minimumROIDimensions={s.minimumROIDimensions})")
    if s.minimumROISize is not None and n <= s.minimumROISize:
        raise ROIError(f"ROI too small ({n} voxels, minimumROISize={s.minimumROISize})")
    return bb


def _normalize(img: sitk.Image, s: Setting) -> sitk.Image:
    img = sitk.Normalize(img)
    if s.removeOutliers is not None:
        arr = sitk.GetArrayFromImage(img)
        np.clip(arr, -s.removeOutliers, s.removeOutliers, out=arr)
        new = sitk.GetImageFromArray(arr)
        new.CopyInformation(img)
        img = new
    return img * s.normalizeScale


def _crop_box(shape_zyx: tuple[int, ...], bb: tuple[slice, ...], pad: int) -> tuple[slice, ...]:
    """PyRadiomics ``cropToTumorMask``: the ROI box ``bb`` +- ``pad`` voxels, inside the image."""
    return tuple(slice(max(b.start - pad, 0), min(b.stop + pad, n))
                 for b, n in zip(bb, shape_zyx, strict=True))


def _resampling_target(roi: np.ndarray, spacing_zyx: tuple[float, float, float], s: Setting
                       ) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """(ROI box, input spacing, new spacing) in z, y, x; ``resampledPixelSpacing`` is x, y, z and an
    axis given 0 keeps its spacing."""
    assert s.resampledPixelSpacing is not None
    bb = bounding_box(roi)
    if bb is None:
        raise ROIError("label not present in mask")
    sp = np.array(spacing_zyx, dtype=float)
    new = np.array(s.resampledPixelSpacing, dtype=float)[::-1]
    return bb, sp, np.where(new == 0, sp, new)


def _resample(image: np.ndarray, roi: np.ndarray, spacing_zyx: tuple[float, float, float], s: Setting
              ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """PyRadiomics ``resampleImage``: a new grid aligned on the ROI box (+ padDistance); the image
    with the chosen interpolator in its own pixel type, the mask with nearest neighbour (= threshold
    0.5 on the binary label). Returns (image, ROI, spacing) on that grid. The B-spline image runs
    separably and the mask by nearest neighbour in NumPy (:mod:`radstore.radiomics.resample`:
    SimpleITK's values, 10-30x faster), at ITK's own positions, so that grid positions on a
    nearest-neighbour tie or the image border are decided as ITK decides them (where this process's
    SimpleITK computes its positions otherwise, :func:`itk_positions_reproduced`, SimpleITK
    resamples the mask of such grids). SimpleITK resamples the image when a value's cast is ambiguous
    (there ITK's own rounding decides), float64 images (their values keep the sums' rounding, which
    ties in later order statistics can expose), other interpolators and images with an axis of 2."""
    bb, mask_spacing, new_spacing = _resampling_target(roi, spacing_zyx, s)
    bb_lo = np.array([b.start for b in bb], dtype=float)
    bb_size = np.array([b.stop - b.start for b in bb], dtype=float)
    new_spacing = np.where(bb_size != 1, new_spacing, mask_spacing)
    if (np.abs(mask_spacing - new_spacing) <= 1e-8 + 1e-5 * np.abs(new_spacing)).all():  # (np.allclose)
        box = _crop_box(roi.shape, bb, s.padDistance)
        return image[box], roi[box], spacing_zyx
    ratio = mask_spacing / new_spacing
    size = np.array(roi.shape, dtype=float)
    lo = np.floor((bb_lo - 0.5) * ratio - s.padDistance)
    up = np.ceil((bb_lo + bb_size - 0.5) * ratio + s.padDistance)
    up = np.minimum(up, np.ceil(size * ratio) - 1)
    lo = np.maximum(lo, 0)
    new_size = [int(n) for n in up - lo + 1]
    origin_index = 0.5 * (new_spacing - mask_spacing) / mask_spacing + lo / ratio
    out_spacing = (float(new_spacing[0]), float(new_spacing[1]), float(new_spacing[2]))
    x = _grid_positions(origin_index, mask_spacing, new_spacing, new_size)
    if resample.ambiguous(x) and not itk_positions_reproduced():
        # a position on a nearest-neighbour tie or on the image border, which this SimpleITK's
        # rounding of its positions decides
        out_roi, inside = _sitk_nearest(roi, spacing_zyx, new_spacing, new_size, origin_index)
    else:
        out_roi, inside = resample.nearest(roi, x), None
    # float64 (e.g. normalised) images: our sums differ from ITK's by rounding (~1e-15), and ties
    # that ITK's rounding makes or breaks (mirror symmetry at the end slices, a wavelet's periodic
    # symmetry on a tiny image) move percentile thresholds: SimpleITK, bit for bit
    separable = (resample.supported(s.interpolator, image.shape) and image.dtype in _SITK_NATIVE
                 and image.dtype != np.float64)
    img = resample.resample(image, x, inside) if separable else None
    if img is None:  # another interpolator, a float64 image, or casts that ITK's rounding decides
        sitk_img = _to_sitk(image, spacing_zyx)
        img = sitk.GetArrayFromImage(_sitk_resampler(sitk_img, new_spacing, new_size, origin_index,
                                                     s.interpolator).Execute(sitk_img))
    return img, out_roi, out_spacing


def _grid_positions(origin_index_zyx: np.ndarray, spacing_zyx: np.ndarray, new_spacing_zyx: np.ndarray,
                    new_size_zyx: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input continuous indices of the output grid per axis, as ITK 5.4 computes them (x: its scan
    line, :func:`resample.positions`)."""
    z, y, x = (resample.positions(float(o), float(sp), float(ns), int(n), scanline=axis == 2)
               for axis, (o, sp, ns, n) in enumerate(zip(origin_index_zyx, spacing_zyx, new_spacing_zyx,
                                                         new_size_zyx, strict=True)))
    return z, y, x


@dataclass(frozen=True)
class ResamplingGrid:
    """An input image shape and spacing, and an output grid (``origin_index``: its first voxel's input
    continuous index); all ``(z, y, x)``."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    new_spacing: tuple[float, float, float]
    size: tuple[int, int, int]
    origin_index: tuple[float, float, float]


# A grid whose nearest-neighbour picks tell ITK 5.4's position arithmetic from the other plausible
# ones: an older ITK's scan-line interpolation ``x_0 (1 - a) + x_n a``, and fused multiply-adds in the
# scan line or in the output points (e.g. a build for arm64); tests/radiomics/test_resample.py
# checks that each of them picks other voxels here. (z, y, x) throughout.
ITK_CHECK_GRID = ResamplingGrid(shape=(56, 50, 29), spacing=(0.35, 1.5, 0.35), new_spacing=(1.5, 0.3, 0.1),
                                size=(50, 5, 22),
                                origin_index=(27.357142857142858, 3.1999999999999997, 3.9285714285714284))


@functools.cache
def itk_positions_reproduced() -> bool:
    """Whether :func:`resample.positions` + :func:`resample.nearest` pick the voxels this process's
    SimpleITK picks, ties and borders included: one nearest-neighbour resampling of an image of
    voxel numbers on ``ITK_CHECK_GRID`` (~1 ms, once per process)."""
    g = ITK_CHECK_GRID
    numbers = np.arange(1, math.prod(g.shape) + 1, dtype=np.uint32).reshape(g.shape)
    new, origin = np.array(g.new_spacing), np.array(g.origin_index)
    img = _to_sitk(numbers, g.spacing)
    want = sitk.GetArrayFromImage(_sitk_resampler(img, new, list(g.size), origin, "sitkNearestNeighbor")
                                  .Execute(img))
    got = resample.nearest(numbers, _grid_positions(origin, np.array(g.spacing), new, g.size))
    return bool(np.array_equal(got, want))


PROBE_MIN_VOXELS = 1 << 19  # masks at least this large are resampled by two small probes (_sitk_nearest)


def _sitk_nearest(roi: np.ndarray, spacing_zyx: tuple[float, float, float], new_spacing_zyx: np.ndarray,
                  new_size_zyx: list[int], origin_index_zyx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ROI, inside) on the new grid by SimpleITK's nearest neighbour, as PyRadiomics resamples the
    mask (``inside``: the voxels ITK finds inside the input image).

    ITK maps each output scan line (along x) to input continuous indices by interpolating between
    the line's two ends; with an axis-aligned grid (identity direction, as here) an end's z index
    depends on the output z only and its y index on the output y only, and the x indices are the
    same on every line. So the whole decision is that of two small images: one of shape
    ``(Z, 1, X)`` whose voxels hold their own ``(z, x)`` index, resampled onto the output's
    ``z x 1 x x`` grid (y at index 0), and the same for ``(1, Y, X)``; their values name the input
    voxel ITK picks for every ``(z, x)`` and ``(y, x)``. Each SimpleITK call costs ~0.2 ms however
    small, so images under ``PROBE_MIN_VOXELS`` voxels are resampled whole (a 512 x 512 x 60 CT: 15 ms
    whole, 1 ms by the probes). When the output has a single line ITK may split that line between
    threads: then (and if the two probes ever disagree on x) the mask itself is resampled too."""
    nz, ny, nx = new_size_zyx
    zdim, ydim, xdim = roi.shape
    picked = []
    if roi.size >= PROBE_MIN_VOXELS and (nz > 1 or ny > 1):
        for axis in (0, 1):
            shape = (zdim, 1, xdim) if axis == 0 else (1, ydim, xdim)
            index = (np.arange(shape[axis], dtype=np.uint32)[:, None] * np.uint32(xdim)
                     + np.arange(1, xdim + 1, dtype=np.uint32)).reshape(shape)
            probe = _to_sitk(index, spacing_zyx)
            origin = np.array(origin_index_zyx, dtype=float)
            origin[1 - axis] = 0.0  # the other of z and y exactly on input index 0
            size = [nz if axis == 0 else 1, ny if axis == 1 else 1, nx]
            rif = _sitk_resampler(probe, new_spacing_zyx, size, origin, "sitkNearestNeighbor")
            rif.SetNumberOfThreads(1)  # (whole lines, as ITK runs every line of the full grid)
            out = sitk.GetArrayFromImage(rif.Execute(probe)).astype(np.int64)
            picked.append(out[:, 0, :] if axis == 0 else out[0])
    if picked:
        rz, ry = picked  # [nz, nx], [ny, nx]: 1 + input z * X + x (0: outside)
        jz, jx_z = np.divmod(np.maximum(rz - 1, 0), xdim)
        jy, jx_y = np.divmod(np.maximum(ry - 1, 0), xdim)
        jx = np.maximum(np.where(rz > 0, jx_z, -1).max(0), np.where(ry > 0, jx_y, -1).max(0))
        if (np.where(rz > 0, jx_z, jx) == jx).all() and (np.where(ry > 0, jx_y, jx) == jx).all():
            inside = (rz > 0)[:, None, :] & (ry > 0)[None, :, :]
            out_roi = roi[jz[:, None, :], jy[None, :, :], np.maximum(jx, 0)[None, None, :]] & inside
            return out_roi, inside
    # the mask itself, labelled 1 + ROI so that 0 marks the voxels ITK finds outside
    msk = _to_sitk(roi.astype(np.uint8) + np.uint8(1), spacing_zyx)
    labels = sitk.GetArrayFromImage(_sitk_resampler(msk, new_spacing_zyx, new_size_zyx, origin_index_zyx,
                                                    "sitkNearestNeighbor").Execute(msk))
    return labels == 2, labels > 0


IBSI_PARTIAL_VOLUME = 0.5  # IBSI 1: a resampled voxel is in the ROI when the interpolated mask is >= this


def _resample_ibsi(image: np.ndarray, roi: np.ndarray, spacing_zyx: tuple[float, float, float], s: Setting
                   ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """IBSI 1 interpolation (reference manual, image interpolation; ``compatibility: ibsi``): a grid
    over the whole image with its centre on the image's centre, ``n_b = ceil(n_a s_a / s_b)`` voxels
    per axis, voxel ``i`` at input index ``((n_a - 1) s_a - (n_b - 1) s_b) / (2 s_a) + i s_b / s_a``
    (an axis whose new spacing is 0 keeps its grid); the image by ``s.interpolator`` (linear in
    IBSI's CT configurations B-D), rounded to the nearest integer when every input value is one
    (CT in HU, as IBSI prescribes), and the ROI by linear interpolation of the mask kept where it is
    at least 0.5. Only the part of the grid around the ROI (plus ``padDistance`` voxels) is
    computed: the same values, cheaper. PyRadiomics instead starts the grid at its ROI box and
    resamples the mask by nearest neighbour (:func:`_resample`)."""
    bb, sp, new = _resampling_target(roi, spacing_zyx, s)
    if (new == sp).all():  # the same grid
        box = _crop_box(roi.shape, bb, s.padDistance)
        return image[box], roi[box], spacing_zyx
    n_a = np.array(image.shape)
    n_b = np.ceil(n_a * sp / new).astype(np.int64)
    step = new / sp
    start = ((n_a - 1) * sp - (n_b - 1) * new) / (2 * sp)
    lo = np.array([b.start for b in bb], dtype=float) - 1.0  # (linear interpolation reaches 1 voxel)
    hi = np.array([b.stop - 1 for b in bb], dtype=float) + 1.0
    first = np.maximum(np.floor((lo - start) / step).astype(np.int64) - s.padDistance, 0)
    last = np.minimum(np.ceil((hi - start) / step).astype(np.int64) + s.padDistance, n_b - 1)
    origin_index = start + first * step
    size = [int(v) for v in last - first + 1]
    sitk_img = _to_sitk(image.astype(np.float64, copy=False), spacing_zyx)
    img = sitk.GetArrayFromImage(_sitk_resampler(sitk_img, new, size, origin_index, s.interpolator)
                                 .Execute(sitk_img))
    if image.dtype.kind in "iub" or bool(np.array_equal(image, np.round(image))):
        img = np.round(img)
    msk = _to_sitk(roi.astype(np.float64), spacing_zyx)
    weights = sitk.GetArrayFromImage(_sitk_resampler(msk, new, size, origin_index, "sitkLinear").Execute(msk))
    out_spacing = (float(new[0]), float(new[1]), float(new[2]))
    return img.astype(image.dtype), weights >= IBSI_PARTIAL_VOLUME, out_spacing


def _sitk_resampler(image: sitk.Image, new_spacing_zyx: np.ndarray, new_size_zyx: list[int],
                    origin_index_zyx: np.ndarray, interpolator: str) -> sitk.ResampleImageFilter:
    """PyRadiomics' ``ResampleImageFilter`` for ``image``: the new grid starts at the input continuous
    index ``origin_index_zyx``, in the input's direction and pixel type."""
    rif = sitk.ResampleImageFilter()
    rif.SetOutputSpacing(new_spacing_zyx[::-1].tolist())
    rif.SetOutputDirection(image.GetDirection())
    rif.SetSize(new_size_zyx[::-1])
    rif.SetOutputOrigin(image.TransformContinuousIndexToPhysicalPoint(origin_index_zyx[::-1].tolist()))
    rif.SetOutputPixelType(image.GetPixelID())
    rif.SetInterpolator(getattr(sitk, interpolator))
    return rif


def _resegment(image: np.ndarray, mask: np.ndarray, s: Setting, label: int) -> np.ndarray:
    """PyRadiomics ``resegmentMask``: keep ROI voxels inside the (absolute/relative/sigma) range; then,
    with ``resegmentOutliers`` ``k`` (IBSI mode), those within mean +- k sd of the voxels left
    (IBSI's intensity outlier filtering; sd over the voxels, N in the denominator)."""
    keep = mask
    if s.resegmentRange is not None:
        vals = image[mask]
        rng = sorted(s.resegmentRange)
        if s.resegmentMode == "relative":
            th = [float(vals.max()) * r for r in rng]
        elif s.resegmentMode == "sigma":
            th = [float(vals.mean()) + float(vals.std()) * r for r in rng]
        else:
            th = list(rng)
        inside = vals >= th[0]
        if len(th) == 2:
            inside &= vals <= th[1]
        keep = np.zeros_like(mask)
        keep[mask] = inside
        _check_kept(keep, f"re-segmentation {s.resegmentMode} {list(s.resegmentRange)}", label)
    if s.resegmentOutliers is not None:
        vals = image[keep]
        mean, sd = float(vals.mean()), float(vals.std())
        k = s.resegmentOutliers
        inside = (vals >= mean - k * sd) & (vals <= mean + k * sd)
        out = np.zeros_like(mask)
        out[keep] = inside
        keep = out
        _check_kept(keep, f"outlier filtering (mean +- {k:g} sd)", label)
    return keep


def _check_kept(keep: np.ndarray, step: str, label: int) -> None:
    n = int(np.count_nonzero(keep))
    if n <= 1:
        raise ROIError(f"{step} kept {n} voxel(s) of label {label}: cannot extract features")


def prepare(image: np.ndarray, mask: np.ndarray, spacing_zyx: tuple[float, float, float], s: Setting,
            label: int, ibsi: bool = False) -> Prepared:
    """Normalise/resample/crop/check/re-segment one image + label map as PyRadiomics does (``ibsi``:
    resampling on IBSI's grid, :func:`_resample_ibsi`)."""
    if image.ndim != 3 or mask.shape != image.shape:
        raise ROIError(f"image {image.shape} and mask {mask.shape} must be 3-D arrays on the same grid")
    roi = mask.copy() if mask.dtype == bool else mask == label
    if not roi.any():
        raise ROIError(f"label {label} not present in mask")
    itk: sitk.Image | None = None
    spacing = (float(spacing_zyx[0]), float(spacing_zyx[1]), float(spacing_zyx[2]))
    if s.normalize or image.dtype not in _SITK_NATIVE:
        # a SimpleITK round trip (normalisation; or the pixel type SimpleITK would give the image)
        img = _to_sitk(image, spacing_zyx)
        if s.normalize:
            img = _normalize(img, s)
        arr, itk = sitk.GetArrayFromImage(img), img
    else:
        arr = np.ascontiguousarray(image)
    if s.resampledPixelSpacing is not None:
        if s.interpolator == "sitkBSpline" and 2 in arr.shape:
            raise ROIError(f"B-spline resampling of an image with an axis of 2 voxels {arr.shape}: ITK "
                           "mirrors that axis outside its buffer, so its values (PyRadiomics' too) are "
                           "read from unrelated memory and change from run to run; use interpolator "
                           "sitkLinear for this image")
        arr, roi, spacing = (_resample_ibsi if ibsi else _resample)(arr, roi, spacing, s)
        itk = None
    elif s.preCrop:
        box = _crop_box(roi.shape, _check(roi, s, label), s.padDistance)
        arr, roi, itk = arr[box], roi[box], None
    bb = _check(roi, s, label)
    shape_mask = roi
    if s.resegmentRange is not None or s.resegmentOutliers is not None:
        roi = _resegment(arr, roi, s, label)
        bb = _check(roi, s, label)
        if s.resegmentShape:
            shape_mask = roi
    if arr.dtype.kind == "f":
        _check_finite(arr[bb][roi[bb]], s)
    return Prepared(arr, roi, shape_mask, bb, spacing, itk)


def _check_finite(values: np.ndarray, s: Setting) -> None:
    """ROIError when ROI values are NaN or infinite (PyRadiomics fails on them inside NumPy's
    binning: ``arange: cannot compute length``)."""
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        why = (" (normalize divides by the image's standard deviation: 0 for a constant image)"
               if s.normalize else "")
        raise ROIError(f"the image has {bad} non-finite value(s) (NaN or inf) inside the ROI{why}")


MAX_BINS = 10**7  # fixed-width bins over one ROI's values: more is a mistake (the edges alone: 80 MB)


def bin_edges(values_min: float, values_max: float, s: Setting, anchor: float | None = None,
              dtype: np.dtype | type = np.float64) -> np.ndarray:
    """PyRadiomics ``getBinEdges`` (float64 edges) for ROI values of pixel type ``dtype`` (float32 or
    float64: PyRadiomics' arithmetic runs in the image's type, so float32 images get float32
    edges, e.g. LoG images). Fixed count: ``numpy.histogram`` edges with the top edge + 1. Fixed
    width: edges from ``min - (min mod w)`` (a multiple of w) in steps of w; a flat ROI gets one bin.
    ``anchor`` (IBSI mode) starts the edges at that value instead."""
    ftype = np.dtype(dtype).type
    lo, hi = ftype(values_min), ftype(values_max)
    if s.binCount is not None:
        try:
            edges = np.histogram_bin_edges(np.array([lo, hi]), s.binCount)
        except ValueError as exc:  # a range too narrow for the count in this type (PyRadiomics fails too)
            raise ROIError(f"binCount {s.binCount} cannot split the ROI's value range [{lo!r}, {hi!r}] "
                           f"into finite bins ({exc})") from exc
        edges[-1] += 1
        return edges.astype(np.float64)
    w = s.bin_width
    assert w is not None
    start = float(anchor) if anchor is not None else float(lo - (lo % w))
    if (float(values_max) - start) / w > MAX_BINS:
        raise ROIError(f"binWidth {w:g} over the ROI's values [{float(values_min):g}, {float(values_max):g}] "
                       f"gives {(float(values_max) - start) / w:.3g} grey levels (at most {MAX_BINS:,}): "
                       "use a larger binWidth or a binCount")
    if anchor is not None:
        edges = np.arange(anchor, float(values_max) + 2 * w, w)
    else:
        edges = np.arange(lo - (lo % w), hi + 2 * w, w)
    if len(edges) == 1:
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    return edges.astype(np.float64)


def discretise(x: torch.Tensor, mask: torch.Tensor, s: Setting, anchors: list[float | None] | None = None,
               method: str = "auto", dtypes: list[np.dtype] | None = None) -> tuple[torch.Tensor, int]:
    """Grey levels ``q`` (int64 [B,Z,Y,X], 1..Ng inside the ROI, 0 outside) as ``numpy.digitize`` with
    PyRadiomics' bin edges, per ROI (``dtypes``: the pixel type PyRadiomics has for each, see
    :func:`bin_edges`; float64 when None); returns ``(q, max level over the batch)``. ``method`` "numpy"
    (the "auto" choice for CPU tensors) bins the ROI voxels only (``searchsorted(side="right")`` is
    ``digitize``); "torch" (any device) uses ``torch.bucketize(right=True)``, the same rule."""
    if cpu_method(method, x) == "numpy":
        return _discretise_numpy(x, mask, s, anchors, dtypes)
    q = torch.zeros(x.shape, dtype=torch.int64, device=x.device)
    big = torch.finfo(x.dtype).max
    mins = torch.where(mask, x, torch.full_like(x, big)).flatten(1).amin(1).cpu().numpy()
    maxs = torch.where(mask, x, torch.full_like(x, -big)).flatten(1).amax(1).cpu().numpy()
    n_levels = 1
    for b in range(x.shape[0]):
        anchor = anchors[b] if anchors is not None else None
        dtype = dtypes[b] if dtypes is not None else np.float64
        edges = torch.as_tensor(bin_edges(float(mins[b]), float(maxs[b]), s, anchor, dtype), dtype=x.dtype,
                                device=x.device)
        qb = torch.bucketize(x[b], edges, right=True)
        q[b] = torch.where(mask[b], qb, torch.zeros_like(qb))
        n_levels = max(n_levels, int(q[b].max()))
    return q, n_levels


def _digitize_evenly_spaced(vals: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``numpy.searchsorted(edges, vals, side="right")`` (= ``digitize``) for edges that are evenly
    spaced up to rounding (both bin rules' edges): the index ``floor((v - e0) / w) + 1`` corrected by
    one step while ``edges[i - 1] <= v < edges[i]`` fails, which rounding can make off by one (a
    gather into the few edges instead of a binary search; falls back to the search if two steps do
    not settle it)."""
    n = len(edges)
    width = (edges[-1] - edges[0]) / (n - 1)
    idx = np.floor((vals - edges[0]) * (1.0 / width)).astype(np.intp)
    idx += 1
    np.clip(idx, 0, n, out=idx)
    for _ in range(2):
        up = edges.take(np.minimum(idx, n - 1)) <= vals
        up &= idx < n
        down = edges.take(np.maximum(idx - 1, 0)) > vals
        down &= idx > 0
        if not (up.any() or down.any()):
            return idx
        idx += up
        idx -= down
    return np.searchsorted(edges, vals, side="right")


def _discretise_numpy(x: torch.Tensor, mask: torch.Tensor, s: Setting, anchors: list[float | None] | None,
                      dtypes: list[np.dtype] | None) -> tuple[torch.Tensor, int]:
    xn, mn = x.numpy(), mask.numpy()
    q = np.zeros(xn.shape, dtype=np.int64)
    n_levels = 1
    for b in range(xn.shape[0]):
        inside = mn[b]
        vals = xn[b][inside]
        if vals.size == 0:
            continue
        anchor = anchors[b] if anchors is not None else None
        dtype = dtypes[b] if dtypes is not None else np.float64
        edges = bin_edges(float(vals.min()), float(vals.max()), s, anchor, dtype)
        levels = _digitize_evenly_spaced(vals, edges)
        q[b][inside] = levels
        n_levels = max(n_levels, int(levels.max()))
    return torch.from_numpy(q), n_levels
