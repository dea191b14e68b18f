"""Grey Level Co-occurrence Matrix (GLCM) features, batched over ROIs (PyRadiomics 3.1 semantics).

For every direction ``a`` of :func:`radstore.radiomics._neighbours.angles` (13 in 3D, 4 with
force2D, more for distances > 1) ``P_a(i, j)`` counts ROI voxel pairs ``(p, p + a)`` with grey levels
``(i, j)`` (Haralick et al., IEEE Trans. SMC 1973; Zwanenburg et al., IBSI, Radiology 2020).
As PyRadiomics: the matrix is made symmetrical (``P + P^T``) unless ``symmetrical_glcm`` is False;
with a ``weighting_norm`` the directions are merged, ``P = sum_a w_a P_a`` with
``w_a = exp(-||a * spacing||^2)``; each matrix is normalised to sum 1; features are computed per
direction and averaged over the non-empty directions. ``i, j`` are the grey-level values, ``Ng`` of
Idmn/Idn the largest grey level in the ROI; grey levels absent from the ROI only add zero rows.

Degenerate ROIs: a ROI without any voxel pair at the configured distances (e.g. one voxel) has no
GLCM; PyRadiomics then returns NaN for every feature and so do we (documented, with a warning).
``MCC`` is 1 when the ROI holds a single grey level (PyRadiomics' rule). ``Imc2`` is set to 0 when
``HXY2 - HXY`` is not positive (PyRadiomics: exactly 0 when equal; rounding-level negatives would
give its NaN).
"""

from __future__ import annotations

import warnings

import torch

from radstore.radiomics._neighbours import EPS, angle_mean, angles, by_chunks, check_inputs, pair_slices
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
    norm = params.weighting_norm
    if norm is None:
        return None
    sp = params.spacing_zyx
    out = []
    for a in offs:
        comp = [abs(c) * s for c, s in zip(a, sp, strict=True)]
        if norm == "infinity":
            out.append(torch.exp(torch.tensor(-(max(comp) ** 2), dtype=torch.float64)).item())
        elif norm == "euclidean":
            out.append(torch.exp(torch.tensor(-sum(c * c for c in comp), dtype=torch.float64)).item())
        elif norm == "manhattan":
            out.append(torch.exp(torch.tensor(-(sum(comp) ** 2), dtype=torch.float64)).item())
        elif norm == "no_weighting":
            out.append(1.0)
        else:
            raise ValueError(
                f"weighting_norm must be manhattan, euclidean, infinity or no_weighting; got {norm!r}"
            )
    return out


def matrices(q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams) -> torch.Tensor:
    """Raw co-occurrence counts ``[B, A, Ng, Ng]`` (float64, before symmetrisation/weighting)."""
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    b, ng, na = q.shape[0], n_levels, len(offs)
    base = (torch.arange(b, device=q.device) * ng * ng).view(b, 1, 1, 1)
    lvl = q - 1
    total = b * na * ng * ng
    counts = torch.zeros(total + 1, dtype=torch.int64, device=q.device)
    for ai, off in enumerate(offs):
        src, dst = pair_slices(tuple(q.shape[1:]), off)
        valid = mask[src] & mask[dst]
        if not bool(valid.any()):
            continue
        idx = base + (ai * b * ng * ng) + lvl[src] * ng + lvl[dst]
        idx = torch.where(valid, idx, total)
        counts += torch.bincount(idx.flatten(), minlength=total + 1)
    return counts[:total].view(na, b, ng, ng).transpose(0, 1).to(torch.float64)


