"""The compiled (numba) GLCM and GLRLM loops give exactly the NumPy kernels' integer counts, the
compiled feature formulas (GLCM, NGTDM, size matrices) the NumPy formulas' values, and the whole
extraction the same values, on every path the loops branch on: one ROI or a batch, few
levels (four scratch tables) or many (one), 3D, force2D along each axis, GLCM distances (1, 2),
degenerate ROIs."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

from radstore.radiomics import _compiled, glcm, glrlm
from radstore.radiomics._neighbours import angles, flat_grid
from radstore.radiomics.texture_params import TextureParams

# run with the compiled kernels switched off, the loops would run as plain Python (without numba's
# fixed-width integer arithmetic): nothing here to test then; a missing numba still fails below
pytestmark = pytest.mark.skipif(os.environ.get("RADSTORE_COMPILED_KERNELS") == "0",
                                reason="RADSTORE_COMPILED_KERNELS=0: the compiled kernels are switched off")


def test_numba_is_installed_and_enabled() -> None:
    """numba is a dependency: without it the CPU path silently falls back to the slower NumPy
    kernels, so a broken install must fail here, not pass unnoticed."""
    import numba  # noqa: F401

    assert _compiled.ENABLED or os.environ.get("RADSTORE_COMPILED_KERNELS") == "0"


def _batch(seed: int, n_rois: int, n_levels: int, shape: tuple[int, int, int]
           ) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    q = rng.integers(1, n_levels + 1, size=(n_rois, *shape))
    q = np.where(rng.random(q.shape) < 0.5, np.roll(q, 1, axis=3), q)  # runs along x
    q = np.where(rng.random(q.shape) < 0.3, np.roll(q, 1, axis=1), q)  # and along z
    m = rng.random(q.shape) < 0.75
    m[:, shape[0] // 2, shape[1] // 2, shape[2] // 2] = True
    if n_rois > 2:  # degenerate members: one voxel; two voxels on one line with a gap
        m[1] = False
        m[1, 0, 2, 3] = True
        m[2] = False
        m[2, 0, 0, 2] = m[2, 0, 3, 2] = True
    return torch.from_numpy(q), torch.from_numpy(m)


CASES = [  # (seed, ROIs, levels, shape): 4 tables for few levels, 1 table for many
    (1, 1, 4, (6, 9, 8)),
    (2, 3, 5, (5, 7, 9)),
    (3, 1, 40, (12, 14, 13)),
    (4, 2, 300, (6, 8, 7)),
    (5, 4, 2, (1, 11, 10)),
]
PARAMS = [
    TextureParams(),
    TextureParams(force2d=True, force2d_dimension=0),
    TextureParams(force2d=True, force2d_dimension=1),
    TextureParams(force2d=True, force2d_dimension=2),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("params", PARAMS, ids=["3d", "2d-z", "2d-y", "2d-x"])
def test_glrlm_compiled_counts_equal_numpy_and_torch(case: tuple, params: TextureParams) -> None:
    seed, b, n, shape = case
    q, m = _batch(seed, b, n, shape)
    grid = flat_grid(q, m, n, 1)
    nr = max(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pc, vc = glrlm._matrices_numpy(grid, n, params, nr, compiled=True)
        pn, vn = glrlm._matrices_numpy(grid, n, params, nr, compiled=False)
        pt, vt = glrlm._matrices_torch(q, m, n, params)
    assert pc.sum() > 0
    assert torch.equal(vc, vn) and torch.equal(vc, vt)
    assert torch.equal(pc, pn)
    torch.testing.assert_close(pc, pt, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("params", [*PARAMS, TextureParams(distances=(1, 2)), TextureParams(distances=(3,))],
                         ids=["3d", "2d-z", "2d-y", "2d-x", "d12", "d3"])
def test_glcm_compiled_counts_equal_numpy_and_torch(case: tuple, params: TextureParams) -> None:
    seed, b, n, shape = case
    q, m = _batch(seed, b, n, shape)
    offs = angles(params.distances, params.force2d, params.force2d_dimension)
    grid = flat_grid(q, m, n, max(params.distances))
    pc = glcm._matrices_numpy(grid, offs, n, compiled=True)
    pn = glcm._matrices_numpy(grid, offs, n, compiled=False)
    assert pc.sum() > 0
    assert torch.equal(pc, pn)
    assert torch.equal(pc, glcm._matrices_torch(q, m, n, offs))


def test_scratch_tables_are_summed_once_per_direction() -> None:
    """Four scratch tables (few levels, many voxels) and one give the same counts; the tables are
    cleared between directions (a count left over would add the previous direction's pairs)."""
    q, m = _batch(9, 1, 3, (10, 12, 12))
    grid = flat_grid(q, m, 3, 1)
    steps = [grid.step(o) for o in angles((1,))]
    assert _compiled._scratch(grid.n_rois * 4 * 4, grid.v.size).size == 4 * 4 * 4
    counts = _compiled.glcm_counts(grid, steps, 3)
    n_roi = int(m.sum())
    assert counts.sum(axis=(1, 2, 3)).tolist() == [n_roi] * len(steps)  # one pair per ROI voxel
    one = np.stack([_compiled.glcm_counts(grid, [s], 3)[0] for s in steps])
    np.testing.assert_array_equal(counts, one)
    runs, adjacent = _compiled.glrlm_counts(grid, steps, 3, 12)
    lengths = np.arange(1, 13)
    assert (runs * lengths).sum(axis=(1, 2, 3)).tolist() == [n_roi] * len(steps)  # runs cover the ROI
    assert adjacent.all()


def test_extraction_equals_numpy_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """All features of a synthetic ROI with the compiled loops equal those of the NumPy kernels."""
    from radstore.radiomics import extract
    from radstore.radiomics.settings import RadiomicsSettings

    rng = np.random.default_rng(3)
    image = rng.normal(40, 40, (14, 30, 30)).round().astype(np.int16)
    zz, yy, xx = np.indices(image.shape)
    mask = ((zz - 7) / 5) ** 2 + ((yy - 15) / 11) ** 2 + ((xx - 14) / 9) ** 2 < 1
    settings = RadiomicsSettings.from_params({"setting": {"binWidth": 10}})
    compiled = extract(image, mask.astype(np.uint8), (2.0, 0.8, 0.8), settings)
    monkeypatch.setattr(_compiled, "ENABLED", False)
    plain = extract(image, mask.astype(np.uint8), (2.0, 0.8, 0.8), settings)
    assert compiled.keys() == plain.keys()
    differ = {k: (v, plain[k]) for k, v in compiled.items() if v != pytest.approx(plain[k], rel=1e-13)}
    assert not differ


@pytest.mark.parametrize("n", [1, 3, 7, 60, 130])
@pytest.mark.parametrize("zero_outside", [True, False])
def test_bspline_axis_compiled_equals_numpy_bit_for_bit(
    n: int, zero_outside: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled B-spline rows (weights, mirrored support, window, rows outside the line) are
    the NumPy ones exactly: the resampled image then casts to the same integers."""
    from radstore.radiomics import resample

    rng = np.random.default_rng(n)
    spacing_out = rng.uniform(0.3, 2.5)
    x = resample.positions(rng.uniform(-1.0, 0.5), 1.0, spacing_out, int(n / spacing_out) + 3)
    x = np.concatenate([x, [-0.5, -0.5000001, n - 0.5, n - 0.4999999, 0.25, -3.0, n + 2.0]])
    got, got_window = resample.bspline_axis(x, n, zero_outside)
    monkeypatch.setattr(_compiled, "ENABLED", False)
    want, want_window = resample.bspline_axis(x, n, zero_outside)
    assert got_window == want_window
    assert got.shape == want.shape and got.any()
    np.testing.assert_array_equal(got, want)
    assert (np.signbit(got) == np.signbit(want)).all()


@pytest.mark.parametrize("compacted", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_glcm_compiled_formulas_equal_numpy(compacted: bool, weighted: bool, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """The compiled GLCM features (merge over directions, normalisation, per-direction formulas,
    then MCC's eigenvalues, the rounding flags and the means) equal the NumPy formulas to 1e-11
    relative (1e-12 absolute) on random counts with empty directions, one-level marginals, one grey
    level and sparse cells, symmetrised or not, over levels ``1..N`` or compacted level values
    (MCC, Correlation and Imc2 where both flag that rounding decides them: the engine takes those
    from PyRadiomics' own arithmetic, :func:`glcm._rounding_as_pyradiomics`)."""
    rng = np.random.default_rng(0 + 2 * compacted + weighted)
    for trial in range(80):
        b, a, n = int(rng.integers(1, 4)), int(rng.choice([1, 4, 13])), int(rng.integers(1, 20))
        counts = rng.integers(0, 30, (b, a, n, n)) * (rng.random((b, a, n, n)) < rng.uniform(0.05, 1))
        counts = counts.astype(np.float64)
        if trial % 7 == 0:
            counts[:, 0] = 0  # an empty direction
        symmetrical = trial % 2 == 0
        if trial % 5 == 0:
            counts[0, :, :, 1:] = 0  # one grey level in a marginal (unless symmetrised)
        lv = np.sort(rng.choice(np.arange(1.0, 300.0), n, replace=False)) if compacted else None
        top = n if lv is None else lv[-1]
        ng_roi = top - rng.integers(0, min(n, 3), size=b)
        n_present = ((counts.sum(axis=(1, 2)) + counts.sum(axis=(1, 3))) > 0).sum(1)  # levels in the ROI
        w = rng.uniform(0.01, 1, a).tolist() if weighted else None
        args = (counts, ng_roi, n_present, lv)
        monkeypatch.setattr(_compiled, "ENABLED", True)
        got = glcm._normalised_features(*args, symmetrical=symmetrical, w=w)
        monkeypatch.setattr(_compiled, "ENABLED", False)
        want = glcm._normalised_features(*args, symmetrical=symmetrical, w=w)
        assert list(got) == list(want)
        flagged = want["rounding_decides"]
        np.testing.assert_array_equal(got["rounding_decides"], flagged)
        # ClusterShade, a third moment, cancels: to 1e-11 of its scale, ClusterTendency^1.5
        shade_scale = float(np.nanmax(want["ClusterTendency"], initial=0.0)) ** 1.5
        for k, v in want.items():  # (flagged ROIs take the tie features from PyRadiomics' arithmetic)
            keep = ~flagged if k in glcm.TIE_FEATURES else np.ones_like(flagged)
            atol = max(1e-12, 1e-11 * shade_scale) if k == "ClusterShade" else 1e-12
            np.testing.assert_allclose(np.asarray(got[k], float)[keep], np.asarray(v, float)[keep],
                                       rtol=1e-11, atol=atol, err_msg=f"trial {trial}: {k}")


def test_ngtdm_compiled_formulas_equal_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled NGTDM features equal the NumPy formulas to 1e-11 relative on random ``n_i``,
    ``s_i`` with absent levels, one level, no neighbours (``s_i = 0``) and compacted level values."""
    from radstore.radiomics import ngtdm

    rng = np.random.default_rng(2)
    for trial in range(60):
        b, ng = int(rng.integers(1, 5)), int(rng.integers(1, 25))
        n_i = (rng.integers(1, 40, (b, ng)) * (rng.random((b, ng)) < rng.uniform(0.1, 1))).astype(np.float64)
        n_i[:, 0] += 1  # every ROI holds a voxel
        s_i = rng.random((b, ng)) * n_i * (0 if trial % 6 == 0 else 1)
        lv = np.sort(rng.choice(np.arange(1.0, 500.0), ng, replace=False)) if trial % 2 else None
        monkeypatch.setattr(_compiled, "ENABLED", True)
        got = ngtdm._feature_formulas(n_i, s_i, lv)
        monkeypatch.setattr(_compiled, "ENABLED", False)
        want = ngtdm._feature_formulas(n_i, s_i, lv)
        assert list(got) == list(want)
        for k, v in want.items():
            np.testing.assert_allclose(got[k], v, rtol=1e-11, atol=1e-12, err_msg=f"trial {trial}: {k}")


@pytest.mark.parametrize("compacted", [False, True])
def test_size_matrix_compiled_formulas_equal_numpy(compacted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled GLRLM/GLSZM/GLDM features equal the NumPy formulas to 1e-11 relative on random
    count matrices with empty groups, empty rows and columns, compacted grey levels and sizes."""
    from radstore.radiomics._matrix_features import size_matrix_formulas

    rng = np.random.default_rng(1)
    for trial in range(60):
        g, ng, nj = int(rng.integers(1, 6)), int(rng.integers(1, 30)), int(rng.integers(1, 40))
        p = rng.integers(0, 50, (g, ng, nj)) * (rng.random((g, ng, nj)) < rng.uniform(0.05, 1))
        p = p.astype(np.float64)
        if trial % 4 == 0:
            p[0] = 0  # an empty group: Nz = Np = 1 (PyRadiomics)
        jv = np.sort(rng.choice(np.arange(1, 400), nj, replace=False)).astype(np.int64)
        lv = np.sort(rng.choice(np.arange(1.0, 900.0), ng, replace=False)) if compacted else None
        monkeypatch.setattr(_compiled, "ENABLED", True)
        got = size_matrix_formulas(p, jv, lv)
        monkeypatch.setattr(_compiled, "ENABLED", False)
        want = size_matrix_formulas(p, jv, lv)
        assert list(got) == list(want)
        for k, w in want.items():
            np.testing.assert_allclose(got[k], w, rtol=1e-11, atol=0, err_msg=f"trial {trial}: {k}")
