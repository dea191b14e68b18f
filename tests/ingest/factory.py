"""Small synthetic cohorts in the "Cohort input" format, written with SimpleITK/pydicom/highdicom,
including a corpus of broken inputs (each with the rule ingest must report)."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

from radstore.io.dicom import write_ct_series, write_rtstruct
from radstore.io.volumes import write_volume
from radstore.volume import Volume

SHAPE = (10, 32, 32)
SPACING = (0.8, 0.8, 2.5)

PHI = {
    "names": ["Doe^Johanna", "Smith^Archibald", "Quimby^Ferdinanda"],
    "birth_dates": ["19470312", "1947-03-12", "19521130", "1952-11-30"],
    "addresses": ["17 Lilac Crescent Wimbledon", "4 Bramblewood Row Exeter"],
    "mrns": ["MRN7730091", "MRN5521843"],
    "accessions": ["ACC90817263", "ACC44190321"],
    "institutions": ["St Bartholomew Riverside Infirmary"],
}


def phantom(seed: int, shape: tuple[int, int, int] = SHAPE, lesions: int = 1
            ) -> tuple[np.ndarray, np.ndarray]:
    """HU image (air, soft-tissue ellipse, brighter spherical lesions, noise) and its label map."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=float)
    nz, ny, nx = shape
    body = ((y - ny / 2) / (ny * 0.42)) ** 2 + ((x - nx / 2) / (nx * 0.45)) ** 2 <= 1
    img = np.where(body, 40.0, -1000.0) + rng.normal(0, 12, shape)
    mask = np.zeros(shape, np.uint8)
    for k in range(lesions):
        c = (nz / 2, ny / 2 + (k * 8 - 4) * (lesions > 1), nx / 2 + (k * 7 - 3) * (lesions > 1))
        r = 3.0 + rng.uniform(0, 1)
        ball = ((z - c[0]) * 2.5 / 0.8) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r
        mask[ball] = k + 1
        img[ball] = 90 + rng.normal(0, 10, int(ball.sum()))
    return np.rint(img), mask


def volume(arr: np.ndarray, spacing=SPACING, origin=(-12.0, -14.0, 30.0)) -> Volume:
    return Volume(arr, spacing, origin)


