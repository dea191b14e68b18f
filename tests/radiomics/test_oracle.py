"""torch backend vs the pyradiomics backend (PyRadiomics 3.1 itself) on the same arrays."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import SimpleITK as sitk

from radstore.radiomics import RadiomicsSettings, extract, extract_batch, feature_names
from tests.radiomics._data import read_pair

pb = pytest.importorskip("radstore.radiomics.pyradiomics_backend")
pytest.importorskip("radiomics")


def _assert_close(ours: dict[str, float], ref: dict[str, float], rtol: float, atol: float = 1e-6) -> None:
    assert list(ours) == list(ref)
    bad = [f"{k}: {ours[k]!r} vs {ref[k]!r}" for k in ref
           if not np.isclose(ours[k], ref[k], rtol=rtol, atol=atol)]
    assert not bad, f"{len(bad)}/{len(ref)} differ:\n" + "\n".join(bad[:20])


def _synthetic(seed: int, shape=(14, 20, 22)) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    rng = np.random.default_rng(seed)
    image = rng.normal(40, 60, shape).round().astype(np.int16)
    zz, yy, xx = np.indices(shape)
    c = np.array(shape) / 2
    r = ((zz - c[0]) / 5) ** 2 + ((yy - c[1]) / 7) ** 2 + ((xx - c[2]) / 6) ** 2
    mask = (r < 1 + 0.3 * rng.random(shape)).astype(np.uint8)
    return image, mask, (2.5, 0.8, 0.8)


@pytest.fixture(scope="module")
def ct_phantom(shared_data):
    base = shared_data / "ibsi1" / "ct_phantom" / "nifti"
    return read_pair(base / "image" / "phantom.nii.gz", base / "mask" / "mask.nii.gz")


def test_ct_phantom_107_original_features(ct_phantom):
    settings = RadiomicsSettings.from_params(None)
    ours = extract(*ct_phantom, settings)
    assert len(ours) == 107
    _assert_close(ours, pb.extract(*ct_phantom, settings), rtol=1e-4)


def test_synthetic_rois_batched(tmp_path):
    settings = RadiomicsSettings.from_params({"setting": {"binWidth": 10, "voxelArrayShift": 1000}})
    rois = [_synthetic(s) for s in range(3)]
    rois.append(_synthetic(7, shape=(9, 12, 30)))
    batch = extract_batch(rois, settings)
    for roi, ours in zip(rois, batch, strict=True):
        _assert_close(ours, pb.extract(*roi, settings), rtol=1e-4)


def test_synthetic_resampled_bincount():
    settings = RadiomicsSettings.from_params({"setting": {"binCount": 16, "resampledPixelSpacing": [1, 1, 1],
                                                          "interpolator": "sitkBSpline"}})
    roi = _synthetic(3)
    _assert_close(extract(*roi, settings), pb.extract(*roi, settings), rtol=1e-4)


@pytest.mark.parametrize("extra", [{}, {"resegmentRange": [0, 120], "resegmentShape": True},
                                   {"resegmentRange": [0.3, 1.0], "resegmentMode": "relative"}])
def test_force2d_shape2d_single_slice(extra: dict) -> None:
    """shape2D of a single-slice ROI, also on the re-segmented mask (``resegmentShape``) and with
    the bounding box of the re-segmented ROI (PyRadiomics' steps for shape)."""
    image, mask, spacing = _synthetic(5)
    single = np.zeros_like(mask)
    single[7] = mask[7]
    settings = RadiomicsSettings.from_params({
        "setting": {"force2D": True, "force2Ddimension": 0, **extra},
        "featureClass": {"shape2D": None, "firstorder": None, "glcm": None, "glrlm": None}})
    ours = extract(image, single, spacing, settings)
    assert any(k.startswith("original_shape2D_") for k in ours)
    _assert_close(ours, pb.extract(image, single, spacing, settings), rtol=1e-4)


def test_filters_small_synthetic():
    settings = RadiomicsSettings.from_params({"imageType": {"LoG": {"sigma": [1.0, 2.0]}, "Wavelet": {}},
                                              "featureClass": {"firstorder": None, "glcm": None}})
    roi = _synthetic(11)
    ours = extract(*roi, settings)
    assert list(ours) == feature_names(settings)
    _assert_close(ours, pb.extract(*roi, settings), rtol=1e-3)


SIMPLE_FILTER_TYPES = {"Original": {}, "Square": {}, "SquareRoot": {}, "Logarithm": {}, "Exponential": {},
                       "Gradient": {}, "LBP2D": {"binCount": 10}}


@pytest.mark.parametrize("case", ["int16_spike_far_from_roi", "roi_on_the_image_edge", "float32_resampled",
                                  "gradient_in_voxels_lbp_variance"])
def test_pointwise_gradient_and_lbp2d_images(case: str) -> None:
    """Square, SquareRoot, Logarithm, Exponential (scaled by the whole image's max |x|: a spike far
    outside the ROI's window changes every value), Gradient (central differences: an ROI on the
    image's edge sees ITK's boundary) and LBP2D (scikit-image, per slice; its ``var`` method's
    float values truncated into an int16 image as PyRadiomics stores them), against PyRadiomics at
    1e-4 like the original image."""
    image, mask, spacing = _synthetic(23)
    setting: dict = {"binCount": 24}
    image_types = {k: dict(v) for k, v in SIMPLE_FILTER_TYPES.items()}
    if case == "int16_spike_far_from_roi":
        image[0, 0, 0] = -3000
    elif case == "roi_on_the_image_edge":
        mask = np.roll(mask, (-4, 6, -7), axis=(0, 1, 2))
        assert mask[0].any() and mask[:, -1].any() and mask[:, :, 0].any()
    elif case == "float32_resampled":
        image = (image * 0.37).astype(np.float32)
        setting.update({"resampledPixelSpacing": [1, 1, 1], "normalize": True})
    else:
        image_types["Gradient"] = {"gradientUseSpacing": False}
        image_types["LBP2D"] = {"lbp2DMethod": "var", "lbp2DRadius": 2, "lbp2DSamples": 12,
                                "force2Ddimension": 2, "binCount": 12}
    families = {"firstorder": None, "glcm": None, "glszm": None}
    settings = RadiomicsSettings.from_params({"setting": setting, "imageType": image_types,
                                              "featureClass": families})
    ours = extract(image, mask, spacing, settings)
    assert {k.split("_")[0] for k in ours} == {"original", "square", "squareroot", "logarithm", "exponential",
                                               "gradient", "lbp-2D"}
    _assert_close(ours, pb.extract(image, mask, spacing, settings), rtol=1e-4)


@pytest.mark.parametrize("case", ["int16_defaults", "float32_resampled_resegmented", "force2d_on_the_edge"])
def test_lbp3d_images(case: str) -> None:
    """LBP3D (trimesh icosphere samples, cubic spline, spherical harmonics; m1..mL and kurtosis
    images) against PyRadiomics' own ``getLBP3DImage`` (SciPy's removed ``sph_harm`` supplied as
    documented) at 1e-4, with its arguments drawn from the setting section and its own binning."""
    image, mask, spacing = _synthetic(29)
    setting: dict = {"binCount": 16}
    lbp: dict = {}
    if case == "float32_resampled_resegmented":
        image = (image * 0.37).astype(np.float32)
        setting.update({"resampledPixelSpacing": [1, 1, 1], "normalize": True, "resegmentRange": [-2.5, 2.5],
                        "lbp3DLevels": 3, "lbp3DIcosphereRadius": 2.0, "lbp3DIcosphereSubdivision": 2})
        lbp = {"binWidth": 0.5, "binCount": None}
    elif case == "force2d_on_the_edge":
        mask = np.roll(mask, (-4, 6, -7), axis=(0, 1, 2))
        setting.update({"force2D": True, "force2Ddimension": 1})
    params = {"setting": setting, "imageType": {"Original": {}, "LBP3D": lbp},
              "featureClass": {"firstorder": None, "glcm": None, "gldm": None}}
    with pytest.warns(UserWarning, match="LBP3D") if "force2D" in setting else contextlib.nullcontext():
        settings = RadiomicsSettings.from_params(params)
    levels = setting.get("lbp3DLevels", 2)
    assert settings.image_type_names() == ["original", *[f"lbp-3D-m{n}" for n in range(1, levels + 1)],
                                           "lbp-3D-k"]
    ours = extract(image, mask, spacing, settings)
    _assert_close(ours, pb.extract(image, mask, spacing, settings), rtol=1e-4)


def test_lbp3d_with_one_level_is_the_first_of_more() -> None:
    """``lbp3DLevels: 1`` (which PyRadiomics' LBP3D crashes on): its m1 and kurtosis images are those
    of any higher level count, which PyRadiomics computes."""
    image, mask, spacing = _synthetic(31)
    one, two = (RadiomicsSettings.from_params({"setting": {"binCount": 16}, "imageType": {
        "LBP3D": {"lbp3DLevels": levels}}}) for levels in (1, 2))
    assert one.image_type_names() == ["lbp-3D-m1", "lbp-3D-k"]
    with pytest.raises(ValueError, match="lbp3DLevels: 1"):
        pb.extract(image, mask, spacing, one)
    ours = extract(image, mask, spacing, one)
    ref = {k: v for k, v in pb.extract(image, mask, spacing, two).items() if not k.startswith("lbp-3D-m2")}
    _assert_close(ours, ref, rtol=1e-4)


def test_lbp3d_of_a_flat_neighbourhood_is_an_error_naming_it() -> None:
    """Where all samples around a ROI voxel are equal the kurtosis image is NaN: PyRadiomics fails on
    it, and so do we, saying why."""
    image, mask, spacing = _synthetic(29)
    image[1:] = 50
    settings = RadiomicsSettings.from_params({"setting": {"binCount": 16}, "imageType": {"LBP3D": {}}})
    with pytest.raises(pb.ROIError):
        pb.extract(image, mask, spacing, settings)
    with pytest.raises(pb.ROIError, match=r"lbp-3D-k image.*flat neighbourhood"):
        extract(image, mask, spacing, settings)


@pytest.mark.parametrize("kernels", ["numpy", "torch"])
def test_features_enabled_only_by_name(kernels: str) -> None:
    """PyRadiomics' redundant features, computed only when a params file names them: first-order
    StandardDeviation and shape Compactness1, Compactness2, SphericalDisproportion (3D) and
    SphericalDisproportion (2D), on both kernel paths."""
    from radstore.radiomics._neighbours import torch_kernels

    roi = _synthetic(13)
    settings = RadiomicsSettings.from_params({"featureClass": {
        "shape": ["Compactness1", "Compactness2", "SphericalDisproportion", "Sphericity"],
        "firstorder": ["StandardDeviation", "Variance"]}})
    image, mask, spacing = _synthetic(17)
    single = np.zeros_like(mask)
    single[6] = mask[6]
    settings_2d = RadiomicsSettings.from_params({"setting": {"force2D": True},
                                                 "featureClass": {"shape2D": ["SphericalDisproportion"]}})
    with torch_kernels() if kernels == "torch" else contextlib.nullcontext():
        ours = extract(*roi, settings)
        ours_2d = extract(image, single, spacing, settings_2d)
    assert list(ours) == ["original_shape_Compactness1", "original_shape_Compactness2",
                          "original_shape_SphericalDisproportion", "original_shape_Sphericity",
                          "original_firstorder_StandardDeviation", "original_firstorder_Variance"]
    _assert_close(ours, pb.extract(*roi, settings), rtol=1e-6)
    sd, var = ours["original_firstorder_StandardDeviation"], ours["original_firstorder_Variance"]
    assert sd ** 2 == pytest.approx(var)
    assert list(ours_2d) == ["original_shape2D_SphericalDisproportion"]
    _assert_close(ours_2d, pb.extract(image, single, spacing, settings_2d), rtol=1e-6)


def test_filter_arguments_in_the_setting_section_as_pyradiomics() -> None:
    """``sigma`` and ``wavelet`` in ``setting`` apply to LoG and Wavelet (an image type's own value
    wins), as PyRadiomics reads them: the same columns and values as PyRadiomics run on the raw
    params, not on our translation of them."""
    import logging

    from radiomics import featureextractor

    params = {"setting": {"sigma": [1.0, 2.5], "wavelet": "haar", "binWidth": 20},
              "imageType": {"Original": {}, "LoG": {}, "Wavelet": {"binWidth": 10}},
              "featureClass": {"firstorder": ["Mean", "Entropy"], "glcm": ["Contrast"]}}
    settings = RadiomicsSettings.from_params(params)
    image, mask, spacing = _synthetic(19)
    ours = extract(image, mask, spacing, settings)
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    img = sitk.GetImageFromArray(image)
    msk = sitk.GetImageFromArray(mask.astype(np.uint32))
    for x in (img, msk):
        x.SetSpacing(spacing[::-1])
    raw = featureextractor.RadiomicsFeatureExtractor(params).execute(img, msk)
    ref = {k: float(v) for k, v in raw.items() if not k.startswith("diagnostics_")}
    assert "log-sigma-2-5-mm-3D_glcm_Contrast" in ours and "wavelet-HHH_firstorder_Entropy" in ours
    assert sorted(ours) == sorted(ref)
    _assert_close(ours, {k: ref[k] for k in ours}, rtol=1e-3)


@pytest.mark.slow
def test_ct_phantom_log_wavelet_all_features(ct_phantom):
    settings = RadiomicsSettings.from_params({"imageType": {"Original": {}, "LoG": {"sigma": [1.0, 3.0]},
                                                            "Wavelet": {}}})
    _assert_close(extract(*ct_phantom, settings), pb.extract(*ct_phantom, settings), rtol=1e-3)


REAL_CT_SETTINGS = {
    "default": None,
    "resampled_1mm_bspline_resegmented": {"setting": {
        "resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkBSpline", "binWidth": 25,
        "resegmentRange": [-150, 400]}},
    "log_wavelet": {"imageType": {"Original": {}, "LoG": {"sigma": [2.0, 4.0]}, "Wavelet": {}}},
}


@pytest.mark.parametrize("config", list(REAL_CT_SETTINGS))
@pytest.mark.parametrize("case", ["STS_001", "STS_002"])
def test_real_sarcoma_ct_from_dicom_rtstruct(shared_data, case: str, config: str) -> None:
    """Real tumours (TCIA soft-tissue sarcoma CT, 3.27 mm slices, DICOM series + RTSTRUCT read by
    our file path): every feature equals PyRadiomics on the same files, for the default, a resampled
    and re-segmented clinical setting, and LoG + wavelet images (~1,000 features)."""
    from radstore.radiomics.files import extract_files

    base = shared_data / "sts" / case / "CT" / "dicom"
    settings = RadiomicsSettings.from_params(REAL_CT_SETTINGS[config])
    args = (base / "image", base / "mask" / "RS.dcm", settings)
    ours = extract_files(*args, backend="torch")
    assert len(ours) == len(feature_names(settings)) >= 107
    assert ours["original_shape_MeshVolume"] > 10_000  # a real tumour (mm^3), not an empty or tiny mask
    rtol = 1e-3 if config == "log_wavelet" else 1e-4
    _assert_close(ours, extract_files(*args, backend="pyradiomics"), rtol=rtol)


RESAMPLING_GRIDS = {  # (shape, spacing zyx, image kind, resampledPixelSpacing, interpolator, padDistance)
    "z_kept_3mm_to_1mm_int16": ((12, 15, 14), (3.27, 3.0, 3.0), "int16", [1, 1, 0], "sitkBSpline", 5),
    "constant_uint8_knots_5mm": ((8, 10, 9), (5.0, 2.0, 2.0), "constant_uint8", [1, 1, 1], "sitkBSpline", 1),
    "flat_float32_on_a_bin_edge": ((20, 15, 9), (0.5, 0.8, 0.8), "constant_float32_on_edge", [1, 1, 1],
                                   "sitkBSpline", 1),
    "ties_098_to_1mm": ((10, 24, 22), (3.27, 0.98, 0.98), "int16", [1, 1, 1], "sitkBSpline", 5),
    "slices_2_5mm_float32": ((14, 18, 18), (2.5, 0.8, 0.8), "float32", [1, 1, 1], "sitkBSpline", 0),
    "halving_odd_sizes_linear": ((15, 21, 19), (1.0, 1.0, 1.0), "int16", [2, 2, 2], "sitkLinear", 1),
    "upsampling_nearest_uint8": ((6, 9, 8), (1.5, 1.25, 1.25), "uint8", [0.5, 0.5, 0.5],
                                 "sitkNearestNeighbor", 5),
}
_SPACINGS = (0.5, 0.8, 0.976562, 0.98, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.27, 5.0)
_TARGETS = ([1, 1, 1], [2, 2, 2], [1, 1, 0], [0.5, 0.5, 0.5], [1.5, 1.5, 1.5], [0.8, 0.8, 2.5])
_KINDS = ("int16", "uint8", "float32", "constant_uint8", "constant_int16", "constant_float32")


def _random_grid(seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    return (tuple(int(n) for n in rng.integers(4, 22, 3)),
            (float(rng.choice(_SPACINGS)), *[float(rng.choice(_SPACINGS))] * 2),
            str(rng.choice(_KINDS)), list(_TARGETS[rng.integers(len(_TARGETS))]),
            str(rng.choice(["sitkBSpline", "sitkBSpline", "sitkLinear", "sitkNearestNeighbor"])),
            int(rng.choice([0, 1, 5])))


def _resampling_roi(seed: int, shape: tuple[int, int, int], kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dtype = kind.removeprefix("constant_").removesuffix("_on_edge")
    image = rng.normal(40, 200, shape).clip(*((0, 255) if dtype == "uint8" else (-1024, 3000)))
    image = image.astype(np.float32) if dtype == "float32" else image.round().astype(dtype)
    if kind.startswith("constant"):
        # on_edge: 16 bins of [v - 0.5, v + 0.5] put v on edge 8 in exact arithmetic; float32 edges
        # (PyRadiomics' for a float32 image) round that edge above v (bin 8), float64 ones not (bin 9)
        image[:] = np.float32(3.590328) if kind.endswith("on_edge") else image.flat[0]
    zz, yy, xx = np.indices(shape)
    c, r = rng.uniform(0.35, 0.65, 3) * np.array(shape), rng.uniform(1.5, 5.0, 3)
    mask = (((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 < 1)
    mask[tuple(int(v) for v in c)] = True
    mask[int(c[0]), int(c[1]), int(c[2]) - 1] = True  # at least 2 voxels
    return image, mask.astype(np.uint8)


@pytest.mark.parametrize("grid", list(RESAMPLING_GRIDS) + [f"random_{s}" for s in range(12)])
def test_resampled_rois_on_varied_grids(grid: str) -> None:
    """Randomized oracle for resampling: all 107 features after PyRadiomics' resampling on grids that
    stress exact-arithmetic corners (an axis kept at its spacing while 3 -> 1 mm in-plane, constant
    images, nearest-neighbour ties, 2.5 mm slices, halving odd sizes; a flat float32 ROI, whose
    value lies on a bin edge only in exact arithmetic: PyRadiomics bins it with float32 edges) and
    on random shapes, clinical spacings, targets, pixel types, interpolators and pads."""
    seed = int(grid.removeprefix("random_")) + 100 if grid.startswith("random_") else len(grid)
    shape, spacing, kind, target, interpolator, pad = (
        _random_grid(seed) if grid.startswith("random_") else RESAMPLING_GRIDS[grid])
    image, mask = _resampling_roi(seed, shape, kind)
    settings = RadiomicsSettings.from_params({"setting": {
        "resampledPixelSpacing": target, "interpolator": interpolator, "padDistance": pad, "binCount": 16}})
    try:
        ref = pb.extract(image, mask, spacing, settings)
    except ValueError as err:  # PyRadiomics refuses the ROI (e.g. one voxel after resampling): so must we
        with pytest.raises(ValueError):
            extract(image, mask, spacing, settings)
        pytest.skip(f"both refuse the ROI: {err}")
    _assert_close(extract(image, mask, spacing, settings), ref, rtol=1e-4)


def test_many_narrow_bins_over_few_voxels() -> None:
    """binWidth 2 over ~1,200 HU: ~600 bins of which ~260 occur in ~1,000 voxels (the GLCM keeps
    only the levels present, as PyRadiomics drops the empty rows and columns)."""
    image, mask, spacing = _synthetic(11, shape=(8, 14, 14))
    image = image * 3
    settings = RadiomicsSettings.from_params({"setting": {"binWidth": 2}})
    _assert_close(extract(image, mask, spacing, settings), pb.extract(image, mask, spacing, settings),
                  rtol=1e-4)


@pytest.mark.parametrize("seed", [70, 106, 118, 386])
def test_two_level_rois_where_mcc_rests_on_rounding(seed: int) -> None:
    """Two grey levels, non-symmetrical GLCM: along some direction the second eigenvalue of ``Q`` is
    0 in exact arithmetic, PyRadiomics' rounding makes it negative and drops that direction from
    the MCC mean; ours reproduces its arithmetic for such ROIs (``glcm._pyradiomics_tie_features``)."""
    rng = np.random.default_rng(seed)
    image = np.where(rng.random((4, 6, 6)) < 0.5, 0, 100).astype(np.int16)
    mask = (rng.random((4, 6, 6)) < 0.6).astype(np.uint8)
    settings = RadiomicsSettings.from_params({"setting": {"binWidth": 25, "symmetricalGLCM": False},
                                              "featureClass": {"glcm": None}})
    _assert_close(extract(image, mask, (1.0, 1.0, 1.0), settings),
                  pb.extract(image, mask, (1.0, 1.0, 1.0), settings), rtol=1e-4)


def test_roi_where_imc2_rests_on_rounding() -> None:
    """A random case (seed 8320 of the randomized oracle: 7 bins, distance 2, non-symmetrical GLCM)
    where along one of its 44 directions the marginal ``p_y`` holds one grey level: the mutual
    information ``HXY2 - HXY`` is 0 in exact arithmetic and -2.2e-16 in PyRadiomics' rounding, whose
    Imc2 for that direction is then NaN and left out of the mean (0.678 against 0.662 with a 0)."""
    from tests.radiomics._random_cases import settings_case

    image, mask, spacing, params, _ = settings_case(8320)
    settings = RadiomicsSettings.from_params(params)
    ours, ref = extract(image, mask, spacing, settings), pb.extract(image, mask, spacing, settings)
    assert ours["original_glcm_Imc2"] == pytest.approx(ref["original_glcm_Imc2"], rel=1e-10)
    _assert_close(ours, ref, rtol=1e-4)


@pytest.mark.parametrize("device_code", [False, True])
def test_correlation_ties_follow_pyradiomics_matrix_layout(device_code: bool) -> None:
    """Seed 5106 of the ``filters`` sweep (Exponential image, distance 2 on a ROI two slices thick,
    asymmetric GLCM): directions whose column marginal holds one grey level, where PyRadiomics'
    rounding decides Correlation (0 / 0 in exact arithmetic) and Imc2. NumPy sums over a matrix in
    the order of its memory layout, so PyRadiomics' matrix is rebuilt in its layout: only the
    angles that fit in the ROI's box, levels removed with ``numpy.delete`` (0.528 against 0.444
    before)."""
    from radstore.radiomics._neighbours import torch_kernels
    from tests.radiomics._random_cases import compare, settings_case

    image, mask, spacing, params, _ = settings_case(5106)
    params = {**params, "imageType": {"Exponential": {}}, "featureClass": {"glcm": None}}
    with torch_kernels() if device_code else contextlib.nullcontext():
        assert compare((image, mask, spacing, params, False)) is None


@pytest.mark.parametrize("device_code", [False, True])
def test_mcc_of_every_direction_dropped_is_the_exact_zero(device_code: bool) -> None:
    """Seed 10186 of the ``filters`` sweep (torch path; the NumPy path alike): in every direction of
    the LBP2D image's GLCM the second eigenvalue is 0 in exact arithmetic and PyRadiomics' rounding
    makes it negative, so its MCC is the mean of nothing, NaN; ours is the exact value, 0 (a NaN
    would cost the ROI all its features). Every other feature agrees."""
    from radstore.radiomics._neighbours import torch_kernels
    from tests.radiomics._random_cases import simple_filters_case

    image, mask, spacing, params, _ = simple_filters_case(10186)
    params = {**params, "imageType": {"LBP2D": params["imageType"]["LBP2D"]}, "featureClass": {"glcm": None}}
    settings = RadiomicsSettings.from_params(params)
    with torch_kernels() if device_code else contextlib.nullcontext():
        ours = extract(image, mask, spacing, settings)
    ref = pb.extract(image, mask, spacing, settings)
    assert ours.pop("lbp-2D_glcm_MCC") == 0.0 and np.isnan(ref.pop("lbp-2D_glcm_MCC"))
    _assert_close(ours, ref, rtol=1e-4)


def test_lbp2d_of_a_float_image_samples_where_pyradiomics_does() -> None:
    """Seed 2133 of the ``filters`` sweep (a normalised, so float, image; LBP2D radius 1.5): the
    sample positions ``row + R sin(.)`` round differently at another origin, and on a float image
    a bilinear sample then flips its comparison with the centre (71 of 665 features differed when
    the LBP ran on a window starting at the box)."""
    from tests.radiomics._random_cases import compare, simple_filters_case

    image, mask, spacing, params, _ = simple_filters_case(2133)
    params = {**params, "imageType": {"LBP2D": params["imageType"]["LBP2D"]}}
    assert compare((image, mask, spacing, params, False)) is None


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ["settings", "shape2d", "filters"])
def test_random_settings(kind: str, seed: int) -> None:
    """A fixed sample of the randomized oracle (``tests/radiomics/_random_cases.py``: random ROIs,
    pixel types and PyRadiomics settings; run it over thousands of seeds to search for more)."""
    from tests.radiomics._random_cases import GENERATORS, compare

    assert compare(GENERATORS[kind](seed)) is None


@pytest.mark.parametrize("seed", [3, 20300, 21102, 21648])
def test_random_settings_on_the_torch_kernels(seed: int) -> None:
    """Cases of the randomized oracle on the torch (device) kernels, run on the CPU: among them ROIs
    whose voxels all hold one value (a constant image's wavelet band; a normalised constant image),
    where PyRadiomics' rounding decides skewness and kurtosis (+-1, 1 or 0)."""
    from radstore.radiomics._neighbours import torch_kernels
    from tests.radiomics._random_cases import compare, settings_case

    with torch_kernels():
        assert compare(settings_case(seed)) is None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["settings", "shape2d", "filters"])
def test_random_settings_sweep(kind: str) -> None:
    """The randomized oracle over 60 more seeds per generator (slow: ~30 s)."""
    from tests.radiomics._random_cases import GENERATORS, compare

    problems = [f"seed {s}: {p}" for s in range(6, 66) if (p := compare(GENERATORS[kind](s))) is not None]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("seed", [8, 105, 149])
@pytest.mark.parametrize("device_code", [False, True])
def test_three_level_rois_where_correlation_rests_on_rounding(seed: int, device_code: bool) -> None:
    """Three grey levels, non-symmetrical GLCM at distances 1 and 2: along some direction a marginal
    holds one grey level, so ``sigx sigy`` and ``corm`` are 0 in exact arithmetic and PyRadiomics'
    Correlation for it is 1 or a ratio of rounding errors, as its arithmetic falls; ours follows
    that arithmetic on the NumPy path and on the device (torch) path alike."""
    from radstore.radiomics import torch_kernels

    rng = np.random.default_rng(seed)
    image = (rng.integers(0, 3, (3, 5, 5)) * 50).astype(np.int16)
    mask = (rng.random((3, 5, 5)) < 0.35).astype(np.uint8)
    settings = RadiomicsSettings.from_params({
        "setting": {"binWidth": 25, "symmetricalGLCM": False, "distances": [1, 2]},
        "featureClass": {"glcm": None}})
    with torch_kernels() if device_code else contextlib.nullcontext():
        ours = extract(image, mask, (1.0, 1.0, 1.0), settings)
    _assert_close(ours, pb.extract(image, mask, (1.0, 1.0, 1.0), settings), rtol=1e-4)
