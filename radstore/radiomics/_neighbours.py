"""Private helpers shared by the texture kernels: PyRadiomics' direction sets, shifted voxel pairs,
line orderings for run lengths, ROI chunking, masked angle averaging, and the padded flat grid of
the CPU (NumPy) kernels.

Offsets are ``(dz, dy, dx)`` in array order ``[Z, Y, X]`` (PyRadiomics' ``(z, y, x)`` order).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import EllipsisType

import numpy as np
import torch

from radstore.radiomics.texture_params import TextureParams

Offset = tuple[int, int, int]
#: An index ``(..., slice_z, slice_y, slice_x)`` of a ``[..., Z, Y, X]`` tensor.
GridIndex = tuple[EllipsisType | slice, ...]

#: ``numpy.spacing(1)``: the epsilon PyRadiomics adds inside its logarithms and divisions.
EPS = 2.220446049250313e-16

_TORCH_ON_CPU: contextvars.ContextVar[bool] = contextvars.ContextVar("radiomics_torch_on_cpu", default=False)


@contextlib.contextmanager
def torch_kernels() -> Iterator[None]:
    """Within this block CPU data takes the torch kernels and formulas (the code CUDA runs) instead
    of the NumPy fast paths, so a machine without a GPU can test the device path end to end."""
    token = _TORCH_ON_CPU.set(True)
    try:
        yield
    finally:
        _TORCH_ON_CPU.reset(token)


def numpy_path(where: torch.Tensor | str) -> bool:
    """Whether data on ``where`` (a tensor or a device name) takes the NumPy fast path: CPU, outside
    :func:`torch_kernels`."""
    device = where.device if isinstance(where, torch.Tensor) else torch.device(where)
    return device.type == "cpu" and not _TORCH_ON_CPU.get()


def angles(
    distances: tuple[int, ...] = (1,),
    force2d: bool = False,
    force2d_dimension: int = 0,
    bidirectional: bool = False,
) -> list[Offset]:
    """See :func:`_angles` (memoised; returns a fresh list)."""
    return list(_angles(tuple(distances), bool(force2d), int(force2d_dimension), bool(bidirectional)))


@functools.lru_cache(maxsize=64)
def _angles(
    distances: tuple[int, ...], force2d: bool, force2d_dimension: int, bidirectional: bool
) -> tuple[Offset, ...]:
    """PyRadiomics' ``generate_angles``: every offset whose infinity norm is one of ``distances``.

    Without ``bidirectional`` only one of each ``(o, -o)`` pair is kept (the one whose first non-zero
    component is positive), i.e. 13 directions in 3D and 4 in 2D for distance 1. With ``force2d`` the
    component along ``force2d_dimension`` (0 = z) is zero. PyRadiomics also drops offsets longer than
    the image along some axis; those never join two ROI voxels, so dropping them changes no feature.
    """
    if not distances or any(int(d) < 1 for d in distances):
        raise ValueError(f"distances must be positive integers, got {distances!r}")
    if force2d and force2d_dimension not in (0, 1, 2):
        raise ValueError(f"force2d_dimension must be 0, 1 or 2, got {force2d_dimension!r}")
    dset = {int(d) for d in distances}
    dmax = max(dset)
    rng = range(dmax, -dmax - 1, -1)
    out: list[Offset] = []
    for off in itertools.product(rng, rng, rng):
        if max(abs(c) for c in off) not in dset:
            continue
        if force2d and off[force2d_dimension] != 0:
            continue
        if not bidirectional:
            first = next(c for c in off if c != 0)
            if first < 0:
                continue
        out.append(off)
    return tuple(out)


def grid_shape(t: torch.Tensor) -> tuple[int, int, int]:
    """The ``(Z, Y, X)`` grid shape of a batched ``[B, Z, Y, X]`` tensor."""
    if t.ndim != 4:
        raise ValueError(f"expected a [B, Z, Y, X] tensor, got shape {tuple(t.shape)}")
    _, z, y, x = t.shape
    return z, y, x


def pair_slices(shape: tuple[int, int, int], off: Offset) -> tuple[GridIndex, GridIndex]:
    """Slices ``(src, dst)`` of a ``[..., Z, Y, X]`` tensor so that ``t[src]`` at ``p`` pairs with
    ``t[dst]`` at ``p + off`` (both in bounds). Empty slices when the offset exceeds the shape."""
    src: list[EllipsisType | slice] = [Ellipsis]
    dst: list[EllipsisType | slice] = [Ellipsis]
    for n, d in zip(shape, off, strict=True):
        src.append(slice(max(0, -d), max(0, n - max(0, d))))
        dst.append(slice(max(0, d), max(0, n - max(0, -d))))
    return tuple(src), tuple(dst)


@functools.lru_cache(maxsize=256)
def _line_order_cpu(shape: tuple[int, int, int], off: Offset) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat voxel indices of a ``[Z, Y, X]`` grid ordered line by line along ``off`` (each line from
    its first voxel, the one whose predecessor ``p - off`` is outside the grid), and the line id of
    every position."""
    zz, yy, xx = torch.meshgrid(*(torch.arange(n) for n in shape), indexing="ij")
    coords = (zz, yy, xx)
    start = torch.zeros(shape, dtype=torch.bool)
    for c, n, d in zip(coords, shape, off, strict=True):
        if d != 0:
            start |= (c - d < 0) | (c - d >= n)
    # steps from the start voxel to the far edge: line length
    length = torch.full(shape, 1 << 40, dtype=torch.int64)
    for c, n, d in zip(coords, shape, off, strict=True):
        if d > 0:
            length = torch.minimum(length, n - c)
        elif d < 0:
            length = torch.minimum(length, c + 1)
    strides = (shape[1] * shape[2], shape[2], 1)
    step = sum(d * s for d, s in zip(off, strides, strict=True))
    starts = torch.nonzero(start.flatten()).flatten()
    lens = length.flatten()[starts]
    line_id = torch.repeat_interleave(torch.arange(len(starts)), lens)
    seg_begin = torch.cumsum(lens, 0) - lens
    pos_in_line = torch.arange(int(lens.sum())) - seg_begin[line_id]
    order = starts[line_id] + pos_in_line * step
    return order, line_id


