"""NIfTI / NRRD → :class:`Volume` (SimpleITK), with rule-named failures for ingest."""

from __future__ import annotations

from pathlib import Path

from radstore.validation import Rule, ValidationFailure
from radstore.volume import Volume

SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr")


def is_volume_file(path: Path | str) -> bool:
    name = Path(path).name.lower()
    return any(name.endswith(s) for s in SUFFIXES)


def read_volume(path: Path | str) -> Volume:
    """Read a 3-D NIfTI/NRRD image or label map in its stored pixel type (no resampling).

    Raises :class:`ValidationFailure` (``missing_file``, ``unreadable``) naming the file only.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise ValidationFailure(Rule.MISSING_FILE, f"{path.name}: file not found")
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ValidationFailure(Rule.UNREADABLE, f"{path.name}: not a readable NIfTI/NRRD file") from exc
    if img.GetDimension() == 4 and img.GetSize()[3] == 1:
        img = img[:, :, :, 0]
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise ValidationFailure(Rule.UNREADABLE, f"{path.name}: expected a 3-D scalar volume, got "
                                f"{img.GetDimension()}-D with {img.GetNumberOfComponentsPerPixel()} "
                                "component(s)")
    return Volume.from_sitk(img, meta={"_files": [path]})


def write_volume(volume: Volume, path: Path | str) -> Path:
    """Write a :class:`Volume` as NIfTI/NRRD (the suffix picks the format)."""
    import SimpleITK as sitk

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume.to_sitk(), str(path), useCompression=True)
    return path
