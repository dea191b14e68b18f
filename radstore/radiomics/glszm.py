"""Grey Level Size Zone Matrix (GLSZM) features, batched over ROIs (PyRadiomics 3.1 semantics).

A zone is a connected set of ROI voxels with the same grey level, 26-connected in 3D (8-connected
within slices along ``force2d_dimension`` with force2D); ``P(i, j)`` counts the zones of level ``i``
with ``j`` voxels (Thibault et al., Proc. ICPRAM 2009; IBSI). Features are those of
:mod:`._matrix_features` with PyRadiomics' names; the size axis is stored compressed (only sizes
that occur), which changes no feature.

Connected components: on CPU ``cc3d.connected_components`` (multi-label, in C; 2-3x faster than
``skimage.measure.label``, which stays as the ``"skimage"`` method; all grey levels of all ROIs
in one call on the padded flat grid of :mod:`._neighbours`: ROIs and force2D slices are separated by
background), then sizes and levels of the zones by ``bincount``; on other devices a torch
union-find (min-label hooking over same-level neighbour edges plus pointer jumping), which gives
the same partition and is also tested on CPU.

Degenerate ROIs (one voxel, flat intensity) are well defined and give PyRadiomics' values.
"""

from __future__ import annotations

import numpy as np
import torch

from radstore.radiomics._matrix_features import size_matrix_features
from radstore.radiomics._neighbours import (
    FlatGrid,
    angles,
    by_chunks,
    by_grid_chunks,
    check_inputs,
    compact_levels,
    cpu_method,
    flat_grid,
    grid_shape,
    pair_slices,
    small_uint,
)
from radstore.radiomics.texture_params import TextureParams

FEATURES: tuple[str, ...] = (
    "GrayLevelNonUniformity",
    "GrayLevelNonUniformityNormalized",
    "GrayLevelVariance",
    "HighGrayLevelZoneEmphasis",
    "LargeAreaEmphasis",
    "LargeAreaHighGrayLevelEmphasis",
    "LargeAreaLowGrayLevelEmphasis",
    "LowGrayLevelZoneEmphasis",
    "SizeZoneNonUniformity",
    "SizeZoneNonUniformityNormalized",
    "SmallAreaEmphasis",
    "SmallAreaHighGrayLevelEmphasis",
    "SmallAreaLowGrayLevelEmphasis",
    "ZoneEntropy",
    "ZonePercentage",
    "ZoneVariance",
)

_NAMES = {
    "GLN": "GrayLevelNonUniformity",
    "GLNN": "GrayLevelNonUniformityNormalized",
    "GLV": "GrayLevelVariance",
    "HGE": "HighGrayLevelZoneEmphasis",
    "LE": "LargeAreaEmphasis",
    "LHGE": "LargeAreaHighGrayLevelEmphasis",
    "LLGE": "LargeAreaLowGrayLevelEmphasis",
    "LGE": "LowGrayLevelZoneEmphasis",
    "JN": "SizeZoneNonUniformity",
    "JNN": "SizeZoneNonUniformityNormalized",
    "SE": "SmallAreaEmphasis",
    "SHGE": "SmallAreaHighGrayLevelEmphasis",
    "SLGE": "SmallAreaLowGrayLevelEmphasis",
    "Ent": "ZoneEntropy",
    "Perc": "ZonePercentage",
    "JV": "ZoneVariance",
}


def _to_slices(q: torch.Tensor, params: TextureParams) -> torch.Tensor:
    """``[B, Z, Y, X]`` -> ``[B * S, P1, P2]`` with S the axis along ``force2d_dimension``."""
    d = params.force2d_dimension
    perm = [0, d + 1] + [k + 1 for k in (0, 1, 2) if k != d]
    t = q.permute(*perm)
    return t.reshape(-1, t.shape[2], t.shape[3])


