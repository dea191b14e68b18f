"""Grey Level Co-occurrence Matrix (GLCM) features, batched over ROIs (PyRadiomics 3.1 semantics).

For every direction ``a`` of :func:`radstore.radiomics._neighbours.angles` (13 in 3D, 4 with
force2D, more for distances > 1) ``P_a(i, j)`` counts ROI voxel pairs ``(p, p + a)`` with grey levels
``(i, j)`` (Haralick et al., IEEE Trans. SMC 1973; Zwanenburg et al., IBSI, Radiology 2020).
As PyRadiomics: the matrix is made symmetrical (``P + P^T``) unless ``symmetrical_glcm`` is False;
with a ``weighting_norm`` the directions are merged, ``P = sum_a w_a P_a`` with
``w_a = exp(-||a * spacing||^2)``; each matrix is normalised to sum 1; features are computed per
direction and averaged over the non-empty directions. ``i, j`` are the grey-level values, ``Ng`` of
Idmn/Idn the largest grey level in the ROI; grey levels absent from the ROI only add zero rows.

Implementation: on CPU the ROIs are cropped, padded with ``max(distances)`` voxels of level 0 and
flattened (:class:`._neighbours.FlatGrid`); per direction each ROI voxel ``v`` adds its pair
``(roi, g(v), g(v + step))`` to the counts (level 0 = outside, dropped): in a compiled loop
(:mod:`._compiled`, numba), else one gather and one ``bincount`` in NumPy. Other devices: shifted
slices of the dense grid. The features are computed on the small matrices, in NumPy on CPU and
torch elsewhere, one formula for both (MCC by ``eigvalsh``, see :func:`_feature_formulas`); on CPU
with numba the normalisation and per-direction sums run in one compiled loop that skips absent grey
levels (:func:`_compiled_features`), so a ROI's features are the same bits whatever shares its batch.

Degenerate ROIs: a ROI without any voxel pair at the configured distances (e.g. one voxel) has no
GLCM; PyRadiomics then returns NaN for every feature and so do we (documented, with a warning).
``MCC`` is 1 when the ROI holds a single grey level (PyRadiomics' rule); where a direction's second
eigenvalue is 0 in exact arithmetic (few grey levels), PyRadiomics' rounding may make it negative
and drop that direction from the mean, and where a marginal holds one grey level its Correlation is
``0 / 0`` up to rounding, and its ``Imc2`` (the mutual information ``HXY2 - HXY`` then 0 in exact
arithmetic) 0, NaN (dropped from the mean) or ~1e-8 as PyRadiomics' rounding falls: such ROIs take
PyRadiomics' own arithmetic for the three (:func:`_pyradiomics_tie_features`). With more than
``_neighbours.COMPACT_MIN_LEVELS`` bins the matrices keep only the grey levels present
(:func:`compact_levels`). Elsewhere ``Imc2`` is set to 0 when ``HXY2 - HXY`` is not positive.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable

import numpy as np
import torch

from radstore.radiomics import _compiled
from radstore.radiomics._arrays import Array, evaluate, ops
from radstore.radiomics._neighbours import (
    EPS,
    FlatGrid,
    angles,
    bounding_box,
    by_chunks,
    by_grid_chunks,
    check_inputs,
    compact_levels,
    cpu_method,
    direction_distances,
    flat_grid,
    grid_shape,
    pair_slices,
    present_levels,
    small_uint,
)
from radstore.radiomics.texture_params import TextureParams

FEATURES: tuple[str, ...] = (
    "Autocorrelation",
    "ClusterProminence",
    "ClusterShade",
    "ClusterTendency",
    "Contrast",
    "Correlation",
    "DifferenceAverage",
    "DifferenceEntropy",
    "DifferenceVariance",
    "Id",
    "Idm",
    "Idmn",
    "Idn",
    "Imc1",
    "Imc2",
    "InverseVariance",
    "JointAverage",
    "JointEnergy",
    "JointEntropy",
    "MCC",
    "MaximumProbability",
    "SumAverage",
    "SumEntropy",
    "SumSquares",
)


def _weights(offs: list[tuple[int, int, int]], params: TextureParams) -> list[float] | None:
    """PyRadiomics' GLCM direction weights ``exp(-d^2)`` for ``weighting_norm`` (None: no merging)."""
    dists = direction_distances(offs, params)
    if dists is None:
        return None
    if params.weighting_norm == "no_weighting":
        return dists
    return [math.exp(-d * d) for d in dists]

