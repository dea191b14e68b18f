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

import torch

from radstore.radiomics._matrix_features import size_matrix_features
from radstore.radiomics._neighbours import angles, by_chunks, check_inputs, pair_slices
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


def matrices(q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams) -> torch.Tensor:
    """Dependence counts ``[B, Ng, 2 A + 1]`` (float64; column ``k`` = ``k`` dependent neighbours)."""
    if params.gldm_a < 0:
        raise ValueError(f"gldm_a must be >= 0, got {params.gldm_a}")
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    b, nj = q.shape[0], 2 * len(offs) + 1
    dep = torch.zeros_like(q)
    for off in offs:
        src, dst = pair_slices(tuple(q.shape[1:]), off)
        ok = mask[src] & mask[dst] & ((q[src] - q[dst]).abs() <= params.gldm_a)
        dep[src] += ok
        dep[dst] += ok
    roi = torch.arange(b, device=q.device).view(b, 1, 1, 1)
    idx = ((roi * n_levels + q - 1) * nj + dep)[mask]
    return torch.bincount(idx, minlength=b * n_levels * nj).to(torch.float64).view(b, n_levels, nj)


def _compute_chunk(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams
) -> dict[str, torch.Tensor]:
    p = matrices(q, mask, n_levels, params)
    feats = size_matrix_features(p, torch.arange(1, p.shape[2] + 1, device=p.device))
    return {_NAMES[k]: v for k, v in feats.items() if k in _NAMES}


def compute(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams
) -> dict[str, torch.Tensor]:
    """GLDM features of ``B`` ROIs: ``{name: float64 [B]}`` for every name in :data:`FEATURES`."""
    check_inputs(q, mask, n_levels)
    na = len(angles(params.distances, params.force2d, params.force2d_dimension))
    res = by_chunks(
        q,
        mask,
        per_voxel=6,
        per_roi_fixed=4 * n_levels * (2 * na + 1),
        fn=lambda qc, mc: _compute_chunk(qc, mc, n_levels, params),
    )
    return {k: res[k] for k in FEATURES}
