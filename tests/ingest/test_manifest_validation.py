"""Manifest/table parsing and the pure validation rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radstore.deid import Redactor, technical_tags
from radstore.io.manifest import load_phase_rules, parse_masks, phase_of, read_manifest, read_table
from radstore.validation import (
    ValidationFailure,
    check_geometry,
    check_hu,
    check_label_map,
    check_phase,
    check_slice_positions,
    duplicate_keys,
)


def _rule(fn, *a, **k) -> str:
    with pytest.raises(ValidationFailure) as exc:
        fn(*a, **k)
    return exc.value.rule


def test_slice_positions() -> None:
    assert check_slice_positions([0, 2.5, 5, 7.5], "s") == pytest.approx(2.5)
    assert _rule(check_slice_positions, [0, 2.5, 7.5, 10], "s") == "missing_slices"
    assert _rule(check_slice_positions, [0, 2.5, 5.6, 7.5], "s") == "uneven_slice_spacing"
    assert _rule(check_slice_positions, [0, 0, 2.5], "s") == "uneven_slice_spacing"
    assert _rule(check_slice_positions, [0], "s") == "missing_slices"


def test_geometry_labels_hu_phase() -> None:
    g = ((2, 3, 4), (1, 1, 2), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    check_geometry(g, ((2, 3, 4), (1, 1, 2.001), (0, 0, 0.005), g[3]), "m")
    assert _rule(check_geometry, g, ((2, 3, 4), (1, 1, 2.5), g[2], g[3]), "m") == "mask_geometry_mismatch"
    assert _rule(check_geometry, g, (g[0], g[1], g[2], (0, 1, 0, 1, 0, 0, 0, 0, 1)), "m") == \
        "mask_geometry_mismatch"
    assert check_label_map(np.array([[[0.0, 2.0]]]), "m").dtype == np.uint8
    assert _rule(check_label_map, np.zeros((1, 2, 2)), "m") == "empty_mask"
    assert _rule(check_label_map, np.array([[[0, -1]]]), "m") == "mask_not_label_map"
    assert check_hu(np.array([[[-1000.4, 50.6]]]), "i").tolist() == [[[-1000, 51]]]
    assert _rule(check_hu, np.array([[[0.0, 1.0]]]), "i") == "hu_out_of_range"
    assert _rule(check_hu, np.array([[[np.nan, 1.0]]]), "i") == "hu_out_of_range"
    assert check_phase(" Venous ", "x") == "venous"
    assert _rule(check_phase, "hepatic", "x") == "unknown_phase"
    assert duplicate_keys([(1, "a"), (1, "a"), (2, "a")]) == {(1, "a")}


def test_masks_and_yaml_manifest(tmp_path: Path) -> None:
    assert parse_masks("gtv=a.nii.gz; gtv_r2=b.nrrd") == {"gtv": "a.nii.gz", "gtv_r2": "b.nrrd"}
    assert parse_masks("rs.dcm") == {"gtv": "rs.dcm"}
    assert parse_masks("gtv=rs.dcm#GTV 1,GTV 2") == {"gtv": "rs.dcm#GTV 1,GTV 2"}
    for bad in ("", "GTV=x", "gtv=a;gtv=b", "gtv=", "gtv=rs.dcm#", "gtv=rs.dcm#A,,B", "rs.dcm#A,A"):
        with pytest.raises(ValueError):
            parse_masks(bad)
    (tmp_path / "m.yaml").write_text(
        "clinical: tables/clin.parquet\nscans:\n"
        "  - {source_patient_id: X1, phase: venous, acquisition_time: '2020-01-02T03:04:05+01:00',"
        " image: a.nii.gz, masks: {gtv: m.nii.gz}}\n"
        "  - {source_patient_id: X2, phase: venous, acquisition_time: nope, image: b.nii.gz, masks: m}\n")
    m = read_manifest(tmp_path / "m.yaml")
    assert len(m.entries) == 1 and m.entries[0].acquisition_time.isoformat() == "2020-01-02T02:04:05+00:00"
    assert [i.rule for i in m.issues] == ["bad_manifest_row"] and m.issues[0].input == "b.nii.gz"
    assert m.clinical == tmp_path / "tables/clin.parquet"
    (tmp_path / "bad.csv").write_text("source_patient_id,phase\nx,venous\n")
    with pytest.raises(ValueError, match="missing column"):
        read_manifest(tmp_path / "bad.csv")


def test_clinical_table_types_and_phi_free_messages(tmp_path: Path) -> None:
    p = tmp_path / "clinical.csv"
    p.write_text("source_patient_id,index_date,age,sex,grade,m_stage,patient_name,mrn\n"
                 "A,2020-01-01,61,m,g2,1,Jane Roe,MRN1\n"
                 "B,2020-02-30,62,F,G1,0,John Roe,MRN2\n"
                 "C,2020-01-03,62,X,G1,0,Jim Roe,MRN3\n"
                 "A,2020-01-04,63,F,G1,0,Jane Roe,MRN1\n"
                 "D,2020-01-05,,F,,,Jo Roe,MRN4\n")
    rows, issues = read_table(p, "clinical")
    assert [r["source_patient_id"] for r in rows] == ["A", "D"]
    assert rows[0]["sex"] == "M" and rows[0]["grade"] == "G2" and rows[0]["age"] == 61.0
    assert rows[1]["age"] is None and "patient_name" not in rows[0] and "mrn" not in rows[0]
    assert [i.rule for i in issues] == ["bad_table_value"] * 3
    assert not any(v in i.message for i in issues for v in ("Roe", "MRN", "2020-02-30", "X"))


def test_phase_rules_and_deid(tmp_path: Path) -> None:
    rules = load_phase_rules(None)
    assert phase_of("Arterial 1.25mm", rules) == "arterial"
    assert phase_of("PORTAL VENOUS", rules) == "portal"
    assert phase_of("Venous phase", rules) == "venous"
    assert phase_of("NON CONTRAST", rules) == "non_contrast"
    assert phase_of("Delayed 5 min", rules) == "delayed"
    assert phase_of("scout", rules) is None
    (tmp_path / "r.yaml").write_text("- {pattern: scout, phase: hepatic}\n")
    with pytest.raises(ValueError, match="rule 1"):
        load_phase_rules(tmp_path / "r.yaml")
    import pydicom

    ds = pydicom.Dataset()
    ds.PatientName, ds.InstitutionName, ds.Manufacturer, ds.KVP = "Doe^J", "General", "GE", "120"
    ds.ConvolutionKernel = ["FC", "13"]
    tags = technical_tags(ds)
    assert tags["manufacturer"] == "GE" and tags["kvp"] == 120.0 and tags["kernel"] == "FC/13"
    assert "Doe" not in str(tags) and "General" not in str(tags)
    red = Redactor({"SRC-1": "P1"}, ["Jane Roe", "x"])
    assert red("SRC-1_scan/Jane Roe.nii") == "P1_scan/[redacted].nii"


def test_roi_names_enter_the_source_hash_only_when_given(tmp_path: Path) -> None:
    import datetime as dt

    from pipelines.ingest import source_files, source_hash
    from radstore.io.manifest import ScanEntry

    (tmp_path / "a.nii.gz").write_bytes(b"image")
    (tmp_path / "rs.dcm").write_bytes(b"rtstruct")
    t = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)

    def entry(ref: str) -> ScanEntry:
        return ScanEntry(row=2, source_patient_id="X", phase="venous", acquisition_time=t,
                         image="a.nii.gz", masks={"gtv": ref})

    assert source_files(entry("rs.dcm#GTV"), tmp_path) == [tmp_path / "a.nii.gz", tmp_path / "rs.dcm"]
    refs = ("rs.dcm", "rs.dcm#GTV", "rs.dcm#CTV")
    hashes = {ref: source_hash(entry(ref), "venous", tmp_path) for ref in refs}
    assert len(set(hashes.values())) == 3
    # without names the hash is the one written before ROI names existed (no re-ingest on upgrade)
    from radstore import ids

    old = ids.sha256_bytes((ids.sha256_files(source_files(entry("rs.dcm"), tmp_path)) + ids.canonical_json(
        {"phase": "venous", "time": t.isoformat(), "masks": ["gtv"], "ingest": "1"})).encode())
    assert hashes["rs.dcm"] == old
