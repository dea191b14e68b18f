"""Compiled CPU loops (numba) where NumPy's per-pass or per-call cost dominated.

- Texture matrices. On a :class:`~radstore.radiomics._neighbours.FlatGrid` (ROI voxels ``v``
  ascending, ROI ``r``'s voxels at ``v[bounds[r]:bounds[r + 1]]``, padding of level 0 around every
  ROI block) one pass over the ROI voxels per direction replaces the NumPy kernels' temporaries:
  the GLCM adds ``(g(p), g(p + s))`` pairs straight into its counts, the GLRLM carries each voxel's
  run length so far from ``p - s`` to ``p`` (``p - s`` comes first: every direction's linear step
  ``s`` is positive) and counts a run where the next voxel along ``s`` has another level. The
  results are the NumPy kernels' integer counts, exactly.
- Feature formulas of small matrices: the GLCM per-direction features (and MCC's symmetrised
  matrices), the size-matrix features of GLRLM/GLSZM/GLDM and the NGTDM features, the NumPy
  formulas with each sum taken in one loop (equal to ~1e-15 relative; dozens of NumPy calls per
  family before). Each sum runs over the cells in increasing level order and an absent grey level
  adds exactly 0 (NumPy's pairwise sums group the terms by the array's length), so a ROI's
  features are the same bits in any batch: alone, beside ROIs of more levels, or with the batch's
  levels compacted.
- The B-spline resampling rows of :func:`.resample.bspline_axis`, bit for bit.

All are tested against the NumPy code (``tests/radiomics/test_compiled_kernels.py``). numba
compiles each loop on first use and caches the machine code beside this file (else in the user's
cache); where numba is not installed (it is a dependency; the GPU check's package bundle lacks it)
or with ``RADSTORE_COMPILED_KERNELS=0`` the NumPy code runs instead.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from radstore.radiomics._neighbours import FlatGrid

_WANTED = os.environ.get("RADSTORE_COMPILED_KERNELS", "1") != "0"
try:
    if not _WANTED:  # (not even imported: its LLVM's allocations change the process's heap)
        raise ImportError
    import numba
except ImportError:  # numba is a dependency; a stripped environment falls back
    numba = None  # type: ignore[assignment]

#: Whether the CPU path uses these loops (numba installed and ``RADSTORE_COMPILED_KERNELS`` not 0).
ENABLED: bool = numba is not None


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    if numba is None:  # pragma: no cover
        return fn
    return numba.njit(cache=True, nogil=True, boundscheck=False)(fn)


@_jit
def _collect(scratch: np.ndarray, w: int, spread: bool, out: np.ndarray) -> None:
    """``out = scratch[:w]`` (plus the other three tables of ``w`` cells when ``spread``)."""
    for i in range(w):
        out[i] = scratch[i]
    if spread:
        for i in range(w):
            out[i] += scratch[w + i] + scratch[2 * w + i] + scratch[3 * w + i]


@_jit
def _run_voxel(g: np.ndarray, p: np.uint64, s: np.uint64, run: np.ndarray, nr: int, table: int,
               scratch: np.ndarray) -> bool:
    """Carry the run length to voxel ``p`` along ``s``; where the run ends count it in ``scratch``
    at ``table + level * nr + length`` (``table``: the ROI's table offset minus 1). Returns
    ``g(p + s) != 0``."""
    level = g[p]
    before = p - s
    length = 1 + (g[before] == level) * run[before]
    run[p] = length
    after = g[p + s]
    scratch[table + level * nr + min(length, nr)] += after != level
    return after != 0


@_jit
def _glrlm_counts(g: np.ndarray, v: np.ndarray, bounds: np.ndarray, steps: np.ndarray, n1: int, nr: int,
                  scratch: np.ndarray, run: np.ndarray, counts: np.ndarray, adjacent: np.ndarray) -> None:
    """``counts[a, (r * n1 + level) * nr + length - 1] += 1`` per run along ``steps[a]`` (lengths
    clipped at ``nr``); ``adjacent[r, a]``: two ROI voxels of ROI ``r`` are neighbours along it.
    Voxel ``k`` counts into scratch table ``k % 4`` when ``scratch`` holds four (see
    :func:`_glcm_counts`)."""
    w = (bounds.size - 1) * n1 * nr
    spread = scratch.size == 4 * w
    t1, t2, t3 = (w, 2 * w, 3 * w) if spread else (0, 0, 0)
    for a in range(steps.size):
        s = np.uint64(steps[a])
        scratch[:] = 0
        for r in range(bounds.size - 1):
            touching = False
            base = r * n1 * nr - 1
            k = bounds[r]
            end = bounds[r + 1]
            while k + 4 <= end:
                touching |= _run_voxel(g, np.uint64(v[k]), s, run, nr, base, scratch)
                touching |= _run_voxel(g, np.uint64(v[k + 1]), s, run, nr, t1 + base, scratch)
                touching |= _run_voxel(g, np.uint64(v[k + 2]), s, run, nr, t2 + base, scratch)
                touching |= _run_voxel(g, np.uint64(v[k + 3]), s, run, nr, t3 + base, scratch)
                k += 4
            while k < end:
                touching |= _run_voxel(g, np.uint64(v[k]), s, run, nr, base, scratch)
                k += 1
            adjacent[r, a] = touching
        _collect(scratch, w, spread, counts[a])


@_jit
def _glcm_counts(g: np.ndarray, v: np.ndarray, bounds: np.ndarray, steps: np.ndarray, n1: int,
                 scratch: np.ndarray, counts: np.ndarray) -> None:
    """``counts[a, (r * n1 + g(p)) * n1 + g(p + steps[a])] += 1`` over the ROI voxels ``p`` of
    every ROI ``r`` (column 0: the neighbour lies outside the ROI).

    Where ``scratch`` holds four tables voxel ``k`` adds into table ``k % 4``: consecutive voxels
    often hit the same cell, and four tables break the chain of read-modify-writes on one address
    (3x faster on few levels)."""
    w = (bounds.size - 1) * n1 * n1
    spread = scratch.size == 4 * w
    t1, t2, t3 = (w, 2 * w, 3 * w) if spread else (0, 0, 0)
    for a in range(steps.size):
        s = np.uint64(steps[a])
        scratch[:] = 0
        for r in range(bounds.size - 1):
            base = r * n1 * n1
            k = bounds[r]
            end = bounds[r + 1]
            while k + 4 <= end:
                p0, p1 = np.uint64(v[k]), np.uint64(v[k + 1])
                p2, p3 = np.uint64(v[k + 2]), np.uint64(v[k + 3])
                scratch[base + g[p0] * n1 + g[p0 + s]] += 1
                scratch[t1 + base + g[p1] * n1 + g[p1 + s]] += 1
                scratch[t2 + base + g[p2] * n1 + g[p2 + s]] += 1
                scratch[t3 + base + g[p3] * n1 + g[p3 + s]] += 1
                k += 4
            while k < end:
                p0 = np.uint64(v[k])
                scratch[base + g[p0] * n1 + g[p0 + s]] += 1
                k += 1
        _collect(scratch, w, spread, counts[a])


@_jit
def _bspline_rows(x: np.ndarray, n: int, zero_outside: bool, idx: np.ndarray, weights: np.ndarray,
                  inside: np.ndarray) -> None:
    """Per position ``x[i]``: ITK's support indices ``idx[i]`` (mirrored, clipped), weights
    ``weights[i]`` and whether the row is kept (``inside[i]``), as :func:`.resample.bspline_axis`."""
    for i in range(x.size):
        k1 = math.floor(np.float32(x[i]))
        w = x[i] - k1
        w3 = (1.0 / 6.0) * w * w * w
        w0 = (1.0 / 6.0) + 0.5 * w * (w - 1.0) - w3
        w2 = w + w0 - 2.0 * w3
        weights[i, 0] = w0
        weights[i, 1] = 1.0 - w0 - w2 - w3
        weights[i, 2] = w2
        weights[i, 3] = w3
        if zero_outside:
            inside[i] = x[i] >= -0.5 and x[i] < n - 0.5
        else:
            inside[i] = abs(x[i] - (n - 1) / 2) <= (n + 1) / 2
        for j in range(4):
            k = k1 + j - 1
            if n == 1:
                k = 0
            else:
                if k < 0:
                    k = -k
                if k >= n - 1:
                    k = 2 * (n - 1) - k
            idx[i, j] = min(max(k, 0), n - 1)


@_jit
def _bspline_fill(p: np.ndarray, idx: np.ndarray, weights: np.ndarray, inside: np.ndarray, start: int,
                  out: np.ndarray) -> None:
    """``out[i] = sum_j weights[i, j] p[idx[i, j], start:start + W]`` (accumulated in ``j`` order)
    for kept rows, 0 for the others."""
    for i in range(out.shape[0]):
        if not inside[i]:
            continue
        for c in range(out.shape[1]):
            acc = 0.0
            for j in range(4):
                acc += weights[i, j] * p[idx[i, j], start + c]
            out[i, c] = acc


def bspline_axis(x: np.ndarray, n: int, p: np.ndarray, zero_outside: bool, margin: int
                 ) -> tuple[np.ndarray, slice]:
    """:func:`.resample.bspline_axis` (its values bit for bit) given the decomposition matrix ``p``
    [n, n] and the window ``margin``."""
    m = x.size
    idx = np.empty((m, 4), dtype=np.int64)
    weights = np.empty((m, 4))
    inside = np.empty(m, dtype=np.bool_)
    _bspline_rows(np.ascontiguousarray(x, dtype=np.float64), n, zero_outside, idx, weights, inside)
    used = idx[inside]
    if used.size == 0:
        return np.zeros((m, 0)), slice(0, 0)
    window = slice(max(int(used.min()) - margin, 0), min(int(used.max()) + margin + 1, n))
    out = np.zeros((m, window.stop - window.start))
    _bspline_fill(p, idx, weights, inside, window.start, out)
    return out, window


#: The per-direction GLCM features of :func:`glcm_direction_features`, in their column order.
GLCM_DIRECTION_FEATURES = (
    "ClusterTendency", "ClusterShade", "ClusterProminence", "Autocorrelation", "Contrast", "Correlation",
    "DifferenceAverage", "DifferenceEntropy", "DifferenceVariance", "JointEnergy", "JointEntropy", "Imc1",
    "Imc2", "Idm", "Idmn", "Id", "Idn", "InverseVariance", "MaximumProbability", "SumAverage",
    "SumEntropy", "SumSquares", "JointAverage",
)
_EPS = 2.220446049250313e-16  # numpy.spacing(1), as PyRadiomics


@_jit
def _glcm_features(counts: np.ndarray, weights: np.ndarray, lv: np.ndarray, sum_idx: np.ndarray,
                   k_sum: np.ndarray, diff_idx: np.ndarray, k_diff: np.ndarray, ng_roi: np.ndarray,
                   out: np.ndarray, sym: np.ndarray, sizes: np.ndarray, one_level: np.ndarray) -> None:
    """Per matrix ``b, a`` of the symmetrised ``counts`` [B, A, N, N] (merged over the directions
    with ``weights`` [A] into ``a = 0`` when ``weights`` is not empty), normalised to sum 1: the
    features of :data:`GLCM_DIRECTION_FEATURES` into ``out[b, a]``, MCC's symmetrised matrix over
    the rows with ``px > 0`` (packed first) into ``sym[b, a]`` and their number into
    ``sizes[b, a]`` (0: an empty matrix), and whether a marginal holds one grey level into
    ``one_level[b, a]``; the formulas of :func:`.glcm._feature_formulas`, each sum in one loop.
    Rows/columns are the grey levels ``lv`` [N]; cell ``(i, j)`` adds to the distinct values
    ``k_sum[sum_idx[i, j]]`` of ``i + j`` and ``k_diff[diff_idx[i, j]]`` of ``|i - j|``. Every sum
    runs over the cells (levels, values) in increasing order and a zero cell adds exactly 0, so a
    matrix padded with absent grey levels gives the same bits as its own levels alone."""
    nb, na = out.shape[0], out.shape[1]
    n = counts.shape[2]
    m = np.empty((n, n))
    px = np.empty(n)
    py = np.empty(n)
    pxa = np.empty(k_sum.size)
    pxs = np.empty(k_diff.size)
    sc = np.empty(n)
    pos = np.empty(n, dtype=np.int64)
    col_start = np.empty(n + 1, dtype=np.int64)
    col_fill = np.empty(n, dtype=np.int64)
    col_rows = np.empty(n * n, dtype=np.int64)
    for b in range(nb):
        ngr = float(ng_roi[b])
        for a in range(na):
            if weights.size:
                for i in range(n):
                    for j in range(n):
                        s = 0.0
                        for d in range(weights.size):
                            s += counts[b, d, i, j] * weights[d]
                        m[i, j] = s
            else:
                m[:, :] = counts[b, a]
            tot = 0.0
            for i in range(n):
                for j in range(n):
                    if m[i, j] != 0:
                        tot += m[i, j]
            if tot == 0:  # an empty direction: left out of the means
                out[b, a, :] = 0.0
                sizes[b, a] = 0
                one_level[b, a] = False
                continue
            px[:] = 0.0
            py[:] = 0.0
            pxa[:] = 0.0
            pxs[:] = 0.0
            energy = 0.0
            hxy = 0.0
            top = 0.0
            for i in range(n):
                for j in range(n):
                    if m[i, j] == 0:  # (adds 0 to every sum: the costly logarithm skipped)
                        continue
                    v = m[i, j] / tot
                    m[i, j] = v
                    px[i] += v
                    py[j] += v
                    pxa[sum_idx[i, j]] += v
                    pxs[diff_idx[i, j]] += v
                    energy += v * v
                    hxy -= v * math.log2(v + _EPS)
                    top = max(top, v)
            ux = 0.0
            uy = 0.0
            hx = 0.0
            hy = 0.0
            nx = 0
            ny = 0
            for i in range(n):
                ux += px[i] * lv[i]
                uy += py[i] * lv[i]
                if px[i] != 0:
                    hx -= px[i] * math.log2(px[i] + _EPS)
                    nx += 1
                if py[i] != 0:
                    hy -= py[i] * math.log2(py[i] + _EPS)
                    ny += 1
            tendency = 0.0
            shade = 0.0
            prominence = 0.0
            sum_avg = 0.0
            sum_sq = 0.0
            sum_ent = 0.0
            for k in range(k_sum.size):
                if pxa[k] == 0:
                    continue
                c = k_sum[k] - (ux + uy)
                t = pxa[k] * c * c
                tendency += t
                shade += t * c
                prominence += t * c * c
                sum_avg += pxa[k] * k_sum[k]
                sum_sq += pxa[k] * (k_sum[k] * k_sum[k])
                sum_ent -= pxa[k] * math.log2(pxa[k] + _EPS)
            diff_avg = 0.0
            contrast = 0.0
            idm = 0.0
            idf = 0.0
            inv_var = 0.0
            idmn = 0.0
            idn = 0.0
            diff_ent = 0.0
            for k in range(k_diff.size):
                if pxs[k] == 0:
                    continue
                kd = k_diff[k]
                k2 = kd * kd
                diff_avg += pxs[k] * kd
                contrast += pxs[k] * k2
                idm += pxs[k] * (1.0 / (1 + k2))
                idf += pxs[k] * (1.0 / (1 + kd))
                if kd > 0:
                    inv_var += pxs[k] * (1.0 / k2)
                idmn += pxs[k] * (1.0 / (1 + k2 / (ngr * ngr)))
                idn += pxs[k] * (1.0 / (1 + kd / ngr))
                diff_ent -= pxs[k] * math.log2(pxs[k] + _EPS)
            diff_var = 0.0
            for k in range(k_diff.size):
                if pxs[k] != 0:
                    diff_var += pxs[k] * (k_diff[k] - diff_avg) ** 2
            sumsq_x = 0.0
            sumsq_y = 0.0
            for i in range(n):
                if px[i] != 0:
                    sumsq_x += px[i] * (lv[i] - ux) ** 2
                if py[i] != 0:
                    sumsq_y += py[i] * (lv[i] - uy) ** 2
            hxy1 = 0.0
            for i in range(n):
                for j in range(n):
                    if m[i, j] != 0:
                        hxy1 -= m[i, j] * math.log2(px[i] * py[j] + _EPS)
            sig = math.sqrt(sumsq_x) * math.sqrt(sumsq_y)
            corr = 1.0 if sig == 0 else (tendency - sumsq_x - sumsq_y) * 0.5 / (sig + _EPS)
            div = max(hx, hy)
            dh = (hx + hy) - hxy
            f = out[b, a]
            f[0] = tendency
            f[1] = shade
            f[2] = prominence
            f[3] = (sum_sq - contrast) * 0.25
            f[4] = contrast
            f[5] = corr
            f[6] = diff_avg
            f[7] = diff_ent
            f[8] = diff_var
            f[9] = energy
            f[10] = hxy
            f[11] = (hxy - hxy1) / div if div != 0 else 0.0
            f[12] = math.sqrt(1 - math.exp(-2 * dh)) if dh > 0 else 0.0
            f[13] = idm
            f[14] = idmn
            f[15] = idf
            f[16] = idn
            f[17] = inv_var
            f[18] = top
            f[19] = sum_avg
            f[20] = sum_ent
            f[21] = sumsq_x
            f[22] = ux
            one_level[b, a] = nx == 1 or ny == 1
            # MCC: C = Dx^1/2 (P / (px py^T + eps)) P^T Dx^-1/2 on the rows with px > 0, symmetrised;
            # Q(i, k) = sum_j P(i, j) P(k, j) / (px(i) py(j) + eps) over the rows i, k of column j's
            # non-zero cells (j increasing: the terms of a dense loop, without its zeros)
            r = 0
            for i in range(n):
                if px[i] > 0:
                    pos[i] = r
                    sc[r] = math.sqrt(px[i])
                    r += 1
            sizes[b, a] = r
            col_start[:] = 0
            for i in range(n):
                for j in range(n):
                    if m[i, j] != 0:
                        col_start[j + 1] += 1
            for j in range(n):
                col_start[j + 1] += col_start[j]
            col_fill[:] = col_start[:n]
            for i in range(n):
                for j in range(n):
                    if m[i, j] != 0:
                        col_rows[col_fill[j]] = i
                        col_fill[j] += 1
            c = sym[b, a]
            c[:r, :r] = 0.0
            for j in range(n):
                for t in range(col_start[j], col_start[j + 1]):
                    i = col_rows[t]
                    ratio = m[i, j] / (px[i] * py[j] + _EPS)
                    ri = pos[i]
                    for u in range(col_start[j], col_start[j + 1]):
                        k = col_rows[u]
                        c[ri, pos[k]] += ratio * m[k, j]
            for ri in range(r):
                for rk in range(r):
                    c[ri, rk] = sc[ri] * c[ri, rk] / sc[rk]
            for ri in range(r):
                for rk in range(ri):
                    s = (c[ri, rk] + c[rk, ri]) * 0.5
                    c[ri, rk] = s
                    c[rk, ri] = s


@functools.lru_cache(maxsize=64)
def _dense_sum_diff_index(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For grey levels ``1..n``: the levels, the cell -> value index of ``i + j`` and of ``|i - j|``
    and those values (``2..2n``, ``0..n-1``)."""
    ii = np.arange(n)
    return (np.arange(1.0, n + 1), ii[:, None] + ii[None, :], np.abs(ii[:, None] - ii[None, :]),
            np.arange(2.0, 2 * n + 1), np.arange(0.0, n))


@functools.lru_cache(maxsize=16)
def _level_sum_diff_index(level_bytes: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """:func:`_dense_sum_diff_index` for grey levels of arbitrary values (float64 ``level_bytes``,
    increasing): the distinct values of ``i + j`` and ``|i - j|`` ascending."""
    lv = np.frombuffer(level_bytes, dtype=np.float64)
    k_sum, sum_idx = np.unique(lv[:, None] + lv[None, :], return_inverse=True)
    k_diff, diff_idx = np.unique(np.abs(lv[:, None] - lv[None, :]), return_inverse=True)
    n = lv.size
    return lv, sum_idx.reshape(n, n), diff_idx.reshape(n, n), k_sum, k_diff


def glcm_direction_features(counts: np.ndarray, ng_roi: np.ndarray, level_values: np.ndarray | None = None,
                            weights: np.ndarray | None = None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For symmetrised GLCM counts [B, A, N, N] (grey levels ``1..N`` or ``level_values`` [N],
    increasing; ``ng_roi`` [B] the largest level of each ROI; ``weights`` [A]: merge the directions
    into one, PyRadiomics' ``weightingNorm``), each matrix normalised to sum 1: the features
    :data:`GLCM_DIRECTION_FEATURES` [B, A', F], MCC's symmetrised matrices [B, A', N, N] over the
    rows with ``px > 0`` (the top-left ``sizes`` x ``sizes``; their second largest eigenvalue is
    MCC^2), ``sizes`` [B, A'] (0: an empty matrix) and ``one_level`` bool [B, A']."""
    nb, na, n, _ = counts.shape
    if level_values is None:
        lv, sum_idx, diff_idx, k_sum, k_diff = _dense_sum_diff_index(n)
    else:
        lv, sum_idx, diff_idx, k_sum, k_diff = _level_sum_diff_index(
            np.ascontiguousarray(level_values, dtype=np.float64).tobytes())
    w = np.empty(0) if weights is None else np.asarray(weights, dtype=np.float64)
    na_out = 1 if w.size else na
    out = np.empty((nb, na_out, len(GLCM_DIRECTION_FEATURES)))
    sym = np.empty((nb, na_out, n, n))
    sizes = np.empty((nb, na_out), dtype=np.int64)
    one_level = np.empty((nb, na_out), dtype=np.bool_)
    _glcm_features(np.ascontiguousarray(counts, dtype=np.float64), w, lv, sum_idx, k_sum, diff_idx, k_diff,
                   np.asarray(ng_roi, dtype=np.float64), out, sym, sizes, one_level)
    return out, sym, sizes, one_level


#: The features of :func:`size_matrix_features`, in their column order.
SIZE_MATRIX_FEATURES = ("SE", "LE", "GLN", "GLNN", "JN", "JNN", "Perc", "GLV", "JV", "Ent", "LGE", "HGE",
                        "SLGE", "SHGE", "LLGE", "LHGE")


@_jit
def _marginal_sums(counts: np.ndarray, values: np.ndarray, nz: float
                   ) -> tuple[float, float, float, float, float]:
    """Of a marginal ``counts`` over ``values``: ``sum c / v^2``, ``sum c v^2``, ``sum c v``,
    ``sum c^2`` and the variance of ``values`` under ``counts / nz``."""
    inv_sq = 0.0
    sq = 0.0
    plain = 0.0
    squares = 0.0
    mean = 0.0
    for k in range(counts.size):
        v2 = values[k] * values[k]
        inv_sq += counts[k] / v2
        sq += counts[k] * v2
        plain += counts[k] * values[k]
        squares += counts[k] * counts[k]
        mean += counts[k] / nz * values[k]
    variance = 0.0
    for k in range(counts.size):
        variance += counts[k] / nz * (values[k] - mean) ** 2
    return inv_sq, sq, plain, squares, variance


@_jit
def _size_matrix_features(p: np.ndarray, iv: np.ndarray, jv: np.ndarray, out: np.ndarray) -> None:
    """The formulas of :func:`._matrix_features.size_matrix_formulas` per group ``p[g]`` [Ng, J]
    (grey levels ``iv``, sizes ``jv``), each sum in one loop, into ``out[g]``."""
    ng, nj = p.shape[1], p.shape[2]
    pg = np.empty(ng)
    pj = np.empty(nj)
    for g in range(p.shape[0]):
        m = p[g]
        pg[:] = 0.0
        pj[:] = 0.0
        slge = 0.0
        shge = 0.0
        llge = 0.0
        lhge = 0.0
        for i in range(ng):
            i2 = iv[i] * iv[i]
            for j in range(nj):
                v = m[i, j]
                if v == 0:
                    continue
                pg[i] += v
                pj[j] += v
                j2 = jv[j] * jv[j]
                slge += v / j2 / i2
                shge += v / j2 * i2
                llge += v * j2 / i2
                lhge += v * j2 * i2
        nz = 0.0
        for i in range(ng):
            nz += pg[i]
        if nz == 0:
            nz = 1.0
        lge, hge, _, gln, glv = _marginal_sums(pg, iv, nz)
        se, le, npix, jn, jvar = _marginal_sums(pj, jv, nz)
        if npix == 0:
            npix = 1.0
        ent = 0.0
        for i in range(ng):
            for j in range(nj):
                if m[i, j] != 0:
                    q = m[i, j] / nz
                    ent -= q * math.log2(q + _EPS)
        f = out[g]
        f[0] = se / nz
        f[1] = le / nz
        f[2] = gln / nz
        f[3] = gln / nz**2
        f[4] = jn / nz
        f[5] = jn / nz**2
        f[6] = nz / npix
        f[7] = glv
        f[8] = jvar
        f[9] = ent
        f[10] = lge / nz
        f[11] = hge / nz
        f[12] = slge / nz
        f[13] = shge / nz
        f[14] = llge / nz
        f[15] = lhge / nz


def size_matrix_features(p: np.ndarray, jvector: np.ndarray, level_values: np.ndarray | None
                         ) -> dict[str, np.ndarray]:
    """:func:`._matrix_features.size_matrix_formulas` of NumPy ``p`` [G, Ng, J] in one compiled
    pass: ``{name: float64 [G]}``."""
    iv = (np.arange(1, p.shape[1] + 1, dtype=np.float64) if level_values is None
          else np.asarray(level_values, dtype=np.float64))
    out = np.empty((p.shape[0], len(SIZE_MATRIX_FEATURES)))
    jv = np.asarray(jvector, dtype=np.float64)
    _size_matrix_features(np.ascontiguousarray(p, dtype=np.float64), iv, jv, out)
    columns = np.ascontiguousarray(out.T)
    return {k: columns[c] for c, k in enumerate(SIZE_MATRIX_FEATURES)}


def _scratch(cells: int, voxels: int) -> np.ndarray:
    """Scratch counts: four tables of ``cells`` where clearing and summing them costs little next
    to the ``voxels`` (else one); int32 while no cell can reach 2^31."""
    return np.empty((4 if 4 * cells <= voxels else 1) * cells, dtype=np.int32 if voxels < 2**31 else np.int64)


def _small_levels(g: np.ndarray, n_levels: int) -> np.ndarray:
    """The grid's levels as uint8 where they fit (a quarter of the bytes the loops read), else as is."""
    return g.astype(np.uint8) if n_levels < 2**8 else g


def glrlm_counts(grid: FlatGrid, steps: list[int], n_levels: int, nr: int) -> tuple[np.ndarray, np.ndarray]:
    """Run counts int64 ``[A, B, n_levels + 1, nr]`` along the linear ``steps`` (all > 0) of
    ``grid`` (level 0 row empty; lengths ``1..nr``, longer runs counted at ``nr``) and ``adjacent``
    bool ``[B, A]``: some ROI voxel's next voxel along the direction is in the ROI."""
    b, na, n1 = grid.n_rois, len(steps), n_levels + 1
    counts = np.empty((na, b * n1 * nr), dtype=np.int64)
    adjacent = np.zeros((b, na), dtype=np.bool_)
    run = np.empty(grid.g.size, dtype=np.uint16 if nr < 2**16 else np.int64)  # (set at ROI voxels)
    _glrlm_counts(_small_levels(grid.g, n_levels), grid.v, grid.bounds, np.asarray(steps, dtype=np.int64), n1,
                  nr, _scratch(b * n1 * nr, grid.v.size), run, counts, adjacent)
    return counts.reshape(na, b, n1, nr), adjacent


def glcm_counts(grid: FlatGrid, steps: list[int], n_levels: int) -> np.ndarray:
    """Co-occurrence counts int64 ``[A, B, n_levels + 1, n_levels + 1]`` of ``grid`` along the
    linear ``steps`` (row and column 0: a neighbour outside the ROI)."""
    b, na, n1 = grid.n_rois, len(steps), n_levels + 1
    counts = np.empty((na, b * n1 * n1), dtype=np.int64)
    _glcm_counts(_small_levels(grid.g, n_levels), grid.v, grid.bounds, np.asarray(steps, dtype=np.int64), n1,
                 _scratch(b * n1 * n1, grid.v.size), counts)
    return counts.reshape(na, b, n1, n1)


#: The NGTDM features of :func:`ngtdm_features`, in their column order.
NGTDM_FEATURES = ("Busyness", "Coarseness", "Complexity", "Contrast", "Strength")


@_jit
def _ngtdm_features(n_i: np.ndarray, s_i: np.ndarray, iv: np.ndarray, out: np.ndarray) -> None:
    """The formulas of :func:`.ngtdm._feature_formulas` per ROI ``b`` (``n_i[b]``, ``s_i[b]`` over
    the grey levels ``iv``), each sum in one loop over the levels present (``n_i > 0``) in
    increasing order, so absent levels change no bit, into ``out[b]``."""
    ng = n_i.shape[1]
    rows = np.empty(ng, dtype=np.int64)
    p = np.empty(ng)
    for b in range(n_i.shape[0]):
        k = 0
        nvp = 0.0
        for i in range(ng):
            if n_i[b, i] > 0:
                rows[k] = i
                k += 1
                nvp += n_i[b, i]
        sum_ps = 0.0
        sum_s = 0.0
        for r in range(k):
            i = rows[r]
            p[i] = n_i[b, i] / nvp
            sum_ps += p[i] * s_i[b, i]
            sum_s += s_i[b, i]
        con = 0.0
        absdiff = 0.0
        complexity = 0.0
        strength = 0.0
        for r in range(k):
            i = rows[r]
            for t in range(k):
                j = rows[t]
                d = iv[i] - iv[j]
                d2 = d * d
                con += p[i] * p[j] * d2
                absdiff += abs(iv[i] * p[i] - iv[j] * p[j])
                complexity += abs(d) * (p[i] * s_i[b, i] + p[j] * s_i[b, j]) / (p[i] + p[j])
                strength += (p[i] + p[j]) * d2
        f = out[b]
        f[0] = sum_ps / absdiff if absdiff != 0 else 0.0
        f[1] = 1 / sum_ps if sum_ps != 0 else 1e6
        f[2] = complexity / nvp
        div = float(k) * (k - 1)
        f[3] = con * sum_s / nvp / div if div != 0 else 0.0
        f[4] = strength / sum_s if sum_s != 0 else 0.0


def ngtdm_features(n_i: np.ndarray, s_i: np.ndarray, level_values: np.ndarray | None
                   ) -> dict[str, np.ndarray]:
    """:func:`.ngtdm._feature_formulas` of NumPy ``n_i``, ``s_i`` [B, Ng] in one compiled pass:
    ``{name: float64 [B]}``."""
    iv = (np.arange(1, n_i.shape[1] + 1, dtype=np.float64) if level_values is None
          else np.asarray(level_values, dtype=np.float64))
    out = np.empty((n_i.shape[0], len(NGTDM_FEATURES)))
    _ngtdm_features(np.ascontiguousarray(n_i, dtype=np.float64), np.ascontiguousarray(s_i, dtype=np.float64),
                    iv, out)
    columns = np.ascontiguousarray(out.T)
    return {k: columns[c] for c, k in enumerate(NGTDM_FEATURES)}