def labels_skimage(q: torch.Tensor, mask: torch.Tensor, params: TextureParams) -> torch.Tensor:
    """Zone labels ``[B, Z, Y, X]`` (int64, 0 outside the ROIs, 1..n_zones inside) via scikit-image."""
    from skimage.measure import label

    vals = torch.where(mask, q, torch.zeros_like(q)).cpu()
    if params.force2d:
        # one 2D image: every slice followed by a background row
        s = torch.nn.functional.pad(_to_slices(vals, params), (0, 0, 0, 1))
        lab = label(s.reshape(-1, s.shape[2]).numpy(), background=0, connectivity=2)
        lab = torch.from_numpy(lab.astype(np.int64)).view(s.shape)[:, :-1, :]
        d = params.force2d_dimension
        b, z, y, x = q.shape
        shp = [b, (z, y, x)[d]] + [n for k, n in enumerate((z, y, x)) if k != d]
        lab = lab.reshape(shp)
        inv = [0] * 4
        perm = [0, d + 1] + [k + 1 for k in (0, 1, 2) if k != d]
        for pos, ax in enumerate(perm):
            inv[ax] = pos
        lab = lab.permute(*inv)
    else:
        v = torch.nn.functional.pad(vals, (0, 0, 0, 0, 0, 1))
        lab = label(v.reshape(-1, v.shape[2], v.shape[3]).numpy(), background=0, connectivity=3)
        lab = torch.from_numpy(lab.astype(np.int64)).view(v.shape)[:, :-1]
    return lab.contiguous().to(q.device)


def labels_torch(q: torch.Tensor, mask: torch.Tensor, params: TextureParams) -> torch.Tensor:
    """Zone labels ``[B, Z, Y, X]`` by union-find in torch (any device): each ROI voxel ends with the
    smallest flat index of its zone (+1); 0 outside the ROIs."""
    offs = angles((1,), params.force2d, params.force2d_dimension)
    n = q.numel()
    flat = torch.arange(n, device=q.device).view(q.shape)
    src_l, dst_l = [], []
    for off in offs:
        src, dst = pair_slices(grid_shape(q), off)
        ok = mask[src] & mask[dst] & (q[src] == q[dst])
        src_l.append(flat[src][ok])
        dst_l.append(flat[dst][ok])
    es, ed = torch.cat(src_l), torch.cat(dst_l)
    parent = torch.arange(n, device=q.device)
    while True:
        ps, pd = parent[es], parent[ed]
        diff = ps != pd
        if not bool(diff.any()):
            break
        ps, pd = ps[diff], pd[diff]
        parent.scatter_reduce_(0, torch.maximum(ps, pd), torch.minimum(ps, pd), reduce="amin")
        while True:
            nxt = parent[parent]
            if torch.equal(nxt, parent):
                break
            parent = nxt
    return torch.where(mask, parent.view(q.shape) + 1, torch.zeros_like(q))


def labels_grid(grid: FlatGrid, n_levels: int, params: TextureParams) -> np.ndarray:
    """Zone label of every ROI voxel of a :class:`FlatGrid` (padding 1), aligned with ``grid.v``:
    multi-label connected components (``cc3d``, 26-connected; 8-connected in 2D: each level's zones,
    level 0 is background) of the whole padded grid at once (the padding separates ROIs; with
    force2D every slice along ``force2d_dimension`` becomes a band of a 2D image, separated by its
    padding rows). Labels are ``1..n_zones`` (in any order: only zone sizes and levels are used)."""
    import cc3d

    b = grid.n_rois
    g = grid.g.reshape(b, *grid.shape).astype(small_uint(n_levels))  # (a writable copy)
    if not params.force2d:
        lab = cc3d.connected_components(g.reshape(-1, *grid.shape[1:]), connectivity=26)
        return lab.reshape(-1)[grid.v]
    d = params.force2d_dimension
    perm = [0, d + 1] + [k + 1 for k in (0, 1, 2) if k != d]
    t = np.ascontiguousarray(g.transpose(perm))
    lab = cc3d.connected_components(t.reshape(-1, t.shape[3]), connectivity=8).reshape(t.shape)
    inv = np.argsort(perm)
    return np.ascontiguousarray(lab.transpose(inv)).reshape(-1)[grid.v]


