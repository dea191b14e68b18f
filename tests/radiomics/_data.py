"""Loading helpers for the reference data used by the radiomics tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def read_pair(image: Path, mask: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    im = sitk.ReadImage(str(image))
    ma = sitk.ReadImage(str(mask))
    return (sitk.GetArrayFromImage(im), sitk.GetArrayFromImage(ma),
            tuple(float(s) for s in im.GetSpacing()[::-1]))  # type: ignore[return-value]


def ibsi_reference(path: Path) -> dict[str, tuple[float, float]]:
    """IBSI reference csv (``value;tolerance;tag``) -> {tag: (value, tolerance)}."""
    out = {}
    for line in path.read_text().splitlines()[1:]:
        value, tol, tag = line.split(";")
        if value.strip() and value.strip().lower() != "nan":
            out[tag.strip()] = (float(value), float(tol))
    return out