def _features(p: torch.Tensor, ng_roi: torch.Tensor, n_present: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-direction GLCM features ``[B, A]`` from normalised matrices ``p`` [B, A, N, N] (PyRadiomics
    formulas), then averaged over valid directions."""
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

    out: dict[str, torch.Tensor] = {}
    hxy = -s2(p * torch.log2(p + EPS))
    ipj = (i + j) - uxe - uye
    out["Autocorrelation"] = s2(p * (i * j))
    out["ClusterProminence"] = s2(p * ipj**4)
    out["ClusterShade"] = s2(p * ipj**3)
    out["ClusterTendency"] = s2(p * ipj**2)
    out["Contrast"] = s2(p * (i - j) ** 2)
    sigx = s2(p * (i - uxe) ** 2).sqrt()
    sigy = s2(p * (j - uye) ** 2).sqrt()
    corm = s2(p * (i - uxe) * (j - uye))
    corr = corm / (sigx * sigy + EPS)
    out["Correlation"] = torch.where(sigx * sigy == 0, torch.ones_like(corr), corr)
    diffavg = (k_diff * pxs).sum(-1)
    out["DifferenceAverage"] = diffavg
    out["DifferenceEntropy"] = -(pxs * torch.log2(pxs + EPS)).sum(-1)
    out["DifferenceVariance"] = (pxs * (k_diff - diffavg[..., None]) ** 2).sum(-1)
    out["JointEnergy"] = s2(p * p)
    out["JointEntropy"] = hxy
    hx = -(px * torch.log2(px + EPS)).sum(-1)
    hy = -(py * torch.log2(py + EPS)).sum(-1)
    pxpy = px[..., :, None] * py[..., None, :]
    hxy1 = -s2(p * torch.log2(pxpy + EPS))
    hxy2 = -s2(pxpy * torch.log2(pxpy + EPS))
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
    out["MaximumProbability"] = p.amax(dim=(-2, -1))
    out["SumAverage"] = (k_sum * pxa).sum(-1)
    out["SumEntropy"] = -(pxa * torch.log2(pxa + EPS)).sum(-1)
    out["SumSquares"] = s2(p * (i - uxe) ** 2)
    # MCC: second largest eigenvalue of Q(i,k) = sum_g P(i,g) P(k,g) / (px(i) py(g) + eps)
    q_mat = (p / (pxpy + EPS)) @ p.transpose(-2, -1)
    ev = torch.linalg.eigvals(q_mat).real if n > 1 else torch.zeros(bsz, na, 1, device=dev, dtype=f64)
    ev = torch.sort(ev, dim=-1).values
    second = ev[..., -2] if n > 1 else ev[..., -1]
    mcc = second.clamp(min=0).sqrt()
    res = {k: angle_mean(v, valid) for k, v in out.items()}
    res["MCC"] = torch.where(n_present < 2, torch.ones(bsz, device=dev, dtype=f64), angle_mean(mcc, valid))
    ja = torch.where(valid, ux, torch.zeros_like(ux)).sum(1) / valid.sum(1)
    res["JointAverage"] = ja
    return {k: res[k] for k in FEATURES}


def _compute_chunk(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams
) -> dict[str, torch.Tensor]:
    p = matrices(q, mask, n_levels, params)
    if params.symmetrical_glcm:
        p = p + p.transpose(2, 3)
    w = _weights(angles(params.distances, params.force2d, params.force2d_dimension), params)
    if w is not None:
        p = (p * torch.tensor(w, dtype=torch.float64, device=p.device).view(1, -1, 1, 1)).sum(1, keepdim=True)
    tot = p.sum(dim=(2, 3), keepdim=True)
    p = p / torch.where(tot > 0, tot, torch.ones_like(tot))
    qm = torch.where(mask, q, torch.zeros_like(q)).flatten(1)
    ng_roi = qm.amax(1)
    present = torch.zeros(q.shape[0], n_levels + 1, dtype=torch.bool, device=q.device)
    present.scatter_(1, qm, True)
    n_present = present[:, 1:].sum(1)
    return _features(p, ng_roi, n_present)


def compute(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams
) -> dict[str, torch.Tensor]:
    """GLCM features of ``B`` ROIs: ``{name: float64 [B]}`` for every name in :data:`FEATURES`."""
    check_inputs(q, mask, n_levels)
    na = len(angles(params.distances, params.force2d, params.force2d_dimension))
    res = by_chunks(
        q,
        mask,
        per_voxel=4,
        per_roi_fixed=16 * na * n_levels * n_levels,
        fn=lambda qc, mc: _compute_chunk(qc, mc, n_levels, params),
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
