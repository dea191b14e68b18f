"""The in-memory image type passed between I/O adapters and kernels.

Convention (everywhere in radstore): arrays are indexed ``[z, y, x]``; ``spacing``, ``origin`` and
``direction`` are in ITK/DICOM patient order ``(x, y, z)`` in millimetres, ``direction`` row-major
3×3 as SimpleITK returns it. Use :attr:`Volume.spacing_zyx` when a kernel needs the array order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

IDENTITY_DIRECTION: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Volume:
    """A 3-D image or label map on a physical grid."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = IDENTITY_DIRECTION
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume array must be 3-D [z, y, x], got shape {self.array.shape}")
        if len(self.spacing) != 3 or any(s <= 0 for s in self.spacing):
            raise ValueError(f"spacing must be three positive numbers (x, y, z), got {self.spacing}")
        if len(self.direction) != 9:
            raise ValueError("direction must have 9 entries (row-major 3x3)")

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        x, y, z = self.spacing
        return (z, y, x)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)

    def with_array(self, array: np.ndarray) -> Volume:
        """Same grid, new voxels (e.g. a mask on the image grid)."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} does not match the grid {self.array.shape}")
        return replace(self, array=array, meta={})

    def same_grid(self, other: Volume, tol_mm: float = 1e-3, tol_dir: float = 1e-4) -> bool:
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=tol_mm)
            and np.allclose(self.origin, other.origin, atol=tol_mm)
            and np.allclose(self.direction, other.direction, atol=tol_dir)
        )

    def to_sitk(self) -> Any:
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        img.SetSpacing(tuple(float(s) for s in self.spacing))
        img.SetOrigin(tuple(float(o) for o in self.origin))
        img.SetDirection(tuple(float(d) for d in self.direction))
        return img

    @classmethod
    def from_sitk(cls, img: Any, meta: dict[str, Any] | None = None) -> Volume:
        import SimpleITK as sitk

        if img.GetDimension() != 3:
            raise ValueError(f"expected a 3-D image, got {img.GetDimension()}-D")
        return cls(
            array=sitk.GetArrayFromImage(img),
            spacing=tuple(img.GetSpacing()),
            origin=tuple(img.GetOrigin()),
            direction=tuple(img.GetDirection()),
            meta=dict(meta or {}),
        )
