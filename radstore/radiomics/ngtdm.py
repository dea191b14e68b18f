"""Neighbouring Grey Tone Difference Matrix (NGTDM) features, batched over ROIs (PyRadiomics 3.1).

For every ROI voxel ``p`` of grey level ``i``, ``A(p)`` is the mean grey level of its neighbours
inside the ROI (offsets of :func:`radstore.radiomics._neighbours.angles` in both directions: 26 for
distance 1 in 3D, 8 with force2D). ``n_i`` counts the ROI voxels of level ``i`` and
``s_i = sum |i - A(p)|`` over those with at least one neighbour (voxels without neighbours count in
``n_i`` with a zero difference, as PyRadiomics' C code). With ``p_i = n_i / Nvp``, ``Nvp = sum n_i``
and ``Ngp`` the number of levels with ``p_i > 0`` (Amadasun & King, IEEE Trans. SMC 1989):

Coarseness = 1 / sum p_i s_i (1e6 when the sum is 0);
Contrast = [sum_ij p_i p_j (i - j)^2 / (Ngp (Ngp - 1))] [sum_i s_i / Nvp] (0 when Ngp = 1);
Busyness = sum p_i s_i / sum_ij |i p_i - j p_j| (0 when the denominator is 0);
Complexity = sum_ij |i - j| (p_i s_i + p_j s_j) / (p_i + p_j) / Nvp;
Strength = sum_ij (p_i + p_j) (i - j)^2 / sum_i s_i (0 when sum s_i = 0);
double sums over levels with ``p_i > 0`` and ``p_j > 0``.
Degenerate ROIs (one voxel, flat intensity) give PyRadiomics' values through these conventions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from radstore.radiomics import _compiled, _neighbours
from radstore.radiomics._arrays import Array, evaluate, ops
from radstore.radiomics._neighbours import (
    FlatGrid,
    angles,
    by_chunks,
    by_grid_chunks,
    check_inputs,
    cpu_method,
    flat_grid,
    grid_shape,
    neighbourhood_sum,
    pair_slices,
)
from radstore.radiomics.texture_params import TextureParams

FEATURES: tuple[str, ...] = ("Busyness", "Coarseness", "Complexity", "Contrast", "Strength")


def matrices(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams, method: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n_i, s_i)``, both float64 ``[B, Ng]``.

    ``method``: ``"numpy"`` (CPU tensors: neighbour sums and counts as separable box sums on a
    padded flat grid, :func:`._neighbours.neighbourhood_sum`), ``"torch"`` (any device: shifted
    slices per offset) or ``"auto"`` (numpy on CPU, torch elsewhere)."""
    method = cpu_method(method, q)
    if method == "numpy":
        return _matrices_numpy(flat_grid(q, mask, n_levels, max(params.distances)), n_levels, params)
    return _matrices_torch(q, mask, n_levels, params)


