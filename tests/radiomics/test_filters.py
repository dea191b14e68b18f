"""Derived images on a window around the ROI equal PyRadiomics' whole-image filters inside the ROI box."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radstore.radiomics.filters import (
    _recursive_gaussian_kernels,
    _recursive_gaussian_operators,
    _wavelet_window,
    derived_crops,
    log_crop,
    wavelet_crops,
)
from radstore.radiomics.imageops import ROIError

imageoperations = pytest.importorskip("radiomics.imageoperations")

Box = tuple[slice, slice, slice]


def _image(shape: tuple[int, int, int], seed: int, dtype: type = np.int16) -> np.ndarray:
    """CT-like: air around a body with structure, so the window edges cut through real contrast."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    c = np.array(shape) / 2
    body = ((yy - c[1]) / (0.45 * shape[1])) ** 2 + ((xx - c[2]) / (0.45 * shape[2])) ** 2 < 1
    img = np.where(body, rng.normal(40, 60, shape) + 300 * np.sin(xx / 3.0) * np.cos(zz / 2.0), -1000)
    return img.round().astype(dtype)


def _sitk(image: np.ndarray, spacing_zyx: tuple[float, float, float]) -> sitk.Image:
    img = sitk.GetImageFromArray(image)
    img.SetSpacing(spacing_zyx[::-1])
    return img


def _pyradiomics(kind: str, image: np.ndarray, spacing_zyx: tuple[float, float, float], **kwargs: object
                 ) -> dict[str, np.ndarray]:
    img = _sitk(image, spacing_zyx)
    mask = _sitk(np.ones(image.shape, dtype=np.uint8), spacing_zyx)
    fn = imageoperations.getLoGImage if kind == "LoG" else imageoperations.getWaveletImage
    return {name: sitk.GetArrayFromImage(out) for out, name, _ in fn(img, mask, **kwargs)}


CASES = [  # image shape, ROI box, spacing: interior ROI (every axis windowed), ROI at the edges, odd sizes
    ((41, 90, 87), (slice(15, 26), slice(30, 61), slice(28, 55)), (2.5, 0.8, 0.8)),
    ((21, 64, 63), (slice(0, 9), slice(20, 44), slice(50, 63)), (3.0, 0.7, 0.7)),
    ((17, 33, 35), (slice(4, 13), slice(9, 24), slice(10, 25)), (1.0, 1.0, 1.0)),
]


@pytest.mark.parametrize(("shape", "box", "spacing"), CASES)
@pytest.mark.parametrize(("wavelet", "start_level", "level", "force2d"),
                         [("coif1", 0, 1, False), ("haar", 1, 2, False), ("db3", 0, 1, True)])
def test_wavelet_window_equals_whole_image(shape, box: Box, spacing, wavelet: str, start_level: int,
                                           level: int, force2d: bool) -> None:
    image = _image(shape, 1)
    ours = wavelet_crops(image, box, wavelet, start_level, level, force2d, 0)
    ref = _pyradiomics("Wavelet", image, spacing, wavelet=wavelet, start_level=start_level, level=level,
                       force2D=force2d, force2Ddimension=0)
    assert len(ours) == len(ref) == (3 if force2d else 7) * level + 1
    for (lev, band), crop in ours.items():
        name = f"wavelet{'' if lev == 1 else lev}-{band}"
        assert crop.dtype == np.float64 and crop.shape == image[box].shape
        np.testing.assert_array_equal(crop, ref[name][box], err_msg=name)


def test_wavelet_windows_are_used() -> None:
    """The first case is windowed on every axis (so the test above checks the window path), an axis
    whose reach leaves the image is taken whole."""
    shape, box, _ = CASES[0]
    reach = 5 + 1  # coif1: 6 taps, one step
    windows = [_wavelet_window(b, n, reach) for b, n in zip(box, shape, strict=True)]
    assert all(w is not None and (w.stop - w.start) % 2 == 0 and w.stop - w.start < n
               for w, n in zip(windows, shape, strict=True))
    assert _wavelet_window(slice(0, 9), 21, reach) is None
    assert _wavelet_window(slice(3, 18), 21, reach) is None


# a box longer than LOG_ROW_BLOCK on two axes: the line products run by banded blocks of rows
LOG_CASES = [*CASES, ((12, 150, 160), (slice(2, 10), slice(5, 140), slice(40, 150)), (2.0, 0.7, 0.8))]


