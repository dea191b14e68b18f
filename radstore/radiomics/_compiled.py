"""Compiled CPU loops (numba) for the texture matrices whose NumPy form is memory-bound.

On a :class:`~radstore.radiomics._neighbours.FlatGrid` (ROI voxels ``v`` ascending, ROI ``r``'s
voxels at ``v[bounds[r]:bounds[r + 1]]``, padding of level 0 around every ROI block) one pass over
the ROI voxels per direction replaces the NumPy kernels' temporaries: the GLCM adds
``(g(p), g(p + s))`` pairs straight into its counts, the GLRLM carries each voxel's run length so
far from ``p - s`` to ``p`` (``p - s`` comes first: every direction's linear step ``s`` is
positive) and counts a run where the next voxel along ``s`` has another level. The results are the
NumPy kernels' integer counts, exactly (tested).

numba compiles each loop on first use and caches the machine code beside this file (else in the
user's cache); where numba is not installed (it is a dependency; the GPU check's package bundle
lacks it) or with ``RADSTORE_COMPILED_KERNELS=0`` the NumPy kernels run instead.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from radstore.radiomics._neighbours import FlatGrid

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; a stripped environment falls back
    numba = None  # type: ignore[assignment]

#: Whether the texture families' CPU path uses these loops (``RADSTORE_COMPILED_KERNELS=0``: no).
ENABLED: bool = numba is not None and os.environ.get("RADSTORE_COMPILED_KERNELS", "1") != "0"


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    if numba is None:  # pragma: no cover
        return fn
    return numba.njit(cache=True, nogil=True, boundscheck=False)(fn)


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
        for i in range(w):
            counts[a, i] = scratch[i]
        if spread:
            for i in range(w):
                counts[a, i] += scratch[w + i] + scratch[2 * w + i] + scratch[3 * w + i]


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
        for i in range(w):
            counts[a, i] = scratch[i]
        if spread:
            for i in range(w):
                counts[a, i] += scratch[w + i] + scratch[2 * w + i] + scratch[3 * w + i]


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
