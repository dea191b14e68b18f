"""Store-wide QC page: every cohort's distributions side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radstore.config import Settings
from radstore.io import zarr_store
from radstore.io.tables import write_table
from radstore.qc.report import write_store_qc_report
from radstore.volume import Volume


def _cohort(settings: Settings, cid: str, spacing: tuple[float, float, float], hu: int) -> None:
    img = np.full((6, 20, 20), -100, np.int16)
    img[2:4, 5:10, 5:10] = hu
    mask = np.zeros(img.shape, np.uint8)
    mask[2:4, 5:10, 5:10] = 1
    path = f"{cid}/P1/S1"
    zarr_store.write_scan(settings.layout.volumes, path, Volume(img, spacing), {"gtv": mask}, {})
    write_table([{"cohort_id": cid, "patient_id": "P1", "scan_id": "S1", "zarr_path": path,
                  "spacing_x": spacing[0], "spacing_y": spacing[1], "spacing_z": spacing[2],
                  "slice_thickness": spacing[2]}], settings.layout.catalog_table("scans", cid))


def test_store_qc_compares_cohorts(tmp_path: Path) -> None:
    settings = Settings(store=tmp_path)
    _cohort(settings, "alpha", (0.7, 0.7, 1.25), 40)
    _cohort(settings, "beta", (0.9, 0.9, 5.0), 120)
    page = write_store_qc_report(settings).read_text()
    assert page.count('class="cohort"') == 2
    assert 'href="alpha/qc.html"' in page and 'href="beta/qc.html"' in page
    assert "40.0 ± 0.0" in page and "120.0 ± 0.0" in page  # HU inside each cohort's mask
    assert "<td>1.25</td>" in page and "<td>5.00</td>" in page
    assert 'id="distributions"' in page and "data:image/png;base64," in page
