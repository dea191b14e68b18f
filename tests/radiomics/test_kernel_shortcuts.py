"""Exactness of the arithmetic shortcuts in the CPU kernels (moment sums, key encodings) against
the direct definitions they replace."""

from __future__ import annotations

import numpy as np
import pytest

from radstore.radiomics import shape


def _covariance_eigen(mask: np.ndarray, spacing: np.ndarray, unbiased: bool) -> np.ndarray:
    """The definition: eigenvalues of the covariance of the voxel-centre coordinates in mm."""
    c = np.argwhere(mask) * spacing
    return np.sort(np.linalg.eigvalsh(np.cov(c.T, bias=not unbiased)))


@pytest.mark.parametrize("shape_", [(9, 14, 12), (1, 20, 17), (6, 1, 9), (30, 4, 3)])
@pytest.mark.parametrize("unbiased", [False, True])
def test_pca_moments_equal_coordinate_covariance(shape_: tuple[int, int, int], unbiased: bool) -> None:
    rng = np.random.default_rng(sum(shape_))
    mask = rng.random(shape_) < 0.4
    mask.flat[0] = mask.flat[-1] = True
    sp = np.array([1.7, 0.6, 0.9])
    want = _covariance_eigen(mask, sp, unbiased)
    got = shape._pca_eigen(mask, sp, unbiased)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * want.max())


def test_pca_moments_2d_and_planar() -> None:
    rng = np.random.default_rng(5)
    m2 = rng.random((23, 31)) < 0.5
    sp2 = np.array([0.7, 1.3])
    np.testing.assert_allclose(shape._pca_eigen(m2, sp2), _covariance_eigen(m2, sp2, False), rtol=1e-12)
    line = np.zeros((4, 5, 6), dtype=bool)
    line[2, 3, :] = True  # a segment: two exactly zero eigenvalues
    ev = shape._pca_eigen(line, np.array([1.0, 1.0, 0.5]))
    assert ev[0] == 0.0 and ev[1] == 0.0
    assert ev[2] == pytest.approx(0.25 * np.var(np.arange(6.0)), rel=1e-14)
