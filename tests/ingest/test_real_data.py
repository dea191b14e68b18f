"""The IBSI CT phantom and the two STS scans ingest from DICOM + RTSTRUCT (real reference data)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from pipelines.ingest import ingest_cohort
from radstore import ids
from radstore.config import DaskSettings, Settings
from radstore.io import zarr_store
from radstore.io.tables import read_table
from radstore.io.volumes import read_volume

CASES = {
    "IBSI-PHANTOM": ("ibsi1/ct_phantom/dicom/image", "ibsi1/ct_phantom/dicom/mask/DCM_RS_00060.dcm"),
    "STS_001": ("sts/STS_001/CT/dicom/image", "sts/STS_001/CT/dicom/mask/RS.dcm"),
    "STS_002": ("sts/STS_002/CT/dicom/image", "sts/STS_002/CT/dicom/mask/RS.dcm"),
}


def _write_inputs(shared: Path, d: Path) -> Path:
    d.mkdir(parents=True)
    with open(d / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source_patient_id", "phase", "acquisition_time", "image", "masks"])
        for i, (sid, (img, rs)) in enumerate(CASES.items()):
            w.writerow([sid, "venous", f"2020-01-0{i + 1}T09:00:00", os.path.relpath(shared / img, d),
                        f"gtv={os.path.relpath(shared / rs, d)}"])
    with open(d / "clinical.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source_patient_id", "index_date", "age", "sex"])
        for i, sid in enumerate(CASES):
            w.writerow([sid, f"2019-12-0{i + 1}", 60 + i, "MF"[i % 2]])
    with open(d / "outcomes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source_patient_id", "os_months", "os_event"])
        for i, sid in enumerate(CASES):
            w.writerow([sid, 10 + i, i % 2])
    return d / "manifest.csv"


def test_phantom_and_sts_ingest(shared_data: Path, tmp_path: Path) -> None:
    manifest = _write_inputs(shared_data, tmp_path / "cohort")
    settings = Settings(store=tmp_path / "store", progress=False,
                        dask=DaskSettings(scheduler="processes", num_workers=2))
    rep = ingest_cohort(settings, "reference", manifest, qc_report=False)
    assert rep.rejections == [] and rep.scans_ok == 3 and rep.written == 3
    lay = settings.layout
    scans = {r["patient_id"]: r for r in read_table(lay.catalog_table("scans", "reference")).to_pylist()}
    key = settings.secret_key()
    for sid, (img_rel, _) in CASES.items():
        pid = ids.patient_id(sid, key, "reference")
        row = scans[pid]
        h = zarr_store.open_scan(lay.volumes, row["zarr_path"])
        r = sitk.ImageSeriesReader()
        r.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(shared_data / img_rel)))
        ref = r.Execute()
        g = h.geometry()
        assert g.shape == tuple(reversed(ref.GetSize()))
        np.testing.assert_allclose(g.spacing, ref.GetSpacing(), atol=1e-4)
        np.testing.assert_allclose(g.origin, ref.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(g.direction, ref.GetDirection(), atol=1e-6)
        np.testing.assert_array_equal(g.array, sitk.GetArrayFromImage(ref).astype(np.int16))
        assert row["lesions"] == [1] and row["segmentation_ids"] == ["gtv"]
        assert h.attrs["phase"] == "venous" and h.attrs["scan_id"] == row["scan_id"]
    phantom = zarr_store.open_scan(lay.volumes,
                                   scans[ids.patient_id("IBSI-PHANTOM", key, "reference")]["zarr_path"])
    a = np.asarray(phantom.mask("gtv")[...]) > 0
    b = read_volume(shared_data / "ibsi1/ct_phantom/nifti/mask/mask.nii.gz").array > 0
    assert 2 * np.sum(a & b) / (a.sum() + b.sum()) >= 0.97
    assert abs(int(a.sum()) - int(b.sum())) <= 0.01 * b.sum()
    assert phantom.labels("gtv")[1].voxels == int(a.sum())
