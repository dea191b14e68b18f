"""Fuzz of tiny and degenerate inputs: ``extract`` either returns finite values for every column or
raises a ``ROIError`` (never another exception, never a NaN). It found B-spline resampling of
2-voxel axes (SimpleITK reads outside its buffer) and IBSI-mode bin edges of filtered images."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from radstore.radiomics import RadiomicsSettings, ROIError, extract


def _case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[float, ...], dict[str, Any]]:
    shape = tuple(int(v) for v in rng.choice([1, 2, 3, 5, 9, 17], 3))
    image = rng.normal(0, 100, shape)
    if rng.random() < 0.3:
        image = image.round().astype(rng.choice([np.int16, np.uint8, np.int32]))
    if rng.random() < 0.1:
        image = np.full(shape, 7.0)
    mask = (rng.random(shape) < rng.choice([0.0, 0.05, 0.5, 1.0])).astype(np.uint8)
    if rng.random() < 0.2:
        mask[...] = 0
        mask[tuple(rng.integers(0, n) for n in shape)] = 1
    spacing = tuple(float(v) for v in rng.choice([0.5, 1.0, 2.5], 3))
    st: dict[str, Any] = {}
    if rng.random() < 0.3:
        st.update(force2D=True, force2Ddimension=int(rng.integers(3)))
    if rng.random() < 0.3:
        st["resampledPixelSpacing"] = [1, 1, 1]
        st["interpolator"] = str(rng.choice(["sitkBSpline", "sitkLinear", "sitkNearestNeighbor"]))
    if rng.random() < 0.3:
        st["binCount"] = int(rng.choice([1, 2, 16]))
    if rng.random() < 0.2:
        st["resegmentRange"] = [-50, 50]
    if rng.random() < 0.2:
        st["minimumROIDimensions"] = 1
    image_types: dict[str, Any] = {"Original": {}}
    if rng.random() < 0.2:
        image_types["LoG"] = {"sigma": [1.0, 3.0]}
    if rng.random() < 0.2:
        image_types["Wavelet"] = {}
    if rng.random() < 0.2:
        kinds = ["Square", "SquareRoot", "Logarithm", "Exponential", "Gradient", "LBP2D", "LBP3D"]
        image_types.update({str(k): {} for k in rng.choice(kinds, 2, replace=False)})
    params: dict[str, Any] = {"setting": st, "imageType": image_types}
    if rng.random() < 0.3:
        params["compatibility"] = "ibsi"
        st["voxelArrayShift"] = 0
    return image, mask, spacing, params


def _run(seed: int, count: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    outcomes = {"ok": 0, "ROIError": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(count):
            image, mask, spacing, params = _case(rng)
            settings = RadiomicsSettings.from_params(params)
            try:
                values = extract(image, mask, spacing, settings)
            except ROIError:
                outcomes["ROIError"] += 1
                continue
            bad = [k for k, v in values.items() if not np.isfinite(v)]
            assert not bad, (image.shape, spacing, params, bad[:3])
            outcomes["ok"] += 1
    return outcomes


def test_tiny_inputs_give_finite_values_or_a_roi_error():
    outcomes = _run(0, 300)
    assert outcomes["ok"] >= 50 and outcomes["ROIError"] >= 50, outcomes


@pytest.mark.slow
def test_tiny_inputs_give_finite_values_or_a_roi_error_many():
    for seed in (1, 2, 3):
        outcomes = _run(seed, 1000)
        assert outcomes["ok"] >= 200, outcomes
