"""Pure preprocessing transforms: arrays in, arrays out (no I/O, no global state).

Arrays are ``[z, y, x]`` with ``spacing_zyx`` in mm (see :mod:`radstore.volume`). The composition
used by extraction is in :mod:`radstore.preprocess.pipeline`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def resampled_shape(shape: Sequence[int], spacing_zyx: Sequence[float], target_zyx: Sequence[float]
                    ) -> tuple[int, ...]:
    """Grid size after resampling, keeping the physical extent: ``n' = max(1, round(n * s / s'))``."""
    return tuple(max(1, round(n * s / t)) for n, s, t in zip(shape, spacing_zyx, target_zyx, strict=True))


def _sitk_resample(arr: np.ndarray, spacing_zyx: Sequence[float], target_zyx: Sequence[float],
                   linear: bool, box: Sequence[slice] | None = None) -> np.ndarray:
    """SimpleITK ``ResampleImageFilter`` onto the grid of :func:`resampled_shape` (origin at the
    first voxel centre), or only its sub-box ``box`` (output-grid index slices, same values as
    cropping the full result); 3rd-order B-spline (``linear``) or nearest neighbour."""
    import SimpleITK as sitk

    src_xyz = tuple(float(s) for s in reversed(spacing_zyx))
    dst_xyz = tuple(float(s) for s in reversed(target_zyx))
    full = resampled_shape(arr.shape, spacing_zyx, target_zyx)
    box = tuple(box) if box is not None else tuple(slice(0, n) for n in full)
    start_zyx = [b.start or 0 for b in box]
    size_zyx = [(b.stop if b.stop is not None else n) - st for b, n, st in zip(box, full, start_zyx,
                                                                                strict=True)]
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    img.SetSpacing(src_xyz)
    f = sitk.ResampleImageFilter()
    f.SetOutputSpacing(dst_xyz)
    f.SetSize([int(v) for v in reversed(size_zyx)])
    f.SetOutputOrigin(tuple(float(i * t) for i, t in zip(reversed(start_zyx), dst_xyz, strict=True)))
    f.SetOutputDirection(img.GetDirection())
    f.SetInterpolator(sitk.sitkBSpline if linear else sitk.sitkNearestNeighbor)
    f.SetOutputPixelType(sitk.sitkFloat32 if linear else sitk.sitkUInt16)
    f.SetDefaultPixelValue(float(arr.min(initial=0)) if linear else 0.0)
    return sitk.GetArrayFromImage(f.Execute(img))


def resample_image(image: np.ndarray, spacing_zyx: Sequence[float], target_zyx: Sequence[float],
                   box: Sequence[slice] | None = None) -> np.ndarray:
    """Image to ``target_zyx`` spacing with a 3rd-order B-spline; float32 out. ``box`` (slices on
    the output grid) computes only that part (the B-spline coefficients use the whole input)."""
    if tuple(map(float, spacing_zyx)) == tuple(map(float, target_zyx)):
        out = image.astype(np.float32, copy=False)
        return out[tuple(box)] if box is not None else out
    return _sitk_resample(image.astype(np.float32, copy=False), spacing_zyx, target_zyx, True, box)


def resample_mask(mask: np.ndarray, spacing_zyx: Sequence[float], target_zyx: Sequence[float]
                  ) -> np.ndarray:
    """Label map to ``target_zyx`` spacing with nearest-neighbour interpolation; dtype kept."""
    if tuple(map(float, spacing_zyx)) == tuple(map(float, target_zyx)):
        return mask
    out = _sitk_resample(mask.astype(np.uint16, copy=False), spacing_zyx, target_zyx, False)
    return out.astype(mask.dtype, copy=False)


def resample(image: np.ndarray, mask: np.ndarray, spacing_zyx: Sequence[float],
             target_zyx: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Image (B-spline) and mask (nearest) on the same new grid (see :func:`resample_image`)."""
    if image.shape != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} differ")
    return (resample_image(image, spacing_zyx, target_zyx),
            resample_mask(mask, spacing_zyx, target_zyx))


def window_bounds(range_hu: Sequence[float] | None = None, level: float | None = None,
                  width: float | None = None) -> tuple[float, float]:
    """HU window as ``(lo, hi)``: either a range, or level/width → ``(L - W/2, L + W/2)``."""
    if range_hu is not None:
        lo, hi = float(range_hu[0]), float(range_hu[1])
    elif level is not None and width is not None:
        lo, hi = level - width / 2.0, level + width / 2.0
    else:
        raise ValueError("a window needs either range_hu or both level and width")
    if not hi > lo:
        raise ValueError(f"window upper bound {hi} must exceed lower bound {lo}")
    return lo, hi


