"""Grey Level Dependence Matrix (GLDM) features, batched over ROIs (PyRadiomics 3.1 semantics).

``P(i, j)`` counts ROI voxels of grey level ``i`` with ``j - 1`` dependent neighbours: neighbours
inside the ROI, at an offset of :func:`radstore.radiomics._neighbours.angles` in both directions
(26 for distance 1 in 3D, 8 with force2D), with ``|g(p) - g(n)| <= gldm_a`` (Sun & Wee, Comput.
Vision Graph. Image Process. 1983; IBSI "neighbouring grey level dependence matrix"). Features are
those of :mod:`._matrix_features` with PyRadiomics' names (GLDM has no percentage or normalised
grey-level non-uniformity: both are deprecated there).

Degenerate ROIs (one voxel, flat intensity) are well defined and give PyRadiomics' values.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
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
)
from radstore.radiomics.texture_params import TextureParams

FEATURES: tuple[str, ...] = (
    "DependenceEntropy",
    "DependenceNonUniformity",
    "DependenceNonUniformityNormalized",
    "DependenceVariance",
    "GrayLevelNonUniformity",
    "GrayLevelVariance",
    "HighGrayLevelEmphasis",
    "LargeDependenceEmphasis",
    "LargeDependenceHighGrayLevelEmphasis",
    "LargeDependenceLowGrayLevelEmphasis",
    "LowGrayLevelEmphasis",
    "SmallDependenceEmphasis",
    "SmallDependenceHighGrayLevelEmphasis",
    "SmallDependenceLowGrayLevelEmphasis",
)

_NAMES = {
    "Ent": "DependenceEntropy",
    "JN": "DependenceNonUniformity",
    "JNN": "DependenceNonUniformityNormalized",
    "JV": "DependenceVariance",
    "GLN": "GrayLevelNonUniformity",
    "GLV": "GrayLevelVariance",
    "HGE": "HighGrayLevelEmphasis",
    "LE": "LargeDependenceEmphasis",
    "LHGE": "LargeDependenceHighGrayLevelEmphasis",
    "LLGE": "LargeDependenceLowGrayLevelEmphasis",
    "LGE": "LowGrayLevelEmphasis",
    "SE": "SmallDependenceEmphasis",
    "SHGE": "SmallDependenceHighGrayLevelEmphasis",
    "SLGE": "SmallDependenceLowGrayLevelEmphasis",
}


def matrices(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams, method: str = "auto"
) -> torch.Tensor:
    """Dependence counts ``[B, Ng, 2 A + 1]`` (float64; column ``k`` = ``k`` dependent neighbours).

    ``method``: ``"numpy"`` (CPU tensors: per offset one comparison of the padded flat grid with
    itself shifted, added to both voxels of each pair), ``"torch"`` (any device: shifted slices of
    the dense grid) or ``"auto"`` (numpy on CPU, torch elsewhere)."""
    if params.gldm_a < 0:
        raise ValueError(f"gldm_a must be >= 0, got {params.gldm_a}")
    if cpu_method(method, q) == "numpy":
        return _matrices_numpy(flat_grid(q, mask, n_levels, max(params.distances)), n_levels, params)
    return _matrices_torch(q, mask, n_levels, params)


def _matrices_numpy(grid: FlatGrid, n_levels: int, params: TextureParams) -> torch.Tensor:
    """Pairs ``(p, p + o)`` over the half-neighbourhood: with ``a = 0`` a dependence is ``g(p) =
    g(p + o)`` (never true against level 0 at a ROI voxel); otherwise both levels must be non-zero and
    ``|g(p) - g(p + o)| <= a``. Counts are only read at ROI voxels."""
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    nj = 2 * len(offs) + 1
    a = params.gldm_a
    g = grid.g
    if n_levels < 2**8 and a == 0:
        g = g.astype(np.uint8)
    elif n_levels < 2**15:
        g = g.astype(np.int16)
    dep: npt.NDArray[np.integer] = np.zeros(g.size, dtype=np.uint8 if nj <= 2**8 else np.int32)
    pos = g > 0
    for off in offs:
        s = grid.step(off)
        lo, hi = g[:-s], g[s:]
        if a == 0:
            e = lo == hi
        else:
            e = np.abs(hi - lo) <= a
            e &= pos[:-s]
            e &= pos[s:]
        dep[:-s] += e
        dep[s:] += e
    n1 = n_levels + 1
    idx = (grid.roi * n1 + grid.gv) * nj + dep[grid.v]
    p = np.bincount(idx, minlength=grid.n_rois * n1 * nj).reshape(grid.n_rois, n1, nj)[:, 1:]
    return torch.from_numpy(p.astype(np.float64))


def _matrices_torch(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams
) -> torch.Tensor:
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    b, nj = q.shape[0], 2 * len(offs) + 1
    dep = torch.zeros_like(q)
    for off in offs:
        src, dst = pair_slices(grid_shape(q), off)
        ok = mask[src] & mask[dst] & ((q[src] - q[dst]).abs() <= params.gldm_a)
        dep[src] += ok
        dep[dst] += ok
    roi = torch.arange(b, device=q.device).view(b, 1, 1, 1)
    idx = ((roi * n_levels + q - 1) * nj + dep)[mask]
    return torch.bincount(idx, minlength=b * n_levels * nj).to(torch.float64).view(b, n_levels, nj)


def _from_matrix(p: torch.Tensor, level_values: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    feats = size_matrix_features(p, torch.arange(1, p.shape[2] + 1, device=p.device), level_values)
    return {_NAMES[k]: v for k, v in feats.items() if k in _NAMES}


def compute(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams, method: str = "auto"
) -> dict[str, torch.Tensor]:
    """GLDM features of ``B`` ROIs: ``{name: float64 [B]}`` for every name in :data:`FEATURES`
    (``method`` as :func:`matrices`)."""
    if params.gldm_a < 0:
        raise ValueError(f"gldm_a must be >= 0, got {params.gldm_a}")
    na = len(angles(params.distances, params.force2d, params.force2d_dimension))
    level_values = None
    if params.gldm_a == 0:  # (dependence on equal levels only: renumbering keeps it; a > 0 needs values)
        q, n_levels, level_values = compact_levels(q, mask, n_levels)
    if cpu_method(method, q) == "numpy":
        res = by_grid_chunks(
            q,
            mask,
            n_levels,
            max(params.distances),
            per_voxel=8,
            per_roi_fixed=8 * (n_levels + 1) * (2 * na + 1),
            fn=lambda grid: _from_matrix(_matrices_numpy(grid, n_levels, params), level_values),
        )
    else:
        check_inputs(q, mask, n_levels)
        res = by_chunks(
            q,
            mask,
            per_voxel=6,
            per_roi_fixed=4 * n_levels * (2 * na + 1),
            fn=lambda qc, mc: _from_matrix(_matrices_torch(qc, mc, n_levels, params), level_values),
        )
    return {k: res[k] for k in FEATURES}