def matrices(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams, method: str = "auto"
) -> torch.Tensor:
    """Raw co-occurrence counts ``[B, A, Ng, Ng]`` (float64, before symmetrisation/weighting).

    ``method``: ``"numpy"`` (CPU tensors: one gather per direction over the ROI voxels of a padded
    flat grid and one ``bincount``), ``"torch"`` (any device: shifted slices of the dense grid) or
    ``"auto"`` (numpy on CPU, torch elsewhere)."""
    method = cpu_method(method, q)
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    if method == "numpy":
        return _matrices_numpy(flat_grid(q, mask, n_levels, max(params.distances)), offs, n_levels)
    return _matrices_torch(q, mask, n_levels, offs)


def _matrices_numpy(grid: FlatGrid, offs: list[tuple[int, int, int]], n_levels: int,
                    compiled: bool | None = None) -> torch.Tensor:
    """Counts from a :class:`FlatGrid`: pair ``(roi, g(p), g(p + a))`` with level 0 (outside) in
    row/column 0, which is dropped; by the compiled loop (:func:`._compiled.glcm_counts`;
    ``compiled=None``: where :data:`._compiled.ENABLED`) or in NumPy, a ``bincount`` of pair keys.
    There, where the ``B (Ng+1)^3`` triple keys are few (<= 2^16) next to the ROI voxels, two
    directions share one ``bincount`` of ``(roi, g(p), g(p + a1), g(p + a2))``; each direction's
    counts are then the exact integer marginal over the other neighbour. Levels and keys are in the
    smallest unsigned types that hold them (:func:`.small_uint`)."""
    n1, b = n_levels + 1, grid.n_rois
    if _compiled.ENABLED if compiled is None else compiled:
        counts = _compiled.glcm_counts(grid, [grid.step(off) for off in offs], n_levels)
        return torch.from_numpy(counts[:, :, 1:, 1:].transpose(1, 0, 2, 3).astype(np.float64))
    triple = b * n1**3
    per = 2 if triple <= 2**16 and 8 * triple <= grid.v.size else 1  # directions per bincount
    kdt = small_uint(b * n1 ** (per + 1) - 1)  # holds every key: no wrap-around
    g = grid.g.astype(small_uint(n_levels))
    base = ((grid.roi * n1 + grid.gv) * n1).astype(kdt)
    out = np.empty((len(offs), b * n1 * n1), dtype=np.int64)
    for a0 in range(0, len(offs), per):
        group = offs[a0 : a0 + per]
        key = base + g[grid.step(group[0]) :].take(grid.v)  # g[v + step]; v + step < len(g)
        if len(group) == 1:
            out[a0] = np.bincount(key, minlength=b * n1 * n1)
            continue
        key *= kdt(n1)
        key += g[grid.step(group[1]) :].take(grid.v)
        h = np.bincount(key, minlength=b * n1**3).reshape(b, n1, n1, n1)
        out[a0] = h.sum(axis=3).reshape(-1)
        out[a0 + 1] = h.sum(axis=2).reshape(-1)
    p = out.reshape(len(offs), b, n1, n1)[:, :, 1:, 1:].transpose(1, 0, 2, 3)
    return torch.from_numpy(p.astype(np.float64))


def _matrices_torch(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, offs: list[tuple[int, int, int]]
) -> torch.Tensor:
    b, ng, na = q.shape[0], n_levels, len(offs)
    base = (torch.arange(b, device=q.device) * ng * ng).view(b, 1, 1, 1)
    lvl = q - 1
    total = b * na * ng * ng
    counts = torch.zeros(total + 1, dtype=torch.int64, device=q.device)
    for ai, off in enumerate(offs):
        src, dst = pair_slices(grid_shape(q), off)
        valid = mask[src] & mask[dst]
        if not bool(valid.any()):
            continue
        idx = base + (ai * b * ng * ng) + lvl[src] * ng + lvl[dst]
        idx = torch.where(valid, idx, total)
        counts += torch.bincount(idx.flatten(), minlength=total + 1)
    return counts[:total].view(na, b, ng, ng).transpose(0, 1).to(torch.float64)


