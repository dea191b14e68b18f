"""First-order statistics (PyRadiomics ``firstorder``; IBSI 1 chapter 3.3 / 3.4), batched in torch.

``x`` is float64 ``[B, Z, Y, X]`` (ROIs padded to a common crop; ``mask`` False outside each ROI),
``q`` the discretised grey levels shared with the texture families. With ``N_p`` voxels ``x_i``:
Energy = sum (x_i + c)^2 (c = voxelArrayShift), TotalEnergy = V_voxel * Energy, RMS = sqrt(Energy/N_p),
Entropy = -sum p_i log2(p_i + eps) and Uniformity = sum p_i^2 over the grey-level histogram,
percentiles by linear interpolation (numpy's default), Variance = population variance,
StandardDeviation = its square root (enabled only by name, as in PyRadiomics),
Skewness = m3 / m2^1.5 and Kurtosis = m4 / m2^2 (0 for a flat ROI); in IBSI mode Kurtosis is
excess kurtosis (m4 / m2^2 - 3). RobustMeanAbsoluteDeviation uses the voxels in [P10, P90].
An ROI whose voxels all hold one value gets PyRadiomics' rounding of these moments on both paths
(:func:`_constant_roi_moments`).
"""

from __future__ import annotations

import functools
import time

import numpy as np
import torch

from radstore.radiomics._neighbours import numpy_path

