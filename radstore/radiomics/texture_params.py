"""Parameters shared by the texture-matrix kernels (GLCM, GLRLM, GLSZM, GLDM, NGTDM).

Kernel contract (every texture module ``glcm.py``, ``glrlm.py``, ``glszm.py``, ``gldm.py``,
``ngtdm.py``)::

    FEATURES: tuple[str, ...]            # PyRadiomics feature names of the family, e.g. "Contrast"
    def compute(q: torch.Tensor, mask: torch.Tensor, n_levels: int,
                params: TextureParams) -> dict[str, torch.Tensor]

``q`` is an int64 tensor ``[B, Z, Y, X]`` of discretised grey levels ``1..n_levels`` inside the ROI
(anything outside is ignored), ``mask`` a bool tensor of the same shape (ROIs of different size are
zero-padded to a common shape; padding is ``False``). The result maps every name in ``FEATURES`` to
a float64 tensor ``[B]``, on the device of ``q``. Values follow PyRadiomics 3.1 at the same
settings (including its handling of empty grey levels and degenerate ROIs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WeightingNorm = Literal["manhattan", "euclidean", "infinity", "no_weighting"]


@dataclass(frozen=True)
class TextureParams:
    """PyRadiomics texture settings, with PyRadiomics' defaults."""

    distances: tuple[int, ...] = (1,)
    symmetrical_glcm: bool = True
    weighting_norm: WeightingNorm | None = None
    gldm_a: int = 0
    force2d: bool = False
    force2d_dimension: int = 0
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)
