"""Features shared by the size-type matrices (GLRLM, GLSZM, GLDM): ``P(i, j)`` counts of grey level
``i`` with run length / zone size / dependence ``j`` (Galloway 1975; Thibault et al. 2009; Sun &
Wee 1983; formulas as PyRadiomics 3.1 and IBSI, Zwanenburg et al., Radiology 2020).

With ``Nz = sum P``, ``pg(i) = sum_j P``, ``pj(j) = sum_i P``, ``Np = sum_j j pj(j)``:
SE = sum pj/j^2 / Nz, LE = sum pj j^2 / Nz, GLN = sum pg^2 / Nz, GLNN = GLN / Nz,
JN = sum pj^2 / Nz, JNN = JN / Nz, Perc = Nz / Np, GLV / JV = variances of i / j under P/Nz,
Ent = -sum (P/Nz) log2(P/Nz + eps), LGE = sum pg/i^2 / Nz, HGE = sum pg i^2 / Nz, and the four
joint emphases SLGE = sum P/(i^2 j^2), SHGE = sum P i^2/j^2, LLGE = sum P j^2/i^2,
LHGE = sum P i^2 j^2, all / Nz.
"""

from __future__ import annotations

import numpy as np
import torch

from radstore.radiomics import _compiled
from radstore.radiomics._arrays import Array, evaluate, ops
from radstore.radiomics._neighbours import EPS


def size_matrix_features(p: torch.Tensor, jvector: torch.Tensor, level_values: torch.Tensor | None = None
                         ) -> dict[str, torch.Tensor]:
    """The 16 generic features of ``p`` [G, Ng, J] (float64; grey levels ``1..Ng``, or the values
    ``level_values`` [Ng] of compacted levels, ``j`` values ``jvector`` [J]); groups with ``Nz = 0``
    use ``Nz = 1`` and ``Np = 1`` (PyRadiomics).

    CPU tensors are evaluated in NumPy (the matrices are small: NumPy's per-operation cost is a
    fraction of torch's; with numba in one compiled loop, :func:`._compiled.size_matrix_features`),
    others in torch: :func:`size_matrix_formulas` either way."""
    levels = () if level_values is None else (level_values,)
    return evaluate(size_matrix_formulas, p, jvector, *levels)


def size_matrix_formulas(p: Array, jvector: Array, level_values: Array | None = None) -> dict[str, Array]:
    """:func:`size_matrix_features` of a NumPy array or a torch tensor (any device): float64 [G]
    per feature, of the same kind as ``p``."""
    if isinstance(p, np.ndarray) and _compiled.ENABLED:
        return _compiled.size_matrix_features(p, jvector, level_values)
    xp = ops(p)
    ng = p.shape[1]
    iv = xp.levels(p, 1, ng + 1) if level_values is None else xp.as_float64(level_values)
    jv = xp.as_float64(jvector)
    i2v = iv * iv
    j2v = jv * jv
    wi = xp.swap_last(xp.stack([1.0 / i2v, i2v]))  # [Ng, 2]
    wj = xp.swap_last(xp.stack([1.0 / j2v, j2v, jv]))  # [J, 3]
    pg = p.sum(2)
    pj = p.sum(1)
    nz = pg.sum(1)
    nz = xp.where(nz == 0, 1.0, nz)
    # weighted sums as matrix products: sum_i pg (1/i^2, i^2), sum_j pj (1/j^2, j^2, j) and the
    # joint emphases sum_ij P (1/j^2, j^2) x (1/i^2, i^2) (separable), [G, 2], [G, 3], [G, 2, 2]
    by_i = pg @ wi
    by_j = pj @ wj
    joint = xp.swap_last(p @ wj[:, :2]) @ wi
    np_ = by_j[:, 2]
    np_ = xp.where(np_ == 0, 1.0, np_)
    out: dict[str, Array] = {}
    out["SE"] = by_j[:, 0] / nz
    out["LE"] = by_j[:, 1] / nz
    gln = (pg * pg).sum(1)
    out["GLN"] = gln / nz
    out["GLNN"] = gln / nz**2
    jn = (pj * pj).sum(1)
    out["JN"] = jn / nz
    out["JNN"] = jn / nz**2
    out["Perc"] = nz / np_
    pgn = pg / nz[:, None]
    ui = (pgn * iv).sum(1, keepdims=True)
    out["GLV"] = (pgn * (iv - ui) ** 2).sum(1)
    pjn = pj / nz[:, None]
    uj = (pjn * jv).sum(1, keepdims=True)
    out["JV"] = (pjn * (jv - uj) ** 2).sum(1)
    pn = p / nz[:, None, None]
    out["Ent"] = -(pn * xp.log2(pn + EPS)).sum(axis=(1, 2))
    out["LGE"] = by_i[:, 0] / nz
    out["HGE"] = by_i[:, 1] / nz
    out["SLGE"] = joint[:, 0, 0] / nz
    out["SHGE"] = joint[:, 0, 1] / nz
    out["LLGE"] = joint[:, 1, 0] / nz
    out["LHGE"] = joint[:, 1, 1] / nz
    return out
