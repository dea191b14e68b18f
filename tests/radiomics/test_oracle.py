"""torch backend vs the pyradiomics backend (PyRadiomics 3.1 itself) on the same arrays."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_force2d_shape2d_single_slice():
    image, mask, spacing = _synthetic(5)
    single = np.zeros_like(mask)
    single[7] = mask[7]
    settings = RadiomicsSettings.from_params({
        "setting": {"force2D": True, "force2Ddimension": 0},
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
