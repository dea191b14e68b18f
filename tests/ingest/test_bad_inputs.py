"""Broken inputs each get their rule in ``rejections``; every good scan still lands."""

from __future__ import annotations

import numpy as np

from radstore.io import zarr_store
from radstore.io.tables import read_table
from radstore.io.volumes import read_volume
from tests.ingest.conftest import Ingested


def test_each_broken_input_has_its_rule(ingested: Ingested) -> None:
    lay = ingested.settings.layout
    rej = read_table(lay.catalog_table("rejections", "hosp_a")).to_pylist()
    got = {(r["input"], r["rule"]) for r in rej}
    for inp, rule in ingested.cohort.expected.items():
        inp = inp.split("#")[0]
        if inp.startswith("SRC-"):  # the folder named after the source id is stored pseudonymised
            continue
        assert (inp, rule) in got, (inp, rule, sorted(got))
    kinds = {inp for inp in ingested.cohort.expected}
    assert len(kinds) >= 12 and len(set(ingested.cohort.expected.values())) >= 12
    assert all(r["message"] and r["cohort_id"] == "hosp_a" for r in rej)
    assert not any("SRC-" in r["input"] or "SRC-" in r["message"] for r in rej)
    assert any(r["input"].endswith("_scan/image.nii.gz") and r["input"].startswith("P") for r in rej)


def test_every_good_scan_lands(ingested: Ingested) -> None:
    lay = ingested.settings.layout
    scans = read_table(lay.catalog_table("scans", "hosp_a")).to_pylist()
    assert len(scans) == len(ingested.cohort.good) == ingested.report.scans_ok
    assert sorted(zarr_store.iter_scans(lay.volumes)) == sorted(r["zarr_path"] for r in scans)
    assert len({r["scan_id"] for r in scans}) == len(scans)
    by_phase = {r["phase"]: r for r in scans}
    assert set(by_phase) == {"venous", "arterial", "portal"}
    for r in scans:
        h = zarr_store.open_scan(lay.volumes, r["zarr_path"])
        assert h.image.dtype == np.int16 and list(h.image.shape) == [r["shape_z"], r["shape_y"], r["shape_x"]]
        assert h.attrs["patient_id"] == r["patient_id"] and r["patient_id"].startswith("P")
        assert r["status"] == "ok" and len(r["source_hash"]) == 64
        for seg in r["segmentation_ids"]:
            assert h.labels(seg)
    assert any(r["lesions"] == [1, 2] for r in scans)  # the two-lesion RTSTRUCT
    nifti = [r for r in scans if r["segmentation_ids"] == ["gtv", "gtv_r2"]]
    assert len(nifti) == 2
    assert all(r["manufacturer"] == "ACME Medical" and r["kvp"] == 120.0
               for r in scans if r["segmentation_ids"] == ["gtv"])


def test_stored_nifti_scan_equals_source(ingested: Ingested) -> None:
    lay = ingested.settings.layout
    src = ingested.cohort.root / "p3/image.nii.gz"
    v = read_volume(src)
    m = read_volume(ingested.cohort.root / "p3/mask.nii.gz")
    scans = read_table(lay.catalog_table("scans", "hosp_a")).to_pylist()
    hit = []
    for r in scans:
        h = zarr_store.open_scan(lay.volumes, r["zarr_path"])
        if h.image.shape == v.shape and np.array_equal(h.image[...], v.array):
            hit.append(h)
    assert len(hit) == 1
    g = hit[0].geometry()
    assert g.same_grid(v)
    np.testing.assert_array_equal(hit[0].mask("gtv")[...], m.array)


def test_clinical_and_outcomes_are_typed_and_pseudonymised(ingested: Ingested) -> None:
    lay = ingested.settings.layout
    clin = read_table(lay.catalog_table("clinical", "hosp_a"))
    out = read_table(lay.catalog_table("outcomes", "hosp_a"))
    assert {"patient_name", "birth_date", "address", "mrn", "source_patient_id"}.isdisjoint(clin.column_names)
    assert str(clin.schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    scans = read_table(lay.catalog_table("scans", "hosp_a")).to_pylist()
    with_scans = {r["patient_id"] for r in scans}
    assert with_scans <= set(clin.column("patient_id").to_pylist())
    assert set(out.column("patient_id").to_pylist()) <= set(clin.column("patient_id").to_pylist())
    assert set(clin.column("sex").to_pylist()) <= {"M", "F"}
