"""The composition of the pure transforms, driven by :class:`PreprocessConfig`.

``prepare(image_hu, lesion_mask, spacing_zyx, cfg, organ_mask)`` → float32 network inputs:
``(N, 3, size, size)`` for 2-D configs (one row per selected slice or slice group) or
``(1, 1, size, size, size)`` for ``slices: volume``. Order: resample → window to [0,1] → crop box
+ margin (mm) → slice selection → input mode → square pad → resize → normalise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radstore.preprocess import transforms as T
from radstore.preprocess.config import PreprocessConfig


def read_margin_mm(cfg: PreprocessConfig, spacing_zyx: Sequence[float]) -> tuple[float, float, float]:
    """Margin (mm, ``[z, y, x]``) to read around the ROI so that resampling and neighbours have
    context: ``margin_mm`` + 2 source voxels (+ k target slices in z)."""
    tz = cfg.spacing_mm[0] if cfg.spacing_mm is not None else spacing_zyx[0]
    extra_z = cfg.neighbours * tz
    return (cfg.margin_mm + 2 * spacing_zyx[0] + extra_z, cfg.margin_mm + 2 * spacing_zyx[1],
            cfg.margin_mm + 2 * spacing_zyx[2])


def slice_groups(lesion_mask: np.ndarray, cfg: PreprocessConfig) -> list[list[int]]:
    """Axial indices of each network input: the largest slice or every ROI slice, each with its
    ``±k`` neighbours as one channel group, or split into one-slice groups (``neighbours_as: images``)."""
    depth = lesion_mask.shape[0]
    centres = [T.largest_slice(lesion_mask)] if cfg.slices == "largest" else T.roi_slices(lesion_mask)
    groups = [T.neighbour_indices(c, cfg.neighbours, depth) for c in centres]
    if cfg.neighbours_as == "images":
        seen: list[int] = []
        for g in groups:
            seen.extend(z for z in g if z not in seen)
        return [[z] for z in seen]
    return groups


def prepare(image_hu: np.ndarray, lesion_mask: np.ndarray, spacing_zyx: Sequence[float],
            cfg: PreprocessConfig, organ_mask: np.ndarray | None = None) -> np.ndarray:
    """Network inputs for one lesion (contract in the module docstring).

    Masks are resampled first (nearest, cheap); the image is B-spline resampled only inside the
    crop box and the selected slices (identical values to resampling everything, then cropping).
    """
    if cfg.region == "organ" and organ_mask is None:
        raise ValueError("region 'organ' needs the organ mask")
    lesion = (lesion_mask != 0).astype(np.uint8)
    organ = None if organ_mask is None else (organ_mask != 0).astype(np.uint8)
    src = tuple(float(s) for s in spacing_zyx)
    spacing = src
    if cfg.spacing_mm is not None:
        lesion = T.resample_mask(lesion, src, cfg.spacing_mm)
        organ = None if organ is None else T.resample_mask(organ, src, cfg.spacing_mm)
        spacing = cfg.spacing_mm
    if lesion.max(initial=0) == 0:
        raise ValueError("lesion vanished after resampling (smaller than one target voxel)")
    region = organ if cfg.region == "organ" else lesion
    assert region is not None
    lo, hi = cfg.window.bounds

    def image_in(box: tuple[slice, ...]) -> np.ndarray:
        img = (T.resample_image(image_hu, src, cfg.spacing_mm, box) if cfg.spacing_mm is not None
               else image_hu[box])
        return T.window(img, lo, hi)

    if cfg.slices == "volume":
        box = T.crop_box(region, spacing, cfg.margin_mm, axes=(0, 1, 2))
        vol = T.apply_input_mode(image_in(box), region[box], cfg.input_mode)
        vol = T.resize(T.pad_cube(vol), cfg.size, spatial_dims=3)
        return T.normalise(vol[None], cfg.normalisation)[None]
    box = T.crop_box(region, spacing, cfg.margin_mm, axes=(1, 2))
    groups = slice_groups(lesion, cfg)
    z0 = min(min(g) for g in groups)
    z1 = max(max(g) for g in groups) + 1
    sub = (slice(z0, z1), box[1], box[2])
    img01, region = image_in(sub), region[sub]
    out = []
    for group in groups:
        chans = np.stack([T.apply_input_mode(img01[z - z0], region[z - z0], cfg.input_mode) for z in group])
        if chans.shape[0] == 1:
            chans = np.repeat(chans, 3, axis=0)
        chans = T.resize(T.pad_square(chans), cfg.size, spatial_dims=2)
        out.append(T.normalise(chans, cfg.normalisation))
    return np.stack(out).astype(np.float32)
