"""Separable resampling (:mod:`radstore.radiomics.resample`) equals SimpleITK's ResampleImageFilter."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import SimpleITK as sitk

from radstore.radiomics import imageops, resample


def _sitk_resample(arr: np.ndarray, spacing: np.ndarray, origin_index: np.ndarray, new_spacing: np.ndarray,
                   size: list[int], interpolator: str) -> np.ndarray:
    """PyRadiomics' call: output grid from an input continuous index, the input's direction and
    pixel type (all arguments z, y, x)."""
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing([float(v) for v in spacing[::-1]])
    rif = sitk.ResampleImageFilter()
    rif.SetOutputSpacing([float(v) for v in new_spacing[::-1]])
    rif.SetSize([int(v) for v in size[::-1]])
    rif.SetOutputOrigin(img.TransformContinuousIndexToPhysicalPoint([float(v) for v in origin_index[::-1]]))
    rif.SetOutputDirection(img.GetDirection())
    rif.SetOutputPixelType(img.GetPixelID())
    rif.SetInterpolator(getattr(sitk, interpolator))
    return sitk.GetArrayFromImage(rif.Execute(img))


def _random_case(rng: np.random.Generator, dtype: type) -> tuple:
    shape = tuple(int(v) for v in rng.choice([1, 3, 4, 7, 19, 25, 41], 3))
    arr = rng.normal(0, 300, shape)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        arr = np.clip(arr, info.min, info.max)
    spacing, new_spacing = rng.uniform(0.5, 3.5, 3), rng.uniform(0.5, 3.5, 3)
    if rng.random() < 0.3:
        new_spacing = np.round(new_spacing)  # exact halves of positions (nearest neighbour ties)
    origin_index = rng.uniform(-1.2, 2.0, 3)  # grids starting outside the image too
    size = [max(1, int(n * s / ns) + int(rng.integers(-2, 3))) for n, s, ns in
            zip(shape, spacing, new_spacing, strict=True)]
    return arr.astype(dtype), spacing, origin_index, new_spacing, size


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.float64])
def test_bspline_equals_simpleitk(dtype: type) -> None:
    """Random images (lines of 1 to 41 voxels: ITK's full and truncated B-spline initialisations),
    up- and down-sampling, grids reaching outside the image: every voxel equal (float64 output:
    within rounding of the B-spline sums, 1e-12 of the image's magnitude)."""
    rng = np.random.default_rng(int(np.dtype(dtype).num))
    checked = 0
    while checked < 40:
        arr, spacing, origin_index, new_spacing, size = _random_case(rng, dtype)
        if not resample.supported("sitkBSpline", arr.shape):
            continue
        ref = _sitk_resample(arr, spacing, origin_index, new_spacing, size, "sitkBSpline")
        x = imageops._grid_positions(origin_index, spacing, new_spacing, size)
        got = resample.resample(arr, x)
        assert got.dtype == ref.dtype and got.shape == ref.shape
        if dtype is np.float64:
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * float(np.abs(arr).max()))
        else:
            assert np.array_equal(got, ref)
        inside = _sitk_resample(np.ones(arr.shape, np.uint8), spacing, origin_index, new_spacing, size,
                                "sitkNearestNeighbor") > 0
        assert np.array_equal(resample.resample(arr, x, inside=inside), got)
        checked += 1


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float64])
def test_nearest_at_itk_positions_equals_simpleitk_ties_included(dtype: type) -> None:
    """Nearest neighbour at ITK's positions equals SimpleITK's on every grid, those with positions on
    a tie or on the image border included (there the rounding of ITK's own position arithmetic
    decides: :func:`resample.positions` reproduces it); ``ambiguous`` reports such grids (callers
    whose SimpleITK computes otherwise use SimpleITK there)."""
    assert imageops.itk_positions_reproduced()
    rng = np.random.default_rng(11 + int(np.dtype(dtype).num))
    ties = 0
    for _ in range(60):
        arr, spacing, origin_index, new_spacing, size = _random_case(rng, dtype)
        if rng.random() < 0.5:  # PyRadiomics' grids on common spacings (ties, e.g. 1.5 mm -> 1 mm)
            spacing = rng.choice([0.5, 0.7, 0.8, 1.25, 1.5, 2.5, 3.0], 3)
            new_spacing = rng.choice([0.5, 1.0, 1.5, 2.0], 3)
            origin_index = (0.5 * (new_spacing - spacing) / spacing
                            + rng.integers(-2, 4, 3) * new_spacing / spacing)
            size = [max(1, int(n * s / ns) + int(rng.integers(-2, 3))) for n, s, ns in
                    zip(arr.shape, spacing, new_spacing, strict=True)]
        x = imageops._grid_positions(origin_index, spacing, new_spacing, size)
        ties += resample.ambiguous(x)
        ref = _sitk_resample(arr, spacing, origin_index, new_spacing, size, "sitkNearestNeighbor")
        got = resample.nearest(arr, x)
        assert got.dtype == ref.dtype and np.array_equal(got, ref), (arr.shape, spacing, new_spacing, size)
    assert ties >= 10
    halving = resample.positions(0.5, 1.0, 2.0, 7)  # PyRadiomics' grid for 1 -> 2 mm: x = 2 j + 0.5
    assert resample.ambiguous([halving, np.zeros(1), np.zeros(1)])
    assert resample.ambiguous([np.array([-0.5]), np.zeros(1), np.zeros(1)])  # on the border
    assert not resample.ambiguous([np.array([0.25, 3.7]), np.zeros(1), np.zeros(1)])