def window(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip to ``[lo, hi]`` HU and scale linearly to ``[0, 1]``: ``(clip(x) - lo) / (hi - lo)``."""
    return ((np.clip(image.astype(np.float32), lo, hi) - lo) / (hi - lo)).astype(np.float32)


def margin_voxels(margin_mm: float | Sequence[float], spacing_zyx: Sequence[float]) -> tuple[int, ...]:
    """Margin in voxels per axis: ``ceil(m_mm / spacing - 1e-6)`` (anisotropic spacing aware)."""
    if isinstance(margin_mm, int | float):
        m = [float(margin_mm)] * len(spacing_zyx)
    else:
        m = [float(v) for v in margin_mm]
    return tuple(math.ceil(mm / s - 1e-6) if mm > 0 else 0 for mm, s in zip(m, spacing_zyx, strict=True))


def bbox(mask: np.ndarray) -> tuple[slice, ...]:
    """Half-open bounding box (one slice per axis) of the non-zero voxels of ``mask``."""
    nz = np.nonzero(mask)
    if nz[0].size == 0:
        raise ValueError("empty mask: no voxel to crop around")
    return tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in nz)


def crop_box(mask: np.ndarray, spacing_zyx: Sequence[float], margin_mm: float,
             axes: Sequence[int] = (0, 1, 2)) -> tuple[slice, ...]:
    """The ROI bounding box grown by ``margin_mm`` on ``axes`` (voxels from :func:`margin_voxels`),
    clipped to the array."""
    box = list(bbox(mask))
    mv = margin_voxels(margin_mm, spacing_zyx)
    for ax in axes:
        box[ax] = slice(max(0, box[ax].start - mv[ax]), min(mask.shape[ax], box[ax].stop + mv[ax]))
    return tuple(box)


def largest_slice(mask: np.ndarray) -> int:
    """Axial index ``z`` maximising the ROI area ``sum_{y,x} mask[z]`` (first on ties)."""
    areas = (mask != 0).reshape(mask.shape[0], -1).sum(axis=1)
    if areas.max(initial=0) == 0:
        raise ValueError("empty mask: no slice to select")
    return int(np.argmax(areas))


def neighbour_indices(center: int, k: int, depth: int) -> list[int]:
    """``center-k .. center+k`` clamped to ``[0, depth)`` (edge slices repeat at the borders)."""
    return [min(max(center + d, 0), depth - 1) for d in range(-k, k + 1)]


def roi_slices(mask: np.ndarray) -> list[int]:
    """Every axial index that contains ROI voxels, ascending."""
    return [int(z) for z in np.nonzero((mask != 0).reshape(mask.shape[0], -1).any(axis=1))[0]]


def apply_input_mode(image01: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """``plain``: the windowed crop; ``lesion_mask``: intensities outside ``mask`` set to 0;
    ``binary_mask``: 1 inside, 0 outside (seed 004's lesion vs binary mask inputs)."""
    if mode == "plain":
        return image01
    if mode == "lesion_mask":
        return np.where(mask != 0, image01, 0.0).astype(np.float32)
    if mode == "binary_mask":
        return (mask != 0).astype(np.float32)
    raise ValueError(f"unknown input mode {mode!r} (plain, lesion_mask, binary_mask)")


def pad_square(img: np.ndarray, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes symmetrically (extra pixel after) to a square of the longer side."""
    h, w = img.shape[-2:]
    n = max(h, w)
    ph, pw = n - h, n - w
    pad = [(0, 0)] * (img.ndim - 2) + [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
    return np.pad(img, pad, mode="constant", constant_values=value)


def pad_cube(vol: np.ndarray, value: float = 0.0) -> np.ndarray:
    """Pad the last three axes symmetrically to a cube of the longest side."""
    n = max(vol.shape[-3:])
    pad = [(0, 0)] * (vol.ndim - 3) + [((n - s) // 2, n - s - (n - s) // 2) for s in vol.shape[-3:]]
    return np.pad(vol, pad, mode="constant", constant_values=value)


def _linear_axis(a: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Linear interpolation of one axis to ``size`` samples at half-pixel centres:
    source coordinate ``u = (i + 0.5) * n / size - 0.5`` clamped to ``[0, n - 1]``."""
    n = a.shape[axis]
    u = np.clip((np.arange(size) + 0.5) * (n / size) - 0.5, 0, n - 1)
    lo = np.floor(u).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (u - lo).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis] = size
    w = w.reshape(shape)
    return np.take(a, lo, axis=axis) * (1 - w) + np.take(a, hi, axis=axis) * w


def resize(img: np.ndarray, size: int, spatial_dims: int = 2) -> np.ndarray:
    """Resize the last ``spatial_dims`` axes to ``size``: separable (bi/tri)linear interpolation at
    half-pixel centres, identical to ``torch.nn.functional.interpolate(..., align_corners=False)``
    without antialiasing."""
    out = np.asarray(img, dtype=np.float32)
    for axis in range(img.ndim - spatial_dims, img.ndim):
        if out.shape[axis] != size:
            out = _linear_axis(out, axis, size)
    return out.astype(np.float32, copy=False)


def normalise(img01: np.ndarray, mode: str, channel_axis: int = 0) -> np.ndarray:
    """From ``[0, 1]``: ``unit`` → unchanged; ``symmetric`` → ``2x - 1`` in ``[-1, 1]``;
    ``imagenet`` → ``(x - mean_c) / std_c`` with the ImageNet channel statistics (3 channels)."""
    if mode == "unit":
        return img01.astype(np.float32, copy=False)
    if mode == "symmetric":
        return (2.0 * img01 - 1.0).astype(np.float32)
    if mode == "imagenet":
        if img01.shape[channel_axis] != 3:
            raise ValueError(f"imagenet normalisation needs 3 channels, got {img01.shape[channel_axis]}")
        shape = [1] * img01.ndim
        shape[channel_axis] = 3
        mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(shape)
        std = np.asarray(IMAGENET_STD, np.float32).reshape(shape)
        return ((img01 - mean) / std).astype(np.float32)
    raise ValueError(f"unknown normalisation {mode!r} (unit, symmetric, imagenet)")