@functools.lru_cache(maxsize=64)
def _sum_diff_order(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For the flattened ``[N, N]`` matrix: the cell order sorted (stably) by ``i + j`` and by
    ``|i - j|``, and the start of each value's run in that order (every value occurs)."""
    ii = np.arange(n)
    sum_idx = (ii[:, None] + ii[None, :]).ravel()
    diff_idx = np.abs(ii[:, None] - ii[None, :]).ravel()
    so = np.argsort(sum_idx, kind="stable")
    do = np.argsort(diff_idx, kind="stable")
    ss = np.searchsorted(sum_idx[so], np.arange(2 * n - 1))
    ds = np.searchsorted(diff_idx[do], np.arange(n))
    return so, ss, do, ds


@functools.lru_cache(maxsize=16)
def _value_sum_diff_order(level_bytes: bytes) -> tuple[np.ndarray, ...]:
    """:func:`_sum_diff_order` for grey levels of arbitrary values (float64 ``level_bytes``, increasing):
    the cell orders by ``i + j`` and ``|i - j|``, the start of each distinct value's run, and the
    distinct values (``|i - j|`` starts at 0: the diagonal)."""
    lv = np.frombuffer(level_bytes, dtype=np.float64)
    out: list[np.ndarray] = []
    for vals in ((lv[:, None] + lv[None, :]).ravel(), np.abs(lv[:, None] - lv[None, :]).ravel()):
        order = np.argsort(vals, kind="stable")
        ordered = vals[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        out += [order, starts, ordered[starts]]
    return tuple(out)


def _level_sum_diff_distributions(flat: Array, level_values: Array) -> tuple[Array, Array, Array, Array]:
    """``(p_x+y, k_sum, p_x-y, k_diff)`` over the distinct values ``k`` of ``i + j`` and ``|i - j|``
    for matrices ``flat`` [..., N^2] whose rows/columns are the grey levels ``level_values`` [N]
    (compacted: only those present)."""
    if isinstance(flat, np.ndarray):
        so, ss, k_sum, do, ds, k_diff = _value_sum_diff_order(np.ascontiguousarray(level_values).tobytes())
        return (np.add.reduceat(flat[..., so], ss, axis=-1), k_sum,
                np.add.reduceat(flat[..., do], ds, axis=-1), k_diff)
    lv = level_values
    lead = flat.shape[:-1]
    res: list[Array] = []
    i, j = lv.view(-1, 1), lv.view(1, -1)
    for vals in ((i + j).flatten(), (i - j).abs().flatten()):
        k, inverse = torch.unique(vals, sorted=True, return_inverse=True)
        dist = torch.zeros(*lead, len(k), device=flat.device, dtype=flat.dtype).index_add_(-1, inverse, flat)
        res += [dist, k]
    return res[0], res[1], res[2], res[3]


def _sum_diff_distributions(flat: Array, n: int) -> tuple[Array, Array]:
    """``p_x+y`` [..., 2N - 1] and ``p_x-y`` [..., N] of the flattened matrices ``flat`` [..., N^2]:
    NumPy by ordered sums (``reduceat``), torch by ``index_add_``."""
    if isinstance(flat, np.ndarray):
        so, ss, do, ds = _sum_diff_order(n)
        return np.add.reduceat(flat[..., so], ss, axis=-1), np.add.reduceat(flat[..., do], ds, axis=-1)
    ii = torch.arange(n, device=flat.device)
    sum_idx = (ii.view(n, 1) + ii.view(1, n)).flatten()
    diff_idx = (ii.view(n, 1) - ii.view(1, n)).abs().flatten()
    lead = flat.shape[:-1]
    pxa = torch.zeros(*lead, 2 * n - 1, device=flat.device, dtype=flat.dtype).index_add_(-1, sum_idx, flat)
    pxs = torch.zeros(*lead, n, device=flat.device, dtype=flat.dtype).index_add_(-1, diff_idx, flat)
    return pxa, pxs


def _feature_formulas(p: Array, ng_roi: Array, n_present: Array, level_values: Array | None = None,
                      mcc_check: bool = False) -> dict[str, Array]:
    """Per-direction GLCM features ``[B, A]`` of normalised matrices ``p`` [B, A, N, N] (NumPy
    array or torch tensor, any device; PyRadiomics formulas), then averaged over the valid (non-empty)
    directions: float64 [B] per feature, of the same kind as ``p``. Rows/columns are the grey levels
    ``1..N``, or ``level_values`` [N] (float64) when the levels were compacted to those present.

    Sums of a function of ``i + j`` or ``|i - j|`` are taken over ``p_x+y`` and ``p_x-y`` (the same
    terms regrouped): cluster tendency/shade/prominence ``sum_k p_x+y(k) (k - ux - uy)^m``,
    autocorrelation ``sum p ij = (sum p_x+y(k) k^2 - sum p_x-y(k) k^2) / 4``, and the correlation's
    covariance ``(ClusterTendency - sigx^2 - sigy^2) / 2``. ``HXY2 = -sum px py log2(px py + eps)``
    is ``HX + HY`` up to ``~eps / min(px py) < 1e-9`` (``HXY1``, equal without ``eps``, is summed
    as PyRadiomics does: ``Imc1`` is a difference of near-equal entropies, exactly 0 for one level).

    MCC: the eigenvalues of ``Q = (P / (px py^T + eps)) P^T`` are those of ``C = Dx^1/2 Q Dx^-1/2``
    (``Dx = diag(px)``, identity where ``px = 0``), which without PyRadiomics' ``eps`` is the
    symmetric ``Dx^-1/2 P Dy^-1 P^T Dx^-1/2``; with it ``C`` has an antisymmetric part of relative
    size ~1e-7 that moves no eigenvalue to first order, so ``eigvalsh`` of the symmetric part of
    ``C`` gives PyRadiomics' ``eigvals(Q)`` to ~1e-14 relative, 20x faster. With ``mcc_check`` the
    result also holds ``rounding_decides`` (bool [B]): in a valid direction the second eigenvalue
    is 0 in exact arithmetic (within 1e-10 of the largest), or a marginal holds one grey level
    (``sigx sigy = 0``): there PyRadiomics' rounding decides MCC, Correlation and Imc2
    (:func:`_pyradiomics_tie_features`)."""
    xp = ops(p)
    bsz, na, n, _ = p.shape
    valid = p.sum(axis=(2, 3)) > 0
    px = p.sum(3)
    py = p.sum(2)
    flat = p.reshape(bsz, na, n * n)
    if level_values is None:
        lv = xp.levels(p, 1, n + 1)
        pxa, pxs = _sum_diff_distributions(flat, n)
        k_sum = xp.levels(p, 2, 2 * n + 1)
        k_diff = xp.levels(p, 0, n)
    else:
        lv = level_values
        pxa, k_sum, pxs, k_diff = _level_sum_diff_distributions(flat, level_values)
    ux = (px * lv).sum(-1)
    uy = (py * lv).sum(-1)

    def ent(t: Array) -> Array:
        return -(t * xp.log2(t + EPS)).sum(-1)

    out: dict[str, Array] = {}
    hxy = ent(flat)
    centred = k_sum - (ux + uy)[..., None]
    tendency = pxa * centred * centred
    out["ClusterTendency"] = tendency.sum(-1)
    out["ClusterShade"] = (tendency * centred).sum(-1)
    out["ClusterProminence"] = (tendency * centred * centred).sum(-1)
    # sums of functions of k over p_x-y and p_x+y: one matrix product, a column per function
    k2 = k_diff * k_diff
    inv_k2 = xp.where(k_diff > 0, 1.0 / xp.where(k_diff > 0, k2, 1.0), 0.0)
    by_diff = pxs @ xp.stack([k_diff, k2, 1.0 / (1 + k2), 1.0 / (1 + k_diff), inv_k2], axis=-1)
    ngr = xp.as_float64(ng_roi).reshape(bsz, 1)
    by_diff_ng = pxs @ xp.stack([1.0 / (1 + k2 / ngr**2), 1.0 / (1 + k_diff / ngr)], axis=-1)
    by_sum = pxa @ xp.stack([k_sum, k_sum * k_sum], axis=-1)
    contrast = by_diff[..., 1]
    out["Autocorrelation"] = (by_sum[..., 1] - contrast) * 0.25
    out["Contrast"] = contrast
    sumsq_x = (px * (lv - ux[..., None]) ** 2).sum(-1)
    sumsq_y = (py * (lv - uy[..., None]) ** 2).sum(-1)
    sigx = xp.sqrt(sumsq_x)
    sigy = xp.sqrt(sumsq_y)
    corm = (out["ClusterTendency"] - sumsq_x - sumsq_y) * 0.5
    corr = corm / (sigx * sigy + EPS)
    out["Correlation"] = xp.where(sigx * sigy == 0, 1.0, corr)
    diffavg = by_diff[..., 0]
    out["DifferenceAverage"] = diffavg
    out["DifferenceEntropy"] = ent(pxs)
    out["DifferenceVariance"] = (pxs * (k_diff - diffavg[..., None]) ** 2).sum(-1)
    out["JointEnergy"] = (flat * flat).sum(-1)
    out["JointEntropy"] = hxy
    hx = ent(px)
    hy = ent(py)
    pxpy = px[..., :, None] * py[..., None, :]
    hxy1 = -(p * xp.log2(pxpy + EPS)).sum(axis=(-2, -1))
    div = xp.fmax(hx, hy)
    out["Imc1"] = xp.where(div != 0, (hxy - hxy1) / xp.where(div != 0, div, 1.0), xp.zeros_like(div))
    dh = (hx + hy) - hxy
    out["Imc2"] = xp.where(dh > 0, xp.sqrt(1 - xp.exp(-2 * xp.clamp_min0(dh))), xp.zeros_like(dh))
    out["Idm"] = by_diff[..., 2]
    out["Idmn"] = by_diff_ng[..., 0]
    out["Id"] = by_diff[..., 3]
    out["Idn"] = by_diff_ng[..., 1]
    out["InverseVariance"] = by_diff[..., 4]
    out["MaximumProbability"] = xp.amax(flat, -1)
    out["SumAverage"] = by_sum[..., 0]
    out["SumEntropy"] = ent(pxa)
    out["SumSquares"] = sumsq_x
    if n > 1:
        q_mat = (p / (pxpy + EPS)) @ xp.swap_last(p)
        sc = xp.where(px > 0, xp.sqrt(px), 1.0)
        c = sc[..., :, None] * q_mat / sc[..., None, :]
        eig = xp.eigvalsh((c + xp.swap_last(c)) * 0.5)
        second = eig[..., -2]
        near_zero = ((abs(second) <= 1e-10 * abs(eig[..., -1])) & valid).any(-1) & (n_present >= 2)
    else:
        second = xp.zeros_like(ux)
        near_zero = n_present < 0
    one_level = ((px > 0).sum(-1) == 1) | ((py > 0).sum(-1) == 1)  # sigx sigy = 0 in exact arithmetic
    rounding_decides = near_zero | ((one_level & valid).any(-1) & (n_present >= 2))
    out["MCC"] = xp.sqrt(xp.clamp_min0(second))
    names = list(out)
    means = xp.mean_over_valid(xp.stack([out[k] for k in names]), valid)
    res = dict(zip(names, means, strict=True))
    res["MCC"] = xp.where(n_present < 2, 1.0, res["MCC"])
    res["JointAverage"] = xp.mean_over_valid(ux, valid)
    final = {k: res[k] for k in FEATURES}
    if mcc_check:
        final["rounding_decides"] = rounding_decides
    return final


def _compiled_features(counts: np.ndarray, ng_roi: np.ndarray, n_present: np.ndarray,
                       level_values: np.ndarray | None, w: list[float] | None) -> dict[str, np.ndarray]:
    """:func:`_normalised_features` of symmetrised NumPy counts [B, A, N, N] in one compiled pass
    (:func:`._compiled.glcm_direction_features`: the merge over directions, the normalisation, the
    per-direction features and MCC's symmetrised matrices over the rows with ``px > 0``, the same
    formulas with each sum in one loop: equal to ~1e-13 relative, tested to 1e-11), then MCC's
    eigenvalues (one ``eigvalsh`` per matrix size), the rounding flags and the means over the
    valid directions as there (a small ROI's 13 matrices: 1.0 -> 0.4 ms, half of it ``eigvalsh``).
    Every sum skips absent grey levels, so a ROI's features do not depend on the other ROIs of its
    batch (their levels, the batch's compaction): the same bits as the ROI alone."""
    weights = None if w is None else np.asarray(w, dtype=np.float64)
    per_direction, sym, sizes, one_level = _compiled.glcm_direction_features(counts, ng_roi, level_values,
                                                                             weights)
    valid = sizes > 0
    second = np.zeros(sizes.shape)
    largest = np.zeros(sizes.shape)
    for size in np.unique(sizes[sizes > 1]).tolist():
        at = sizes == size
        eig = np.linalg.eigvalsh(sym[:, :, :size, :size][at])
        second[at] = eig[:, -2]
        largest[at] = eig[:, -1]
    near_zero = ((abs(second) <= 1e-10 * abs(largest)) & valid).any(-1) & (n_present >= 2)
    rounding_decides = near_zero | ((one_level & valid).any(-1) & (n_present >= 2))
    stacked = np.concatenate([per_direction.transpose(2, 0, 1), np.sqrt(np.maximum(second, 0.0))[None]])
    means = ops(per_direction).mean_over_valid(stacked, valid)
    res = dict(zip((*_compiled.GLCM_DIRECTION_FEATURES, "MCC"), means, strict=True))
    res["MCC"] = np.where(n_present < 2, 1.0, res["MCC"])
    final = {k: res[k] for k in FEATURES}
    final["rounding_decides"] = rounding_decides
    return final


def _from_matrices(
    p: torch.Tensor, ng_roi: torch.Tensor, n_present: torch.Tensor, params: TextureParams,
    level_values: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Features of the counts ``p`` [B, A, Ng, Ng] (:func:`_normalised_features`): in NumPy for CPU
    tensors (small matrices: NumPy's per-operation cost is a fraction of torch's), else in torch."""
    w = _weights(angles(params.distances, params.force2d, params.force2d_dimension), params)
    levels = () if level_values is None else (level_values,)
    return evaluate(_normalised_features, p, ng_roi, n_present, *levels, symmetrical=params.symmetrical_glcm,
                    w=w)


def _normalised_features(p: Array, ng_roi: Array, n_present: Array, level_values: Array | None = None, *,
                         symmetrical: bool, w: list[float] | None) -> dict[str, Array]:
    """Symmetrise (``P + P^T``), merge the directions with weights ``w`` (None: keep them) and
    normalise the counts ``p`` [B, A, Ng, Ng] to sum 1, then :func:`_feature_formulas` (NumPy on
    CPU with numba: all of it but the symmetrisation in :func:`_compiled_features`)."""
    xp = ops(p)
    if symmetrical:
        p = p + xp.swap_last(p)
    if isinstance(p, np.ndarray) and _compiled.ENABLED:
        return _compiled_features(p, ng_roi, n_present, level_values, w)
    if w is not None:
        p = (p * xp.float64_array(w, p).reshape(1, -1, 1, 1)).sum(1, keepdims=True)
    tot = p.sum(axis=(2, 3), keepdims=True)
    return _feature_formulas(p / xp.where(tot > 0, tot, 1.0), ng_roi, n_present, level_values, mcc_check=True)


def _level_value(index: torch.Tensor, level_values: torch.Tensor | None) -> torch.Tensor:
    """Grey-level value of matrix index ``index`` (1-based; 0 for an empty ROI)."""
    if level_values is None:
        return index
    return torch.where(index > 0, level_values[(index - 1).clamp_min(0)], torch.zeros_like(level_values[:1]))


def _pyradiomics_matrix(counts: np.ndarray, present: np.ndarray, params: TextureParams,
                        box_size: tuple[int, int, int]) -> np.ndarray:
    """PyRadiomics' normalised ``P_glcm`` (1, K, K, A) of one ROI by its own arithmetic and in its
    memory layout (``RadiomicsGLCM._calculateMatrix``: its C code's matrix [1, N, N, A] over the
    angles that fit in the ROI's bounding box ``box_size``, absent levels deleted with
    ``numpy.delete``, symmetrised, weighted, empty angles deleted, normalised) from raw ``counts``
    [A, N, N]; ``present``: 0-based indices of the ROI's grey levels. (The layout decides the order
    of NumPy's sums over a matrix, and so the rounding that decides the tie features.)"""
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    fits = [all(abs(o) < n for o, n in zip(off, box_size, strict=True)) for off in offs]
    offs = [off for off, f in zip(offs, fits, strict=True) if f]
    p = np.ascontiguousarray(counts[np.flatnonzero(fits)].transpose(1, 2, 0))[None]
    absent = np.setdiff1d(np.arange(p.shape[1]), present)
    p = np.delete(np.delete(p, absent, 1), absent, 2)
    if params.symmetrical_glcm:
        p += np.transpose(p, (0, 2, 1, 3)).copy()
    if params.weighting_norm is not None:
        spacing = np.array(params.spacing_zyx)
        weights = np.empty(len(offs))
        for a_idx, a in enumerate(np.abs(np.array(offs))):
            if params.weighting_norm == "infinity":
                weights[a_idx] = np.exp(-max(a * spacing) ** 2)
            elif params.weighting_norm == "euclidean":
                weights[a_idx] = np.exp(-np.sum((a * spacing) ** 2))
            elif params.weighting_norm == "manhattan":
                weights[a_idx] = np.exp(-np.sum(a * spacing) ** 2)
            else:
                weights[a_idx] = 1
        p = np.sum(p * weights[None, None, None, :], 3, keepdims=True)
    sum_p = np.sum(p, (1, 2))
    if p.shape[3] > 1:
        empty = np.where(np.sum(sum_p, 0) == 0)
        if len(empty[0]) > 0:
            p = np.delete(p, empty, 3)
            sum_p = np.delete(sum_p, empty, 1)
    sum_p[sum_p == 0] = np.nan
    p /= sum_p[:, None, None, :]
    return p


TIE_FEATURES = ("MCC", "Correlation", "Imc2")  # the features PyRadiomics' rounding may decide


def _pyradiomics_tie_features(p: np.ndarray, grey_levels: np.ndarray) -> dict[str, float]:
    """PyRadiomics' MCC, Correlation and Imc2 of ``P_glcm`` (:func:`_pyradiomics_matrix`) with its
    grey levels, by its own arithmetic, where rounding decides them. MCC: the second largest of
    ``numpy.linalg.eigvals(Q)``; when it is 0 in exact arithmetic, a negative rounding makes its
    ``sqrt`` NaN and drops that direction from the mean (when every direction is dropped PyRadiomics
    gives NaN; we give the exact value, 0: a NaN would cost the ROI all its features).
    Correlation: ``corm / (sigx sigy + eps)``, 1 where ``sigx sigy == 0``; with one grey level in a
    marginal both are 0 in exact arithmetic and PyRadiomics' rounding (a marginal summing to 1
    exactly, or not) gives 1 or a ratio of rounding errors. Imc2: ``sqrt(1 - e^(-2 (HXY2 - HXY)))``,
    0 where ``HXY2 == HXY``; where ``P`` is the product of its marginals (one grey level in one of
    them, or a rank-1 ``P``: the mutual information ``HXY2 - HXY`` is 0 in exact arithmetic) a
    negative rounding makes it NaN and drops that direction from the mean (all dropped: 0, the exact
    value), a positive one gives ~1e-8."""
    eps = np.spacing(1)
    i, j = np.meshgrid(grey_levels.astype(float), grey_levels.astype(float), indexing="ij", sparse=True)
    ux = np.sum(i[None, :, :, None] * p, (1, 2), keepdims=True)
    uy = np.sum(j[None, :, :, None] * p, (1, 2), keepdims=True)
    sigx = np.sum(p * ((i[None, :, :, None] - ux) ** 2), (1, 2), keepdims=True) ** 0.5
    sigy = np.sum(p * ((j[None, :, :, None] - uy) ** 2), (1, 2), keepdims=True) ** 0.5
    corm = np.sum(p * (i[None, :, :, None] - ux) * (j[None, :, :, None] - uy), (1, 2), keepdims=True)
    corr = corm / (sigx * sigy + eps)
    corr[sigx * sigy == 0] = 1
    out = {"Correlation": float(np.nanmean(corr, (1, 2, 3))[0])}
    px, py = p.sum(2, keepdims=True), p.sum(1, keepdims=True)
    hxy = (-1) * np.sum((p * np.log2(p + eps)), (1, 2))
    hxy2 = (-1) * np.sum(((px * py) * np.log2(px * py + eps)), (1, 2))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sqrt of negatives; nanmean over only NaN
        imc2 = (1 - np.e ** (-2 * (hxy2 - hxy))) ** 0.5
        imc2[hxy2 == hxy] = 0
        out["Imc2"] = float(np.nanmean(imc2, 1)[0])
    q = (p[:, :, None, 0, :] * p[:, None, :, 0, :]) / (px[:, :, None, 0, :] * py[:, None, :, 0, :] + eps)
    for gl in range(1, p.shape[1]):
        q += ((p[:, :, None, gl, :] * p[:, None, :, gl, :])
              / (px[:, :, None, 0, :] * py[:, None, :, gl, :] + eps))
    eig = np.linalg.eigvals(q.transpose((0, 3, 1, 2)))
    eig.sort()
    if eig.shape[2] < 2:
        out["MCC"] = 1.0
    else:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean over only NaN directions
            out["MCC"] = float(np.nanmean(np.sqrt(eig[:, :, -2]), 1).real[0])
    return {k: 0.0 if math.isnan(v) else v for k, v in out.items()}


def _rounding_as_pyradiomics(res: dict[str, torch.Tensor], counts: torch.Tensor, present: torch.Tensor,
                             params: TextureParams, level_values: torch.Tensor | None,
                             box_size: Callable[[int], tuple[int, int, int]]) -> dict[str, torch.Tensor]:
    """``res`` with the :data:`TIE_FEATURES` of the ROIs flagged ``rounding_decides`` taken from
    :func:`_pyradiomics_tie_features` (the flag removed); ``present`` bool [B, N + 1] (column 0:
    outside; copied to the host only when a ROI is flagged), ``level_values`` the grey level of each
    matrix row (None: ``1..N``), ``box_size(b)`` the bounding box of ROI ``b`` (asked for flagged
    ROIs only)."""
    flagged = np.flatnonzero(res.pop("rounding_decides").cpu().numpy())
    if flagged.size:
        values = None if level_values is None else level_values.cpu().numpy()
        present_np = present.cpu().numpy()
        tied = {k: res[k].cpu().numpy().copy() for k in TIE_FEATURES}
        for b in flagged:
            idx = np.flatnonzero(present_np[b, 1:])
            levels = idx + 1.0 if values is None else values[idx]
            p = _pyradiomics_matrix(counts[b].cpu().numpy(), idx, params, box_size(int(b)))
            for k, v in _pyradiomics_tie_features(p, levels).items():
                tied[k][b] = v
        for k in TIE_FEATURES:
            res[k] = torch.from_numpy(tied[k]).to(res[k].device)
    return res


def _chunk_torch(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams,
    level_values: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    p = _matrices_torch(q, mask, n_levels, offs)
    qm = torch.where(mask, q, torch.zeros_like(q)).flatten(1)
    ng_roi = _level_value(qm.amax(1), level_values)
    present = torch.zeros(q.shape[0], n_levels + 1, dtype=torch.bool, device=q.device)
    present.scatter_(1, qm, True)
    present[:, 0] = False
    res = _from_matrices(p, ng_roi, present[:, 1:].sum(1), params, level_values)

    def box_size(b: int) -> tuple[int, int, int]:
        nz = mask[b].nonzero()
        return tuple((nz.amax(0) - nz.amin(0) + 1).tolist())

    return _rounding_as_pyradiomics(res, p, present, params, level_values, box_size)


def _chunk_numpy(grid: FlatGrid, n_levels: int, params: TextureParams,
                 level_values: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    p = _matrices_numpy(grid, offs, n_levels)
    present = present_levels(grid, n_levels)
    ng_roi = _level_value(torch.from_numpy(n_levels - np.argmax(present[:, ::-1], axis=1)), level_values)
    res = _from_matrices(p, ng_roi, torch.from_numpy(present.sum(1)), params, level_values)

    def box_size(b: int) -> tuple[int, int, int]:
        roi = grid.g[b * grid.block : (b + 1) * grid.block].reshape(grid.shape) > 0
        box = bounding_box(roi)
        assert box is not None  # (a flagged ROI holds voxels)
        return (box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start)

    return _rounding_as_pyradiomics(res, p, torch.from_numpy(present), params, level_values, box_size)


def compute(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams, method: str = "auto"
) -> dict[str, torch.Tensor]:
    """GLCM features of ``B`` ROIs: ``{name: float64 [B]}`` for every name in :data:`FEATURES`
    (``method`` as :func:`matrices`)."""
    method = cpu_method(method, q)
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    _weights(offs, params)
    na = len(offs)
    q, n_levels, level_values = compact_levels(q, mask, n_levels)
    if method == "numpy":
        res = by_grid_chunks(
            q,
            mask,
            n_levels,
            max(params.distances),
            per_voxel=4,
            per_roi_fixed=16 * na * (n_levels + 1) ** 2,
            fn=lambda grid: _chunk_numpy(grid, n_levels, params, level_values),
        )
    else:
        check_inputs(q, mask, n_levels)
        res = by_chunks(
            q,
            mask,
            per_voxel=4,
            per_roi_fixed=16 * na * n_levels * n_levels,
            fn=lambda qc, mc: _chunk_torch(qc, mc, n_levels, params, level_values),
        )
    bad = [i for i, v in enumerate(res["Contrast"].tolist()) if math.isnan(v)]
    if bad:
        warnings.warn(
            f"GLCM: ROI(s) {bad} have no voxel pair at distances {params.distances}; "
            "their GLCM features are NaN (as PyRadiomics)",
            RuntimeWarning,
            stacklevel=2,
        )
    return res