def _fma(a: float, b: float, c: float) -> float:
    """``a * b + c`` rounded once (a fused multiply-add)."""
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def _axis_positions(origin_index: float, spacing: float, new_spacing: float, n: int, scanline: bool,
                    arithmetic: str) -> np.ndarray:
    """One axis's positions under another position arithmetic than ITK 5.4's x86-64 build."""
    origin, inverse = spacing * origin_index, 1.0 / spacing

    def point(i: int) -> float:
        fused = arithmetic in ("fma_points", "fma_both")
        return _fma(new_spacing, float(i), origin) if fused else origin + new_spacing * float(i)

    if not scanline:
        return np.array([point(i) * inverse for i in range(n)])
    first, end = point(0) * inverse, point(n) * inverse
    out = []
    for i in range(n):
        a = i / float(n)
        if arithmetic == "older_itk_scanline":
            out.append(first * (1.0 - a) + end * a)
        elif arithmetic in ("fma_scanline", "fma_both"):
            out.append(_fma(a, end - first, first))
        else:
            out.append(first + a * (end - first))
    return np.array(out)


@pytest.mark.parametrize("arithmetic", ["older_itk_scanline", "fma_scanline", "fma_points", "fma_both"])
def test_itk_check_grid_tells_other_position_arithmetic_apart(arithmetic: str) -> None:
    """The grid that ``itk_positions_reproduced`` resamples with SimpleITK picks other voxels under
    each other plausible position arithmetic (an older ITK's scan-line interpolation, fused
    multiply-adds as an arm64 build may use): a SimpleITK computing so is caught, and its grids
    with ties are left to SimpleITK. The first rows show the check is exact: ours equals the
    direct formula written out here."""
    g = imageops.ITK_CHECK_GRID
    numbers = np.arange(1, int(np.prod(g.shape)) + 1, dtype=np.uint32).reshape(g.shape)
    args = [(g.origin_index[a], g.spacing[a], g.new_spacing[a], g.size[a], a == 2) for a in range(3)]
    ours = [_axis_positions(*a, arithmetic="itk_5_4") for a in args]
    for a, p in zip(args, ours, strict=True):
        assert np.array_equal(p, resample.positions(*a[:4], scanline=a[4]))
    other = [_axis_positions(*a, arithmetic=arithmetic) for a in args]
    assert not np.array_equal(resample.nearest(numbers, other), resample.nearest(numbers, ours))
    assert imageops.itk_positions_reproduced()


