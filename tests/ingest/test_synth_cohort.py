"""Demo step: every synthetic hospital folder (radstore.synth) ingests without rejections, and
none of the PHI the generator planted reaches the store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.ingest import ingest_all
from radstore.config import Settings
from radstore.io import zarr_store
from radstore.io.tables import read_table

synth = pytest.importorskip("radstore.synth")


def test_ingest_every_synthetic_hospital(tmp_path: Path) -> None:
    cfg = synth.SynthConfig(hospitals=3, patients_per_hospital=2, second_reader=True)
    res = synth.generate(tmp_path / "synth", cfg, progress=False)
    settings = Settings(store=tmp_path / "store", progress=False)
    reports = ingest_all(settings, tmp_path / "synth")
    assert sorted(reports) == sorted(c.cohort_id for c in res.cohorts)
    for c in res.cohorts:
        rep = reports[c.cohort_id]
        assert rep.rejections == [], rep.rejections
        assert rep.scans_ok == rep.written == c.scans
        scans = read_table(settings.layout.catalog_table("scans", c.cohort_id)).to_pylist()
        assert len(scans) == c.scans and all("gtv_r2" in r["segmentation_ids"] for r in scans)
        clin = read_table(settings.layout.catalog_table("clinical", c.cohort_id))
        assert clin.num_rows == c.patients
    phi = []
    for c in res.cohorts:
        df = pd.read_csv(c.path / "clinical.csv", dtype=str)
        phi += [v for col in ("patient_name", "birth_date", "address", "mrn") for v in df[col].dropna()]
        phi += list(df["source_patient_id"])
    blobs = [p.read_bytes() for p in settings.store.rglob("*") if p.is_file()]
    for path in zarr_store.iter_scans(settings.layout.volumes):
        blobs.append(str(zarr_store.open_scan(settings.layout.volumes, path).attrs).encode())
    leaks = {v for v in phi if len(v) >= 4 and any(v.encode() in b for b in blobs)}
    assert not leaks
