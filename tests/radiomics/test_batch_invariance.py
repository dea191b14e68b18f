"""A ROI's features do not depend on the other ROIs of its batch: ``extract_batch`` gives each ROI
the bits ``extract`` gives it alone, whatever shares its kernel call (other ROIs, their grey-level
ranges, the batch's compaction of levels, their order). The extraction job batches whatever scans
were prepared meanwhile, so without this two runs of one cohort would write feature tables that
differ in the last bits, and training sets with other content hashes.

The contract holds on the CPU path with the compiled kernels (numba, a dependency); the NumPy
fallback and CUDA agree within float tolerance only (their reductions group sums by array size)."""

from __future__ import annotations

import numpy as np
import pytest

from radstore.radiomics import RadiomicsSettings, _compiled, extract, extract_batch, glcm, ngtdm

pytestmark = pytest.mark.skipif(not _compiled.ENABLED, reason="batch invariance is a contract of the "
                                "compiled CPU kernels (RADSTORE_COMPILED_KERNELS=0 or numba missing)")


def _roi(seed: int, shape: tuple[int, int, int] = (14, 20, 22), sd: float = 60.0
         ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    rng = np.random.default_rng(seed)
    image = rng.normal(40, sd, shape).round().astype(np.int16)
    zz, yy, xx = np.indices(shape)
    c = np.array(shape) / 2
    r = ((zz - c[0]) / 5) ** 2 + ((yy - c[1]) / 7) ** 2 + ((xx - c[2]) / 6) ** 2
    return image, (r < 1 + 0.3 * rng.random(shape)).astype(np.uint8), (2.5, 0.8, 0.8)


# grey-level ranges from 1 bin to > 64 bins (compacted) at binWidth 25, different crop shapes
ROIS = [_roi(0, sd=30), _roi(1, sd=200), _roi(2, shape=(9, 12, 30), sd=20), _roi(3, sd=400),
        _roi(4, sd=5), _roi(5, sd=0.01), _roi(6, shape=(6, 30, 8), sd=90)]

SETTINGS = {
    "default": None,
    "binWidth 1 (compacted levels)": {"setting": {"binWidth": 1}},
    "binCount 16": {"setting": {"binCount": 16}},
    "weighted GLCM, distances 1 and 2": {"setting": {"weightingNorm": "euclidean", "distances": [1, 2]}},
    "force2D": {"setting": {"force2D": True, "force2Ddimension": 0}},
    "asymmetrical GLCM, gldm_a 2": {"setting": {"symmetricalGLCM": False, "gldm_a": 2}},
    "IBSI mode, re-segmented": {"setting": {"resegmentRange": [-100, 300]}, "compatibility": "ibsi"},
}


def _bits(row: dict[str, float]) -> dict[str, bytes]:
    return {k: np.float64(v).tobytes() for k, v in row.items()}


def _assert_same_bits(got: dict[str, float], want: dict[str, float], where: str) -> None:
    assert list(got) == list(want)
    g, w = _bits(got), _bits(want)
    differ = [f"{k}: {got[k]!r} vs {want[k]!r}" for k in want if g[k] != w[k]]
    assert not differ, f"{where}: {len(differ)} differ from the ROI alone:\n" + "\n".join(differ[:15])


@pytest.mark.parametrize("name", list(SETTINGS))
def test_batched_rois_get_their_own_bits(name: str) -> None:
    settings = RadiomicsSettings.from_params(SETTINGS[name])
    alone = [extract(*roi, settings) for roi in ROIS]
    for order in (list(range(len(ROIS))), list(reversed(range(len(ROIS)))), [3, 0, 5]):
        batch = extract_batch([ROIS[i] for i in order], settings)
        for i, row in zip(order, batch, strict=True):
            _assert_same_bits(row, alone[i], f"{name}, ROI {i} in batch {order}")


def test_filtered_images_get_their_own_bits() -> None:
    """With LoG and wavelet images the crops of every ROI and image type share kernel calls."""
    settings = RadiomicsSettings.from_params({
        "imageType": {"Original": {}, "LoG": {"sigma": [1.0]}, "Wavelet": {}},
        "featureClass": {"firstorder": None, "glcm": None, "glszm": None, "ngtdm": None}})
    rois = [ROIS[0], ROIS[1], ROIS[3]]
    alone = [extract(*roi, settings) for roi in rois]
    for i, row in enumerate(extract_batch(rois, settings)):
        _assert_same_bits(row, alone[i], f"filtered ROI {i}")


def _padded(counts: np.ndarray, levels: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """``counts`` [..., n, n] over ``levels`` placed at ``positions`` of a [..., size, size] matrix."""
    out = np.zeros((*counts.shape[:-2], size, size))
    out[..., positions[:, None], positions[None, :]] = counts
    return out


@pytest.mark.parametrize("weighted", [False, True])
def test_glcm_features_ignore_absent_levels(weighted: bool) -> None:
    """The compiled GLCM features of a ROI's own grey levels (compacted) and of the same counts with
    absent levels added as empty rows and columns (the dense 1..N layout, or a batch's union of
    levels) are the same bits, MCC's eigenvalues included."""
    rng = np.random.default_rng(7)
    w = [0.9, 0.3, 0.05, 0.6] if weighted else None
    for trial in range(40):
        n = int(rng.integers(1, 12))
        own = np.sort(rng.choice(np.arange(1, 90), n, replace=False)).astype(np.float64)
        counts = (rng.integers(0, 9, (1, 4, n, n)) * (rng.random((1, 4, n, n)) < 0.6)).astype(np.float64)
        counts += counts.transpose(0, 1, 3, 2)
        if trial % 6 == 0:
            counts[0, 1] = 0  # an empty direction
        ng_roi, n_present = np.array([own[-1]]), np.array([n])
        want = glcm._normalised_features(counts, ng_roi, n_present, own, symmetrical=False, w=w)
        top = int(own[-1])
        dense = _padded(counts, own, (own - 1).astype(int), top)
        union = np.union1d(own, rng.choice(np.arange(1, 120), 15)).astype(np.float64)
        wider = _padded(counts, own, np.searchsorted(union, own), union.size)
        for layout, p, lv in (("dense", dense, None), ("union", wider, union)):
            got = glcm._normalised_features(p, ng_roi, n_present, lv, symmetrical=False, w=w)
            for k, v in want.items():
                assert np.asarray(got[k]).tobytes() == np.asarray(v).tobytes(), f"trial {trial} {layout}: {k}"


def test_ngtdm_features_ignore_absent_levels() -> None:
    rng = np.random.default_rng(8)
    for trial in range(40):
        n = int(rng.integers(1, 12))
        own = np.sort(rng.choice(np.arange(1, 90), n, replace=False)).astype(np.float64)
        n_i = rng.integers(1, 30, (1, n)).astype(np.float64)
        s_i = rng.random((1, n)) * n_i * (rng.random((1, n)) < 0.8)
        want = ngtdm._feature_formulas(n_i, s_i, own)
        union = np.union1d(own, rng.choice(np.arange(1, 120), 15)).astype(np.float64)
        at = np.searchsorted(union, own)
        wide_n, wide_s = np.zeros((1, union.size)), np.zeros((1, union.size))
        wide_n[:, at], wide_s[:, at] = n_i, s_i
        got = ngtdm._feature_formulas(wide_n, wide_s, union)
        for k, v in want.items():
            assert np.asarray(got[k]).tobytes() == np.asarray(v).tobytes(), f"trial {trial}: {k}"