@pytest.mark.parametrize("seed", range(3))
def test_prepare_masks_at_itk_positions_equal_simpleitk_on_tie_grids(seed: int) -> None:
    """The resampled ROI by NumPy at ITK's positions equals SimpleITK's nearest neighbour on the whole
    mask (any thread count) on PyRadiomics' grids full of ties: slices of 1.5, 2.5 or 3 mm to 1 mm,
    0.7 -> 1.05 mm in-plane, halved axes, thin ROIs (a single output line included)."""
    from radstore.radiomics.settings import RadiomicsSettings

    rng = np.random.default_rng(40 + seed)
    checked = 0
    while checked < 20:
        shape = (int(rng.integers(3, 20)), int(rng.integers(3, 40)), int(rng.integers(3, 40)))
        spacing = tuple(float(rng.choice([0.5, 0.7, 0.8, 1.0, 1.5, 2.5, 3.0])) for _ in range(3))
        new = [float(rng.choice([0.5, 1.0, 1.05, 1.5, 2.0])) for _ in range(3)]
        roi = rng.random(shape) < (0.02 if rng.random() < 0.3 else 0.4)
        if roi.sum() < 2:
            continue
        s = RadiomicsSettings.from_params({"setting": {"resampledPixelSpacing": new,
                                                       "padDistance": int(rng.integers(0, 6))}}).setting
        image = rng.normal(0, 100, shape).round().astype(np.int16)
        _, got, _ = imageops._resample(image, roi, spacing, s)
        before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        calls: list[tuple] = []
        try:
            for threads in (1, 3):
                sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr(imageops, "itk_positions_reproduced", lambda: False)
                    mp.setattr(resample, "ambiguous", lambda x: True)
                    mp.setattr(imageops, "_sitk_nearest",
                               lambda *a, f=imageops._sitk_nearest, seen=calls: seen.append(a) or f(*a))
                    _, want, _ = imageops._resample(image, roi, spacing, s)
                assert np.array_equal(got, want), (shape, spacing, new, threads)
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
        if calls:  # (not when the grid is the input's: nothing resampled)
            assert len(calls) == 2
            checked += 1


def test_outside_positions_are_zero_and_single_voxel_lines_constant() -> None:
    arr = np.arange(1.0, 1.0 + 3 * 5 * 4).reshape(3, 5, 4)
    x = [np.array([-0.6, -0.5, 1.0, 2.49, 2.5]), np.array([0.0, 4.0]), np.array([1.25])]
    got = resample.resample(arr, x)
    assert (got[[0, 4]] == 0).all() and (got[1:4] != 0).all()
    flat = np.full((1, 4, 6), 7.0)  # one slice: constant along z at any position inside
    out = resample.resample(flat, [np.array([-0.4, 0.0, 0.3]), np.arange(4.0), np.arange(6.0)])
    np.testing.assert_allclose(out, 7.0, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.int16, np.uint8])
def test_casts_that_itk_rounding_decides_are_reported(dtype: type) -> None:
    """Where the grid meets the input grid along every axis (z kept, x and y 3 -> 1 mm: one voxel in
    9 is an input voxel) or the image is constant, the B-spline gives integers in exact arithmetic
    and ITK's truncation of its own sums decides between two values: ``resample`` returns None
    (callers use SimpleITK); off those grids it equals ITK's cast, float images always."""
    rng = np.random.default_rng(2)
    arr = rng.normal(100, 40, (9, 12, 11)).clip(0, 255).round().astype(dtype)
    spacing, new_spacing = np.array([2.0, 3.0, 3.0]), np.array([2.0, 1.0, 1.0])
    origin_index = 0.5 * (new_spacing - spacing) / spacing  # PyRadiomics' grid: x = -1/3 + k/3
    size = [9, 34, 31]
    x = imageops._grid_positions(origin_index, spacing, new_spacing, size)
    assert resample.resample(arr, x) is None
    ref = _sitk_resample(arr.astype(np.float64), spacing, origin_index, new_spacing, size, "sitkBSpline")
    knots = ref[:, 1::3, 1::3]  # positions 0, 1, 2, ... of the input along y and x
    np.testing.assert_allclose(knots, arr[:, : knots.shape[1], : knots.shape[2]], rtol=0, atol=1e-10)
    assert resample.resample(np.full((5, 6, 7), 40, dtype), x) is None
    assert resample.resample(arr.astype(np.float32), x) is not None
    shifted = origin_index + np.array([0.0, 0.1, 0.1])  # off the input grid in-plane: no near-integers
    got = resample.resample(arr, imageops._grid_positions(shifted, spacing, new_spacing, size))
    assert got is not None
    assert np.array_equal(got, _sitk_resample(arr, spacing, shifted, new_spacing, size, "sitkBSpline"))


