"""Handcrafted radiomics: PyRadiomics-compatible, IBSI-consistent, batched torch kernels.

Public API::

    settings = RadiomicsSettings.from_params("params.yaml")   # PyRadiomics parameter file or dict
    extract(image, mask, spacing_zyx, settings, label=None, device="cpu") -> dict[str, float]
    extract_batch([(image, mask, spacing_zyx), ...], settings, label=None, device="cpu")
    feature_names(settings) -> list[str]
    with torch_kernels(): ...   # CPU runs the torch code CUDA runs (check the device path without a GPU)
"""

from radstore.radiomics._neighbours import torch_kernels
from radstore.radiomics.engine import extract, extract_batch, feature_names
from radstore.radiomics.imageops import ROIError
from radstore.radiomics.settings import RadiomicsSettings, SettingsError

__all__ = ["ROIError", "RadiomicsSettings", "SettingsError", "extract", "extract_batch", "feature_names",
           "torch_kernels"]
