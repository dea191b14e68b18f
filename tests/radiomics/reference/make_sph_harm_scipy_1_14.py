"""Writes ``sph_harm_scipy_1_14.json``: SciPy 1.14's ``sph_harm`` (removed in 1.17) at the angles
PyRadiomics' LBP3D uses, the reference for ``radstore.radiomics.filters.legacy_sph_harm``.

Run in a separate environment, e.g.
``python3.11 -m venv /tmp/sp114 && /tmp/sp114/bin/pip install scipy==1.14.1 trimesh &&
/tmp/sp114/bin/python tests/radiomics/reference/make_sph_harm_scipy_1_14.py``.
"""

import json
from pathlib import Path

import numpy as np
import scipy
from scipy.special import sph_harm
from trimesh.creation import icosphere

rows = []
for subdivision, radius, degrees in ((0, 1.0, 4), (1, 1.5, 3)):
    vertices = np.array(icosphere(subdivision, radius).vertices)
    theta = np.arccos(np.true_divide(vertices[:, 2], radius))  # (as PyRadiomics' getLBP3DImage)
    phi = np.arctan2(vertices[:, 1], vertices[:, 0])
    for n in range(degrees):
        for m in range(-n, n + 1):
            y = sph_harm(m, n, theta, phi)
            rows.append({"m": m, "n": n, "theta": theta.tolist(), "phi": phi.tolist(),
                         "real": y.real.tolist(), "imag": y.imag.tolist()})
out = Path(__file__).with_name("sph_harm_scipy_1_14.json")
out.write_text(json.dumps({"scipy": scipy.__version__, "rows": rows}, separators=(",", ":")))
print(f"{out}: {len(rows)} harmonics from SciPy {scipy.__version__}")
