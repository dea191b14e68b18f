"""IBSI 1 digital phantom: every IBSI feature with a PyRadiomics counterpart, in IBSI mode."""

from __future__ import annotations

import math

import pytest

from radstore.radiomics import RadiomicsSettings, extract, registry
from tests.radiomics._data import ibsi_reference, read_pair

# IBSI 1 digital phantom: no resampling, grey levels used as they are (bin width 1 from level 1)
IBSI_PHANTOM_PARAMS = {
    "setting": {"binWidth": 1, "minimumROIDimensions": 1},
    "imageType": {"Original": {}},
    "compatibility": "ibsi",
}


def test_ibsi_digital_phantom(shared_data):
    base = shared_data / "ibsi1" / "digital_phantom" / "nifti"
    image, mask, spacing = read_pair(base / "image" / "phantom.nii.gz", base / "mask" / "mask.nii.gz")
    ref = ibsi_reference(shared_data / "ibsi1" / "reference_values" / "ibsi_1_dig_phantom.csv")
    settings = RadiomicsSettings.from_params(IBSI_PHANTOM_PARAMS)
    values = extract(image, mask, spacing, settings)
    attempted, failed = [], []
    for tag, family, name in registry.ibsi_table():
        col = f"original_{family}_{name}"
        if tag not in ref or col not in values:
            continue
        expected, tol = ref[tag]
        attempted.append(tag)
        # reference values are published to 3 significant digits: allow half a unit of the last one
        rounding = 0.5 * 10 ** (math.floor(math.log10(abs(expected))) - 2) if expected else 0.0
        if abs(values[col] - expected) > tol + rounding:
            failed.append(f"{tag} ({col}): {values[col]:.6g} vs {expected:.6g} ± {tol:g}")
    print(f"IBSI digital phantom: {len(attempted) - len(failed)}/{len(attempted)} matched")
    assert len(attempted) >= 40, attempted
    assert not failed, "\n".join(failed)


def test_kurtosis_modes_differ_by_three(shared_data):
    base = shared_data / "ibsi1" / "digital_phantom" / "nifti"
    image, mask, spacing = read_pair(base / "image" / "phantom.nii.gz", base / "mask" / "mask.nii.gz")
    params = {**IBSI_PHANTOM_PARAMS, "featureClass": {"firstorder": ["Kurtosis"]}}
    ibsi = extract(image, mask, spacing, RadiomicsSettings.from_params(params))
    pyr_settings = RadiomicsSettings.from_params({**params, "compatibility": "pyradiomics"})
    pyr = extract(image, mask, spacing, pyr_settings)
    assert ibsi["original_firstorder_Kurtosis"] == pytest.approx(pyr["original_firstorder_Kurtosis"] - 3)