@dataclass
class Cohort:
    root: Path
    rows: list[dict[str, str]] = field(default_factory=list)
    clinical: list[dict[str, str]] = field(default_factory=list)
    outcomes: list[dict[str, str]] = field(default_factory=list)
    expected: dict[str, str] = field(default_factory=dict)  # input -> rule
    good: list[str] = field(default_factory=list)  # image paths that must land
    orphan: str = ""  # source id of the clinical row without scans

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    def add_patient(self, source_id: str, i: int) -> None:
        self.clinical.append({
            "source_patient_id": source_id, "index_date": f"2021-0{1 + i % 9}-1{i % 10}",
            "age": str(50 + i), "sex": "MF"[i % 2], "tumour_site": "colon", "grade": f"G{1 + i % 3}",
            "ki67": str(10 + i), "m_stage": str(i % 2), "longest_diameter_mm": str(20.5 + i),
            "cea": "3.1", "ca199": "12", "patient_name": PHI["names"][i % 3].replace("^", " "),
            "birth_date": PHI["birth_dates"][1 + 2 * (i % 2)], "address": PHI["addresses"][i % 2],
            "mrn": PHI["mrns"][i % 2]})
        self.outcomes.append({"source_patient_id": source_id, "os_months": str(12 + i),
                              "os_event": str(i % 2), "rfs_months": str(6 + i),
                              "rfs_event": str((i + 1) % 2), "response": str(i % 2)})

    def row(self, sid: str, phase: str, when: str, image: str, masks: str) -> None:
        self.rows.append({"source_patient_id": sid, "phase": phase, "acquisition_time": when,
                          "image": image, "masks": masks})

    def write(self) -> Path:
        for name, rows in (("manifest.csv", self.rows), ("clinical.csv", self.clinical),
                           ("outcomes.csv", self.outcomes)):
            if not rows:
                continue
            with open(self.root / name, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        (self.root / "cohort.yaml").write_text("cohort_id: test\nhospital: Test Hospital A\n"
                                               "scanner: synthetic\n")
        return self.manifest


def dicom_header(i: int, source_id: str) -> dict[str, str]:
    return {"PatientName": PHI["names"][i % 3], "PatientID": source_id,
            "PatientBirthDate": PHI["birth_dates"][2 * (i % 2)], "AccessionNumber": PHI["accessions"][i % 2],
            "InstitutionName": PHI["institutions"][0],
            "InstitutionAddress": PHI["addresses"][i % 2], "OtherPatientIDs": PHI["mrns"][i % 2]}


TECH = {"Manufacturer": "ACME Medical", "ManufacturerModelName": "Tomo 64", "KVP": "120",
        "ConvolutionKernel": "B30f"}


def write_dicom_case(root: Path, rel: str, i: int, sid: str, *, lesions: int = 1,
                     seed: int | None = None) -> tuple[list, Volume, np.ndarray]:
    img, mask = phantom(seed if seed is not None else i, lesions=lesions)
    vol = volume(img)
    ds = write_ct_series(vol, root / rel, patient=dicom_header(i, sid), technical=TECH,
                         series_description="venous phase",
                         acquisition=dt.datetime(2021, 3, 1 + i % 28, 10, 0))
    return ds, vol, mask


def write_seg(datasets: list, mask: np.ndarray, path: Path) -> Path:
    """A binary DICOM SEG (highdicom) of ``mask`` labels on the given CT slices (or of the segments
    ``mask[..., n - 1]`` of a 4-D stack, which may overlap)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    stack = mask.ndim == 4
    labels = list(range(1, mask.shape[-1] + 1)) if stack else [int(v) for v in np.unique(mask) if v]
    descs = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=f"lesion {n}",
        segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL) for n in range(1, len(labels) + 1)]
    onehot = (mask if stack else np.stack([(mask == lab) for lab in labels], axis=-1)).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=[pydicom.dcmread(d.filename) for d in datasets], pixel_array=onehot,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descs,
        series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="radstore-tests", manufacturer_model_name="factory", software_versions="1",
        device_serial_number="1")
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return path


def good_cohort(root: Path, n_dicom: int = 2) -> Cohort:
    """DICOM+RTSTRUCT (×n_dicom, one with 2 lesions), DICOM+SEG, NIfTI, NRRD (+ a second reader)."""
    c = Cohort(root)
    i = 0
    for k in range(n_dicom):
        sid = f"SRC-{1000 + i}"
        c.add_patient(sid, i)
        ds, vol, mask = write_dicom_case(root, f"p{i}/ct", i, sid, lesions=1 + (k == 0))
        write_rtstruct(ds, vol, mask, root / f"p{i}/rs.dcm")
        c.row(sid, "venous", f"2021-03-0{1 + i}T10:00:00", f"p{i}/ct", f"gtv=p{i}/rs.dcm")
        c.good.append(f"p{i}/ct")
        i += 1
    sid = f"SRC-{1000 + i}"
    c.add_patient(sid, i)
    ds, vol, mask = write_dicom_case(root, f"p{i}/ct", i, sid)
    write_seg(ds, mask, root / f"p{i}/seg.dcm")
    c.row(sid, "arterial", "2021-04-01T09:30:00", f"p{i}/ct", f"gtv=p{i}/seg.dcm")
    c.good.append(f"p{i}/ct")
    i += 1
    for ext in (".nii.gz", ".nrrd"):
        sid = f"SRC-{1000 + i}"
        c.add_patient(sid, i)
        img, mask = phantom(i)
        write_volume(volume(img.astype(np.int16)), root / f"p{i}/image{ext}")
        write_volume(volume(mask), root / f"p{i}/mask{ext}")
        r2 = mask.copy()
        r2[r2 > 0] = 1
        write_volume(volume(r2), root / f"p{i}/mask_r2{ext}")
        c.row(sid, "portal", "2021-05-02", f"p{i}/image{ext}",
              f"gtv=p{i}/mask{ext};gtv_r2=p{i}/mask_r2{ext}")
        c.good.append(f"p{i}/image{ext}")
        i += 1
    return c


def bad_corpus(c: Cohort, start: int = 20) -> Cohort:
    """Adds ≥ 12 kinds of broken input to cohort ``c``; ``c.expected`` maps input → rule."""
    root = c.root
    i = start

    def patient() -> str:
        nonlocal i
        sid = f"SRC-{1000 + i}"
        c.add_patient(sid, i)
        i += 1
        return sid

    def nifti_case(sid: str, name: str, img: np.ndarray, mask: np.ndarray,
                   mask_vol: Volume | None = None, phase: str = "venous",
                   when: str = "2021-06-01T08:00:00") -> str:
        write_volume(volume(img), root / f"{name}/image.nii.gz")
        write_volume(mask_vol or volume(mask), root / f"{name}/mask.nii.gz")
        c.row(sid, phase, when, f"{name}/image.nii.gz", f"gtv={name}/mask.nii.gz")
        return f"{name}/image.nii.gz"

    # 1 corrupt DICOM slice
    sid = patient()
    write_dicom_case(root, "bad_corrupt/ct", i, sid)
    (root / "bad_corrupt/ct/IM00004.dcm").write_bytes(b"\x00" * 200 + b"garbage")
    img, mask = phantom(i)
    write_volume(volume(mask), root / "bad_corrupt/mask.nii.gz")
    c.row(sid, "venous", "2021-06-01", "bad_corrupt/ct", "gtv=bad_corrupt/mask.nii.gz")
    c.expected["bad_corrupt/ct"] = "unreadable"
    # 2 missing slice
    sid = patient()
    _, vol, mask = write_dicom_case(root, "bad_missing/ct", i, sid)
    (root / "bad_missing/ct/IM00005.dcm").unlink()
    write_volume(vol.with_array(mask), root / "bad_missing/mask.nii.gz")
    c.row(sid, "venous", "2021-06-01", "bad_missing/ct", "gtv=bad_missing/mask.nii.gz")
    c.expected["bad_missing/ct"] = "missing_slices"
    # 3 uneven spacing
    sid = patient()
    _, vol, mask = write_dicom_case(root, "bad_uneven/ct", i, sid)
    f = root / "bad_uneven/ct/IM00003.dcm"
    ds = pydicom.dcmread(f)
    pos = [float(v) for v in ds.ImagePositionPatient]
    ds.ImagePositionPatient = [pos[0], pos[1], pos[2] + 0.9]
    ds.save_as(f)
    write_volume(vol.with_array(mask), root / "bad_uneven/mask.nii.gz")
    c.row(sid, "venous", "2021-06-01", "bad_uneven/ct", "gtv=bad_uneven/mask.nii.gz")
    c.expected["bad_uneven/ct"] = "uneven_slice_spacing"
    # 4 mask size mismatch
    sid = patient()
    img, mask = phantom(i)
    c.expected[nifti_case(sid, "bad_size", img.astype(np.int16), mask,
                          volume(mask[:, :, :-2]))] = "mask_geometry_mismatch"
    # 5 mask origin mismatch
    sid = patient()
    img, mask = phantom(i)
    c.expected[nifti_case(sid, "bad_origin", img.astype(np.int16), mask,
                          volume(mask, origin=(-12.0, -14.0, 35.0)))] = "mask_geometry_mismatch"
    # 6 empty mask
    sid = patient()
    img, mask = phantom(i)
    c.expected[nifti_case(sid, "bad_empty", img.astype(np.int16), np.zeros_like(mask))] = "empty_mask"
    # 7 probability map instead of labels
    sid = patient()
    img, mask = phantom(i)
    c.expected[nifti_case(sid, "bad_prob", img.astype(np.int16), mask * 0.4)] = "mask_not_label_map"
    # 8 RTSTRUCT contours outside the image
    sid = patient()
    ds, vol, mask = write_dicom_case(root, "bad_outside/ct", i, sid)
    write_rtstruct(ds, vol, mask, root / "bad_outside/rs.dcm", z_offset_mm=100.0)
    c.row(sid, "venous", "2021-06-01", "bad_outside/ct", "gtv=bad_outside/rs.dcm")
    c.expected["bad_outside/ct"] = "mask_outside_image"
    # 9 RTSTRUCT on another frame of reference
    sid = patient()
    ds, vol, mask = write_dicom_case(root, "bad_for/ct", i, sid)
    rs = write_rtstruct(ds, vol, mask, root / "bad_for/rs.dcm")
    r = pydicom.dcmread(rs)
    r.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = pydicom.uid.generate_uid()
    for roi in r.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = r.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    r.save_as(rs)
    c.row(sid, "venous", "2021-06-01", "bad_for/ct", "gtv=bad_for/rs.dcm")
    c.expected["bad_for/ct"] = "mask_frame_of_reference"
    # 10 HU out of range (raw detector counts)
    sid = patient()
    img, mask = phantom(i)
    c.expected[nifti_case(sid, "bad_hu", (img + 30000).astype(np.int32), mask)] = "hu_out_of_range"
    # 11 unknown phase
    sid = patient()
    img, mask = phantom(i)
    c.expected[nifti_case(sid, "bad_phase", img.astype(np.int16), mask, phase="hepatobiliary")] = \
        "unknown_phase"
    # 12 duplicate patient/phase/time (both rows rejected)
    sid = patient()
    img, mask = phantom(i)
    nifti_case(sid, "bad_dup_a", img.astype(np.int16), mask, when="2021-07-01T10:00:00")
    nifti_case(sid, "bad_dup_b", img.astype(np.int16), mask, when="2021-07-01T10:00:00")
    c.expected["bad_dup_a/image.nii.gz"] = "duplicate_scan"
    c.expected["bad_dup_b/image.nii.gz"] = "duplicate_scan"
    # 13 bad acquisition time in the manifest
    sid = patient()
    img, mask = phantom(i)
    c.expected[nifti_case(sid, "bad_time", img.astype(np.int16), mask, when="last tuesday")] = \
        "bad_manifest_row"
    # 14 missing mask file
    sid = patient()
    img, mask = phantom(i)
    name = nifti_case(sid, "bad_nomask", img.astype(np.int16), mask)
    (root / "bad_nomask/mask.nii.gz").unlink()
    c.expected[name] = "missing_file"
    # 15 unreadable NIfTI (source id in the folder name: must be redacted in the catalog)
    sid = patient()
    d = root / f"{sid}_scan"
    d.mkdir()
    (d / "image.nii.gz").write_bytes(b"this is not a nifti file")
    img, mask = phantom(i)
    write_volume(volume(mask), d / "mask.nii.gz")
    c.row(sid, "venous", "2021-06-01", f"{sid}_scan/image.nii.gz", f"gtv={sid}_scan/mask.nii.gz")
    c.expected[f"{sid}_scan/image.nii.gz"] = "unreadable"
    # 16 scan without a clinical row
    sid = f"SRC-{1000 + i}"
    i += 1
    img, mask = phantom(i)
    c.expected[nifti_case(sid, "bad_noclin", img.astype(np.int16), mask)] = "scans_without_clinical"
    # 17 RTSTRUCT whose ROIs overlap (BODY holds the GTV): one label map cannot hold both; the same
    # file with the GTV named lands, a name it lacks is refused
    for name, ref, rule in (("bad_overlap", "rs.dcm", "mask_overlap"), ("roi_named", "rs.dcm#gtv", ""),
                            ("bad_roi_name", "rs.dcm#PTV", "unknown_roi")):
        sid = patient()
        ds, vol, mask = write_dicom_case(root, f"{name}/ct", i, sid)
        body = (vol.array > -500) | (mask > 0)
        write_rtstruct(ds, vol, np.stack([body, mask == 1]), root / f"{name}/rs.dcm", {1: "BODY", 2: "GTV"})
        c.row(sid, "venous", "2021-06-01", f"{name}/ct", f"gtv={name}/{ref}")
        if rule:
            c.expected[f"{name}/ct"] = rule
        else:
            c.good.append(f"{name}/ct")
    # 18 an MR series in a CT cohort, 19 slices sheared by a tilted gantry
    for name, rule in (("bad_mr", "not_ct"), ("bad_tilt", "sheared_slices")):
        sid = patient()
        _, vol, mask = write_dicom_case(root, f"{name}/ct", i, sid)
        for k, f in enumerate(sorted((root / f"{name}/ct").iterdir())):
            ds = pydicom.dcmread(f)
            if rule == "not_ct":
                ds.Modality = "MR"
            else:
                x, y, z = (float(v) for v in ds.ImagePositionPatient)
                ds.ImagePositionPatient = [x, y + 0.3 * k, z]
            ds.save_as(f)
        write_volume(vol.with_array(mask), root / f"{name}/mask.nii.gz")
        c.row(sid, "venous", "2021-06-01", f"{name}/ct", f"gtv={name}/mask.nii.gz")
        c.expected[f"{name}/ct"] = rule
    # 20 clinical row without scans, 21 bad clinical value, 22 bad index date
    c.orphan = patient()
    c.expected["clinical.csv#orphan"] = "clinical_without_scans"
    sid = patient()
    c.clinical[-1]["age"] = "old"
    sid = patient()
    c.clinical[-1]["index_date"] = "2021-13-45"
    c.expected["clinical.csv#bad"] = "bad_table_value"
    return c


def copy_cohort(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