FEATURES: tuple[str, ...] = (
    "10Percentile", "90Percentile", "Energy", "Entropy", "InterquartileRange", "Kurtosis", "Maximum",
    "Mean", "MeanAbsoluteDeviation", "Median", "Minimum", "Range", "RobustMeanAbsoluteDeviation",
    "RootMeanSquared", "Skewness", "StandardDeviation", "TotalEnergy", "Uniformity", "Variance",
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


def _percentile_ranks(n: int, p: float) -> tuple[int, int, float]:
    """numpy 'linear' percentile of ``n`` sorted values: ranks ``lo``, ``hi`` and weight ``t``."""
    pos = (n - 1) * (p / 100.0)
    lo = int(np.floor(pos))
    return lo, min(lo + 1, n - 1), pos - lo


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's _lerp: ``a + (b - a) t``, computed from the upper end when ``t >= 0.5``."""
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


SORT_ALWAYS_BELOW = 256  # below this many voxels a full sort is the fastest everywhere
HISTOGRAM_MIN = 8192  # from here on the histogram pre-selection may win (a few fixed-cost passes)
ORDER_METHODS = ("sort", "partition", "histogram")
HISTOGRAM_BINS = 4096


def histogram_select(v: np.ndarray, ranks: list[int], bins: int = HISTOGRAM_BINS) -> np.ndarray | None:
    """The values of rank ``ranks`` of ``v`` by a histogram pre-selection: with the bin index
    ``floor((v - min) * bins / (max - min))`` (monotone in ``v``, rounding included) the value of
    rank ``k`` lies in the first bin whose cumulative count exceeds ``k``, so one
    ``numpy.partition`` of the voxels of the (at most 10) wanted bins, at ranks shifted by the
    counts of the bins left out below, gives the exact values. ~5x faster than a partition of all
    voxels on a CT or filtered image (a few hundred voxels per wanted bin); None when the wanted
    bins hold over a quarter of the voxels (a very peaked histogram), ``v`` is not finite or its
    range does not scale to the bins."""
    lo, hi = float(v.min()), float(v.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    rk = np.asarray(ranks, dtype=np.intp)
    if hi == lo:
        return np.full(rk.size, lo)
    span = hi - lo
    scale = bins / span
    if not (np.isfinite(span) and np.isfinite(scale)):  # a range that overflows, or of denormals
        return None
    idx = ((v - lo) * scale).astype(np.intp)
    np.minimum(idx, bins - 1, out=idx)
    counts = np.bincount(idx, minlength=bins)
    below = np.cumsum(counts) - counts  # voxels in the bins below each bin
    rank_bin = np.searchsorted(below, rk, side="right") - 1
    wanted = np.zeros(bins, dtype=bool)
    wanted[rank_bin] = True
    kept = np.where(wanted, counts, 0)
    if kept.sum() * 4 > v.size:
        return None
    sub = v[wanted[idx]]
    shifted = rk - (below - (np.cumsum(kept) - kept))[rank_bin]  # ranks within ``sub``
    return np.partition(sub, np.unique(shifted))[shifted]


@functools.lru_cache(maxsize=2)
def _order_method_times(large: bool) -> dict[str, float]:
    """Best-of-3 seconds of each of :data:`ORDER_METHODS` for 10 ranks of 2^15 (``large``) or 1024
    normal values, timed once per process (~15 ms). Each trial draws new values: selection on the
    very same array again runs faster than on new data (the branch predictor learns its pivots)."""
    size = 1 << 15 if large else 1 << 10
    ranks = [int(f * (size - 1)) + d for f in (0.1, 0.25, 0.5, 0.75, 0.9) for d in (0, 1)]
    methods = ORDER_METHODS if large else ("sort", "partition")
    best = dict.fromkeys(methods, float("inf"))
    rng = np.random.default_rng(0)
    for _ in range(3):
        v = rng.normal(size=size)
        for method in methods:
            t0 = time.perf_counter()
            order_statistics(v, ranks, method)
            best[method] = min(best[method], time.perf_counter() - t0)
    return best


def fastest_order_method(n: int = 1 << 15, exact_only: bool = False) -> str:
    """The fastest of :data:`ORDER_METHODS` for ``n`` values on this CPU (``exact_only``: of the
    sort and the partition, which never decline): a sort below ``SORT_ALWAYS_BELOW``, else timed at
    1024 values (below ``HISTOGRAM_MIN``: sort or partition) or 2^15. Where NumPy dispatches a SIMD
    sort (x86-simd-sort, e.g. on AVX-512 Intel CPUs) the sort is 3-8x faster than the partition;
    where it has none for float64 (seen on AMD Zen 4, NumPy 2.4) it is 2-3x slower from 1000
    values; the histogram pre-selection does a few linear passes (on Zen 4 ~5x faster than the
    partition on 442k values). All give the same values, so the choice only changes the time."""
    if n < SORT_ALWAYS_BELOW:
        return "sort"
    large = n >= HISTOGRAM_MIN
    times = _order_method_times(large)
    candidates = ("sort", "partition") if exact_only or not large else ORDER_METHODS
    return min(candidates, key=lambda m: times[m])


def order_statistics(v: np.ndarray, ranks: list[int], method: str = "auto") -> np.ndarray:
    """The values of rank ``ranks`` (0-based, ascending order) of ``v``: from a full sort, from
    ``numpy.partition`` at those ranks or from :func:`histogram_select` (``method`` one of
    :data:`ORDER_METHODS`; where the histogram declines, the faster of the other two; ``"auto"``:
    the fastest for ``v.size`` values on this CPU, :func:`fastest_order_method`). Exact either way."""
    if method == "auto":
        method = fastest_order_method(v.size)
    if method == "histogram":
        got = histogram_select(v, ranks)
        if got is not None:
            return got
        method = fastest_order_method(v.size, exact_only=True)
    if method == "sort":
        return np.sort(v)[ranks]
    if method == "partition":
        return np.partition(v, sorted(set(ranks)))[ranks]
    raise ValueError(f"method must be auto or one of {ORDER_METHODS}; got {method!r}")


def _moments(v: np.ndarray, excess_kurtosis: bool
             ) -> tuple[float, np.ndarray, np.ndarray, float, float, float]:
    """``(mean, deviations, squared deviations, m2, skewness, kurtosis)`` of the voxel values ``v``
    (float64) in the NumPy path's arithmetic: mean ``sum / n``, ``m_k`` the mean k-th power of the
    deviations, skewness ``m3 / m2^1.5`` and kurtosis ``m4 / m2^2`` (minus 3 with
    ``excess_kurtosis``), both 0 when ``m2 == 0``."""
    n = v.size
    mean = v.sum() / n
    dev = v - mean
    d2 = dev * dev
    m2 = d2.sum() / n
    m3 = np.dot(d2, dev) / n
    m4 = np.dot(d2, d2) / n
    skew = 0.0 if m2 == 0 else m3 / m2 ** 1.5
    kurt = 0.0 if m2 == 0 else m4 / m2 ** 2
    if excess_kurtosis:
        kurt -= 3.0
    return float(mean), dev, d2, float(m2), float(skew), float(kurt)


def _constant_roi_moments(mean: torch.Tensor, m2: torch.Tensor, skew: torch.Tensor, kurt: torch.Tensor,
                          mn: torch.Tensor, mx: torch.Tensor, n: torch.Tensor, excess_kurtosis: bool) -> None:
    """For the ROIs whose voxels all hold one value (``mn == mx``), set the moment features in place
    to the NumPy path's (PyRadiomics') values: 0 in exact arithmetic, but there the mean, a sum / n,
    may differ from the value by rounding, which leaves every deviation equal to that difference, so
    skewness is +-1 and kurtosis 1, or 0 when the mean is exact. Which one depends on the order of
    the sum, so the torch path's own reduction (e.g. a filtered constant image's ROI, all ~1e-14)
    gave another answer; the NumPy arithmetic needs only the value and the count."""
    same = torch.nonzero(mn == mx).flatten().tolist()
    if not same:
        return
    values, counts = mn.cpu().tolist(), n.cpu().tolist()
    for b in same:
        mean_b, _, _, m2_b, skew_b, kurt_b = _moments(np.full(int(counts[b]), values[b]), excess_kurtosis)
        mean[b], m2[b], skew[b], kurt[b] = mean_b, m2_b, skew_b, kurt_b


def _compute_numpy(x: np.ndarray, mask: np.ndarray, q: np.ndarray, voxel_volume: np.ndarray,
                   voxel_array_shift: float, excess_kurtosis: bool,
                   order_method: str = "auto") -> dict[str, np.ndarray]:
    """CPU path of :func:`compute`: per ROI on its voxel values only (in mask order, as PyRadiomics),
    the minimum, maximum and the ranks of the 5 percentiles from :func:`order_statistics`
    (``order_method``), the robust MAD over the voxels in [P10, P90], the histogram over the ROI's
    own levels (not the batch's: its sums then do not depend on the other ROIs)."""
    rows: list[dict[str, float]] = []
    for xb, mb, qb, vv in zip(x, mask, q, voxel_volume, strict=True):
        v = xb[mb].astype(np.float64, copy=False)
        n = v.size
        if n == 0:
            raise ValueError("first-order features need a non-empty ROI")
        pct = [_percentile_ranks(n, p) for p in (10, 25, 50, 75, 90)]
        ranks = [0, n - 1, *(r for lo, hi, _ in pct for r in (lo, hi))]
        stats = order_statistics(v, ranks, order_method).tolist()
        mn, mx = stats[0], stats[1]
        p10, p25, p50, p75, p90 = (_lerp(stats[2 + 2 * k], stats[3 + 2 * k], t)
                                   for k, (_, _, t) in enumerate(pct))
        mean, dev, d2, m2, skew, kurt = _moments(v, excess_kurtosis)
        sh = v + voxel_array_shift if voxel_array_shift else v
        energy = float(np.dot(sh, sh))
        counts = np.bincount(qb[mb])[1:]  # (the ROI's own bins: sums independent of the batch)
        inner = v[(v >= p10) & (v <= p90)]
        with np.errstate(invalid="ignore"):  # no voxel in [P10, P90]: NaN, as the torch path
            mean_in = inner.sum() / inner.size
            rmad = np.abs(inner - mean_in).sum() / inner.size
        mad = float(np.abs(dev, out=d2).sum() / n)
        pr = counts / n
        rows.append({
            "10Percentile": p10, "90Percentile": p90, "Energy": energy,
            "Entropy": float(-(pr * np.log2(pr + _EPS)).sum()), "InterquartileRange": p75 - p25,
            "Kurtosis": float(kurt), "Maximum": mx, "Mean": float(mean),
            "MeanAbsoluteDeviation": mad, "Median": p50, "Minimum": mn,
            "Range": mx - mn, "RobustMeanAbsoluteDeviation": float(rmad),
            "RootMeanSquared": float(np.sqrt(energy / n)), "Skewness": float(skew),
            "StandardDeviation": float(np.sqrt(m2)), "TotalEnergy": energy * float(vv),
            "Uniformity": float((pr * pr).sum()), "Variance": float(m2),
        })
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in FEATURES}


def compute(x: torch.Tensor, mask: torch.Tensor, q: torch.Tensor, n_levels: int,
            voxel_volume: torch.Tensor | float, voxel_array_shift: float = 0.0,
            excess_kurtosis: bool = False, method: str = "auto") -> dict[str, torch.Tensor]:
    """All 18 first-order features and StandardDeviation, each a float64 tensor ``[B]``. ``q`` must
    be the discretisation of ``x`` (levels 1..n_levels inside the ROI, non-decreasing in the value),
    as ``discretise`` gives it. ``method``: ``"numpy"`` (CPU tensors, per-ROI NumPy), ``"torch"`` (any device,
    batched) or ``"auto"`` (numpy on CPU)."""
    if method == "auto":
        method = "numpy" if numpy_path(x) else "torch"
    if method == "numpy":
        volumes = voxel_volume.numpy() if isinstance(voxel_volume, torch.Tensor) else voxel_volume
        vv = np.broadcast_to(np.asarray(volumes, dtype=np.float64), (x.shape[0],))
        res = _compute_numpy(x.numpy(), mask.numpy(), q.numpy(), vv, voxel_array_shift,
                             excess_kurtosis)
        return {k: torch.from_numpy(v) for k, v in res.items()}
    if method != "torch":
        raise ValueError(f"method must be auto, numpy or torch; got {method!r}")
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
    _constant_roi_moments(mean, m2, skew, kurt, mn, mx, n, excess_kurtosis)
    inner = m & (xf >= p10[:, None]) & (xf <= p90[:, None])
    n_in = inner.sum(1).to(torch.float64)
    mean_in = torch.where(inner, xf, zero).sum(1) / n_in
    rmad = torch.where(inner, (xf - mean_in[:, None]).abs(), zero).sum(1) / n_in
    counts = torch.zeros(b, n_levels + 1, dtype=torch.float64, device=xf.device)
    counts.scatter_add_(1, torch.where(m, q.reshape(b, -1), 0), m.to(torch.float64))
    p = counts[:, 1:] / nf[:, None]
    entropy = -(p * torch.log2(p + _EPS)).sum(1)
    uniformity = (p ** 2).sum(1)
    vol = torch.as_tensor(voxel_volume, dtype=torch.float64, device=xf.device)
    return {
        "10Percentile": p10, "90Percentile": p90, "Energy": energy, "Entropy": entropy,
        "InterquartileRange": p75 - p25, "Kurtosis": kurt, "Maximum": mx, "Mean": mean,
        "MeanAbsoluteDeviation": dev.abs().sum(1) / nf, "Median": p50, "Minimum": mn, "Range": mx - mn,
        "RobustMeanAbsoluteDeviation": rmad, "RootMeanSquared": torch.sqrt(energy / nf),
        "Skewness": skew, "StandardDeviation": torch.sqrt(m2), "TotalEnergy": energy * vol,
        "Uniformity": uniformity, "Variance": m2,
    }
