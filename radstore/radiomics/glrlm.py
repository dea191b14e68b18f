"""Grey Level Run Length Matrix (GLRLM) features, batched over ROIs (PyRadiomics 3.1 semantics).

For each of PyRadiomics' directions at distance 1 (13 in 3D, 4 with force2D) ``P_a(i, j)`` counts
the runs -- maximal sequences of consecutive ROI voxels along the direction with the same grey level
``i`` -- of length ``j`` (Galloway, Comput. Graph. Image Process. 1975; IBSI). As PyRadiomics: a
direction in which no line holds two ROI voxels is dropped; with ``weighting_norm`` the directions
are merged as ``sum_a ||a * spacing|| P_a``; features (see :mod:`._matrix_features`) are computed
per direction and averaged over the remaining ones.

Implementation: per direction the voxels are gathered in line order (cached per grid shape),
run starts are found by comparing each voxel with its predecessor, run ids by a cumulative sum and
run lengths by ``bincount``.

Degenerate ROIs: a ROI where no line holds two voxels (e.g. one voxel) has no GLRLM; PyRadiomics
then returns NaN for every feature and so do we (documented, with a warning).
"""

from __future__ import annotations

import math
import warnings

import torch

from radstore.radiomics._matrix_features import size_matrix_features
from radstore.radiomics._neighbours import angle_mean, angles, by_chunks, check_inputs, line_order
from radstore.radiomics.texture_params import TextureParams

FEATURES: tuple[str, ...] = (
    "GrayLevelNonUniformity",
    "GrayLevelNonUniformityNormalized",
    "GrayLevelVariance",
    "HighGrayLevelRunEmphasis",
    "LongRunEmphasis",
    "LongRunHighGrayLevelEmphasis",
    "LongRunLowGrayLevelEmphasis",
    "LowGrayLevelRunEmphasis",
    "RunEntropy",
    "RunLengthNonUniformity",
    "RunLengthNonUniformityNormalized",
    "RunPercentage",
    "RunVariance",
    "ShortRunEmphasis",
    "ShortRunHighGrayLevelEmphasis",
    "ShortRunLowGrayLevelEmphasis",
)

_NAMES = {
    "GLN": "GrayLevelNonUniformity",
    "GLNN": "GrayLevelNonUniformityNormalized",
    "GLV": "GrayLevelVariance",
    "HGE": "HighGrayLevelRunEmphasis",
    "LE": "LongRunEmphasis",
    "LHGE": "LongRunHighGrayLevelEmphasis",
    "LLGE": "LongRunLowGrayLevelEmphasis",
    "LGE": "LowGrayLevelRunEmphasis",
    "Ent": "RunEntropy",
    "JN": "RunLengthNonUniformity",
    "JNN": "RunLengthNonUniformityNormalized",
    "Perc": "RunPercentage",
    "JV": "RunVariance",
    "SE": "ShortRunEmphasis",
    "SHGE": "ShortRunHighGrayLevelEmphasis",
    "SLGE": "ShortRunLowGrayLevelEmphasis",
}


def _weights(offs: list[tuple[int, int, int]], params: TextureParams) -> list[float] | None:
    """PyRadiomics' GLRLM direction weights (the distance itself, not exp) or None."""
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


def matrices(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run-length counts ``[B, A, Ng, Nr]`` (float64; ``j = 1..Nr``) and the direction validity
    ``[B, A]`` (some line of the direction holds two ROI voxels)."""
    offs = angles((1,), params.force2d, params.force2d_dimension)
    b, na = q.shape[0], len(offs)
    shape = tuple(q.shape[1:])
    qf, mf = q.flatten(1), mask.flatten(1)
    groups, levels, lengths = [], [], []
    valid = torch.zeros(b, na, dtype=torch.bool, device=q.device)
    roi = torch.arange(b, device=q.device).view(b, 1)
    for ai, off in enumerate(offs):
        order, line_id = line_order(shape, off, q.device)
        qo, mo = qf[:, order], mf[:, order]
        n_lines = int(line_id[-1]) + 1
        same_line = torch.zeros_like(line_id, dtype=torch.bool)
        same_line[1:] = line_id[1:] == line_id[:-1]
        cont = torch.zeros_like(mo)
        cont[:, 1:] = same_line[1:] & mo[:, :-1] & (qo[:, 1:] == qo[:, :-1])
        start = mo & ~cont
        run_id = torch.cumsum(start.flatten(), 0) - 1
        n_runs = int(run_id[-1]) + 1
        if n_runs == 0:
            continue
        lens = torch.bincount(run_id[mo.flatten()], minlength=n_runs)
        per_line = torch.bincount(
            (roi * n_lines + line_id).flatten(), weights=mo.flatten().to(torch.float64), minlength=b * n_lines
        ).view(b, n_lines)
        valid[:, ai] = per_line.amax(1) > 1
        rb = roi.expand_as(start)[start]
        groups.append(rb * na + ai)
        levels.append(qo[start] - 1)
        lengths.append(lens)
    if not groups:
        return torch.zeros(b, na, n_levels, 1, dtype=torch.float64, device=q.device), valid
    g, lv, ln = torch.cat(groups), torch.cat(levels), torch.cat(lengths)
    nr = int(ln.max())
    idx = (g * n_levels + lv) * nr + (ln - 1)
    p = torch.bincount(idx, minlength=b * na * n_levels * nr).to(torch.float64).view(b, na, n_levels, nr)
    p = p * valid.view(b, na, 1, 1)
    return p, valid


def _compute_chunk(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams
) -> dict[str, torch.Tensor]:
    p, valid = matrices(q, mask, n_levels, params)
    b, na, ng, nr = p.shape
    w = _weights(angles((1,), params.force2d, params.force2d_dimension), params)
    if w is not None:
        p = (p * torch.tensor(w, dtype=torch.float64, device=p.device).view(1, -1, 1, 1)).sum(1, keepdim=True)
        valid = p.sum(dim=(2, 3)) > 0
        na = 1
    jv = torch.arange(1, nr + 1, device=p.device)
    feats = size_matrix_features(p.reshape(b * na, ng, nr), jv)
    return {_NAMES[k]: angle_mean(v.view(b, na), valid) for k, v in feats.items()}


def compute(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams
) -> dict[str, torch.Tensor]:
    """GLRLM features of ``B`` ROIs: ``{name: float64 [B]}`` for every name in :data:`FEATURES`."""
    check_inputs(q, mask, n_levels)
    na = len(angles((1,), params.force2d, params.force2d_dimension))
    res = by_chunks(
        q,
        mask,
        per_voxel=8 * na,
        per_roi_fixed=4 * na * n_levels * max(q.shape[1:]),
        fn=lambda qc, mc: _compute_chunk(qc, mc, n_levels, params),
    )
    bad = torch.isnan(res["RunPercentage"]).nonzero().flatten().tolist()
    if bad:
        warnings.warn(
            f"GLRLM: ROI(s) {bad} have no line with two voxels; their GLRLM features are NaN "
            "(as PyRadiomics)",
            RuntimeWarning,
            stacklevel=2,
        )
    return {k: res[k] for k in FEATURES}