@pytest.mark.parametrize(("shape", "box", "spacing"), LOG_CASES)
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_log_window_equals_whole_image_to_rounding(shape, box: Box, spacing, dtype: type) -> None:
    """Within the output's float32 rounding (the window's truncation error is ~exp(-20) of the edge jump;
    ITK rounds its intermediate images to float32, the line-operator products run in float64)."""
    image = _image(shape, 2, dtype)
    sigmas = [1.0, 2.5]
    ref = _pyradiomics("LoG", image, spacing, sigma=sigmas)
    for sigma in sigmas:
        name = f"log-sigma-{str(sigma).replace('.', '-')}-mm-3D"
        want = ref[name][box].astype(np.float64)
        got = log_crop(image, spacing, box, sigma)
        eps = np.finfo(ref[name].dtype).eps
        np.testing.assert_allclose(got, want, rtol=0, atol=16 * eps * np.abs(ref[name]).max(), err_msg=name)


def test_derived_crops_names_and_log_errors() -> None:
    shape, box, spacing = CASES[0]
    image = _image(shape, 3)
    types = [("original", "Original", {}), ("log-sigma-1-0-mm-3D", "LoG", {"sigma": 1.0}),
             ("wavelet-HLH", "Wavelet", {"wavelet": "coif1", "start_level": 0, "level": 1, "band_level": 1,
                                         "band": "HLH"})]
    out = derived_crops(image, spacing, box, types, False, 0)
    assert list(out) == ["original", "log-sigma-1-0-mm-3D", "wavelet-HLH"]
    np.testing.assert_array_equal(out["original"], image[box].astype(np.float64))
    assert all(a.flags.c_contiguous and a.shape == image[box].shape for a in out.values())
    with pytest.raises(ROIError, match="at least 4 voxels"):
        log_crop(image[:3], spacing, (slice(0, 3), box[1], box[2]), 1.0)
    with pytest.raises(ROIError, match="too large"):
        log_crop(image, spacing, box, 200.0)


@pytest.mark.parametrize(("sigma", "spacing"), [(1.0, 0.977), (3.0, 0.977), (3.0, 3.0), (2.0, 0.5)])
@pytest.mark.parametrize("length", [4, 5, 23, 90])
def test_line_operators_equal_itk_on_identity(sigma: float, spacing: float, length: int) -> None:
    """The Toeplitz + end-value-extension matrices are SimpleITK's recursive Gaussian (run on an
    identity image: row ``j`` an impulse at ``j``) to its float32 output rounding."""
    reach = int(np.ceil(12 * sigma / spacing)) + 2
    smooth, second = _recursive_gaussian_operators(length, sigma, spacing, reach)
    orders = (sitk.RecursiveGaussianImageFilter.ZeroOrder, sitk.RecursiveGaussianImageFilter.SecondOrder)
    for op, order, scale in ((smooth, orders[0], 1.0), (second, orders[1], spacing**-2)):
        eye = sitk.GetImageFromArray(np.eye(length))
        eye.SetSpacing((spacing, 1.0))
        f = sitk.RecursiveGaussianImageFilter()
        f.SetSigma(sigma)
        f.SetOrder(order)
        f.SetNormalizeAcrossScale(True)
        want = sitk.GetArrayFromImage(f.Execute(eye)).T.astype(np.float64) * scale
        assert not op.flags.writeable
        np.testing.assert_allclose(op, want, rtol=0, atol=4 * np.finfo(np.float32).eps * np.abs(want).max())


@pytest.mark.parametrize(("sigma", "spacing"), [(1.0, 0.977), (2.0, 3.0), (3.0, 2.5)])
def test_log_of_a_constant_image_is_zero_as_itk(sigma: float, spacing: float) -> None:
    """ITK's recursive Gaussian has DC gain 1 (smoothing) and 0 (second derivative); the kernels read
    from its float32 output are corrected to those sums, so a constant region's LoG is ~0 as in
    PyRadiomics (~1e-13) instead of c x 1e-8 from the readout's rounding."""
    smooth, second = _recursive_gaussian_kernels(sigma, spacing, int(np.ceil(12 * sigma / spacing)) + 2)
    assert abs(smooth.sum() - 1.0) < 1e-15 and abs(second.sum()) < 1e-15
    image = np.full((12, 30, 30), 550, np.int16)
    sp = (spacing, 0.7, 0.7)
    got = log_crop(image, sp, (slice(3, 9), slice(5, 25), slice(5, 25)), sigma)
    ref = _pyradiomics("LoG", image, sp, sigma=[sigma])[f"log-sigma-{str(sigma).replace('.', '-')}-mm-3D"]
    assert np.abs(ref).max() < 1e-9 and np.abs(got).max() < 1e-9


def _lbp3d_pyradiomics(image: np.ndarray, mask: np.ndarray, **kwargs: object) -> dict[str, np.ndarray]:
    from radstore.radiomics.pyradiomics_backend import _scipy_sph_harm

    with _scipy_sph_harm():
        return {name: sitk.GetArrayFromImage(out) for out, name, _ in imageoperations.getLBP3DImage(
            _sitk(image, (1.0, 1.0, 1.0)), _sitk(mask.astype(np.uint8), (1.0, 1.0, 1.0)), **kwargs)}


