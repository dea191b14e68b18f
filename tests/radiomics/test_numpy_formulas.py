"""Each texture family's feature formula is written once for NumPy arrays and torch tensors
(:mod:`radstore.radiomics._arrays`): evaluated in NumPy (CPU) and in torch (other devices) it gives
the same values to 1e-12 relative on random and degenerate matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radstore.radiomics._matrix_features import size_matrix_formulas


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)


def _size_matrices(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for g, ng, nj in ((3, 5, 7), (1, 1, 1), (2, 8, 1), (4, 1, 6)):
        p = rng.poisson(2.0, (g, ng, nj)).astype(np.float64)
        p[rng.random(p.shape) < 0.4] = 0.0
        out.append((p, np.sort(rng.choice(np.arange(1, 40), nj, replace=False))))
    zero = np.zeros((2, 4, 3))
    zero[1, 2, 1] = 5.0  # one empty group (Nz = 0), one with a single cell
    out.append((zero, np.array([1, 2, 3])))
    return out


@pytest.mark.parametrize("case", range(5))
def test_size_matrix_numpy_equals_torch(case: int) -> None:
    p, jv = _size_matrices(np.random.default_rng(case))[case]
    a = size_matrix_formulas(p, jv)
    b = size_matrix_formulas(torch.from_numpy(p), torch.from_numpy(jv))
    assert all(isinstance(v, np.ndarray) for v in a.values())
    assert all(isinstance(v, torch.Tensor) for v in b.values())
    assert set(a) == set(b)
    for k in a:
        _close(a[k], b[k].numpy())


def _glcm_cases() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    out = []
    p = rng.random((3, 13, 6, 6))
    p[rng.random(p.shape) < 0.5] = 0.0
    p[1, 4] = 0.0  # an empty direction
    p[2] = 0.0  # a ROI without pairs (all NaN)
    out.append((p, np.array([6, 5, 6]), np.array([6, 4, 0])))
    one = np.zeros((2, 4, 1, 1))
    one[0] = 1.0  # a single grey level
    out.append((one, np.array([1, 1]), np.array([1, 0])))
    diag = np.zeros((1, 2, 4, 4))
    diag[0, :, [0, 3], [0, 3]] = 1.0  # px py with zeros, sigma > 0; direction-merged shape
    out.append((diag, np.array([4]), np.array([2])))
    flatp = np.zeros((1, 1, 3, 3))
    flatp[0, 0, 1, :] = 1.0  # sigma_x = 0 (Correlation = 1)
    out.append((flatp, np.array([3]), np.array([3])))
    for c in out:
        tot = c[0].sum(axis=(2, 3), keepdims=True)
        c[0][...] = c[0] / np.where(tot > 0, tot, 1.0)
    return out


@pytest.mark.parametrize("case", range(4))
def test_glcm_numpy_equals_torch(case: int) -> None:
    from radstore.radiomics.glcm import FEATURES, _feature_formulas

    p, ngr, npres = _glcm_cases()[case]
    a = _feature_formulas(p, ngr, npres)
    b = _feature_formulas(torch.from_numpy(p), torch.from_numpy(ngr), torch.from_numpy(npres))
    assert list(a) == list(b) == list(FEATURES)
    for k in a:
        _close(a[k], b[k].numpy())


@pytest.mark.parametrize("case", range(4))
def test_ngtdm_numpy_equals_torch(case: int) -> None:
    from radstore.radiomics.ngtdm import _feature_formulas

    rng = np.random.default_rng(11 + case)
    n_i = rng.poisson(3.0, (3, 6)).astype(np.float64)
    s_i = rng.random((3, 6)) * n_i
    if case == 1:  # one grey level per ROI (Contrast divisor 0), and s = 0 (Coarseness 1e6)
        n_i[:, 1:] = 0.0
        s_i[:] = 0.0
    if case == 2:  # absent levels and one ROI with equal neighbourhood sums (Busyness divisor 0)
        n_i[:, ::2] = 0.0
        s_i[:, ::2] = 0.0
        s_i[0] = 0.0
    if case == 3:
        n_i, s_i = n_i[:, :1] + 1.0, s_i[:, :1]  # Ng = 1
    a = _feature_formulas(n_i, s_i)
    b = _feature_formulas(torch.from_numpy(n_i), torch.from_numpy(s_i))
    assert list(a) == list(b)
    for k in a:
        _close(a[k], b[k].numpy())


@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0, 0.25]])
def test_glrlm_direction_mean_numpy_equals_torch(weights: list[float] | None) -> None:
    from radstore.radiomics.glrlm import _direction_mean_features

    rng = np.random.default_rng(5)
    p = rng.poisson(1.0, (3, 4, 5, 7)).astype(np.float64)
    p[..., 2] = 0.0  # a run length that never occurs
    p[1, 2] = 0.0
    valid = p.sum(axis=(2, 3)) > 0
    valid[0, 1] = False  # a direction without any pair of voxels on a line
    p = p * valid[:, :, None, None]
    p[2] = 0.0
    valid[2] = False  # a ROI without any valid direction (NaN)
    a = _direction_mean_features(p, valid, w=weights)
    b = _direction_mean_features(torch.from_numpy(p), torch.from_numpy(valid), w=weights)
    assert list(a) == list(b)
    for k in a:
        _close(a[k], b[k].numpy())