def test_prepare_resamples_float64_images_with_simpleitk(monkeypatch: pytest.MonkeyPatch) -> None:
    """A float64 (e.g. normalised) image on a grid whose positions mirror each other about the last
    slice (6 x 5 mm -> 1 mm): ``prepare`` gives SimpleITK's values bit for bit (ties that ITK's
    rounding makes there reach the percentile thresholds of first-order features)."""
    from radstore.radiomics.settings import RadiomicsSettings

    image = np.random.default_rng(3).normal(0, 200, (6, 22, 6))
    mask = np.zeros(image.shape, np.uint8)
    mask[1:6, 4:18, 1:5] = 1
    s = RadiomicsSettings.from_params({"setting": {"resampledPixelSpacing": [1, 1, 1]}}).setting
    fast = imageops.prepare(image, mask, (5.0, 0.5, 0.5), s, 1)
    monkeypatch.setattr(resample, "supported", lambda *_: False)
    monkeypatch.setattr(resample, "ambiguous", lambda x: True)
    monkeypatch.setattr(imageops, "itk_positions_reproduced", lambda: False)
    slow = imageops.prepare(image, mask, (5.0, 0.5, 0.5), s, 1)
    assert fast.array.dtype == slow.array.dtype == np.float64
    assert np.array_equal(fast.array, slow.array) and np.array_equal(fast.mask, slow.mask)


def test_two_voxel_lines_are_left_to_simpleitk() -> None:
    assert not resample.supported("sitkBSpline", (2, 10, 10))
    assert not resample.supported("sitkLinear", (10, 10, 10))
    assert not resample.supported("sitkNearestNeighbor", (10, 10, 10))
    with pytest.raises(ValueError, match="lines of 1 or >= 3"):
        resample.resample(np.zeros((2, 5, 5)), [np.zeros(1)] * 3)


@pytest.mark.parametrize(("grid", "ties"), [("sts_ct_to_1mm", False), ("ct_098_to_1mm", True),
                                           ("halving_odd_sizes", True), ("z_kept_3mm_to_1mm", False)])
