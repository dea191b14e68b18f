"""First-order statistics (PyRadiomics ``firstorder``; IBSI 1 chapter 3.3 / 3.4), batched in torch.

``x`` is float64 ``[B, Z, Y, X]`` (ROIs padded to a common crop; ``mask`` False outside each ROI),
``q`` the discretised grey levels shared with the texture families. With ``N_p`` voxels ``x_i``:
Energy = sum (x_i + c)^2 (c = voxelArrayShift), TotalEnergy = V_voxel * Energy, RMS = sqrt(Energy/N_p),
Entropy = -sum p_i log2(p_i + eps) and Uniformity = sum p_i^2 over the grey-level histogram,
percentiles by linear interpolation (numpy's default), Variance = population variance,
Skewness = m3 / m2^1.5 and Kurtosis = m4 / m2^2 (0 for a flat ROI); in IBSI mode Kurtosis is
excess kurtosis (m4 / m2^2 - 3). RobustMeanAbsoluteDeviation uses the voxels in [P10, P90].
"""

from __future__ import annotations

import numpy as np
import torch

FEATURES: tuple[str, ...] = (
    "10Percentile", "90Percentile", "Energy", "Entropy", "InterquartileRange", "Kurtosis", "Maximum",
    "Mean", "MeanAbsoluteDeviation", "Median", "Minimum", "Range", "RobustMeanAbsoluteDeviation",
    "RootMeanSquared", "Skewness", "TotalEnergy", "Uniformity", "Variance",
)
_EPS = float(np.spacing(1))


def _percentile(sorted_x: torch.Tensor, n: torch.Tensor, p: float) -> torch.Tensor:
    """numpy 'linear' percentile of each row's first n[b] sorted values."""
    pos = (n - 1).to(sorted_x.dtype) * (p / 100.0)
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, n - 1)
    t = pos - lo.to(pos.dtype)
    a = sorted_x.gather(1, lo[:, None])[:, 0]
    b = sorted_x.gather(1, hi[:, None])[:, 0]
    # numpy's _lerp: a + (b - a) t, computed from the upper end when t >= 0.5
    return torch.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)


def compute(x: torch.Tensor, mask: torch.Tensor, q: torch.Tensor, n_levels: int,
            voxel_volume: torch.Tensor | float, voxel_array_shift: float = 0.0,
            excess_kurtosis: bool = False) -> dict[str, torch.Tensor]:
    """All 18 first-order features, each a float64 tensor ``[B]``."""
    b = x.shape[0]
    xf = x.reshape(b, -1).to(torch.float64)
    m = mask.reshape(b, -1)
    n = m.sum(1)
    if bool((n == 0).any()):
        raise ValueError("first-order features need a non-empty ROI")
    nf = n.to(torch.float64)
    zero = torch.zeros((), dtype=xf.dtype, device=xf.device)
    xm = torch.where(m, xf, zero)
    mean = xm.sum(1) / nf
    dev = torch.where(m, xf - mean[:, None], zero)
    m2 = (dev ** 2).sum(1) / nf
    m3 = (dev ** 3).sum(1) / nf
    m4 = (dev ** 4).sum(1) / nf
    flat = m2 == 0
    m2s = torch.where(flat, torch.ones_like(m2), m2)
    skew = torch.where(flat, zero, m3 / m2s ** 1.5)
    kurt = torch.where(flat, zero, m4 / m2s ** 2)
    if excess_kurtosis:
        kurt = kurt - 3.0
    shifted = torch.where(m, xf + voxel_array_shift, zero)
    energy = (shifted ** 2).sum(1)
    inf = torch.tensor(float("inf"), dtype=xf.dtype, device=xf.device)
    sorted_x = torch.where(m, xf, inf).sort(1).values
    mn = sorted_x[:, 0]
    mx = sorted_x.gather(1, (n - 1)[:, None])[:, 0]
    p10 = _percentile(sorted_x, n, 10)
    p25 = _percentile(sorted_x, n, 25)
    p50 = _percentile(sorted_x, n, 50)
    p75 = _percentile(sorted_x, n, 75)
    p90 = _percentile(sorted_x, n, 90)
    inner = m & (xf >= p10[:, None]) & (xf <= p90[:, None])
    n_in = inner.sum(1).to(torch.float64)
    mean_in = torch.where(inner, xf, zero).sum(1) / n_in
    rmad = torch.where(inner, (xf - mean_in[:, None]).abs(), zero).sum(1) / n_in
    counts = torch.zeros(b, n_levels + 1, dtype=torch.float64, device=xf.device)
    counts.scatter_add_(1, torch.where(m, q.reshape(b, -1), 0), m.to(torch.float64))
    p = counts[:, 1:] / nf[:, None]
    entropy = -(p * torch.log2(p + _EPS)).sum(1)
    uniformity = (p ** 2).sum(1)
    vv = torch.as_tensor(voxel_volume, dtype=torch.float64, device=xf.device)
    return {
        "10Percentile": p10, "90Percentile": p90, "Energy": energy, "Entropy": entropy,
        "InterquartileRange": p75 - p25, "Kurtosis": kurt, "Maximum": mx, "Mean": mean,
        "MeanAbsoluteDeviation": dev.abs().sum(1) / nf, "Median": p50, "Minimum": mn, "Range": mx - mn,
        "RobustMeanAbsoluteDeviation": rmad, "RootMeanSquared": torch.sqrt(energy / nf),
        "Skewness": skew, "TotalEnergy": energy * vv, "Uniformity": uniformity, "Variance": m2,
    }