def _matrices_numpy(
    grid: FlatGrid, n_levels: int, params: TextureParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """``tot`` (sum of the neighbours' levels) and ``cnt`` (number of ROI neighbours) of every ROI
    voxel from one :func:`neighbourhood_sum` of the packed integers ``g * 2^k + [g > 0]``, with
    ``2^k`` above the neighbourhood size: sums of these are exactly ``tot * 2^k + cnt`` (integer
    arithmetic, no overflow: the type holds the largest box sum), so ``tot``, ``cnt`` are read back
    by a shift and a mask. The type is the smallest that fits (uint16 for 3D, distance 1 and up to
    75 levels): one pass over a quarter of the bytes of two int32 sums."""
    skip = params.force2d_dimension if params.force2d else None
    g = grid.g
    n_nb = len(angles(params.distances, params.force2d, params.force2d_dimension, bidirectional=True))
    k = n_nb.bit_length()  # 2^k > n_nb >= cnt
    box = (2 * max(params.distances) + 1) ** (2 if params.force2d else 3)
    top = box * ((n_levels + 1) << k)  # > any box sum of the packed values
    dt = np.uint16 if top < 2**16 else np.uint32 if top < 2**32 else np.uint64
    packed: npt.NDArray[np.unsignedinteger[Any]] = g.astype(dt)
    packed <<= dt(k)
    packed |= g > 0
    nb = neighbourhood_sum(grid, packed, params.distances, skip)[grid.v]
    tot = nb >> dt(k)
    cnt = nb & dt((1 << k) - 1)
    qd = grid.gv.astype(np.float64)
    has = cnt > 0
    diff = np.where(has, np.abs(qd - tot.astype(np.float64) / np.maximum(cnt, 1)), 0.0)
    n1 = n_levels + 1
    idx = grid.roi * n1 + grid.gv
    n_i = np.bincount(idx, minlength=grid.n_rois * n1).astype(np.float64).reshape(grid.n_rois, n1)
    s_i = np.bincount(idx, weights=diff, minlength=grid.n_rois * n1).reshape(grid.n_rois, n1)
    return torch.from_numpy(n_i[:, 1:].copy()), torch.from_numpy(s_i[:, 1:].copy())


def _matrices_torch(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams
) -> tuple[torch.Tensor, torch.Tensor]:
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    cnt = torch.zeros_like(q)
    tot = torch.zeros_like(q)
    for off in offs:
        src, dst = pair_slices(grid_shape(q), off)
        ok = mask[src] & mask[dst]
        cnt[src] += ok
        cnt[dst] += ok
        tot[src] += ok * q[dst]
        tot[dst] += ok * q[src]
    qd = q.to(torch.float64)
    has = cnt > 0
    diff = torch.where(has, (qd - tot.to(torch.float64) / cnt.clamp(min=1)).abs(), torch.zeros_like(qd))
    b = q.shape[0]
    idx = (torch.arange(b, device=q.device).view(b, 1, 1, 1) * n_levels + q - 1)[mask]
    n_i = torch.bincount(idx, minlength=b * n_levels).to(torch.float64).view(b, n_levels)
    s_i = torch.bincount(idx, weights=diff[mask], minlength=b * n_levels).view(b, n_levels)
    return n_i, s_i


def _features(n_i: torch.Tensor, s_i: torch.Tensor) -> dict[str, torch.Tensor]:
    """NGTDM features from ``n_i``, ``s_i`` [B, Ng]: :func:`_feature_formulas` in NumPy for CPU
    tensors (small arrays: NumPy's per-operation cost is a fraction of torch's), else in torch.
    Above ``_neighbours.COMPACT_MIN_LEVELS`` bins only the levels present in the batch are kept (every
    term of the formulas is 0 for an absent level, ``p_i = s_i = 0``), with their values: the ``Ng^2``
    pair terms then stay small (9,000 bins over 450 levels present: 10 s and 4 GB before)."""
    if n_i.shape[1] > _neighbours.COMPACT_MIN_LEVELS:
        keep = (n_i > 0).any(0)
        if int(keep.sum()) < n_i.shape[1]:
            levels = (torch.nonzero(keep).flatten() + 1).to(torch.float64)
            return evaluate(_feature_formulas, n_i[:, keep], s_i[:, keep], levels)
    return evaluate(_feature_formulas, n_i, s_i)


def _feature_formulas(n_i: Array, s_i: Array, level_values: Array | None = None) -> dict[str, Array]:
    """NGTDM features (Amadasun & King 1989; PyRadiomics 3.1 formulas) of NumPy arrays or torch
    tensors (any device), float64 [B] each, of the same kind; the columns are the grey levels
    ``1..Ng`` or ``level_values``. NumPy with numba: one compiled loop over the levels present
    (:func:`._compiled.ngtdm_features`), whose sums do not depend on the absent levels around them,
    so a ROI's features are the same bits in any batch."""
    if isinstance(n_i, np.ndarray) and _compiled.ENABLED:
        return _compiled.ngtdm_features(n_i, s_i, level_values)
    xp = ops(n_i)
    ng = n_i.shape[1]
    iv = xp.levels(n_i, 1, ng + 1) if level_values is None else level_values
    nvp = n_i.sum(1)
    p = n_i / nvp[:, None]
    nz = p > 0
    both = nz[:, :, None] & nz[:, None, :]
    ngp = xp.as_float64(nz.sum(1))
    ps = p * s_i
    sum_ps = ps.sum(1)
    sum_s = s_i.sum(1)
    d2 = (iv[:, None] - iv[None, :]) ** 2
    zero = xp.zeros_like(nvp)
    out: dict[str, Array] = {}
    out["Coarseness"] = xp.where(sum_ps != 0, 1 / xp.where(sum_ps != 0, sum_ps, 1.0), zero + 1e6)
    div = ngp * (ngp - 1)
    con = (p[:, :, None] * p[:, None, :] * d2).sum(axis=(1, 2)) * sum_s / nvp
    out["Contrast"] = xp.where(div != 0, con / xp.where(div != 0, div, 1.0), zero)
    ip = iv * p
    absdiff = xp.where(both, xp.abs(ip[:, :, None] - ip[:, None, :]), 0.0).sum(axis=(1, 2))
    out["Busyness"] = xp.where(absdiff != 0, sum_ps / xp.where(absdiff != 0, absdiff, 1.0), zero)
    num = xp.where(both, ps[:, :, None] + ps[:, None, :], 0.0)
    den = p[:, :, None] + p[:, None, :]
    den = xp.where(den == 0, 1.0, den)
    out["Complexity"] = (xp.abs(iv[:, None] - iv[None, :]) * num / den).sum(axis=(1, 2)) / nvp
    st = xp.where(both, (p[:, :, None] + p[:, None, :]) * d2, 0.0).sum(axis=(1, 2))
    out["Strength"] = xp.where(sum_s != 0, st / xp.where(sum_s != 0, sum_s, 1.0), zero)
    return {k: out[k] for k in FEATURES}


def compute(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams, method: str = "auto"
) -> dict[str, torch.Tensor]:
    """NGTDM features of ``B`` ROIs: ``{name: float64 [B]}`` for every name in :data:`FEATURES`
    (``method`` as :func:`matrices`)."""
    if cpu_method(method, q) == "numpy":
        return by_grid_chunks(
            q,
            mask,
            n_levels,
            max(params.distances),
            per_voxel=12,
            per_roi_fixed=4 * n_levels * n_levels,
            fn=lambda grid: _features(*_matrices_numpy(grid, n_levels, params)),
        )
    check_inputs(q, mask, n_levels)
    return by_chunks(
        q,
        mask,
        per_voxel=8,
        per_roi_fixed=4 * n_levels * n_levels,
        fn=lambda qc, mc: _features(*_matrices_torch(qc, mc, n_levels, params)),
    )
