"""Discovery mode (DICOM tree → manifest for review) and the ``radstore ingest`` command."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from pipelines.cli import app
from radstore.io.dicom import write_ct_series, write_rtstruct
from radstore.io.tables import read_table
from tests.ingest.factory import TECH, dicom_header, phantom, volume, write_seg


def _tree(root: Path) -> None:
    """Two patients; series with ART / PORTAL VENOUS / odd descriptions; RTSTRUCT, SEG."""
    for i, (sid, descs) in enumerate({"A1": ["ART 1.0 B30f", "PORTAL VENOUS 1.0"],
                                      "B2": ["Abdomen HEP"]}.items()):
        for j, desc in enumerate(descs):
            img, mask = phantom(10 * i + j)
            vol = volume(img)
            ds = write_ct_series(vol, root / sid / f"series{j}", patient=dicom_header(i, sid),
                                 technical=TECH, series_description=desc,
                                 acquisition=dt.datetime(2022, 1, 1 + i, 8 + j))
            if j == 0 and sid == "B2":  # a BODY contour holding the GTV: ROIs that overlap
                write_rtstruct(ds, vol, np.stack([img > -500, mask == 1]), root / sid / "struct" / "rs.dcm",
                               {1: "BODY", 2: "GTV"})
            elif j == 0:
                write_rtstruct(ds, vol, mask, root / sid / "struct" / "rs.dcm")
            else:
                write_seg(ds, mask, root / sid / "seg" / "seg.dcm")
    write_ct_series(volume(phantom(99)[0]), root / "C3" / "ct", series_description="ART")  # no mask
    mr = write_ct_series(volume(phantom(98)[0]), root / "C3" / "mr", series_description="T1")
    for ds in mr:
        ds.Modality = "MR"
        ds.save_as(ds.filename)
    write_rtstruct(mr, volume(phantom(98)[0]), phantom(98)[1], root / "C3" / "mr_rs" / "rs.dcm")


def test_discover_then_ingest_via_cli(tmp_path: Path) -> None:
    _tree(tmp_path / "dicom")
    rules = tmp_path / "rules.yaml"
    rules.write_text("- {pattern: '\\bHEP\\b', phase: delayed}\n")
    manifest = tmp_path / "review" / "manifest.csv"
    runner = CliRunner()
    res = runner.invoke(app, ["--store", str(tmp_path / "store"), "ingest", "disc", str(manifest),
                              "--discover", str(tmp_path / "dicom"), "--phase-rules", str(rules)])
    assert res.exit_code == 0, res.output
    with open(manifest) as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["source_patient_id"], r["phase"]) for r in rows) == [
        ("A1", "arterial"), ("A1", "portal"), ("B2", "delayed")]
    assert all(r["acquisition_time"].startswith("2022-01-0") for r in rows)
    assert all(r["masks"].startswith("gtv=../dicom/") for r in rows)
    assert "no RTSTRUCT/SEG references this series" in res.output
    assert "C3/mr: a MR series: skipped (the store holds CT)" in " ".join(res.output.split())
    assert "B2/struct/rs.dcm: 2 ROIs (1 'BODY', 2 'GTV') all become lesions" in " ".join(res.output.split())
    with open(manifest.parent / "clinical.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source_patient_id", "index_date", "age"])
        w.writerows([["A1", "2021-12-01", 70], ["B2", "2021-12-02", 71]])
    with open(manifest.parent / "outcomes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["source_patient_id", "os_months", "os_event"], ["A1", 3, 1],
                                  ["B2", 5, 0]])
    res = runner.invoke(app, ["--store", str(tmp_path / "store"), "ingest", "disc", str(manifest)])
    assert "2 scans ok (2 written" in res.output and "1 rejected" in res.output
    rej = read_table(tmp_path / "store/catalog/rejections/cohort=disc/part-0.parquet").to_pylist()
    assert [r["rule"] for r in rej] == ["mask_overlap"]
    for r in rows:  # the reviewer keeps the GTV, as the warning says
        if r["source_patient_id"] == "B2":
            r["masks"] += "#GTV"
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    res = runner.invoke(app, ["--store", str(tmp_path / "store"), "ingest", "disc", str(manifest)])
    assert res.exit_code == 0, res.output
    assert "3 scans ok (1 written" in res.output and "0 rejected" in res.output
    scans = read_table(tmp_path / "store/catalog/scans/cohort=disc/part-0.parquet").to_pylist()
    assert sorted(r["phase"] for r in scans) == ["arterial", "delayed", "portal"]
    res = runner.invoke(app, ["--store", str(tmp_path / "store"), "ingest", "disc", str(manifest)])
    assert "(0 written, 3 unchanged)" in res.output


def test_cli_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["--store", str(tmp_path), "ingest", "Bad Id", str(tmp_path / "m.csv")])
    assert res.exit_code == 2
    res = runner.invoke(app, ["--store", str(tmp_path), "ingest", "ok"])
    assert res.exit_code == 2 and "manifest" in res.output


def test_flat_study_export_is_discovered_and_ingested_by_series_number(tmp_path: Path) -> None:
    """A study exported into one folder (two CT series, Series Numbers 2 and 3, and an RTSTRUCT of
    series 3): discovery names the series 'folder#3'; ingest and `radstore radiomics` read it."""
    flat = tmp_path / "dicom" / "E5" / "study"
    flat.mkdir(parents=True)
    for number, desc in ((2, "ART 1.0"), (3, "PORTAL VENOUS 1.0")):
        img, mask = phantom(30 + number)
        vol = volume(img)
        ds = write_ct_series(vol, tmp_path / "tmp" / str(number), patient=dicom_header(5, "E5"),
                             technical=TECH, series_description=desc,
                             acquisition=dt.datetime(2022, 2, 1, 8 + number))
        for d in ds:
            d.SeriesNumber = number
            d.save_as(flat / f"S{number}_{Path(d.filename).name}")
        if number == 3:
            write_rtstruct(ds, vol, mask, flat / "rs.dcm")
    manifest = tmp_path / "review" / "manifest.csv"
    runner = CliRunner()
    res = runner.invoke(app, ["--store", str(tmp_path / "store"), "ingest", "flat", str(manifest),
                              "--discover", str(tmp_path / "dicom")])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(manifest.read_text().splitlines()))
    assert [(r["phase"], r["image"]) for r in rows] == [("portal", "../dicom/E5/study#3")]
    said = " ".join(res.output.split())
    assert "../dicom/E5/study#2: no RTSTRUCT/SEG references this series: skipped" in said
    (manifest.parent / "clinical.csv").write_text("source_patient_id,index_date,age\nE5,2022-01-01,60\n")
    (manifest.parent / "outcomes.csv").write_text("source_patient_id,os_months,os_event\nE5,4,1\n")
    res = runner.invoke(app, ["--store", str(tmp_path / "store"), "ingest", "flat", str(manifest)])
    assert res.exit_code == 0 and "1 scans ok (1 written" in res.output, res.output
    scans = read_table(tmp_path / "store/catalog/scans/cohort=flat/part-0.parquet").to_pylist()
    assert [(r["phase"], r["lesions"]) for r in scans] == [("portal", [1])]
    one = runner.invoke(app, ["radiomics", f"{flat}#3", str(flat / "rs.dcm"), "-f", "csv"])
    assert one.exit_code == 0, one.output
    both = runner.invoke(app, ["radiomics", str(flat), str(flat / "rs.dcm")])
    assert both.exit_code == 2 and "name one as 'study#<series number>'" in " ".join(both.output.split())