def _matrices_numpy(
    grid: FlatGrid, n_levels: int, params: TextureParams
) -> tuple[torch.Tensor, torch.Tensor]:
    zid = labels_grid(grid, n_levels, params)
    nzones = int(zid.max())
    size = np.bincount(zid, minlength=nzones + 1)[1:]
    zlev = np.zeros(nzones + 1, dtype=np.int64)
    zlev[zid] = grid.gv
    zroi = np.zeros(nzones + 1, dtype=np.int64)
    if grid.n_rois > 1:
        zroi[zid] = grid.roi
    occurs = np.bincount(size) > 0
    jvec = np.flatnonzero(occurs)
    jinv = (np.cumsum(occurs) - 1)[size]
    nj, n1 = jvec.size, n_levels + 1
    idx = (zroi[1:] * n1 + zlev[1:]) * nj + jinv
    p = np.bincount(idx, minlength=grid.n_rois * n1 * nj).reshape(grid.n_rois, n1, nj)[:, 1:]
    return torch.from_numpy(p.astype(np.float64)), torch.from_numpy(jvec)


def matrices(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams, method: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zone counts ``[B, Ng, J]`` (float64) over the occurring zone sizes ``jvector`` [J] (int64).

    ``method``: ``"numpy"`` (CPU: :func:`labels_grid` on the padded flat grid), ``"skimage"``
    (scikit-image labels of the dense batch), ``"torch"`` (torch union-find, any device) or
    ``"auto"`` (numpy on CPU, torch elsewhere)."""
    method = cpu_method(method, q, ("skimage",))
    if method == "numpy":
        return _matrices_numpy(flat_grid(q, mask, n_levels, 1), n_levels, params)
    lab = labels_skimage(q, mask, params) if method == "skimage" else labels_torch(q, mask, params)
    b = q.shape[0]
    roi = torch.arange(b, device=q.device).view(b, 1, 1, 1).expand_as(q)
    lv, rv, zid = q[mask], roi[mask], lab[mask]
    uz, zinv = torch.unique(zid, return_inverse=True)
    nzones = len(uz)
    size = torch.bincount(zinv, minlength=nzones)
    zlev = torch.zeros(nzones, dtype=torch.int64, device=q.device).scatter_(0, zinv, lv)
    zroi = torch.zeros(nzones, dtype=torch.int64, device=q.device).scatter_(0, zinv, rv)
    jvec, jinv = torch.unique(size, return_inverse=True)
    nj = len(jvec)
    idx = (zroi * n_levels + zlev - 1) * nj + jinv
    p = torch.bincount(idx, minlength=b * n_levels * nj).to(torch.float64).view(b, n_levels, nj)
    return p, jvec


def compute(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams, method: str = "auto"
) -> dict[str, torch.Tensor]:
    """GLSZM features of ``B`` ROIs: ``{name: float64 [B]}`` for every name in :data:`FEATURES`
    (``method`` as :func:`matrices`)."""
    method = cpu_method(method, q, ("skimage",))
    q, n_levels, level_values = compact_levels(q, mask, n_levels)

    def from_matrix(p: torch.Tensor, jvec: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = size_matrix_features(p, jvec, level_values)
        return {_NAMES[k]: v for k, v in feats.items()}

    if method == "numpy":
        res = by_grid_chunks(
            q,
            mask,
            n_levels,
            1,
            per_voxel=24,
            per_roi_fixed=8 * n_levels * 512,
            fn=lambda grid: from_matrix(*_matrices_numpy(grid, n_levels, params)),
        )
    else:
        check_inputs(q, mask, n_levels)
        res = by_chunks(
            q,
            mask,
            per_voxel=16,
            per_roi_fixed=4 * n_levels * 512,
            fn=lambda qc, mc: from_matrix(*matrices(qc, mc, n_levels, params, method)),
        )
    return {k: res[k] for k in FEATURES}
