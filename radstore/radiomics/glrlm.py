"""Grey Level Run Length Matrix (GLRLM) features, batched over ROIs (PyRadiomics 3.1 semantics).

For each of PyRadiomics' directions at distance 1 (13 in 3D, 4 with force2D) ``P_a(i, j)`` counts
the runs -- maximal sequences of consecutive ROI voxels along the direction with the same grey level
``i`` -- of length ``j`` (Galloway, Comput. Graph. Image Process. 1975; IBSI). As PyRadiomics: a
direction in which no line holds two ROI voxels is dropped; with ``weighting_norm`` the directions
are merged as ``sum_a ||a * spacing|| P_a``; features (see :mod:`._matrix_features`) are computed
per direction and averaged over the remaining ones.

Implementation (CPU): the ROIs are cropped, padded with one voxel of level 0 and flattened
(:class:`._neighbours.FlatGrid`). A compiled loop (:mod:`._compiled`, numba) carries each ROI
voxel's run length so far from its predecessor along the direction and counts a run where it ends.
Without numba, in NumPy: each ROI voxel holds ``roi * (Ng + 1) + level``; for a direction of linear
step ``s`` the flat grid reordered residue by residue modulo ``s`` holds every line contiguously
between zeros, so one run-length encoding of it gives all runs (each run's value names its ROI and
level), and one ``bincount`` the matrices of the batch. Other devices: voxels gathered in line
order (cached per grid shape), run starts from comparing each voxel with its predecessor, run
lengths by ``bincount``.

Degenerate ROIs: a ROI where no line holds two voxels (e.g. one voxel) has no GLRLM; PyRadiomics
then returns NaN for every feature and so do we (documented, with a warning).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from radstore.radiomics import _compiled
from radstore.radiomics._arrays import Array, evaluate, ops
from radstore.radiomics._matrix_features import size_matrix_formulas
from radstore.radiomics._neighbours import (
    FlatGrid,
    angles,
    by_chunks,
    by_grid_chunks,
    check_inputs,
    compact_levels,
    cpu_method,
    direction_distances,
    flat_grid,
    grid_shape,
    line_order,
    small_uint,
)
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
    return direction_distances(offs, params)

def matrices(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams, method: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run-length counts ``[B, A, Ng, Nr]`` (float64; ``j = 1..Nr``) and the direction validity
    ``[B, A]`` (some line of the direction holds two ROI voxels).

    ``method``: ``"numpy"`` (CPU tensors; run-length encoding of the padded flat grid laid out
    line by line, see :func:`_matrices_numpy`), ``"torch"`` (any device; cached line orderings) or
    ``"auto"`` (numpy on CPU, torch elsewhere)."""
    method = cpu_method(method, q)
    if method == "numpy":
        grid = flat_grid(q, mask, n_levels, 1)
        return _matrices_numpy(grid, n_levels, params, max(q.shape[1:]))
    return _matrices_torch(q, mask, n_levels, params)