def line_order(
    shape: tuple[int, int, int], off: Offset, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Device copy of :func:`_line_order_cpu` (cached per shape, offset and device)."""
    return _line_order_dev(shape, off, str(device))


@functools.lru_cache(maxsize=256)
def _line_order_dev(
    shape: tuple[int, int, int], off: Offset, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    order, line_id = _line_order_cpu(shape, off)
    return order.to(device), line_id.to(device)


def roi_chunks(n_rois: int, per_roi_elements: int, budget: int = 1 << 24) -> Iterator[slice]:
    """Consecutive ROI slices whose working set (``per_roi_elements`` each) stays under ``budget``."""
    step = max(1, budget // max(1, per_roi_elements))
    for s in range(0, n_rois, step):
        yield slice(s, min(n_rois, s + step))


def crop_to_rois(q: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop ``[B, Z, Y, X]`` tensors to the union bounding box of the masks (keeps at least 1 voxel)."""
    if not bool(mask.any()):
        return q[:, :1, :1, :1], mask[:, :1, :1, :1]
    sl = []
    for dim in (1, 2, 3):
        other = tuple(d for d in (0, 1, 2, 3) if d != dim)
        nz = torch.nonzero(mask.any(dim=other)).flatten()
        sl.append(slice(int(nz.min()), int(nz.max()) + 1))
    return q[:, sl[0], sl[1], sl[2]], mask[:, sl[0], sl[1], sl[2]]


def by_chunks(
    q: torch.Tensor,
    mask: torch.Tensor,
    per_voxel: int,
    per_roi_fixed: int,
    fn: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """Apply ``fn`` to ROI chunks (each cropped to its masks' bounding box) and concatenate."""
    parts: list[dict[str, torch.Tensor]] = []
    per_roi = per_voxel * math.prod(q.shape[1:]) + per_roi_fixed
    for sl in roi_chunks(q.shape[0], per_roi):
        qc, mc = crop_to_rois(q[sl], mask[sl])
        parts.append(fn(qc.contiguous(), mc.contiguous()))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def direction_distances(offs: list[tuple[int, int, int]], params: TextureParams) -> list[float] | None:
    """Physical length of each direction offset under ``params.weighting_norm`` (infinity: max
    component, euclidean: L2, manhattan: L1, ``no_weighting``: 1.0), or None when no weighting is
    configured. PyRadiomics weights GLRLM directions by this distance and GLCM ones by exp(-d²)."""
    norm = params.weighting_norm
    if norm is None:
        return None
    out = []
    for a in offs:
        comp = [abs(c) * s for c, s in zip(a, params.spacing_zyx, strict=True)]
        if norm == "infinity":
            out.append(max(comp))
        elif norm == "euclidean":
            out.append(math.sqrt(sum(c * c for c in comp)))
        elif norm == "manhattan":
            out.append(sum(comp))
        elif norm == "no_weighting":
            out.append(1.0)
        else:
            raise ValueError(
                f"weighting_norm must be manhattan, euclidean, infinity or no_weighting; got {norm!r}"
            )
    return out


def _check_shapes(q: torch.Tensor, mask: torch.Tensor, n_levels: int) -> None:
    """Shapes and dtypes of the kernel contract: q int64 and mask bool, both [B, Z, Y, X]."""
    if q.dim() != 4 or mask.shape != q.shape:
        raise ValueError(
            f"q and mask must both be [B, Z, Y, X]; got {tuple(q.shape)} and {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")
    if q.dtype != torch.int64:
        raise ValueError(f"q must be int64, got {q.dtype}")
    if n_levels < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}")


def check_inputs(q: torch.Tensor, mask: torch.Tensor, n_levels: int) -> None:
    """Validate the kernel contract (shapes, dtypes, grey levels 1..n_levels inside the ROI)."""
    _check_shapes(q, mask, n_levels)
    if q.shape[0] == 0:
        raise ValueError("empty batch (B = 0)")
    inside = q[mask]
    if inside.numel() and (int(inside.min()) < 1 or int(inside.max()) > n_levels):
        raise ValueError(
            f"grey levels inside the ROI must lie in 1..{n_levels}; "
            f"got {int(inside.min())}..{int(inside.max())}"
        )
    empty = (~mask.flatten(1).any(1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"ROI(s) {empty} of the batch have an empty mask")


def angle_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """PyRadiomics' ``nanmean`` over angles ``[B, A] -> [B]``, ignoring empty angles (and NaNs);
    NaN where a ROI has no valid angle."""
    v = torch.where(valid, values, torch.full_like(values, float("nan")))
    return torch.nanmean(v, dim=1)


@dataclass(frozen=True)
class FlatGrid:
    """ROIs of a batch cropped to the union bounding box of their masks, each surrounded by ``pad``
    voxels of level 0 ("outside the ROI") and flattened (C order, ROI-major).

    For a voxel at flat index ``p`` inside a ROI and an offset ``o`` with ``max|o| <= pad`` the
    neighbour is ``g[p + step(o)]``: always in bounds, in the same ROI's padded block, and 0 exactly
    when it lies outside the ROI. ``v`` lists the ROI voxels (ascending), ``gv = g[v]`` their levels
    and ``roi`` the batch index of each.
    """

    g: np.ndarray
    shape: tuple[int, int, int]
    n_rois: int
    v: np.ndarray
    gv: np.ndarray
    roi: np.ndarray

    def step(self, off: Offset) -> int:
        """Linear offset of ``off`` (dz, dy, dx) in the flat padded layout."""
        _, ny, nx = self.shape
        return (off[0] * ny + off[1]) * nx + off[2]

    @property
    def block(self) -> int:
        """Voxels per padded ROI block."""
        return math.prod(self.shape)

    @functools.cached_property
    def bounds(self) -> np.ndarray:
        """int64 ``[n_rois + 1]``: ROI ``r``'s voxels are ``v[bounds[r]:bounds[r + 1]]``."""
        starts = np.arange(self.n_rois + 1, dtype=np.int64) * self.block
        return np.searchsorted(self.v, starts).astype(np.int64)


def bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box of a bool ``[z, y, x]`` mask (None if empty): the slices holding voxels, then
    the in-plane extent of their union (10x fewer passes than three 2-axis reductions)."""
    z = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(1))
    if z.size == 0:
        return None
    yx = np.asarray(mask[z[0] : z[-1] + 1].any(axis=0))
    y, x = np.flatnonzero(yx.any(axis=1)), np.flatnonzero(yx.any(axis=0))
    zs, ys, xs = (slice(int(i[0]), int(i[-1]) + 1) for i in (z, y, x))
    return zs, ys, xs


def flat_grid(q: torch.Tensor, mask: torch.Tensor, n_levels: int, pad: int, first_roi: int = 0) -> FlatGrid:
    """Validate the kernel contract (as :func:`check_inputs`) and build the :class:`FlatGrid` of CPU
    tensors ``q``/``mask`` [B, Z, Y, X] with ``pad`` voxels of padding (levels as int32 when they fit);
    ``first_roi`` is the batch index of ``q[0]`` in error messages."""
    _check_shapes(q, mask, n_levels)
    b = q.shape[0]
    if b == 0:
        raise ValueError("empty batch (B = 0)")
    qn, mn = q.numpy(), mask.numpy()
    sl = bounding_box(mn[0] if b == 1 else np.asarray(mn.any(axis=0))) or (slice(0, 1),) * 3
    qc, mc = qn[(slice(None), *sl)], mn[(slice(None), *sl)]
    shape = tuple(n + 2 * pad for n in qc.shape[1:])
    inside = np.where(mc, qc, 0)
    lo, hi = int(inside.min()), int(inside.max())
    n_in = np.count_nonzero(mc)
    # a level < 1 inside the ROI: negative, or 0 (then it reads as "outside": fewer non-zeros)
    if lo < 0 or hi > n_levels or np.count_nonzero(inside) != n_in:
        vals = qc[mc]
        raise ValueError(
            f"grey levels inside the ROI must lie in 1..{n_levels}; got {int(vals.min())}..{int(vals.max())}"
        )
    dt = np.int32 if n_levels < 2**31 else np.int64
    g = np.zeros((b, *shape), dtype=dt)
    g[:, pad : shape[0] - pad, pad : shape[1] - pad, pad : shape[2] - pad] = inside
    g = g.reshape(-1)
    v = np.flatnonzero(g)
    gv = g[v]
    roi = v // math.prod(shape) if b > 1 else np.zeros(v.size, dtype=v.dtype)
    per_roi = np.bincount(roi, minlength=b)
    empty = (np.flatnonzero(per_roi == 0) + first_roi).tolist()
    if empty:
        raise ValueError(f"ROI(s) {empty} of the batch have an empty mask")
    return FlatGrid(g=g, shape=shape, n_rois=b, v=v, gv=gv, roi=roi)


_GRID_CACHE: contextvars.ContextVar[dict[tuple[int, ...], tuple[object, object, FlatGrid]] | None] = (
    contextvars.ContextVar("radiomics_grid_cache", default=None)
)


@contextlib.contextmanager
def shared_grids() -> Iterator[None]:
    """Within this block :func:`by_grid_chunks` builds the :class:`FlatGrid` of a given ``(q, mask)``
    tensor pair, chunk, level count and padding once and hands the same (read-only) grid to every
    texture family that asks for it."""
    token = _GRID_CACHE.set({})
    try:
        yield
    finally:
        _GRID_CACHE.reset(token)


def _cached_grid(q: torch.Tensor, mask: torch.Tensor, sl: slice, n_levels: int, pad: int) -> FlatGrid:
    cache = _GRID_CACHE.get()
    if cache is None:
        return flat_grid(q[sl], mask[sl], n_levels, pad, first_roi=sl.start)
    key = (id(q), id(mask), q._version, mask._version, sl.start, sl.stop, n_levels, pad)
    hit = cache.get(key)
    if hit is not None and hit[0] is q and hit[1] is mask:
        return hit[2]
    grid = flat_grid(q[sl], mask[sl], n_levels, pad, first_roi=sl.start)
    for arr in (grid.g, grid.v, grid.gv, grid.roi):
        arr.flags.writeable = False
    cache[key] = (q, mask, grid)  # holds q and mask: their ids stay valid while cached
    return grid


def by_grid_chunks(
    q: torch.Tensor,
    mask: torch.Tensor,
    n_levels: int,
    pad: int,
    per_voxel: int,
    per_roi_fixed: int,
    fn: Callable[[FlatGrid], dict[str, torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """Apply ``fn`` to the :class:`FlatGrid` of ROI chunks (working set under 2^24 elements per chunk,
    estimated from ``per_voxel`` and ``per_roi_fixed``) and concatenate the results."""
    parts: list[dict[str, torch.Tensor]] = []
    per_roi = per_voxel * math.prod(q.shape[1:]) + per_roi_fixed
    for sl in roi_chunks(q.shape[0], per_roi):
        parts.append(fn(_cached_grid(q, mask, sl, n_levels, pad)))
    if len(parts) == 1:
        return parts[0]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


COMPACT_MIN_LEVELS = 64  # above this many bins the texture families see only the grey levels present


def compact_levels(q: torch.Tensor, mask: torch.Tensor, n_levels: int
                   ) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """``(q', K, values)``: with more than ``COMPACT_MIN_LEVELS`` bins of which only ``K`` occur in
    the batch, ``q`` renumbered ``1..K`` in order and the float64 values [K] of those levels
    (PyRadiomics also drops the absent levels' empty rows and columns; the features only see
    grey levels through ``values``). The matrices (GLCM ``K x K``, the size-type ones ``K x J``) then
    stay small when many narrow bins cover few voxels (a 4k-voxel ROI binned at 0.5 over 1,250 HU:
    2,500 bins, dense GLCMs of 3 GB; binWidth 0.001 on HU: a GLRLM of 29 GB).
    Otherwise ``(q, n_levels, None)``."""
    if n_levels <= COMPACT_MIN_LEVELS:
        return q, n_levels, None
    present = torch.zeros(n_levels + 1, dtype=torch.bool, device=q.device)
    present[q[mask]] = True
    present[0] = False
    k = int(present.sum())
    if k == n_levels:
        return q, n_levels, None
    rank = torch.cumsum(present, 0) * present  # level -> 1..K where present (0 stays 0)
    values = torch.nonzero(present).flatten().to(torch.float64)
    return torch.where(mask, rank[q], torch.zeros_like(q)), k, values


def small_uint(top: int) -> type[np.integer]:
    """The smallest unsigned integer type holding ``0..top`` (int64 beyond 32 bits): keys and levels
    in it move the fewest bytes through gathers, adds and copies (``bincount`` widens them once)."""
    return np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32 if top < 2**32 else np.int64


def present_levels(grid: FlatGrid, n_levels: int) -> np.ndarray:
    """Bool ``[B, n_levels + 1]``: level ``i`` occurs in ROI ``b`` (column 0 always False)."""
    n1 = n_levels + 1
    cnt = np.bincount(grid.roi * n1 + grid.gv, minlength=grid.n_rois * n1)
    return cnt.reshape(grid.n_rois, n1) > 0


def neighbourhood_sum(
    grid: FlatGrid, x: np.ndarray, distances: tuple[int, ...], skip_axis: int | None
) -> np.ndarray:
    """``sum_o x[p + step(o)]`` over PyRadiomics' neighbourhood (all offsets ``o != 0`` whose infinity
    norm is in ``distances``, with ``o[skip_axis] = 0`` when given: :func:`angles` with
    ``bidirectional=True``), exact in ``x``'s integer type, valid at every ROI voxel of ``grid``.

    The set is a union of shells ``box(d) - box(d - 1)`` (``box(0)`` = the voxel itself), and box sums
    are separable: one pass of ``2 d`` shifted adds per axis on the flat grid (the padding of at least
    ``max(d)`` keeps every needed shift inside the voxel's block)."""
    dset = sorted({int(d) for d in distances})
    _, ny, nx = grid.shape
    strides = [ny * nx, nx, 1]

    def box(d: int) -> np.ndarray:
        if d == 0:
            return x
        y = x
        for ax, s in enumerate(strides):
            if ax == skip_axis:
                continue
            z = y.copy()
            for k in range(1, d + 1):
                z[k * s :] += y[: -k * s]
                z[: -k * s] += y[k * s :]
            y = z
        return y

    boxes: dict[int, np.ndarray] = {}
    for d in dset:
        for e in (d, d - 1):
            if e not in boxes:
                boxes[e] = box(e)
    out = np.zeros_like(x)
    for d in dset:
        out += boxes[d]
        out -= boxes[d - 1]
    return out


def cpu_method(method: str, q: torch.Tensor, extra: tuple[str, ...] = ()) -> str:
    """Resolve a kernel's ``method``: ``"auto"`` is ``"numpy"`` for CPU tensors and ``"torch"``
    otherwise; ``"numpy"`` (and ``extra`` CPU-only methods) need CPU tensors."""
    if method == "auto":
        return "numpy" if numpy_path(q) else "torch"
    allowed = ("numpy", *extra, "torch")
    if method not in allowed:
        raise ValueError(f"method must be auto, {', '.join(allowed)}; got {method!r}")
    if method != "torch" and q.device.type != "cpu":
        raise ValueError(f"method {method!r} needs CPU tensors, got device {q.device}")
    return method
