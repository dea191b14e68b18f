"""The QC report opens in headless Chromium: a non-blank screenshot and the expected rows."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from radstore.io.tables import read_table
from tests.ingest.conftest import Ingested

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (apt-get install -y chromium); QC report not rendered")
    return exe


def test_report_is_self_contained(ingested: Ingested) -> None:
    page = ingested.report.report_path.read_text()
    assert ingested.report.report_path == ingested.settings.layout.reports / "hosp_a" / "qc.html"
    srcs = re.findall(r'src="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page
    assert "Test Hospital A" in page


def test_report_renders_in_chromium(ingested: Ingested, tmp_path: Path) -> None:
    exe = _chromium()
    url = ingested.report.report_path.resolve().as_uri()
    shot = tmp_path / "qc.png"
    base = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*base, "--window-size=1400,2000", f"--screenshot={shot}", url], check=True,
                   capture_output=True, timeout=120)
    img = mpimg.imread(shot)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    rgb = img[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.05 and len(np.unique((rgb * 255).astype(np.uint8), axis=0)) > 50
    dom = subprocess.run([*base, "--dump-dom", url], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    lay = ingested.settings.layout
    scans = read_table(lay.catalog_table("scans", "hosp_a")).to_pylist()
    rejections = read_table(lay.catalog_table("rejections", "hosp_a")).to_pylist()
    assert dom.count('<tr class="scan"') == len(scans) > 0
    assert dom.count('<tr class="rejection"') == len(rejections) >= 12
    for r in scans:
        assert f'data-scan-id="{r["scan_id"]}"' in dom
    assert 'id="distributions"' in dom