def _line_major(a: np.ndarray, n: int, step: int) -> np.ndarray:
    """The first ``n`` elements of flat ``a`` reordered residue by residue modulo ``step``:
    ``[a[r], a[r + step], ...]`` for ``r = 0..step-1``, each residue row of length
    ``m = ceil(n / step) + 1`` ending with at least one 0; ``a`` needs ``2 * step`` zeros after its
    first ``n``.

    On a :class:`FlatGrid` every line along an offset of linear step ``step > 0`` is a contiguous
    piece of one residue row, with padding (level 0) before and after it."""
    m = -(-n // step) + 1
    if step == 1:
        return a[:m]
    # row r of the transposed [m, step] view is a[r], a[r + step], ...; step * m <= n + 2 * step
    return np.ascontiguousarray(a[: step * m].reshape(m, step).T).reshape(-1)


def _roi_levels(grid: FlatGrid, n_levels: int, tail: int) -> np.ndarray:
    """``roi * (n_levels + 1) + g`` at the ROI voxels of ``grid`` (0 elsewhere: padding and voxels
    outside the ROIs), then ``tail`` zeros, in the smallest unsigned type holding the values (the
    line-major copies, the costliest pass, move the fewest bytes). A run's value then names its ROI
    and level at once: no per-run division to find the ROI."""
    out = np.zeros(grid.g.size + tail, dtype=small_uint(grid.n_rois * (n_levels + 1) - 1))
    body = out[: grid.g.size]
    body[:] = grid.g
    if grid.n_rois > 1:
        body[grid.v] += (grid.roi * (n_levels + 1)).astype(out.dtype)
    return out


def _matrices_numpy(
    grid: FlatGrid, n_levels: int, params: TextureParams, nr: int, compiled: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run counts of a :class:`FlatGrid` by the compiled loop (:func:`._compiled.glrlm_counts`;
    ``compiled=None``: where :data:`._compiled.ENABLED`) or in NumPy (:func:`_run_counts_numpy`);
    a direction is valid for a ROI when two of its voxels are neighbours along it or, failing
    that, lie on one line with only non-ROI voxels between (tested only where needed)."""
    offs = angles((1,), params.force2d, params.force2d_dimension)
    b, na, n1 = grid.n_rois, len(offs), n_levels + 1
    steps = [grid.step(off) for off in offs]
    if _compiled.ENABLED if compiled is None else compiled:
        counts, valid = _compiled.glrlm_counts(grid, steps, n_levels, nr)
    else:
        counts, valid = _run_counts_numpy(grid, steps, n_levels, nr)
    for r, ai in np.argwhere(~valid).tolist():
        valid[r, ai] = _shares_line(grid, r, steps[ai])
    p = np.multiply(counts.reshape(na, b, n1, nr)[:, :, 1:].transpose(1, 0, 2, 3), valid.reshape(b, na, 1, 1),
                    dtype=np.float64)
    return torch.from_numpy(p), torch.from_numpy(valid)


def _run_counts_numpy(grid: FlatGrid, steps: list[int], n_levels: int, nr: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`._compiled.glrlm_counts` in NumPy: per direction a run-length encoding of the
    line-major grid (:func:`_line_major`), whose runs of a non-zero level are exactly the GLRLM
    runs (runs of 0 land in row 0), several directions at once on their concatenated line-major
    arrays (:func:`_direction_groups`); ``valid``: some run of length >= 2 or two touching runs."""
    b, na, n1 = grid.n_rois, len(steps), n_levels + 1
    n = grid.g.size
    gz = _roi_levels(grid, n_levels, 2 * max(steps) + 1)
    size = b * n1 * nr
    kdt = small_uint(size)
    counts = np.zeros((na, size), dtype=np.int64)
    valid = np.zeros((b, na), dtype=bool)
    for group in _direction_groups([n + 2 * s for s in steps]):
        ts = [_line_major(gz, n, steps[ai]) for ai in group]
        seg = np.cumsum([0, *(len(t) for t in ts)])
        t = np.concatenate(ts) if len(ts) > 1 else ts[0]
        # a run starts at 1 + bnd[k] and has length bnd[k + 1] - bnd[k]; every segment starts and
        # ends with 0, so no run crosses a segment and the last boundary closes the last ROI run
        bnd = np.flatnonzero(t[1:] != t[:-1])
        vals = t[1:][bnd[:-1]]  # roi * n1 + level of each run
        # key = (roi * n1 + level) * nr + length, lengths 1..nr (runs of 0 may be longer: clipped,
        # they land in level 0, dropped); bincount slot 0 stays empty, dropped below
        key = np.diff(bnd)
        np.minimum(key, nr, out=key)
        key += np.multiply(vals, nr, dtype=kdt)  # (one pass in a small type)
        cut = np.searchsorted(bnd[:-1], seg - 1)  # runs of group member k: cut[k]:cut[k + 1]
        for k in range(1, len(group)):  # offset of the k-th direction of the group
            key[cut[k] : cut[k + 1]] += k * size
        g0, g1 = group[0], group[-1] + 1  # (groups are consecutive directions)
        counts[g0:g1] = np.bincount(key, minlength=len(group) * size + 1)[1:].reshape(len(group), size)
        long_run = np.asarray(counts[g0:g1].reshape(len(group), b, n1, nr)[:, :, 1:, 1:].any(axis=(2, 3)))
        valid[:, group] = long_run.T
        for k in np.flatnonzero(~long_run.all(axis=1)).tolist():
            ai = group[k]
            run_vals = vals[cut[k] : cut[k + 1]]
            roi_run = run_vals > 0
            # a ROI run right after another: the same line, so the same ROI
            touch = np.flatnonzero(roi_run[1:] & roi_run[:-1]) + 1
            valid[run_vals[touch] // n1, ai] = True
    return counts.reshape(na, b, n1, nr), valid


def _direction_groups(lengths: list[int], budget: int = 1 << 20) -> list[list[int]]:
    """Consecutive direction indices grouped so that each group's line-major arrays (``lengths``)
    total at most ``budget`` elements (a longer one is alone): small grids are encoded in one pass."""
    groups: list[list[int]] = []
    total = 0
    for ai, n in enumerate(lengths):
        if groups and total + n <= budget:
            groups[-1].append(ai)
            total += n
        else:
            groups.append([ai])
            total = n
    return groups


def _shares_line(grid: FlatGrid, r: int, step: int) -> bool:
    """Whether two ROI voxels of ROI ``r`` lie on one line along ``step`` (lines are cut by padding)."""
    n = grid.block
    blk = np.zeros(n + 2 * step + 1, dtype=grid.g.dtype)
    blk[:n] = grid.g[r * n : (r + 1) * n]
    pad = np.ones(n + 2 * step + 1, dtype=bool)
    pad[:n].reshape(grid.shape)[1:-1, 1:-1, 1:-1] = False
    t = _line_major(blk, n, step)
    pt = _line_major(pad, n, step)
    line = np.cumsum(pt)[t > 0]
    return bool((line[1:] == line[:-1]).any())


def _matrices_torch(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams
) -> tuple[torch.Tensor, torch.Tensor]:
    offs = angles((1,), params.force2d, params.force2d_dimension)
    b, na = q.shape[0], len(offs)
    shape = grid_shape(q)
    qf, mf = q.flatten(1), mask.flatten(1)
    nr = max(shape)  # longest possible run
    size = na * b * n_levels * nr
    counts = torch.zeros(size, dtype=torch.int64, device=q.device)
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
        mflat = mo.flatten()
        lens = torch.bincount(run_id[mflat], minlength=n_runs)
        per_line = torch.bincount((roi * n_lines + line_id).flatten()[mflat], minlength=b * n_lines)
        valid[:, ai] = per_line.view(b, n_lines).amax(1) > 1
        sflat = start.flatten()
        key = (roi * n_levels + qo - 1).flatten()[sflat]
        counts += torch.bincount(ai * b * n_levels * nr + key * nr + lens - 1, minlength=size)
    p = counts.view(na, b, n_levels, nr).transpose(0, 1).to(torch.float64)
    p = p * valid.view(b, na, 1, 1)
    return p, valid


def _from_matrices(p: torch.Tensor, valid: torch.Tensor, params: TextureParams,
                   level_values: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Features of run-length counts ``p`` [B, A, Ng, Nr] averaged over the ``valid`` [B, A]
    directions (merged first with a ``weighting_norm``): :func:`_direction_mean_features` in
    NumPy for CPU tensors, else in torch."""
    w = _weights(angles((1,), params.force2d, params.force2d_dimension), params)
    levels = () if level_values is None else (level_values,)
    return evaluate(_direction_mean_features, p, valid, *levels, w=w)


def _direction_mean_features(p: Array, valid: Array, level_values: Array | None = None, *,
                             w: list[float] | None) -> dict[str, Array]:
    """GLRLM features of ``p`` [B, A, Ng, Nr] (NumPy array or torch tensor): per direction (or of
    the ``w``-weighted sum of the directions), then the mean over the valid ones (NaN if none)."""
    xp = ops(p)
    b, na, ng, _ = p.shape
    if w is not None:
        p = (p * xp.float64_array(w, p).reshape(1, -1, 1, 1)).sum(1, keepdims=True)
        valid = p.sum(axis=(2, 3)) > 0
        na = 1
    # only run lengths that occur (zero columns add nothing to any feature)
    jv = xp.flatnonzero(p.sum(axis=(0, 1, 2)) > 0) + 1
    p = p[..., jv - 1]
    feats = size_matrix_formulas(p.reshape(b * na, ng, len(jv)), jv, level_values)
    names = list(feats)
    means = xp.mean_over_valid(xp.stack([feats[k].reshape(b, na) for k in names]), valid)
    return {_NAMES[k]: v for k, v in zip(names, means, strict=True)}


def compute(
    q: torch.Tensor, mask: torch.Tensor, n_levels: int, params: TextureParams, method: str = "auto"
) -> dict[str, torch.Tensor]:
    """GLRLM features of ``B`` ROIs: ``{name: float64 [B]}`` for every name in :data:`FEATURES`
    (``method`` as :func:`matrices`)."""
    method = cpu_method(method, q)
    offs = angles((1,), params.force2d, params.force2d_dimension)
    _weights(offs, params)
    na = len(offs)
    nr = max(q.shape[1:])
    q, n_levels, level_values = compact_levels(q, mask, n_levels)
    if method == "numpy":
        res = by_grid_chunks(
            q,
            mask,
            n_levels,
            1,
            per_voxel=4,
            per_roi_fixed=8 * na * (n_levels + 1) * nr,
            fn=lambda grid: _from_matrices(*_matrices_numpy(grid, n_levels, params, nr), params,
                                           level_values),
        )
    else:
        check_inputs(q, mask, n_levels)
        res = by_chunks(
            q,
            mask,
            per_voxel=8 * na,
            per_roi_fixed=4 * na * n_levels * nr,
            fn=lambda qc, mc: _from_matrices(*_matrices_torch(qc, mc, n_levels, params), params,
                                             level_values),
        )
    bad = [i for i, v in enumerate(res["RunPercentage"].tolist()) if math.isnan(v)]
    if bad:
        warnings.warn(
            f"GLRLM: ROI(s) {bad} have no line with two voxels; their GLRLM features are NaN "
            "(as PyRadiomics)",
            RuntimeWarning,
            stacklevel=2,
        )
    return {k: res[k] for k in FEATURES}
