"""Radiomics extraction: PyRadiomics-compatible pre-processing, then batched torch kernels.

Per ROI (NumPy/SimpleITK, as PyRadiomics): label map -> normalise -> resample/pre-crop -> checks ->
re-segmentation -> shape -> derived images (original, LoG, wavelet), computed on a window around the
ROI and cropped to its box (:mod:`radstore.radiomics.filters`).
Then batched (torch, CPU or CUDA, same code): the crops of every ROI and image type that share voxel
spacing and setting (binning...) are padded to a common shape (mask False outside), discretised once
and passed to first-order and the five texture families
(``radstore.radiomics.{glcm,glrlm,glszm,gldm,ngtdm}``), which share one padded flat grid per batch:
one kernel call serves all 11 images of a LoG + wavelet setup. On CPU the maths runs with one torch
thread and the caller's torch thread count is used as a thread pool over ROIs (pre-processing, shape,
filters; only for images of 64^3 voxels and more) and over batches (only when two of them are large):
small ROIs hold the GIL, so threads only contend (processes scale: the extraction job runs
single-CPU radiomics actors).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from radstore.radiomics import firstorder, registry
from radstore.radiomics._heap import keep_freed_heap
from radstore.radiomics._neighbours import angles, shared_grids
from radstore.radiomics.filters import derived_crops, pixel_type
from radstore.radiomics.imageops import ROIError, bin_edges, discretise, prepare
from radstore.radiomics.settings import RadiomicsSettings, Setting
from radstore.radiomics.shape import shape_2d, shape_3d
from radstore.radiomics.texture_params import TextureParams

ROI = tuple[np.ndarray, np.ndarray, tuple[float, float, float]]
MAX_BATCH_VOXELS = 8_000_000  # padded voxels per kernel call (bounds memory of the texture matrices)
CPU_BATCH_VOXELS = 262_144  # on CPU only small crops gain from batching (per-call overhead)
MIN_SPLIT_VOXELS = 65_536  # batches are split over workers only down to this size (below: GIL-bound)
POOL_IMAGE_VOXELS = 262_144  # ROIs are prepared on the workers only when their images average this size
LEVEL_RATIO = 1.5  # crops batched together have bin counts within about this factor
LONE_LEVELS = 1024  # crops with more bins get a kernel call of their own (matrices over their levels only)
GLCM_MAX_CELLS = 1 << 26  # present grey levels^2 x directions of one crop's GLCM (0.5 GiB per float64 copy)


@dataclass
class _Crop:
    roi: int
    name: str             # image type (``original``, ``log-sigma-1-0-mm-3D``, ``wavelet-LLH``...)
    setting: Setting      # the setting of that image type (binning...)
    image: np.ndarray     # float64 crop of one derived image
    mask: np.ndarray      # bool crop
    spacing: tuple[float, float, float]
    anchor: float | None  # IBSI fixed-bin-size lower edge (None: PyRadiomics edges)
    dtype: np.dtype       # PyRadiomics' pixel type of the derived image (its bin edges' arithmetic)
    levels: int           # number of bins of its discretisation (bounds its grey levels)


@functools.cache
def _texture_module(family: str) -> ModuleType:
    return importlib.import_module(f"radstore.radiomics.{family}")


def _spacing3(spacing: Sequence[float]) -> tuple[float, float, float]:
    """``spacing_zyx`` as three floats (an ROI's spacing may arrive as a list or an array)."""
    if len(spacing) != 3:
        raise ROIError(f"spacing_zyx must have 3 values, got {tuple(spacing)!r}")
    z, y, x = spacing
    return float(z), float(y), float(x)


def _texture_params(s: Setting, spacing: tuple[float, float, float]) -> TextureParams:
    return TextureParams(distances=tuple(s.distances), symmetrical_glcm=s.symmetricalGLCM,
                         weighting_norm=s.weightingNorm, gldm_a=s.gldm_a, force2d=s.force2D,
                         force2d_dimension=s.force2Ddimension, spacing_zyx=spacing)


def _anchor(settings: RadiomicsSettings, s: Setting, crop_values: np.ndarray, original: bool) -> float | None:
    """IBSI mode's fixed-bin-size lower edge: the absolute re-segmentation range's lower bound for the
    original image (its intensities lie above it), else the ROI minimum (filtered images: their
    response values are not bounded by the range); None: PyRadiomics' edges."""
    if settings.compatibility != "ibsi" or s.binCount is not None:
        return None
    if original and s.resegmentRange is not None and s.resegmentMode == "absolute":
        return float(min(s.resegmentRange))
    return float(crop_values.min())


_NUMPY_DTYPES = {torch.float64: np.float64, torch.bool: np.bool_}


def _pad_stack(arrs: list[np.ndarray], fill: float | bool, device: str, dtype: torch.dtype) -> torch.Tensor:
    """``arrs`` [Z, Y, X] stacked into ``dtype`` [B, Zmax, Ymax, Xmax] on ``device``, padded with ``fill``
    (converted while copied: one pass)."""
    shape = np.max([a.shape for a in arrs], axis=0)
    out = np.full((len(arrs), *shape), fill, dtype=_NUMPY_DTYPES[dtype])
    for i, a in enumerate(arrs):
        out[i, : a.shape[0], : a.shape[1], : a.shape[2]] = a
    return torch.as_tensor(out, device=device)


def _chunks(crops: list[_Crop], workers: int = 1, max_voxels: int = MAX_BATCH_VOXELS) -> list[list[_Crop]]:
    """Kernel batches: crops (of any ROI and image type) with the same spacing, setting and bin count
    within a factor ``LEVEL_RATIO`` (the texture matrices of a batch are sized by its largest bin
    count; classes in increasing bin count join the previous one while it holds fewer than
    ``MIN_SPLIT_VOXELS`` voxels: for small crops, e.g. one small ROI's 11 images, a kernel call
    costs more than larger matrices), by size so that padding stays small, at most ``max_voxels``
    padded voxels each (a larger crop is alone), and split into about ``workers`` batches while
    they keep ``MIN_SPLIT_VOXELS`` (smaller batches spend their time in Python holding the GIL:
    threads would not run them in parallel, and splitting loses the batching gain)."""
    classes: dict[tuple[tuple[float, float, float], str], dict[int, list[_Crop]]] = {}
    alone = [[c] for c in crops if c.levels > LONE_LEVELS]
    setting_json: dict[int, str] = {}  # (by object: image types without overrides share the setting)
    for c in crops:
        if c.levels > LONE_LEVELS:
            continue
        level_class = int(math.log(max(c.levels, 1)) / math.log(LEVEL_RATIO))
        if id(c.setting) not in setting_json:
            setting_json[id(c.setting)] = c.setting.model_dump_json()
        key = (c.spacing, setting_json[id(c.setting)])
        classes.setdefault(key, {}).setdefault(level_class, []).append(c)
    groups: list[list[_Crop]] = []
    for by_class in classes.values():
        cur_group: list[_Crop] = []
        for level_class in sorted(by_class):
            if cur_group and sum(c.mask.size for c in cur_group) >= MIN_SPLIT_VOXELS:
                groups.append(cur_group)
                cur_group = []
            cur_group += by_class[level_class]
        groups.append(cur_group)
    out: list[list[_Crop]] = []
    for group in groups:
        group.sort(key=lambda c: c.mask.size)
        mean_voxels = sum(c.mask.size for c in group) / len(group)
        per_batch = max(math.ceil(len(group) / max(workers, 1)), math.ceil(MIN_SPLIT_VOXELS / mean_voxels))
        cur: list[_Crop] = []
        cur_shape: tuple[int, ...] = ()
        for c in group:
            shape = tuple(map(max, cur_shape, c.mask.shape)) if cur else c.mask.shape
            if cur and (len(cur) >= per_batch or (len(cur) + 1) * math.prod(shape) > max_voxels):
                out.append(cur)
                cur = []
                shape = c.mask.shape
            cur.append(c)
            cur_shape = shape
        if cur:
            out.append(cur)
    return out + alone


def _roi_workers(rois: Sequence[ROI], workers: int) -> int:
    """Threads for the per-ROI pre-processing, shape and filters: ``workers`` when the images average
    ``POOL_IMAGE_VOXELS`` voxels (their filters and resampling release the GIL), else 1 (small ROIs
    are Python-bound: on 2 threads 16 small ROIs took 60 ms against 45 ms in one)."""
    if workers <= 1 or not rois:
        return 1
    mean = sum(int(np.asarray(r[0]).size) for r in rois) / len(rois)
    return workers if mean >= POOL_IMAGE_VOXELS else 1


def _chunk_workers(chunks: list[list[_Crop]], workers: int) -> int:
    """Threads for the kernel batches: ``workers`` when at least two batches hold
    ``MIN_SPLIT_VOXELS`` voxels each, else 1 (small batches run in Python holding the GIL: on a
    pool they only contend, e.g. the 11 small crops of one ROI's LoG + wavelet images)."""
    big = sum(sum(c.mask.size for c in chunk) >= MIN_SPLIT_VOXELS for chunk in chunks)
    return workers if big >= 2 else 1


def _intensity_features(chunk: list[_Crop], settings: RadiomicsSettings,
                        enabled: dict[str, tuple[str, ...]], device: str) -> list[dict[str, float]]:
    """First-order and texture features of a batch of crops sharing spacing and setting, one dict per
    crop keyed by full column name (``wavelet-LLH_glcm_Contrast``)."""
    s = chunk[0].setting
    x = _pad_stack([c.image for c in chunk], 0.0, device, torch.float64)
    m = _pad_stack([c.mask for c in chunk], False, device, torch.bool)
    q, n_levels = discretise(x, m, s, [c.anchor for c in chunk], dtypes=[c.dtype for c in chunk])
    spacing = chunk[0].spacing
    out: list[dict[str, float]] = [{} for _ in chunk]

    def put(family: str, values: dict[str, torch.Tensor]) -> None:
        names = enabled[family]
        if x.device.type == "cpu":  # (per-tensor lists: ~3x cheaper than one stacked copy)
            cols = [values[n].tolist() for n in names]
        else:  # one device-to-host copy
            cols = torch.stack([values[n].detach() for n in names]).to("cpu", torch.float64).tolist()
        for i, crop in enumerate(chunk):
            out[i].update(zip(_columns(crop.name, family, names), (c[i] for c in cols), strict=True))

    if "firstorder" in enabled:
        put("firstorder", firstorder.compute(
            x, m, q, n_levels, float(np.prod(spacing)), s.voxelArrayShift,
            excess_kurtosis=settings.compatibility == "ibsi"))
    params = _texture_params(s, spacing)
    with shared_grids():
        for fam in registry.TEXTURE_FAMILIES:
            if fam in enabled:
                put(fam, _texture_module(fam).compute(q, m, n_levels, params))
    return out


@functools.lru_cache(maxsize=4096)
def _columns(image_type: str, family: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Output column names ``{image_type}_{family}_{name}``."""
    return tuple(f"{image_type}_{family}_{n}" for n in names)


@functools.lru_cache(maxsize=1)
def _blas_libraries() -> tuple[Any, ...]:
    """threadpoolctl's controllers of the BLAS libraries loaded in this process (found once: the scan
    costs ~1 ms)."""
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


@contextlib.contextmanager
def _cpu_threads(device: str) -> Iterator[int]:
    """On CPU, run the feature maths with one torch intra-op thread and one BLAS thread (the arrays
    are small: more threads only contend, on a loaded machine a 3 x N matrix product then costs ms)
    and yield the caller's thread count as the number of workers over ROIs / image types instead;
    both settings are restored on exit. Other devices: one worker."""
    if torch.device(device).type != "cpu":
        yield 1
        return
    n = torch.get_num_threads()
    blas = _blas_libraries()
    before = [lib.get_num_threads() for lib in blas]
    torch.set_num_threads(1)
    try:
        for lib, k in zip(blas, before, strict=True):
            if k != 1:
                lib.set_num_threads(1)
        yield n
    finally:
        torch.set_num_threads(n)
        for lib, k in zip(blas, before, strict=True):
            if k != 1:
                lib.set_num_threads(k)


def _map(fn: Callable[[Any], Any], items: Sequence[Any] | range, workers: int) -> list[Any]:
    """``[fn(x) for x in items]``, on a thread pool of ``workers`` when that can help (NumPy, SciPy,
    SimpleITK and torch kernels release the GIL); order and results are the same either way (each
    pooled call runs in a copy of the caller's context, e.g. under ``torch_kernels()``)."""
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    contexts = [contextvars.copy_context() for _ in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(lambda ctx, x: ctx.run(fn, x), contexts, items))


def _prepare_roi(i: int, roi: ROI, settings: RadiomicsSettings, enabled: dict[str, tuple[str, ...]],
                 image_types: list[tuple[str, str, dict[str, Any]]], lab: int, device: str,
                 threads: int = 1) -> tuple[dict[str, float], list[_Crop]]:
    """Pre-processing, shape features and the cropped derived images (one per image type) of ROI
    ``i``; ``threads`` for the filters that split one ROI's work (LBP3D)."""
    image, mask, spacing = roi
    s0 = settings.setting
    ibsi = settings.compatibility == "ibsi"
    try:
        prep = prepare(np.asarray(image), np.asarray(mask), _spacing3(spacing), s0, lab, ibsi)
        row: dict[str, float] = {}
        sm = prep.shape_mask[prep.bbox]
        if "shape" in enabled:
            vals = shape_3d(sm, prep.spacing_zyx, device, unbiased_pca=ibsi)
            row.update({f"original_shape_{n}": vals[n] for n in enabled["shape"]})
        if "shape2D" in enabled:
            thick = sm.shape[s0.force2Ddimension]
            if thick != 1:
                raise ROIError(f"shape2D needs the ROI in one slice along force2Ddimension "
                               f"{s0.force2Ddimension}, this one spans {thick} (PyRadiomics skips shape2D "
                               "then): leave shape2D out of featureClass for such ROIs")
            vals = shape_2d(sm, prep.spacing_zyx, s0.force2Ddimension, unbiased_pca=ibsi)
            row.update({f"original_shape2D_{n}": vals[n] for n in enabled["shape2D"]})
        images = derived_crops(prep.array, prep.spacing_zyx, prep.bbox, image_types, s0.force2D,
                               s0.force2Ddimension, prep.mask, threads)
        cmask = np.ascontiguousarray(prep.mask[prep.bbox])
        crops = []
        for name, kind, args in image_types:
            crop = images[name]
            s = settings.setting_for(args)
            values = crop[cmask]
            if not np.isfinite(values).all():
                why = (" (LBP3D's kurtosis is undefined where the samples around a voxel are all equal, a "
                       "flat neighbourhood: PyRadiomics fails there too)" if name == "lbp-3D-k" else "")
                raise ROIError(f"non-finite values in the ROI of the {name} image{why}")
            anchor = _anchor(settings, s, values, kind == "Original")
            dtype = pixel_type(kind, prep.array.dtype)
            edges = bin_edges(float(values.min()), float(values.max()), s, anchor, dtype)
            levels = len(edges) - 1
            if "glcm" in enabled:
                _check_glcm_size(values, edges, s, name)
            crops.append(_Crop(i, name, s, crop, cmask, prep.spacing_zyx, anchor, dtype, levels))
    except ROIError as exc:
        raise ROIError(f"ROI {i}: {exc}") from exc
    return row, crops


def _check_glcm_size(values: np.ndarray, edges: np.ndarray, s: Setting, name: str) -> None:
    """ROIError when the GLCM of a crop's present grey levels (``K^2`` cells per direction, about ten
    float64 copies while its features are computed) would exceed ``GLCM_MAX_CELLS``: each voxel its
    own bin, e.g. binWidth 25 on values in the millions (PyRadiomics allocates its ``Ng^2`` matrices
    over every bin and fails likewise, later)."""
    na = len(angles(tuple(s.distances), s.force2D, s.force2Ddimension))
    if min(len(edges) - 1, values.size) ** 2 * na <= GLCM_MAX_CELLS:  # (the usual case: no count needed)
        return
    k = int(np.unique(np.searchsorted(edges, values, side="right")).size)
    if k * k * na > GLCM_MAX_CELLS:
        raise ROIError(f"the {name} image's ROI holds {k:,} distinct grey levels ({len(edges) - 1:,} bins): "
                       f"its GLCM over {na} directions would take {k * k * na * 8 / 2**30:.1f} GiB; use a "
                       "larger binWidth or a binCount (or leave glcm out of featureClass)")


def feature_names(settings: RadiomicsSettings) -> list[str]:
    """The columns ``extract`` returns, in order (see ``registry.feature_names``)."""
    return list(_feature_names_of(settings.model_dump_json()))


@functools.lru_cache(maxsize=64)
def _enabled_features_of(settings_json: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``RadiomicsSettings.enabled_features`` by the settings' canonical JSON."""
    return tuple(RadiomicsSettings.model_validate_json(settings_json).enabled_features().items())


@functools.lru_cache(maxsize=64)
def _feature_names_of(settings_json: str) -> tuple[str, ...]:
    """:func:`feature_names` by the settings' canonical JSON (~3 us; the list takes ~100 us to build
    for the ~1,300 columns of a LoG + wavelet setup)."""
    return tuple(registry.feature_names(RadiomicsSettings.model_validate_json(settings_json)))


NON_FINITE_REASONS = {
    "_firstorder_RobustMeanAbsoluteDeviation":
        "RobustMeanAbsoluteDeviation is undefined when no voxel lies between the ROI's 10th and 90th "
        "percentiles (two voxels of different values; PyRadiomics gives NaN): leave it out of "
        "featureClass or use a larger ROI",
    "_shape_SurfaceVolumeRatio":
        "SurfaceVolumeRatio is undefined for a mesh volume of 0 (voxels touching only along edges; "
        "PyRadiomics gives NaN)",
    "_shape_SphericalDisproportion":
        "SphericalDisproportion is undefined for a mesh volume of 0 (voxels touching only along edges; "
        "PyRadiomics gives inf)",
}
"""Why a feature can be undefined (PyRadiomics: NaN), by column-name suffix, for ROIError messages."""


def extract_batch(rois: Sequence[ROI], settings: RadiomicsSettings, label: int | None = None,
                  device: str = "cpu") -> list[dict[str, float]]:
    """Features of several ROIs ``(image [z,y,x], mask (label map or bool), spacing_zyx)``.

    ``label`` defaults to ``settings.setting.label``. Returns one dict per ROI with exactly
    ``feature_names(settings)`` as keys (float values). An ROI that cannot give features (empty,
    single voxel, too few dimensions, filter larger than the image...) raises ``ROIError`` naming its
    index; extract ROIs one by one to isolate failures. The first call tunes glibc's allocator to
    keep freed memory for reuse (:mod:`radstore.radiomics._heap`).
    """
    keep_freed_heap()
    settings_json = settings.model_dump_json()
    lab = settings.setting.label if label is None else int(label)
    enabled = dict(_enabled_features_of(settings_json))
    image_types = settings.image_types()
    with _cpu_threads(device) as workers:
        roi_workers = min(_roi_workers(rois, workers), max(1, len(rois)))
        per_roi = _map(lambda i: _prepare_roi(i, rois[i], settings, enabled, image_types, lab, device,
                                              max(1, workers // roi_workers)),
                       range(len(rois)), roi_workers)
        results = [dict(row) for row, _ in per_roi]
        budget = CPU_BATCH_VOXELS if torch.device(device).type == "cpu" else MAX_BATCH_VOXELS
        chunks = _chunks([c for _, crops in per_roi for c in crops], workers, budget)
        feats = _map(lambda chunk: _intensity_features(chunk, settings, enabled, device), chunks,
                     _chunk_workers(chunks, workers))
        for chunk, rows in zip(chunks, feats, strict=True):
            for c, row in zip(chunk, rows, strict=True):
                results[c.roi].update(row)
    names = _feature_names_of(settings_json)
    out = []
    for i, r in enumerate(results):
        values = [r[n] for n in names]
        if not math.isfinite(sum(values)):  # (a NaN or inf among them, or an overflowing sum)
            bad = [n for n, v in zip(names, values, strict=True) if not math.isfinite(v)]
            if bad:
                more = "..." if len(bad) > 5 else ""
                why = "".join(sorted({f"; {reason}" for suffix, reason in NON_FINITE_REASONS.items()
                                      for n in bad if n.endswith(suffix)}))
                raise ROIError(f"ROI {i}: non-finite feature values for {bad[:5]}{more}{why}")
        out.append(dict(zip(names, values, strict=True)))
    return out


def extract(image: np.ndarray, mask: np.ndarray, spacing_zyx: tuple[float, float, float],
            settings: RadiomicsSettings, label: int | None = None, device: str = "cpu") -> dict[str, float]:
    """Features of one ROI: ``{"original_shape_MeshVolume": ..., ...}`` in ``feature_names`` order.

    ``image`` is the intensity array ``[z, y, x]`` (HU for CT), ``mask`` a label map or bool array on
    the same grid, ``spacing_zyx`` the voxel size in mm in array order. Values equal PyRadiomics 3.1
    run on the same arrays with the same parameters (origin/direction do not affect features).
    """
    return extract_batch([(image, mask, spacing_zyx)], settings, label, device)[0]
