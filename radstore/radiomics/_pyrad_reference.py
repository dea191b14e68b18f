"""PyRadiomics' own feature classes run on already discretised arrays: the reference the texture
kernels are tested and benchmarked against (tests and ``benchmarks/texture.py`` only).

PyRadiomics re-bins its input in the feature-class constructor; here the binned array and its grey
level coefficients are replaced by the given levels afterwards, so PyRadiomics sees exactly the
grey levels ``q`` (as its extractor would after its own discretisation).
"""

from __future__ import annotations

import logging

import numpy as np

from radstore.radiomics.texture_params import TextureParams

FAMILIES = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")


def feature_class(family: str):
    """The PyRadiomics feature class of ``family`` (e.g. ``radiomics.glcm.RadiomicsGLCM``)."""
    import importlib

    mod = importlib.import_module(f"radiomics.{family}")
    return getattr(mod, f"Radiomics{family.upper()}")


def settings_of(params: TextureParams) -> dict:
    """PyRadiomics keyword settings equivalent to ``params``."""
    kw: dict = {
        "distances": list(params.distances),
        "symmetricalGLCM": params.symmetrical_glcm,
        "gldm_a": params.gldm_a,
        "force2D": params.force2d,
        "force2Ddimension": params.force2d_dimension,
        "binWidth": 1,
    }
    if params.weighting_norm is not None:
        kw["weightingNorm"] = params.weighting_norm
    return kw


def prepare(family: str, q: np.ndarray, mask: np.ndarray, params: TextureParams):
    """A PyRadiomics feature object for one ROI ``q``/``mask`` ``[Z, Y, X]`` (levels ``1..``)."""
    import SimpleITK as sitk

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    img = sitk.GetImageFromArray(np.asarray(q, dtype=np.float64))
    msk = sitk.GetImageFromArray(np.asarray(mask, dtype=np.uint8))
    img.SetSpacing(tuple(float(s) for s in params.spacing_zyx[::-1]))
    msk.CopyInformation(img)
    obj = feature_class(family)(img, msk, **settings_of(params))
    levels = np.asarray(q, dtype=np.int64)
    obj.imageArray = levels
    obj.coefficients["grayLevels"] = np.unique(levels[obj.maskArray])
    obj.coefficients["Ng"] = int(obj.coefficients["grayLevels"].max())
    return obj


def features(family: str, q: np.ndarray, mask: np.ndarray, params: TextureParams) -> dict[str, float]:
    """PyRadiomics' default-enabled features of ``family`` for one ROI, as floats."""
    obj = prepare(family, q, mask, params)
    obj.enableAllFeatures()
    vals = obj.execute()
    return {k: float(np.real(v)) for k, v in vals.items()}
