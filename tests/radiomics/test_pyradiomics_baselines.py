"""PyRadiomics' own baseline values (``shared/data/pyradiomics/baseline``) within 1e-4 relative.

Each baseline column is one test case (brain1, brain2, breast1; lung1/lung2 ship no image) and one
settings configuration, read from its ``diagnostics_Configuration_Settings`` row. shape2D is not
tested here: its baseline used single-slice masks that are not shipped.
"""

from __future__ import annotations

import ast
import csv
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from radstore.radiomics import RadiomicsSettings, extract
from tests.radiomics._data import read_pair

FAMILIES = ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
CASES = ("brain1", "brain2", "breast1")
CONFIGS = ("", "2d", "FBN", "combined", "flatRegion", "normalization", "resampling", "resegmentation")
RTOL, ATOL = 1e-4, 1e-6
# baseline_shape.csv was computed by PyRadiomics 2.x, whose marching-cubes table differed from 3.1's
# (see diagnostics_Versions_PyRadiomics): mesh-based values are checked against PyRadiomics 3.1 in
# test_oracle.py instead.
PYRADIOMICS2_MESH = {"original_shape_MeshVolume", "original_shape_SurfaceArea",
                     "original_shape_SurfaceVolumeRatio", "original_shape_Sphericity"}


@cache
def _baseline(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    return {col: {r[0]: r[i] for r in rows[1:]} for i, col in enumerate(header) if i}


def _params(column: dict[str, str], family: str) -> dict:
    raw = ast.literal_eval(column["diagnostics_Configuration_Settings"])
    setting = {k: v for k, v in raw.items() if v is not None and k != "additionalInfo"}
    if "resampledPixelSpacing" not in setting:
        setting.pop("interpolator", None)
    image_types = ast.literal_eval(column["diagnostics_Configuration_EnabledImageTypes"])
    return {"setting": setting, "imageType": image_types, "featureClass": {family: None}}


def _compare(shared: Path, case: str, config: str) -> tuple[int, list[str]]:
    data = shared / "pyradiomics"
    image, mask, spacing = read_pair(data / f"{case}_image.nrrd", data / f"{case}_label.nrrd")
    col_name = f"{case}_{config}" if config else case
    checked, failed = 0, []
    for family in FAMILIES:
        table = _baseline(data / "baseline" / f"baseline_{family}.csv")
        if col_name not in table:
            continue
        column = table[col_name]
        values = extract(image, mask, spacing, RadiomicsSettings.from_params(_params(column, family)))
        for key, expected in column.items():
            if not key.startswith(f"original_{family}_") or key not in values or key in PYRADIOMICS2_MESH:
                continue
            checked += 1
            if not np.isclose(values[key], float(expected), rtol=RTOL, atol=ATOL):
                failed.append(f"{col_name} {key}: {values[key]!r} vs {expected}")
    return checked, failed


@pytest.mark.parametrize("case", CASES)
def test_baseline_default_settings(shared_data, case):
    checked, failed = _compare(shared_data, case, "")
    print(f"{case}: {checked - len(failed)}/{checked} baseline values matched")
    assert checked >= 100
    assert not failed, "\n".join(failed)


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS[1:])
@pytest.mark.parametrize("case", CASES)
def test_baseline_other_settings(shared_data, case, config):
    checked, failed = _compare(shared_data, case, config)
    print(f"{case}_{config}: {checked - len(failed)}/{checked} baseline values matched")
    assert checked > 0
    assert not failed, "\n".join(failed)
