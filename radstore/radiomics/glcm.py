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
flattened (:class:`._neighbours.FlatGrid`); per direction one gather ``g[v + step]`` over the ROI
voxels and one ``bincount`` of ``(roi, g(v), g(v + step))`` give the matrix (level 0 = outside,
dropped). Other devices: shifted slices of the dense grid. The features are computed on the small
matrices, in NumPy on CPU and torch elsewhere (MCC by ``eigvalsh``, see :func:`_features_torch`).

Degenerate ROIs: a ROI without any voxel pair at the configured distances (e.g. one voxel) has no
GLCM; PyRadiomics then returns NaN for every feature and so do we (documented, with a warning).
``MCC`` is 1 when the ROI holds a single grey level (PyRadiomics' rule). ``Imc2`` is set to 0 when
``HXY2 - HXY`` is not positive (PyRadiomics: exactly 0 when equal; rounding-level negatives would
give its NaN).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import torch

from radstore.radiomics._neighbours import (
    EPS,
    FlatGrid,
    angles,
    by_chunks,
    by_grid_chunks,
    check_inputs,
    cpu_method,
    direction_distances,
    flat_grid,
    grid_shape,
    numpy_path,
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


def _matrices_numpy(grid: FlatGrid, offs: list[tuple[int, int, int]], n_levels: int) -> torch.Tensor:
    """Counts from a :class:`FlatGrid`: pair key ``(roi, g(p), g(p + a))`` with level 0 (outside) in
    row/column 0, which is dropped. Where the ``B (Ng+1)^3`` triple keys are few (<= 2^16) next to
    the ROI voxels, two directions share one ``bincount`` of ``(roi, g(p), g(p + a1), g(p + a2))``;
    each direction's counts are then the exact integer marginal over the other neighbour. Levels
    and keys are in the smallest unsigned types that hold them (:func:`.small_uint`)."""
    n1, b = n_levels + 1, grid.n_rois
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
    p = torch.from_numpy(out).view(len(offs), b, n1, n1)[:, :, 1:, 1:]
    return p.transpose(0, 1).to(torch.float64)


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


def _features(p: torch.Tensor, ng_roi: torch.Tensor, n_present: torch.Tensor) -> dict[str, torch.Tensor]:
    """GLCM features of normalised matrices ``p`` [B, A, N, N]: :func:`_features_numpy` for CPU
    tensors (small matrices: NumPy's per-operation cost is a fraction of torch's), else
    :func:`_features_torch`."""
    if numpy_path(p):
        out = _features_numpy(p.numpy(), ng_roi.numpy(), n_present.numpy())
        return {k: torch.from_numpy(v) for k, v in out.items()}
    return _features_torch(p, ng_roi, n_present)


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


def _features_numpy(p: np.ndarray, ng_roi: np.ndarray, n_present: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`_features_torch` in NumPy (same formulas; ``p_x+y`` / ``p_x-y`` by ordered sums)."""
    bsz, na, n, _ = p.shape
    f64 = np.float64
    valid = p.sum(axis=(2, 3)) > 0
    lv = np.arange(1, n + 1, dtype=f64)
    i = lv[:, None]
    j = lv[None, :]
    px = p.sum(3)
    py = p.sum(2)
    ux = (px * lv).sum(-1)
    uy = (py * lv).sum(-1)
    uxe, uye = ux[..., None, None], uy[..., None, None]
    flat = p.reshape(bsz, na, n * n)
    so, ss, do, ds = _sum_diff_order(n)
    pxa = np.add.reduceat(flat[..., so], ss, axis=-1)
    pxs = np.add.reduceat(flat[..., do], ds, axis=-1)
    k_sum = np.arange(2, 2 * n + 1, dtype=f64)
    k_diff = np.arange(0, n, dtype=f64)

    def s2(t: np.ndarray) -> np.ndarray:
        return t.sum(axis=(-2, -1))

    def ent(t: np.ndarray) -> np.ndarray:
        return -(t * np.log2(t + EPS)).sum(-1)

    out: dict[str, np.ndarray] = {}
    hxy = ent(flat)
    ipj = (i + j) - uxe - uye
    ipj2 = ipj * ipj
    pi = p * ipj
    out["Autocorrelation"] = s2(p * (i * j))
    out["ClusterShade"] = s2(pi * ipj2)
    out["ClusterTendency"] = s2(pi * ipj)
    out["ClusterProminence"] = s2(pi * ipj * ipj2)
    out["Contrast"] = (pxs * k_diff * k_diff).sum(-1)
    sumsq_x = (px * (lv - ux[..., None]) ** 2).sum(-1)
    sigx = np.sqrt(sumsq_x)
    sigy = np.sqrt((py * (lv - uy[..., None]) ** 2).sum(-1))
    corm = s2(p * (i - uxe) * (j - uye))
    corr = corm / (sigx * sigy + EPS)
    out["Correlation"] = np.where(sigx * sigy == 0, 1.0, corr)
    diffavg = (k_diff * pxs).sum(-1)
    out["DifferenceAverage"] = diffavg
    out["DifferenceEntropy"] = ent(pxs)
    out["DifferenceVariance"] = (pxs * (k_diff - diffavg[..., None]) ** 2).sum(-1)
    out["JointEnergy"] = (flat * flat).sum(-1)
    out["JointEntropy"] = hxy
    hx = ent(px)
    hy = ent(py)
    pxpy = px[..., :, None] * py[..., None, :]
    log_pxpy = np.log2(pxpy + EPS)
    hxy1 = -s2(p * log_pxpy)
    hxy2 = -s2(pxpy * log_pxpy)
    div = np.fmax(hx, hy)
    out["Imc1"] = np.where(div != 0, (hxy - hxy1) / np.where(div != 0, div, 1.0), 0.0)
    dh = hxy2 - hxy
    out["Imc2"] = np.where(dh > 0, np.sqrt(1 - np.exp(-2 * np.maximum(dh, 0.0))), 0.0)
    ngr = ng_roi.astype(f64).reshape(bsz, 1, 1)
    out["Idm"] = (pxs / (1 + k_diff**2)).sum(-1)
    out["Idmn"] = (pxs / (1 + k_diff**2 / ngr**2)).sum(-1)
    out["Id"] = (pxs / (1 + k_diff)).sum(-1)
    out["Idn"] = (pxs / (1 + k_diff / ngr)).sum(-1)
    out["InverseVariance"] = (pxs[..., 1:] / k_diff[1:] ** 2).sum(-1)
    out["MaximumProbability"] = flat.max(axis=-1)
    out["SumAverage"] = (k_sum * pxa).sum(-1)
    out["SumEntropy"] = ent(pxa)
    out["SumSquares"] = sumsq_x
    if n > 1:
        q_mat = (p / (pxpy + EPS)) @ np.swapaxes(p, -2, -1)
        sc = np.where(px > 0, np.sqrt(px), 1.0)
        c = sc[..., :, None] * q_mat / sc[..., None, :]
        second = np.linalg.eigvalsh((c + np.swapaxes(c, -2, -1)) * 0.5)[..., -2]
    else:
        second = np.zeros((bsz, na), dtype=f64)
    out["MCC"] = np.sqrt(np.maximum(second, 0.0))
    names = list(out)
    stacked = np.where(valid, np.stack([out[k] for k in names]), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.nansum(stacked, axis=-1) / (~np.isnan(stacked)).sum(-1)
    res = dict(zip(names, means, strict=True))
    res["MCC"] = np.where(n_present < 2, 1.0, res["MCC"])
    with np.errstate(invalid="ignore", divide="ignore"):
        res["JointAverage"] = np.where(valid, ux, 0.0).sum(1) / valid.sum(1)
    return {k: res[k] for k in FEATURES}


def _features_torch(
    p: torch.Tensor, ng_roi: torch.Tensor, n_present: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-direction GLCM features ``[B, A]`` from normalised matrices ``p`` [B, A, N, N] (PyRadiomics
    formulas), then averaged over valid directions.

    MCC: the eigenvalues of ``Q = (P / (px py^T + eps)) P^T`` are those of ``C = Dx^1/2 Q Dx^-1/2``
    (``Dx = diag(px)``, identity where ``px = 0``), which without PyRadiomics' ``eps`` is the
    symmetric ``Dx^-1/2 P Dy^-1 P^T Dx^-1/2``; with it ``C`` has an antisymmetric part of relative
    size ~1e-7 that moves no eigenvalue to first order, so ``eigvalsh`` of the symmetric part of
    ``C`` gives PyRadiomics' ``eigvals(Q)`` to ~1e-14 relative, 20x faster."""
    bsz, na, n, _ = p.shape
    dev, f64 = p.device, torch.float64
    valid = p.sum(dim=(2, 3)) > 0
    lv = torch.arange(1, n + 1, device=dev, dtype=f64)
    i = lv.view(n, 1)
    j = lv.view(1, n)
    px = p.sum(3)
    py = p.sum(2)
    ux = (px * lv).sum(-1)
    uy = (py * lv).sum(-1)
    uxe, uye = ux[..., None, None], uy[..., None, None]
    flat = p.reshape(bsz, na, n * n)
    ii = torch.arange(n, device=dev)
    sum_idx = (ii.view(n, 1) + ii.view(1, n)).flatten()
    diff_idx = (ii.view(n, 1) - ii.view(1, n)).abs().flatten()
    pxa = torch.zeros(bsz, na, 2 * n - 1, device=dev, dtype=f64).index_add_(2, sum_idx, flat)
    pxs = torch.zeros(bsz, na, n, device=dev, dtype=f64).index_add_(2, diff_idx, flat)
    k_sum = torch.arange(2, 2 * n + 1, device=dev, dtype=f64)
    k_diff = torch.arange(0, n, device=dev, dtype=f64)

    def s2(t: torch.Tensor) -> torch.Tensor:
        return t.sum(dim=(-2, -1))

    def ent(t: torch.Tensor) -> torch.Tensor:
        return -(t * torch.log2(t + EPS)).sum(-1)

    out: dict[str, torch.Tensor] = {}
    hxy = ent(flat)
    ipj = (i + j) - uxe - uye
    ipj2 = ipj * ipj
    pi = p * ipj
    out["Autocorrelation"] = s2(p * (i * j))
    out["ClusterShade"] = s2(pi * ipj2)
    out["ClusterTendency"] = s2(pi * ipj)
    out["ClusterProminence"] = s2(pi * ipj * ipj2)
    out["Contrast"] = (pxs * k_diff * k_diff).sum(-1)
    sumsq_x = (px * (lv - ux[..., None]) ** 2).sum(-1)
    sigx = sumsq_x.sqrt()
    sigy = (py * (lv - uy[..., None]) ** 2).sum(-1).sqrt()
    corm = s2(p * (i - uxe) * (j - uye))
    corr = corm / (sigx * sigy + EPS)
    out["Correlation"] = torch.where(sigx * sigy == 0, torch.ones_like(corr), corr)
    diffavg = (k_diff * pxs).sum(-1)
    out["DifferenceAverage"] = diffavg
    out["DifferenceEntropy"] = ent(pxs)
    out["DifferenceVariance"] = (pxs * (k_diff - diffavg[..., None]) ** 2).sum(-1)
    out["JointEnergy"] = (flat * flat).sum(-1)
    out["JointEntropy"] = hxy
    hx = ent(px)
    hy = ent(py)
    pxpy = px[..., :, None] * py[..., None, :]
    log_pxpy = torch.log2(pxpy + EPS)
    hxy1 = -s2(p * log_pxpy)
    hxy2 = -s2(pxpy * log_pxpy)
    div = torch.fmax(hx, hy)
    imc1 = torch.where(div != 0, (hxy - hxy1) / torch.where(div != 0, div, 1.0), torch.zeros_like(div))
    out["Imc1"] = imc1
    dh = hxy2 - hxy
    out["Imc2"] = torch.where(dh > 0, (1 - torch.exp(-2 * dh.clamp(min=0))).sqrt(), torch.zeros_like(dh))
    ngr = ng_roi.to(f64).view(bsz, 1, 1)
    out["Idm"] = (pxs / (1 + k_diff**2)).sum(-1)
    out["Idmn"] = (pxs / (1 + k_diff**2 / ngr**2)).sum(-1)
    out["Id"] = (pxs / (1 + k_diff)).sum(-1)
    out["Idn"] = (pxs / (1 + k_diff / ngr)).sum(-1)
    out["InverseVariance"] = (pxs[..., 1:] / k_diff[1:] ** 2).sum(-1)
    out["MaximumProbability"] = flat.amax(dim=-1)
    out["SumAverage"] = (k_sum * pxa).sum(-1)
    out["SumEntropy"] = ent(pxa)
    out["SumSquares"] = sumsq_x
    if n > 1:
        q_mat = (p / (pxpy + EPS)) @ p.transpose(-2, -1)
        sc = torch.where(px > 0, px.sqrt(), torch.ones_like(px))
        c = sc[..., :, None] * q_mat / sc[..., None, :]
        second = torch.linalg.eigvalsh((c + c.transpose(-2, -1)) * 0.5)[..., -2]
    else:
        second = torch.zeros(bsz, na, device=dev, dtype=f64)
    out["MCC"] = second.clamp(min=0).sqrt()
    names = list(out)
    stacked = torch.stack([out[k] for k in names])
    means = torch.where(valid, stacked, torch.full_like(stacked, float("nan"))).nanmean(dim=-1)
    res = dict(zip(names, means.unbind(0), strict=True))
    res["MCC"] = torch.where(n_present < 2, torch.ones(bsz, device=dev, dtype=f64), res["MCC"])
    res["JointAverage"] = torch.where(valid, ux, torch.zeros_like(ux)).sum(1) / valid.sum(1)
    return {k: res[k] for k in FEATURES}


def _from_matrices(
    p: torch.Tensor, ng_roi: torch.Tensor, n_present: torch.Tensor, params: TextureParams
) -> dict[str, torch.Tensor]:
    """Symmetrise, merge the directions (``weighting_norm``) and normalise the counts ``p``
    [B, A, Ng, Ng], then :func:`_features` (NumPy throughout for CPU tensors)."""
    w = _weights(angles(params.distances, params.force2d, params.force2d_dimension), params)
    if numpy_path(p):
        a = p.numpy()
        if params.symmetrical_glcm:
            a = a + np.swapaxes(a, 2, 3)
        if w is not None:
            a = (a * np.asarray(w, dtype=np.float64).reshape(1, -1, 1, 1)).sum(1, keepdims=True)
        tot = a.sum(axis=(2, 3), keepdims=True)
        a = a / np.where(tot > 0, tot, 1.0)
        out = _features_numpy(a, ng_roi.numpy(), n_present.numpy())
        return {k: torch.from_numpy(v) for k, v in out.items()}
    if params.symmetrical_glcm:
        p = p + p.transpose(2, 3)
    if w is not None:
        p = (p * torch.tensor(w, dtype=torch.float64, device=p.device).view(1, -1, 1, 1)).sum(1, keepdim=True)
    tot = p.sum(dim=(2, 3), keepdim=True)
    p = p / torch.where(tot > 0, tot, torch.ones_like(tot))
    return _features(p, ng_roi, n_present)


def _chunk_torch(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams
) -> dict[str, torch.Tensor]:
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    p = _matrices_torch(q, mask, n_levels, offs)
    qm = torch.where(mask, q, torch.zeros_like(q)).flatten(1)
    ng_roi = qm.amax(1)
    present = torch.zeros(q.shape[0], n_levels + 1, dtype=torch.bool, device=q.device)
    present.scatter_(1, qm, True)
    return _from_matrices(p, ng_roi, present[:, 1:].sum(1), params)


def _chunk_numpy(grid: FlatGrid, n_levels: int, params: TextureParams) -> dict[str, torch.Tensor]:
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    p = _matrices_numpy(grid, offs, n_levels)
    present = present_levels(grid, n_levels)
    ng_roi = torch.from_numpy(n_levels - np.argmax(present[:, ::-1], axis=1))
    return _from_matrices(p, ng_roi, torch.from_numpy(present.sum(1)), params)


def compute(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams, method: str = "auto"
) -> dict[str, torch.Tensor]:
    """GLCM features of ``B`` ROIs: ``{name: float64 [B]}`` for every name in :data:`FEATURES`
    (``method`` as :func:`matrices`)."""
    method = cpu_method(method, q)
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    _weights(offs, params)
    na = len(offs)
    if method == "numpy":
        res = by_grid_chunks(
            q,
            mask,
            n_levels,
            max(params.distances),
            per_voxel=4,
            per_roi_fixed=16 * na * (n_levels + 1) ** 2,
            fn=lambda grid: _chunk_numpy(grid, n_levels, params),
        )
    else:
        check_inputs(q, mask, n_levels)
        res = by_chunks(
            q,
            mask,
            per_voxel=4,
            per_roi_fixed=16 * na * n_levels * n_levels,
            fn=lambda qc, mc: _chunk_torch(qc, mc, n_levels, params),
        )
    bad = torch.isnan(res["Contrast"]).nonzero().flatten().tolist()
    if bad:
        warnings.warn(
            f"GLCM: ROI(s) {bad} have no voxel pair at distances {params.distances}; "
            "their GLCM features are NaN (as PyRadiomics)",
            RuntimeWarning,
            stacklevel=2,
        )
    return res
