"""The same interface as ``radstore.radiomics.engine``, computed by PyRadiomics itself.

Wraps ``radiomics.featureextractor.RadiomicsFeatureExtractor`` (PyRadiomics 3.1, optional extra
``pyradiomics``): the test oracle, and a drop-in for users who want PyRadiomics' output bit for bit.
Returns the same names (``feature_names(settings)``), diagnostics dropped. shape2D is computed by
calling PyRadiomics' ``RadiomicsShape2D`` class on the mask the extractor's own steps give shape,
because its extractor skips shape2D for 3-D input. ``compatibility: ibsi`` is not a PyRadiomics
mode and is rejected here. PyRadiomics' LBP3D calls ``scipy.special.sph_harm``, removed in SciPy
1.17: while it runs, a missing ``sph_harm`` is supplied as SciPy <= 1.14 computed it
(``radstore.radiomics.filters.legacy_sph_harm``, bit for bit).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from radstore.radiomics.engine import ROI, feature_names
from radstore.radiomics.imageops import ROIError
from radstore.radiomics.settings import RadiomicsSettings

if TYPE_CHECKING:
    from radiomics.featureextractor import RadiomicsFeatureExtractor


def _extractor(settings: RadiomicsSettings) -> RadiomicsFeatureExtractor:
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    params = settings.pyradiomics_params()
    params["featureClass"].pop("shape2D", None)
    return featureextractor.RadiomicsFeatureExtractor(params)


@contextlib.contextmanager
def _scipy_sph_harm() -> Iterator[None]:
    """``scipy.special.sph_harm`` (SciPy <= 1.14's spherical harmonics, azimuth ``theta``, polar
    angle ``phi``) for PyRadiomics' LBP3D while the block runs, where this SciPy lacks it."""
    import scipy.special

    from radstore.radiomics.filters import legacy_sph_harm

    if hasattr(scipy.special, "sph_harm"):
        yield
        return
    scipy.special.sph_harm = legacy_sph_harm
    try:
        yield
    finally:
        del scipy.special.sph_harm


def _shape2d(extractor: RadiomicsFeatureExtractor, image: sitk.Image, mask: sitk.Image, label: int,
             names: Sequence[str]) -> dict[str, float]:
    """PyRadiomics' shape2D class on the mask its extractor gives shape (``execute``'s steps: label,
    normalise, resample, check, re-segment, the re-segmented mask when ``resegmentShape``, crop to
    the bounding box)."""
    from radiomics import imageoperations, shape2D

    kwargs = {**extractor.settings, "label": label}
    image, mask = extractor.loadImage(image, mask, None, **kwargs)
    bb, corrected = imageoperations.checkMask(image, mask, **kwargs)
    if corrected is not None:
        mask = corrected
    if kwargs.get("resegmentRange") is not None:
        resegmented = imageoperations.resegmentMask(image, mask, **kwargs)
        bb, _ = imageoperations.checkMask(image, resegmented, **kwargs)
        if kwargs.get("resegmentShape", False):
            mask = resegmented
    ci, cm = imageoperations.cropToTumorMask(image, mask, bb)
    cls = shape2D.RadiomicsShape2D(ci, cm, **kwargs)
    for name in names:
        cls.enableFeatureByName(name)
    return {f"original_shape2D_{k}": float(v) for k, v in cls.execute().items()}


def extract(image: np.ndarray, mask: np.ndarray, spacing_zyx: tuple[float, float, float],
            settings: RadiomicsSettings, label: int | None = None, device: str = "cpu") -> dict[str, float]:
    """PyRadiomics' features of one ROI, keyed as ``radstore.radiomics.extract`` (``device`` unused)."""
    if settings.compatibility != "pyradiomics":
        raise ValueError("the pyradiomics backend only runs compatibility 'pyradiomics'")
    if settings.imageType.get("LBP3D", {}).get("lbp3DLevels") == 1:
        raise ValueError("PyRadiomics' getLBP3DImage fails with lbp3DLevels: 1 (an IndexError: its harmonics "
                         "array is then one-dimensional); the torch backend computes it")
    lab = settings.setting.label if label is None else int(label)
    img = sitk.GetImageFromArray(np.ascontiguousarray(image))
    msk = sitk.GetImageFromArray(np.ascontiguousarray(mask).astype(np.uint32))
    for x in (img, msk):
        x.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    extractor = _extractor(settings)
    try:
        with _scipy_sph_harm() if "LBP3D" in settings.imageType else contextlib.nullcontext():
            raw = extractor.execute(img, msk, label=lab)
        out = {k: float(v) for k, v in raw.items() if not k.startswith("diagnostics_")}
        if "shape2D" in (enabled := settings.enabled_features()):
            out.update(_shape2d(extractor, img, msk, lab, enabled["shape2D"]))
    except ValueError as exc:
        raise ROIError(str(exc)) from exc
    names = feature_names(settings)
    missing = [n for n in names if n not in out]
    if missing:
        raise ROIError(f"PyRadiomics returned no value for {missing[:5]} (filter skipped or failed)")
    return {n: out[n] for n in names}


def extract_batch(rois: Sequence[ROI], settings: RadiomicsSettings, label: int | None = None,
                  device: str = "cpu") -> list[dict[str, float]]:
    """``extract`` for each ROI in turn (PyRadiomics has no batching)."""
    return [extract(im, m, sp, settings, label, device) for im, m, sp in rois]