def _plateaued(shape: tuple[int, int, int], seed: int, dtype: type, level: float | None) -> np.ndarray:
    """Structure cut flat at ``level`` (default: its 60th percentile): plateaus whose spline samples
    equal their centre in exact arithmetic, so the comparisons LBP3D makes there are decided by
    rounding."""
    img = _image(shape, seed, np.float64) * 0.37
    cut = np.quantile(img, 0.6)
    return (np.minimum(img, cut) + ((level - cut) if level is not None else 0.0)).astype(dtype)


@pytest.mark.parametrize(("shape", "box"), [((48, 90, 88), (slice(18, 27), slice(40, 52), slice(35, 50))),
                                            ((20, 30, 28), (slice(0, 7), slice(20, 30), slice(5, 17)))])
@pytest.mark.parametrize(("dtype", "plateau"), [(np.float64, None), (np.float64, 0.0), (np.int16, None)])
@pytest.mark.parametrize(("levels", "radius", "subdivision"), [(2, 1.0, 1), (3, 1.7, 0)])
def test_lbp3d_window_equals_whole_image_bit_for_bit(shape, box: Box, dtype: type, plateau: float | None,
                                                     levels: int, radius: float, subdivision: int,
                                                     monkeypatch) -> None:
    """LBP3D from a window (the ROI box plus the spline prefilter's margin; cut on every axis in the
    first shape) equals PyRadiomics' ``getLBP3DImage`` on the whole image bit for bit at every ROI
    voxel (on plateaus too, where rounding decides a sample against its centre), in blocks of a
    few voxels as in one, on threads as on one."""
    from radstore.radiomics import filters

    image = _plateaued(shape, 3, dtype, plateau)
    mask = np.zeros(shape, dtype=bool)
    mask[box] = np.random.default_rng(1).random(mask[box].shape) < 0.8
    kwargs = {"lbp3DLevels": levels, "lbp3DIcosphereRadius": radius, "lbp3DIcosphereSubdivision": subdivision}
    ref = _lbp3d_pyradiomics(image, mask, **kwargs)
    assert sorted(ref) == sorted([f"lbp-3D-m{n}" for n in range(1, levels + 1)] + ["lbp-3D-k"])
    for block, threads in ((filters.LBP3D_BLOCK_ELEMENTS, 1), (5 * 42 * levels**2, 1),
                           (filters.LBP3D_BLOCK_ELEMENTS, 3), (5 * 42 * levels**2, 2)):
        monkeypatch.setattr(filters, "LBP3D_BLOCK_ELEMENTS", block)
        ours = filters.lbp3d_crops(image, mask, box, levels, radius, subdivision, threads)
        for name, crop in ours.items():
            want = ref[f"lbp-3D-{name}"][box][mask[box]]
            assert np.array_equal(crop[mask[box]], want, equal_nan=True), (name, block, threads)
            assert not crop[~mask[box]].any()
    if dtype == np.float64:  # (the ties are there: without the margin the plateaus' comparisons flip)
        monkeypatch.setattr(filters, "LBP3D_SPLINE_MARGIN", 0)
        cut = filters.lbp3d_crops(image, mask, box, levels, radius, subdivision)
        assert not np.array_equal(cut["m1"][mask[box]], ref["lbp-3D-m1"][box][mask[box]])


def test_legacy_sph_harm_is_scipy_1_14s_bit_for_bit() -> None:
    """PyRadiomics' LBP3D harmonics: SciPy 1.14's ``sph_harm`` (removed in 1.17) at its icosphere
    angles (``reference/sph_harm_scipy_1_14.json``, written by SciPy 1.14.1 itself), bit for bit;
    SciPy's replacement ``sph_harm_y`` is ~1 ulp off at many of them."""
    import json
    from pathlib import Path

    from scipy.special import sph_harm_y

    from radstore.radiomics.filters import legacy_sph_harm

    ref = json.loads((Path(__file__).parent / "reference" / "sph_harm_scipy_1_14.json").read_text())
    assert ref["scipy"].startswith("1.14")
    off_by_ulps = 0
    for row in ref["rows"]:
        theta, phi = np.array(row["theta"]), np.array(row["phi"])
        want = np.array(row["real"]) + 1j * np.array(row["imag"])
        assert np.array_equal(legacy_sph_harm(row["m"], row["n"], theta, phi), want), (row["m"], row["n"])
        off_by_ulps += int((sph_harm_y(row["n"], row["m"], phi, theta) != want).sum())
    assert off_by_ulps > 100