def test_prepare_resampled_equals_simpleitk_path(grid: str, ties: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``prepare`` with a B-spline resampledPixelSpacing gives the arrays of the SimpleITK path: on a
    real CT's spacings, and on grids whose positions tie in exact arithmetic (where ITK's rounding of
    its positions decides, reproduced): nearest-neighbour ties (``0.98 -> 1`` mm at ``x = 24.5``) and
    a last voxel exactly on the image border (``x = n - 0.5`` when halving odd sizes); and on a grid
    that meets the input grid along every axis (z kept, 3 -> 1 mm in-plane: integer values whose
    truncation ITK's rounding decides, the image by SimpleITK). The reference runs SimpleITK for both
    arrays."""
    from radstore.radiomics.settings import RadiomicsSettings

    shape, spacing, new = {"sts_ct_to_1mm": ((14, 40, 36), (3.27, 0.976562, 0.976562), [1, 1, 1]),
                           "ct_098_to_1mm": ((14, 40, 36), (3.27, 0.98, 0.98), [1, 1, 1]),
                           "halving_odd_sizes": ((15, 41, 37), (1.0, 1.0, 1.0), [2, 2, 2]),
                           "z_kept_3mm_to_1mm": ((15, 19, 18), (3.27, 3.0, 3.0), [1, 1, 0])}[grid]
    rng = np.random.default_rng(5)
    image = rng.normal(40, 200, shape).round().astype(np.int16)
    zz, yy, xx = np.indices(shape)
    c = np.array(shape) / 2
    mask = (((zz - c[0]) / (0.45 * shape[0])) ** 2 + ((yy - c[1]) / (0.45 * shape[1])) ** 2
            + ((xx - c[2]) / (0.45 * shape[2])) ** 2 < 1).astype(np.uint8)
    s = RadiomicsSettings.from_params({"setting": {"resampledPixelSpacing": new}}).setting
    seen: list[bool] = []
    ambiguous = resample.ambiguous
    monkeypatch.setattr(resample, "ambiguous", lambda x: seen.append(ambiguous(x)) or seen[-1])
    fast = imageops.prepare(image, mask, spacing, s, 1)
    assert seen == [ties]
    monkeypatch.setattr(resample, "supported", lambda *_: False)
    monkeypatch.setattr(resample, "ambiguous", lambda x: True)
    monkeypatch.setattr(imageops, "itk_positions_reproduced", lambda: False)
    slow = imageops.prepare(image, mask, spacing, s, 1)
    assert fast.array.dtype == slow.array.dtype == np.int16
    assert np.array_equal(fast.array, slow.array) and np.array_equal(fast.mask, slow.mask)
    assert fast.bbox == slow.bbox and fast.spacing_zyx == slow.spacing_zyx


@pytest.mark.parametrize("seed", range(6))
def test_nearest_mask_probes_equal_simpleitk_on_the_whole_mask(seed: int,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``_sitk_nearest`` by its two small probes (forced here for small masks) picks the voxels that
    SimpleITK picks resampling the whole mask, on grids full of nearest-neighbour ties (1.5 or 2.5 mm
    slices to 1 mm, halved and kept axes, grids starting outside the image) and whatever thread count
    ITK splits the whole mask over."""
    rng = np.random.default_rng(100 + seed)
    common = [0.5, 0.7, 0.8, 0.9765625, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0]
    for _ in range(25):
        shape = tuple(int(v) for v in rng.integers(1, 30, 3))
        spacing = tuple(float(rng.choice(common)) if rng.random() < 0.8 else float(rng.uniform(0.3, 4))
                        for _ in range(3))
        new_spacing = np.array([float(rng.choice([0.5, 1.0, 1.5, 2.0, 3.0])) for _ in range(3)])
        roi = rng.random(shape) < 0.3
        origin_index = (0.5 * (new_spacing - np.array(spacing)) / np.array(spacing)
                        + rng.integers(-2, 3, 3) * new_spacing / np.array(spacing))
        size = [max(1, int(n * s / ns) + int(rng.integers(-1, 3))) for n, s, ns in
                zip(shape, spacing, new_spacing, strict=True)]
        monkeypatch.setattr(imageops, "PROBE_MIN_VOXELS", 0)
        got_roi, got_inside = imageops._sitk_nearest(roi, spacing, new_spacing, size, origin_index)
        monkeypatch.setattr(imageops, "PROBE_MIN_VOXELS", 1 << 62)
        before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        for threads in (1, 2, 5):
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
            try:
                want_roi, want_inside = imageops._sitk_nearest(roi, spacing, new_spacing, size, origin_index)
            finally:
                sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
            assert np.array_equal(got_inside, want_inside), (shape, spacing, new_spacing, size, threads)
            assert np.array_equal(got_roi, want_roi), (shape, spacing, new_spacing, size, threads)


def test_ibsi_grid_resampling_equals_a_direct_interpolation() -> None:
    """``compatibility: ibsi`` resampling (``imageops._resample_ibsi``) against a direct evaluation
    of IBSI 1's definition with SciPy: grid centres aligned (``n_b = ceil(n_a s_a / s_b)``, voxel
    ``i`` at input index ``((n_a - 1) s_a - (n_b - 1) s_b) / (2 s_a) + i s_b / s_a``), trilinear
    image rounded to integers (a CT), trilinear mask kept where >= 0.5. A padDistance beyond the
    image makes the computed window the whole grid."""
    from scipy import ndimage

    from radstore.radiomics.settings import RadiomicsSettings

    rng = np.random.default_rng(11)
    shape, spacing = (14, 33, 30), (3.0, 0.977, 0.977)
    image = rng.normal(0, 300, shape).round().astype(np.int16)
    zz, yy, xx = np.indices(shape)
    roi = ((zz - 7) / 4.2) ** 2 + ((yy - 15) / 9.3) ** 2 + ((xx - 14) / 8.1) ** 2 < 1
    s = RadiomicsSettings.from_params({"setting": {"resampledPixelSpacing": [2, 2, 2], "padDistance": 100,
                                                   "interpolator": "sitkLinear"}}).setting
    img, msk, out_spacing = imageops._resample_ibsi(image, roi, spacing, s)
    assert out_spacing == (2.0, 2.0, 2.0) and img.dtype == np.int16
    sp, new, n_a = np.array(spacing), np.array([2.0, 2.0, 2.0]), np.array(shape)
    n_b = np.ceil(n_a * sp / new).astype(int)
    assert img.shape == msk.shape == tuple(n_b)
    start = ((n_a - 1) * sp - (n_b - 1) * new) / (2 * sp)
    grid = np.stack(np.meshgrid(*[start[k] + np.arange(n_b[k]) * new[k] / sp[k] for k in range(3)],
                                indexing="ij"))
    want_img = ndimage.map_coordinates(image.astype(float), grid, order=1, mode="nearest")
    want_msk = ndimage.map_coordinates(roi.astype(float), grid, order=1, mode="nearest") >= 0.5
    assert np.array_equal(msk, want_msk) and msk.sum() > 0
    half = np.abs(want_img - np.floor(want_img) - 0.5) < 1e-6  # (x.5 values may round either way)
    assert np.array_equal(img[~half], np.round(want_img[~half]))
    assert np.abs(img[half] - want_img[half]).max(initial=0.0) <= 0.5 + 1e-6


def test_prepare_on_a_whole_ct_with_tie_grids_uses_the_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lesion in a whole 512 x 512 x 60 CT resampled to 1 mm from 1.5 mm slices (every other output
    slice a nearest-neighbour tie): where this SimpleITK's position arithmetic is not reproduced,
    ``prepare`` takes the probes, with the arrays of the whole-mask SimpleITK path and of NumPy at
    ITK's positions."""
    from radstore.radiomics.settings import RadiomicsSettings

    rng = np.random.default_rng(8)
    image = rng.normal(40, 30, (60, 512, 512)).round().astype(np.int16)
    zz, yy, xx = np.ogrid[:60, :512, :512]
    r2 = ((zz - 30) / 6.5) ** 2 + ((yy - 300) / 15.0) ** 2 + ((xx - 200) / 14.0) ** 2
    mask = (r2 < 1).astype(np.uint8)
    s = RadiomicsSettings.from_params({"setting": {"resampledPixelSpacing": [1, 1, 1]}}).setting
    at_itk_positions = imageops.prepare(image, mask, (1.5, 0.75, 0.75), s, 1)
    monkeypatch.setattr(imageops, "itk_positions_reproduced", lambda: False)
    calls: list[int] = []
    nearest = imageops._sitk_nearest
    monkeypatch.setattr(imageops, "_sitk_nearest", lambda *a: calls.append(a[0].size) or nearest(*a))
    fast = imageops.prepare(image, mask, (1.5, 0.75, 0.75), s, 1)
    assert calls == [image.size] and image.size >= imageops.PROBE_MIN_VOXELS
    monkeypatch.setattr(imageops, "PROBE_MIN_VOXELS", 1 << 62)
    whole = imageops.prepare(image, mask, (1.5, 0.75, 0.75), s, 1)
    assert np.array_equal(fast.mask, whole.mask) and np.array_equal(fast.array, whole.array)
    assert fast.mask.any() and fast.bbox == whole.bbox
    assert np.array_equal(at_itk_positions.mask, whole.mask)
    assert np.array_equal(at_itk_positions.array, whole.array)
