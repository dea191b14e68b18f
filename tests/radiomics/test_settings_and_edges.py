"""Settings parsing/validation, names, degenerate ROIs, shape tables, CLI, CPU/CUDA agreement."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch

from radstore.ids import settings_version
from radstore.radiomics import RadiomicsSettings, ROIError, SettingsError, extract, feature_names, registry
from radstore.radiomics.shape import CORNERS, FEATURES_3D, TRIANGLES, shape_3d

REPO_PARAMS = "feature_sets/params"


def test_default_is_pyradiomics_107():
    names = feature_names(RadiomicsSettings.from_params(None))
    assert len(names) == 107 and len(set(names)) == 107
    assert "original_glcm_Contrast" in names and "original_firstorder_StandardDeviation" not in names
    counts = {f: sum(n.startswith(f"original_{f}_") for n in names) for f in registry.TEXTURE_FAMILIES}
    assert counts == {"glcm": 24, "glrlm": 16, "glszm": 16, "gldm": 14, "ngtdm": 5}


def test_texture_modules_match_registry():
    import importlib

    for fam in registry.TEXTURE_FAMILIES:
        assert set(importlib.import_module(f"radstore.radiomics.{fam}").FEATURES) == set(
            registry.family_features(fam)), fam


def test_params_files_and_filter_names():
    s = RadiomicsSettings.from_params(f"{REPO_PARAMS}/ct_filters.yaml")
    names = feature_names(s)
    assert len(names) == 14 + 93 * 12
    assert "log-sigma-1-0-mm-3D_firstorder_Mean" in names and "wavelet-LLH_glszm_ZoneEntropy" in names
    assert "wavelet-LLL_ngtdm_Strength" in names
    assert RadiomicsSettings.from_params(f"{REPO_PARAMS}/ibsi_config_c.yaml").compatibility == "ibsi"
    assert len(feature_names(RadiomicsSettings.from_params(f"{REPO_PARAMS}/pyradiomics_default.yaml"))) == 107


@pytest.mark.parametrize(("params", "message"), [
    ({"setting": {"binWidth": 25, "binCount": 32}}, "mutually exclusive"),
    ({"setting": {"binwidth": 25}}, "setting.binwidth"),
    ({"imageType": {"Gabor": {}}}, "not supported"),
    ({"featureClass": {"glcm": ["Contrastt"]}}, r"unknown glcm.*'Contrastt' \(did you mean 'Contrast'\?\)"),
    ({"featureClass": {"shape": ["Volume"]}}, "did you mean 'MeshVolume'"),
    ({"setting": {"force2DDimension": 0}}, "setting.force2DDimension.*did you mean 'force2Ddimension'"),
    ({"imageType": {"wavelet": {}}}, "did you mean 'Wavelet'"),
    ({"imageType": {"LoG": {"sigmas": [1]}}}, "did you mean 'sigma'"),
    ({"inputImage": {"Original": {}}}, "rename it imageType"),
    ({"voxelSetting": {"kernelRadius": 1}}, "voxel-based extraction"),
    ({"featureClass": {}}, "enables no feature"),
    ({"imageType": {"Square": {"sigma": [1]}}}, "Square takes no arguments of its own"),
    ({"imageType": {"LBP3D": {"lbp3DLevels": 0}}}, "lbp3DLevels"),
    ({"imageType": {"LBP3D": {"lbp3DIcosphereRadius": 0}}}, "lbp3DIcosphereRadius"),
    ({"imageType": {"LBP3D": {"lbp3DSubdivision": 2}}}, "did you mean 'lbp3DIcosphereSubdivision'"),
    ({"imageType": {"LBP2D": {"lbp2DMethod": "nri_uniform"}}}, "lbp2DMethod"),
    ({"setting": {"binCount": 16}, "imageType": {"LBP2D": {"binWidth": 1}}}, "give it binCount: null"),
    ({"featureClass": {"texture": None}}, "unknown feature class"),
    ({"imageType": {"LoG": {"sigma": [0]}}}, "sigma"),
    ({"compatibility": "ibsi", "setting": {"voxelArrayShift": 1000}}, "voxelArrayShift"),
    ({"setting": {"interpolator": "cubic"}}, "interpolator"),
])
def test_invalid_params_name_the_field(params, message):
    with pytest.raises(SettingsError, match=message):
        RadiomicsSettings.from_params(params)


def test_every_image_type_names_its_columns_as_pyradiomics():
    s = RadiomicsSettings.from_params({"setting": {"lbp3DLevels": 3}, "imageType": {
        "Gradient": {"gradientUseSpacing": False}, "Exponential": {}, "Logarithm": {}, "SquareRoot": {},
        "Square": {}, "Wavelet": {}, "LoG": {"sigma": [1, 2.5]}, "Original": {}, "LBP2D": {}, "LBP3D": {}}})
    names = feature_names(s)
    assert len(names) == 14 + 93 * (1 + 2 + 8 + 6 + 4)
    assert s.image_type_names()[-10:] == ["square", "squareroot", "logarithm", "exponential", "gradient",
                                          "lbp-2D", "lbp-3D-m1", "lbp-3D-m2", "lbp-3D-m3", "lbp-3D-k"]
    assert s.imageType["LBP3D"] == {"lbp3DLevels": 3, "lbp3DIcosphereRadius": 1.0,
                                    "lbp3DIcosphereSubdivision": 1}
    assert "lbp3DLevels" not in s.setting.model_dump()
    assert "squareroot_glcm_Contrast" in names and "gradient_ngtdm_Strength" in names
    assert s.imageType["Gradient"] == {"gradientUseSpacing": False}


def test_deprecated_features_warn_and_have_no_column():
    """PyRadiomics accepts these names but computes nothing for them: a warning naming what each
    equals, no column; a list of nothing else enables no feature."""
    with pytest.warns(UserWarning, match="Dissimilarity is deprecated.*equals glcm DifferenceAverage"):
        s = RadiomicsSettings.from_params({"featureClass": {"glcm": ["Dissimilarity", "Contrast"]}})
    assert feature_names(s) == ["original_glcm_Contrast"]
    with pytest.warns(UserWarning, match="DependencePercentage"), \
            pytest.raises(SettingsError, match="no feature"):
        RadiomicsSettings.from_params({"featureClass": {"gldm": ["DependencePercentage"]}})


def test_params_files_with_conflicting_repeated_keys_are_refused(tmp_path):
    """YAML loaders keep the last of a repeated key silently; a repeat with another value is refused
    (naming both lines), a repeat with the same value (PyRadiomics' own Params.yaml repeats
    ``shape:``) loses nothing and is read."""
    p = tmp_path / "params.yaml"
    p.write_text("setting:\n  binWidth: 25\n  label: 1\n  binWidth: 10\n")
    with pytest.raises(SettingsError, match=r"'binWidth' is given twice with different values .lines 2, 4"):
        RadiomicsSettings.from_params(p)
    p.write_text("featureClass:\n  shape:\n  firstorder: []\n  shape:\n")
    assert set(RadiomicsSettings.from_params(p).enabled_features()) == {"shape", "firstorder"}


def test_params_file_errors_name_the_file(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("setting:\n  binWidth: -1\n")
    with pytest.raises(SettingsError, match=r"params.yaml: .*setting.binWidth"):
        RadiomicsSettings.from_params(p)


def test_version_hash_is_stable_and_sensitive():
    a = RadiomicsSettings.from_params({"setting": {"binWidth": 25}})
    b = RadiomicsSettings.from_params({"setting": {"binWidth": 25.0}})
    c = RadiomicsSettings.from_params({"setting": {"binWidth": 10}})
    assert settings_version(a) == settings_version(b) != settings_version(c)
    json.dumps(a.model_dump(mode="json"))


def test_resegment_outliers_is_an_ibsi_extension_that_keeps_existing_versions():
    """``resegmentOutliers`` (IBSI's outlier filtering after the range) needs IBSI mode, leaves the
    canonical dump (so the version) of settings without it unchanged, and filters mean +- k sd of the
    voxels the range kept."""
    from radstore.radiomics.imageops import _resegment

    plain = RadiomicsSettings.from_params({"setting": {"binWidth": 25}})
    assert "resegmentOutliers" not in plain.model_dump(mode="json")["setting"]
    with pytest.raises(SettingsError, match="needs compatibility: ibsi"):
        RadiomicsSettings.from_params({"setting": {"resegmentOutliers": 3}})
    ibsi = RadiomicsSettings.from_params({"compatibility": "ibsi", "setting": {
        "resegmentRange": [-1000, 400], "resegmentOutliers": 2}})
    assert ibsi.model_dump(mode="json")["setting"]["resegmentOutliers"] == 2
    assert settings_version(ibsi) != settings_version(RadiomicsSettings.from_params(
        {"compatibility": "ibsi", "setting": {"resegmentRange": [-1000, 400]}}))
    values = np.array([-2000.0, 0, 10, 20, 30, 40, 50, 60, 70, 80, 500, 300], dtype=float)
    image = values.reshape(1, 3, 4)
    mask = np.ones(image.shape, bool)
    kept = image[_resegment(image, mask, ibsi.setting, 1)]
    inside = values[(values >= -1000) & (values <= 400)]  # the range first: -2000 and 500 go
    mean, sd = inside.mean(), inside.std()
    assert sorted(kept) == sorted(inside[np.abs(inside - mean) <= 2 * sd])
    assert 300 not in kept and 0 in kept  # (300 is beyond 2 sd of the range-kept voxels)


def test_bspline_resampling_of_a_two_voxel_axis_is_refused():
    """SimpleITK's B-spline mirrors a 2-voxel axis outside its buffer: its output (PyRadiomics' too)
    is read from unrelated memory and changes from run to run (NaN or 1e297 now and then). A clear
    error instead; linear interpolation works."""
    rng = np.random.default_rng(2)
    image = rng.normal(0, 100, (2, 17, 17))
    mask = (rng.random(image.shape) < 0.6).astype(np.uint8)
    bspline = RadiomicsSettings.from_params({"setting": {"resampledPixelSpacing": [1, 1, 1]}})
    with pytest.raises(ROIError, match=r"axis of 2 voxels .* use interpolator sitkLinear"):
        extract(image, mask, (2.5, 1.0, 1.0), bspline)
    linear = RadiomicsSettings.from_params({"setting": {"resampledPixelSpacing": [1, 1, 1],
                                                        "interpolator": "sitkLinear"}})
    assert np.isfinite(list(extract(image, mask, (2.5, 1.0, 1.0), linear).values())).all()


def test_ibsi_bin_edges_of_filtered_images_start_at_their_minimum():
    """IBSI mode with a re-segmentation range and a fixed bin width: the original image's edges start
    at the range's lower bound, a filtered image's at its ROI minimum (its responses are not bounded
    by the range; starting at the bound left values below the first edge)."""
    from radstore.radiomics.engine import _anchor

    rng = np.random.default_rng(5)
    image = rng.normal(0, 40, (9, 12, 12)).round().astype(np.int16)
    mask = np.zeros(image.shape, np.uint8)
    mask[2:7, 2:10, 2:10] = 1
    s = RadiomicsSettings.from_params({"compatibility": "ibsi", "setting": {
        "resegmentRange": [-50, 50], "binWidth": 10, "voxelArrayShift": 0},
        "imageType": {"Original": {}, "Wavelet": {}, "LoG": {"sigma": [1.0]}}})
    values = extract(image, mask, (1.0, 1.0, 1.0), s)
    assert np.isfinite(list(values.values())).all()
    crop = np.array([-80.0, 3.0, 7.5])
    assert _anchor(s, s.setting, crop, original=True) == -50.0
    assert _anchor(s, s.setting, crop, original=False) == -80.0


def test_zero_mesh_volume_is_pyradiomics_and_its_ratio_a_roi_error():
    """12 scattered voxels whose marching-cubes mesh (PyRadiomics' table: voxels touching along an
    edge are ambiguous) has a signed volume of 0 on the ROI box: MeshVolume 0 as PyRadiomics, whose
    SurfaceVolumeRatio divides by it (NaN there); ours names the feature in a ROIError instead of a
    ZeroDivisionError (found by the tiny-input fuzz)."""
    from radstore.radiomics import pyradiomics_backend

    mask = np.zeros((15, 9, 2), np.uint8)
    for p in [(0, 8, 0), (0, 8, 1), (3, 3, 1), (4, 8, 0), (7, 4, 1), (10, 0, 0), (10, 6, 1), (13, 0, 0),
              (13, 4, 0), (14, 1, 1), (14, 2, 0), (14, 7, 1)]:
        mask[p] = 1
    image = np.random.default_rng(0).normal(0, 100, mask.shape)
    spacing = (0.5, 2.5, 1.0)
    with pytest.raises(ROIError, match="SurfaceVolumeRatio"):
        extract(image, mask, spacing, RadiomicsSettings.from_params(None))
    shape_only = RadiomicsSettings.from_params({"featureClass": {"shape": ["MeshVolume", "SurfaceArea"]}})
    ours = extract(image, mask, spacing, shape_only)
    theirs = pyradiomics_backend.extract(image, mask, spacing, shape_only)
    assert ours["original_shape_MeshVolume"] == theirs["original_shape_MeshVolume"] == 0.0
    area = theirs["original_shape_SurfaceArea"]
    assert ours["original_shape_SurfaceArea"] == pytest.approx(area, rel=1e-12)


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # (PyRadiomics' NaN)
@pytest.mark.parametrize("kernels", ["numpy", "torch"])
def test_two_voxel_roi_robust_mad_is_undefined_and_says_why(kernels: str):
    """Two voxels of different values: no voxel lies between the 10th and 90th percentiles, so
    RobustMeanAbsoluteDeviation is the mean of nothing (PyRadiomics: NaN). Ours raises a ROIError that
    names the feature and the reason; without that feature the ROI gives PyRadiomics' values (found
    by the randomized oracle on the torch kernels, seed 25191)."""
    import contextlib

    from radstore.radiomics import pyradiomics_backend
    from radstore.radiomics._neighbours import torch_kernels

    image = np.zeros((4, 5, 5), np.float32)
    image[2, 2, 2], image[2, 3, 3] = 257.0, 308.0  # (diagonal: a two-dimensional ROI)
    mask = np.zeros(image.shape, np.uint8)
    mask[2, 2, 2] = mask[2, 3, 3] = 1
    spacing = (2.0, 2.0, 2.0)
    firstorder = RadiomicsSettings.from_params({"featureClass": {"firstorder": None}})
    theirs = pyradiomics_backend.extract(image, mask, spacing, firstorder)
    assert np.isnan(theirs["original_firstorder_RobustMeanAbsoluteDeviation"])
    with torch_kernels() if kernels == "torch" else contextlib.nullcontext():
        with pytest.raises(ROIError, match=r"RobustMeanAbsoluteDeviation'\]; .* 10th and 90th percentiles"):
            extract(image, mask, spacing, firstorder)
        names = [n for n in registry.family_features("firstorder") if n != "RobustMeanAbsoluteDeviation"]
        rest = RadiomicsSettings.from_params({"featureClass": {"firstorder": names}})
        ours = extract(image, mask, spacing, rest)
    assert set(ours) == set(theirs) - {"original_firstorder_RobustMeanAbsoluteDeviation"}
    for name, value in ours.items():
        assert value == pytest.approx(theirs[name], rel=1e-6, abs=1e-9), name


def test_bins_beyond_memory_are_a_clear_error_and_sparse_levels_stay_small():
    """binWidth 25 on values in the millions: every voxel its own grey level among ~10^5 bins. The
    size-type matrices keep the present levels only (a GLRLM over every bin: 29 GB); a GLCM of
    2,352 levels x 13 directions beyond ``GLCM_MAX_CELLS`` is refused naming the fix, and a bin
    count beyond ``MAX_BINS`` (binWidth 1e-6 on HU) before any array is made."""
    rng = np.random.default_rng(3)
    image = rng.normal(0, 1e6, (14, 16, 16))
    mask = np.zeros(image.shape, np.uint8)
    mask[1:13, 1:15, 1:15] = 1  # 2,352 voxels
    with pytest.raises(ROIError, match=r"distinct grey levels .* GLCM over 13 directions"):
        extract(image, mask, (1.0, 1.0, 1.0), RadiomicsSettings.from_params(None))
    no_glcm = RadiomicsSettings.from_params({"featureClass": {"glrlm": None, "glszm": None, "gldm": None}})
    values = extract(image, mask, (1.0, 1.0, 1.0), no_glcm)
    assert np.isfinite(list(values.values())).all()
    assert values["original_glrlm_RunPercentage"] == pytest.approx(1.0)  # (all runs of length 1)
    tiny = RadiomicsSettings.from_params({"setting": {"binWidth": 1e-6}})
    with pytest.raises(ROIError, match="use a larger binWidth"):
        extract(rng.normal(0, 300, (8, 8, 8)).round(), mask[:8, :8, :8], (1.0, 1.0, 1.0), tiny)


def test_degenerate_rois_raise_clear_errors():
    image = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    s = RadiomicsSettings.from_params(None)
    one = np.zeros(image.shape, np.uint8)
    one[2, 3, 3] = 1
    with pytest.raises(ROIError, match="1 segmented voxel"):
        extract(image, one, (1, 1, 1), s)
    with pytest.raises(ROIError, match="not present"):
        extract(image, np.zeros(image.shape, np.uint8), (1, 1, 1), s)
    line = np.zeros(image.shape, np.uint8)
    line[2, 3, 1:6] = 1
    with pytest.raises(ROIError, match="too few dimensions"):
        extract(image, line, (1, 1, 1), s)


def test_force2d_defaults_leave_shape2d_out_and_asking_for_it_on_a_thick_roi_is_a_clear_error():
    """A PyRadiomics params file with ``force2D`` and no ``featureClass`` on a 3D tumour: PyRadiomics
    skips shape2D (it needs a single-slice ROI) and computes everything else; so do we, and the
    columns equal its own. Asking for shape2D explicitly on such a ROI names the ROI and the fix."""
    from radstore.radiomics import pyradiomics_backend

    rng = np.random.default_rng(4)
    image = rng.normal(0, 50, (6, 12, 12)).round().astype(np.int16)
    mask = np.zeros(image.shape, np.uint8)
    mask[1:5, 2:10, 3:9] = 1
    s = RadiomicsSettings.from_params({"setting": {"force2D": True, "force2Ddimension": 0}})
    assert "shape2D" not in s.enabled_features() and "shape" in s.enabled_features()
    ours = extract(image, mask, (2.0, 1.0, 1.0), s)
    theirs = pyradiomics_backend.extract(image, mask, (2.0, 1.0, 1.0), s)
    assert list(ours) == list(theirs) == feature_names(s)
    assert not any("shape2D" in k for k in ours)
    for k, v in theirs.items():
        assert ours[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
    asked = RadiomicsSettings.from_params({"setting": {"force2D": True, "force2Ddimension": 0},
                                           "featureClass": {"shape2D": None, "firstorder": None}})
    with pytest.raises(ROIError, match=r"ROI 0: shape2D needs the ROI in one slice .* spans 4"):
        extract(image, mask, (2.0, 1.0, 1.0), asked)
    flat = np.zeros(image.shape, np.uint8)
    flat[3, 2:10, 3:9] = 1
    one_slice = extract(image, flat, (2.0, 1.0, 1.0), asked)
    assert one_slice["original_shape2D_PixelSurface"] == pytest.approx(48.0)


def test_non_finite_values_raise_and_huge_finite_values_pass(monkeypatch: pytest.MonkeyPatch):
    from radstore.radiomics import ngtdm

    rng = np.random.default_rng(5)
    image = rng.integers(0, 200, (6, 9, 9)).astype(np.int16)
    mask = np.zeros(image.shape, np.uint8)
    mask[1:5, 2:7, 2:7] = 1
    s = RadiomicsSettings.from_params(None)
    compute = ngtdm.compute

    def with_value(value: float):
        def patched(*args, **kwargs):
            out = compute(*args, **kwargs)
            return {**out, "Busyness": torch.full_like(out["Busyness"], value),
                    "Coarseness": torch.full_like(out["Coarseness"], value)}
        return patched

    for bad in (float("nan"), float("inf")):
        monkeypatch.setattr(ngtdm, "compute", with_value(bad))
        expected = (r"ROI 0: non-finite feature values for "
                    r"\['original_ngtdm_Busyness', 'original_ngtdm_Coarseness'\]")
        with pytest.raises(ROIError, match=expected):
            extract(image, mask, (1.0, 1.0, 1.0), s)
    monkeypatch.setattr(ngtdm, "compute", with_value(1e308))  # the values' sum overflows; each is finite
    assert extract(image, mask, (1.0, 1.0, 1.0), s)["original_ngtdm_Busyness"] == 1e308


def test_non_finite_image_values_in_the_roi_raise_a_clear_error() -> None:
    """NaN/inf inside the ROI (or a constant image normalised: 0/0) give an ROIError that says so
    (PyRadiomics fails inside NumPy's binning); outside the ROI they do not matter."""
    image = np.random.default_rng(3).normal(0, 50, (6, 9, 9)).astype(np.float32)
    mask = np.zeros(image.shape, np.uint8)
    mask[1:5, 2:7, 2:7] = 1
    s = RadiomicsSettings.from_params(None)
    image[0, 0, 0] = np.nan
    assert np.isfinite(extract(image, mask, (1.0, 1.0, 1.0), s)["original_firstorder_Mean"])
    image[2, 3, 3], image[3, 4, 4] = np.nan, np.inf
    with pytest.raises(ROIError, match=r"2 non-finite value\(s\) \(NaN or inf\) inside the ROI$"):
        extract(image, mask, (1.0, 1.0, 1.0), s)
    normalised = RadiomicsSettings.from_params({"setting": {"normalize": True}})
    with pytest.raises(ROIError, match="0 for a constant image"):
        extract(np.full(image.shape, 40, np.int16), mask, (1.0, 1.0, 1.0), normalised)


def test_flat_roi_single_slice_gives_defined_values():
    image = np.full((4, 8, 8), 40, dtype=np.int16)
    mask = np.zeros(image.shape, np.uint8)
    mask[1, 2:6, 2:6] = 1
    values = extract(image, mask, (3.0, 1.0, 1.0), RadiomicsSettings.from_params(None))
    assert all(np.isfinite(v) for v in values.values())
    assert values["original_firstorder_Skewness"] == 0.0
    assert values["original_firstorder_Entropy"] == pytest.approx(0.0, abs=1e-12)
    assert values["original_shape_Flatness"] == 0.0


def test_every_cube_configuration_matches_pyradiomics():
    pytest.importorskip("radiomics")
    from radiomics import cShape as cshape
    spacing = np.array([1.3, 0.7, 2.1])
    for idx in range(1, 255):
        cube = np.zeros((2, 2, 2), bool)
        for k in range(8):
            if (idx >> k) & 1:
                cube[tuple(CORNERS[k])] = True
        area, volume, _ = cshape.calculate_coefficients(cube, spacing)
        from radstore.radiomics.shape import _cube_tables

        a_t, s0_t, _ = _cube_tables(tuple(spacing))
        cfg = idx ^ 0xFF if idx & 0x80 else idx
        sign = -1 if idx & 0x80 else 1
        assert a_t[cfg] == pytest.approx(area, rel=1e-12), idx
        assert sign * s0_t[cfg] / 6 == pytest.approx(volume, rel=1e-12, abs=1e-12), idx
    assert len(TRIANGLES) == 127


def test_random_masks_shape_vs_pyradiomics():
    pytest.importorskip("radiomics")
    import SimpleITK as sitk
    from radiomics import shape as rshape

    rng = np.random.default_rng(0)
    for t in range(3):
        m = np.zeros((8, 9, 10), bool)
        m[1:7, 1:8, 1:9] = rng.random((6, 7, 8)) < 0.5 + 0.1 * t
        sp = (2.5, 0.7, 0.9)
        img = sitk.GetImageFromArray(rng.random(m.shape))
        msk = sitk.GetImageFromArray(m.astype(np.uint8))
        for x in (img, msk):
            x.SetSpacing(sp[::-1])
        cls = rshape.RadiomicsShape(img, msk)
        for name in FEATURES_3D:  # (also those PyRadiomics computes only by name)
            cls.enableFeatureByName(name)
        ref = cls.execute()
        ours = shape_3d(m, sp)
        assert set(ours) == set(ref) == set(FEATURES_3D)
        for k, v in ours.items():
            assert v == pytest.approx(float(ref[k]), rel=1e-9), k


def test_cli_json(tmp_path):
    import SimpleITK as sitk
    from typer.testing import CliRunner

    from pipelines.cli import app

    rng = np.random.default_rng(1)
    image = rng.normal(0, 50, (10, 12, 12)).astype(np.int16)
    mask = np.zeros(image.shape, np.uint8)
    mask[2:8, 3:9, 3:9] = 1
    for arr, name in ((image, "img.nrrd"), (mask, "mask.nii.gz")):
        im = sitk.GetImageFromArray(arr)
        im.SetSpacing((0.8, 0.8, 2.0))
        sitk.WriteImage(im, str(tmp_path / name))
    out = tmp_path / "f.json"
    res = CliRunner().invoke(app, ["radiomics", str(tmp_path / "img.nrrd"), str(tmp_path / "mask.nii.gz"),
                                   "--output", str(out)])
    assert res.exit_code == 0, res.output
    values = json.loads(out.read_text())
    assert list(values) == feature_names(RadiomicsSettings.from_params(None))
    bad = CliRunner().invoke(app, ["radiomics", str(tmp_path / "img.nrrd"), str(tmp_path / "mask.nii.gz"),
                                   "--label", "3"])
    assert bad.exit_code == 2 and "label 3" in bad.output
    params = tmp_path / "params.yaml"
    params.write_text("featureClass:\n  glcm: [Dissimilarity, Contrast]\n")
    warned = CliRunner().invoke(app, ["radiomics", str(tmp_path / "img.nrrd"), str(tmp_path / "mask.nii.gz"),
                                      "--params", str(params), "--format", "csv"])
    assert warned.exit_code == 0, warned.output
    assert "warning: glcm Dissimilarity is deprecated" in warned.stderr
    header, row = list(csv.reader(io.StringIO(warned.stdout)))  # (PyRadiomics' single-case CSV layout)
    out_csv = tmp_path / "f.csv"
    as_pyradiomics = CliRunner().invoke(app, ["radiomics", str(tmp_path / "img.nrrd"),
                                              str(tmp_path / "mask.nii.gz"),
                                              "-p", str(params), "-l", "1", "-f", "csv", "-o", str(out_csv)])
    assert as_pyradiomics.exit_code == 0, as_pyradiomics.output  # (PyRadiomics' short options)
    assert list(csv.reader(io.StringIO(out_csv.read_text()))) == [header, row]
    txt = CliRunner().invoke(app, ["radiomics", str(tmp_path / "img.nrrd"), str(tmp_path / "mask.nii.gz"),
                                   "-p", str(params), "-f", "txt"])
    assert txt.stdout.splitlines() == [f"Case-1_{k}: {v}" for k, v in zip(header, row, strict=True)]
    assert header == ["Image", "Mask", "original_glcm_Contrast"]
    assert row[:2] == [str(tmp_path / "img.nrrd"), str(tmp_path / "mask.nii.gz")] and float(row[2]) > 0
    pair = [str(tmp_path / "img.nrrd"), str(tmp_path / "mask.nii.gz")]
    overridden = CliRunner().invoke(app, ["radiomics", *pair, "-p", str(params), "-s", "binWidth:10",
                                          "-s", "distances:[1, 2]"])
    assert overridden.exit_code == 0, overridden.output
    expected = RadiomicsSettings.from_params({"setting": {"binWidth": 10, "distances": [1, 2]},
                                              "featureClass": {"glcm": ["Contrast"]}})
    from radstore.radiomics.files import extract_files

    assert json.loads(overridden.stdout) == extract_files(*pair, expected)
    typo = CliRunner().invoke(app, ["radiomics", *pair, "-s", "binWidht:10"])
    assert typo.exit_code == 2 and "did you mean 'binWidth'" in typo.output


def test_cli_batch_csv_like_pyradiomics(tmp_path, monkeypatch):
    """``radstore radiomics cases.csv``: PyRadiomics' batch CSV (Image, Mask, optional Label, paths
    relative to the CSV, other columns passed through); one output row per case equal to the
    single-ROI extraction, in one process or on worker processes; a failing case is named on
    stderr and the exit code is 1, the other cases are still written."""
    import csv

    import SimpleITK as sitk
    from typer.testing import CliRunner

    from pipelines.cli import app
    from radstore.radiomics import extract, files

    monkeypatch.setattr(files, "GROUP", 2)
    monkeypatch.setenv("RADSTORE_PROGRESS", "0")
    rng = np.random.default_rng(4)
    (tmp_path / "cases").mkdir()
    expected = {}
    rows = []
    for k in range(4):
        image = rng.normal(20, 60, (10, 14, 14)).astype(np.int16)
        mask = np.zeros(image.shape, np.uint8)
        mask[2:8, 3:10 - k, 3:9] = 1
        mask[3:6, 10:13, 9:12] = 2
        for arr, name in ((image, f"img{k}.nrrd"), (mask, f"mask{k}.nii.gz")):
            im = sitk.GetImageFromArray(arr)
            im.SetSpacing((0.8, 0.8, 2.0))
            sitk.WriteImage(im, str(tmp_path / "cases" / name))
        label = 2 if k == 1 else None
        expected[f"P{k}"] = extract(image, mask, (2.0, 0.8, 0.8), RadiomicsSettings.from_params(None),
                                    label=label)
        rows.append({"ID": f"P{k}", "Image": f"cases/img{k}.nrrd", "Mask": f"cases/mask{k}.nii.gz",
                     "Label": "" if label is None else str(label)})
    one = np.zeros((10, 14, 14), np.uint8)
    one[5, 7, 7] = 1  # a one-voxel ROI: no features (ROIError); it shares a batch with P0
    im = sitk.GetImageFromArray(one)
    im.SetSpacing((0.8, 0.8, 2.0))
    sitk.WriteImage(im, str(tmp_path / "cases" / "one.nii.gz"))
    rows.insert(1, {"ID": "tiny", "Image": "cases/img0.nrrd", "Mask": "cases/one.nii.gz", "Label": ""})
    rows.append({"ID": "bad", "Image": "cases/img0.nrrd", "Mask": "cases/missing.nii.gz", "Label": ""})
    rows.append({"ID": "nolabel", "Image": "cases/img0.nrrd", "Mask": "cases/mask0.nii.gz", "Label": "7"})
    batch = tmp_path / "batch.csv"
    with open(batch, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["ID", "Image", "Mask", "Label"])
        writer.writeheader()
        writer.writerows(rows)
    names = feature_names(RadiomicsSettings.from_params(None))
    outputs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"out{jobs}.csv"
        res = CliRunner().invoke(app, ["radiomics", str(batch), "-j", jobs, "--output", str(out)])
        assert res.exit_code == 1, res.output
        assert "row 3 (Image cases/img0.nrrd, Mask cases/one.nii.gz): ROIError" in res.output
        assert "row 7 (Image cases/img0.nrrd, Mask cases/missing.nii.gz): FileNotFoundError" in res.output
        assert "row 8" in res.output and "label 7 is not in the mask (labels present: [1, 2])" in res.output
        with open(out, newline="") as fh:
            got = list(csv.DictReader(fh))
        assert [r["ID"] for r in got] == ["P0", "P1", "P2", "P3"]
        assert list(got[0]) == ["ID", "Image", "Mask", "Label", *names]
        for r in got:  # the batch gives each ROI its bits alone (the CSV holds the shortest repr)
            assert [float(r[n]) for n in names] == [expected[r["ID"]][n] for n in names]
        outputs.append(got)
    assert outputs[0] == outputs[1]
    js = CliRunner().invoke(app, ["radiomics", str(batch), "--format", "json"])
    assert js.exit_code == 1
    lines = [json.loads(line) for line in js.stdout.splitlines()]  # (one case per line, as PyRadiomics)
    assert [r["ID"] for r in lines] == ["P0", "P1", "P2", "P3"]
    assert [lines[3][n] for n in names] == [expected["P3"][n] for n in names]
    txt = CliRunner().invoke(app, ["radiomics", str(batch), "-f", "txt"]).stdout.splitlines()
    # (the CSV's row 2 is case 1; paths absolute, PyRadiomics' default --format-path)
    assert txt[:2] == ["Case-1_ID: P0", f"Case-1_Image: {tmp_path}/cases/img0.nrrd"]
    assert f"Case-5_{names[0]}: {expected['P3'][names[0]]!r}" in txt  # (P3: the 5th case, after 'tiny')
    assert CliRunner().invoke(app, ["radiomics", str(tmp_path / "cases" / "img0.nrrd")]).exit_code == 2


def test_cli_pyradiomics_output_options(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyRadiomics' --format-path, --skip-nans, --out-dir (a case per file, read back on a re-run),
    --validate and --mode, on a batch CSV."""
    import csv

    import SimpleITK as sitk
    from typer.testing import CliRunner

    from pipelines.cli import app
    from radstore.radiomics import files

    monkeypatch.setenv("RADSTORE_PROGRESS", "0")
    rng = np.random.default_rng(5)
    (tmp_path / "cases").mkdir()
    for k in range(3):
        image = rng.normal(20, 60, (8, 12, 12)).astype(np.int16)
        mask = np.zeros(image.shape, np.uint8)
        mask[2:6, 3:9 - k, 3:9] = 1
        for arr, name in ((image, f"img{k}.nrrd"), (mask, f"mask{k}.nrrd")):
            sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "cases" / name))
    batch = tmp_path / "batch.csv"
    batch.write_text("Image,Mask\n" + "".join(f"cases/img{k}.nrrd,cases/mask{k}.nrrd\n" for k in range(3)))

    def run(*args: str) -> tuple[int, str, list[dict[str, str]]]:
        out = tmp_path / "out.csv"
        out.unlink(missing_ok=True)
        res = CliRunner().invoke(app, ["radiomics", str(batch), "-o", str(out), *args])
        rows = list(csv.DictReader(out.read_text().splitlines())) if out.exists() else []
        return res.exit_code, res.output, rows

    code, _, plain = run()
    assert code == 0 and plain[0]["Image"] == str(tmp_path / "cases" / "img0.nrrd")
    assert run("--format-path", "relative")[2][1]["Mask"] == "cases/mask1.nrrd"
    assert run("--format-path", "basename", "-up")[2][2]["Image"] == "img2.nrrd"
    # --out-dir: every case in its own file; a re-run reads them back, a lost one is extracted again
    d = tmp_path / "per_case"
    code, output, first = run("--out-dir", str(d))
    assert code == 0 and first == plain and (d / "radstore-settings.json").is_file()
    assert sorted(p.name for p in d.glob("features_*.csv")) == ["features_1.csv", "features_2.csv",
                                                               "features_3.csv"]
    stamps = {p.name: p.stat().st_mtime_ns for p in d.glob("features_*.csv")}
    (d / "features_2.csv").unlink()
    code, output, again = run("-od", str(d))
    assert code == 0 and again == plain and "2 of 3 cases read back" in output
    assert (d / "features_1.csv").stat().st_mtime_ns == stamps["features_1.csv"]
    assert (d / "features_2.csv").is_file()
    code, output, _ = run("--out-dir", str(d), "-s", "binWidth:10")
    assert code == 2 and "holds results of other settings" in output
    # --skip-nans: a NaN (PyRadiomics' backend can give one) is left out, an empty CSV cell
    real = files.extract_group
    names = list(plain[0])[2:]

    def with_a_nan(cases, *args):
        got = real(cases, *args)
        return [(i, {**r, names[0]: float("nan")} if i == 0 else r) for i, r in got]

    monkeypatch.setattr(files, "extract_group", with_a_nan)
    assert run()[2][0][names[0]] == "nan"
    skipped = run("--skip-nans")[2]
    assert skipped[0][names[0]] == "" and skipped[1] == plain[1]
    # --validate: the params and the inputs, nothing extracted
    code, output, rows = run("--validate")
    assert code == 0 and rows == [] and "3 case(s), inputs missing in 0 place(s)" in output
    batch.write_text(batch.read_text() + "cases/img0.nrrd,cases/gone.nrrd\n")
    code, output, rows = run("--validate")
    assert code == 1 and rows == []
    assert f"row 5: mask {tmp_path}/cases/gone.nrrd does not exist" in " ".join(output.split())
    code, output, _ = run("--mode", "voxel")
    assert code == 2 and "--mode voxel (feature maps) is not offered" in output
    # one case: --out-dir writes features_1.csv (read back the next time), --validate checks the pair
    monkeypatch.setattr(files, "extract_group", real)
    one = [str(tmp_path / "cases" / "img1.nrrd"), str(tmp_path / "cases" / "mask1.nrrd")]
    d1 = tmp_path / "one_case"
    args = ["radiomics", *one, "-od", str(d1), "-f", "csv", "--format-path", "basename"]
    res = CliRunner().invoke(app, args)
    row = next(iter(csv.DictReader(res.stdout.splitlines())))
    assert res.exit_code == 0 and row == {**plain[1], "Image": "img1.nrrd", "Mask": "mask1.nrrd"}
    assert next(csv.DictReader((d1 / "features_1.csv").read_text().splitlines())) == row
    monkeypatch.setattr(files, "_extractor", None)  # (read back: nothing is extracted)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and again.stdout == res.stdout
    res = CliRunner().invoke(app, ["radiomics", one[0], str(tmp_path / "none.nrrd"), "--validate"])
    assert res.exit_code == 1 and "none.nrrd does not exist" in res.output


@pytest.mark.parametrize("params", [
    {"imageType": {"Original": {}, "LoG": {"sigma": [1.0]}, "Wavelet": {}}},
    {"setting": {"binCount": 16, "distances": [1, 2], "weightingNorm": "euclidean"}},
    {"setting": {"force2D": True, "force2Ddimension": 0, "gldm_a": 1},
     "featureClass": {f: None for f in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")}},
])
def test_device_code_path_on_cpu_equals_the_numpy_path(params: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """``torch_kernels()`` runs on CPU the torch code CUDA runs (discretisation, first order, mesh,
    matrices and feature formulas of every family), also inside the engine's thread pools; its
    features equal the NumPy fast paths'. (CUDA itself: ``test_cpu_and_cuda_agree``.)"""
    from radstore.radiomics import engine, extract_batch, glcm, glszm, torch_kernels

    calls = {"glcm": 0, "glszm": 0}
    for mod, name, fn in ((glcm, "glcm", "_feature_formulas"), (glszm, "glszm", "labels_torch")):
        real = getattr(mod, fn)

        def counted(*a, _real=real, _name=name, **k):  # type: ignore[no-untyped-def]
            calls[_name] += isinstance(a[0], torch.Tensor)  # the torch evaluation only
            return _real(*a, **k)

        monkeypatch.setattr(mod, fn, counted)
    monkeypatch.setattr(engine, "POOL_IMAGE_VOXELS", 0)  # use the pools with these small ROIs
    monkeypatch.setattr(engine, "_chunk_workers", lambda chunks, workers: workers)
    rng = np.random.default_rng(2)
    rois = []
    for k in range(2):
        image = rng.normal(30, 80, (20, 30, 30)).astype(np.int16)
        zz, yy, xx = np.indices(image.shape)
        inside = ((zz - 10) / (7 - k)) ** 2 + ((yy - 15) / 11) ** 2 + ((xx - 15) / 9) ** 2 < 1
        rois.append((image, inside.astype(np.uint8), (2.0, 0.8, 0.8)))
    s = RadiomicsSettings.from_params(params)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        fast = extract_batch(rois, s)
        assert calls == {"glcm": 0, "glszm": 0}
        with torch_kernels():
            device_path = extract_batch(rois, s)
    finally:
        torch.set_num_threads(before)
    assert calls["glcm"] > 0 and calls["glszm"] > 0
    for a, b in zip(fast, device_path, strict=True):
        assert a.keys() == b.keys()
        bad = [k for k in a if not np.isclose(b[k], a[k], rtol=1e-9, atol=1e-12)]
        assert not bad, [(k, a[k], b[k]) for k in bad[:5]]


@pytest.mark.gpu
def test_cpu_and_cuda_agree():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: CPU/CUDA agreement not checked here")
    rng = np.random.default_rng(2)
    image = rng.normal(30, 80, (20, 30, 30)).astype(np.int16)
    zz, yy, xx = np.indices(image.shape)
    mask = (((zz - 10) / 7) ** 2 + ((yy - 15) / 11) ** 2 + ((xx - 15) / 9) ** 2 < 1).astype(np.uint8)
    s = RadiomicsSettings.from_params({"imageType": {"Original": {}, "LoG": {"sigma": [1.0]}, "Wavelet": {}}})
    cpu = extract(image, mask, (2.0, 0.8, 0.8), s, device="cpu")
    gpu = extract(image, mask, (2.0, 0.8, 0.8), s, device="cuda")
    bad = [k for k in cpu if not np.isclose(gpu[k], cpu[k], rtol=1e-5, atol=1e-8)]
    assert not bad, bad[:10]
