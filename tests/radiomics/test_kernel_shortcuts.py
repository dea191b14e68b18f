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


@pytest.mark.parametrize(
    ("family", "n_levels"),
    [("glcm", 200), ("glrlm", 9000), ("ngtdm", 9000), ("glcm", 3), ("glrlm", 5), ("ngtdm", 5)],
)
def test_small_integer_keys_equal_torch_path(family: str, n_levels: int) -> None:
    """The NumPy kernels pick uint8/16/32 levels and keys by the level count (GLCM keys up to
    ``B (Ng+1)^2``: uint32 for B = 2, Ng = 200; GLRLM keys ``Ng Nr``; NGTDM packed sums up to
    ``27 (Ng+1) 2^5``); across those widths their matrices equal the torch kernels' (int64). GLCM with
    3 levels takes the two-directions-per-bincount path (and with distances (1, 2) an odd count)."""
    import importlib
    import warnings

    import torch

    from radstore.radiomics.texture_params import TextureParams

    mod = importlib.import_module(f"radstore.radiomics.{family}")
    rng = np.random.default_rng(n_levels)
    q = rng.integers(1, n_levels + 1, size=(2, 10, 12, 14))
    q = np.where(rng.random(q.shape) < 0.6, np.roll(q, 1, axis=3), q)  # some runs / equal pairs
    q[:, 0, 0, 0] = n_levels
    m = rng.random(q.shape) < 0.7
    m[:, 0, 0, 0] = True
    qt, mt = torch.from_numpy(q), torch.from_numpy(m)
    extra = () if family == "glcm" and n_levels > 100 else (TextureParams(distances=(1, 2)),)
    for params in (TextureParams(), *extra):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            a = mod.matrices(qt, mt, n_levels, params, method="numpy")
            b = mod.matrices(qt, mt, n_levels, params, method="torch")
        pairs = zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]
        for x, y in pairs:
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def test_bounding_box_equals_coordinate_extremes() -> None:
    from radstore.radiomics._neighbours import bounding_box

    rng = np.random.default_rng(11)
    assert bounding_box(np.zeros((4, 5, 6), dtype=bool)) is None
    for shape_ in [(1, 1, 1), (7, 9, 8), (12, 3, 20)]:
        for density in (0.002, 0.05, 0.6):
            mask = rng.random(shape_) < density
            if not mask.any():
                mask[tuple(rng.integers(0, n) for n in shape_)] = True
            idx = np.argwhere(mask)
            want = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(idx.min(0), idx.max(0), strict=True))
            assert bounding_box(mask) == want
