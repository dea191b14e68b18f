"""File edge of the radiomics stage: read an image + mask from disk and extract (used by the CLI).

Image: any file SimpleITK reads (NIfTI, NRRD, MHA...) or a DICOM series folder. Mask: a label map
file on the same grid, or a DICOM RTSTRUCT (file, or a folder holding one) rasterised onto the
image grid by ``radstore.io.dicom.rasterise_rtstruct`` (ROIs become labels 1..n in ROI-number order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from radstore.radiomics.settings import RadiomicsSettings
from radstore.volume import Volume


def _rtstruct_file(path: Path) -> Path | None:
    import pydicom

    candidates = sorted(path.glob("*")) if path.is_dir() else [path]
    for f in candidates:
        if not f.is_file():
            continue
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["Modality"])
        except Exception:  # not DICOM
            continue
        if str(ds.get("Modality", "")) == "RTSTRUCT":
            return f
    return None


def read_image(path: Path | str) -> Volume:
    """A DICOM series folder or any SimpleITK-readable 3-D image file."""
    import SimpleITK as sitk

    path = Path(path)
    if path.is_dir():
        from radstore.io.dicom import read_series

        return read_series(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path}: not an image SimpleITK can read") from exc
    if img.GetDimension() != 3:
        raise ValueError(f"{path}: expected a 3-D image, got {img.GetDimension()}-D")
    return Volume.from_sitk(img)


def read_mask(path: Path | str, image: Volume) -> np.ndarray:
    """A label map on ``image``'s grid from a label-map file or a DICOM RTSTRUCT."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: mask not found")
    rt = _rtstruct_file(path)
    if rt is not None:
        from radstore.io.dicom import rasterise_rtstruct

        return rasterise_rtstruct(rt, image)[0]
    if path.is_dir():
        raise ValueError(f"{path}: folder holds no DICOM RTSTRUCT")
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    if mask.shape != image.shape:
        raise ValueError(f"{path}: mask shape {mask.shape} differs from image shape {image.shape}")
    return mask


def extract_files(image: Path | str, mask: Path | str, settings: RadiomicsSettings,
                  label: int | None = None, backend: Literal["torch", "pyradiomics"] = "torch",
                  device: str = "cpu") -> dict[str, float]:
    """Features of ``label`` in ``mask`` over ``image`` (paths), with the chosen backend."""
    vol = read_image(image)
    m = read_mask(mask, vol)
    if backend == "pyradiomics":
        from radstore.radiomics import pyradiomics_backend as impl
    else:
        from radstore.radiomics import engine as impl  # type: ignore[no-redef]
    return impl.extract(vol.array, m, vol.spacing_zyx, settings, label=label, device=device)
