"""Synthetic cohort: contract, readable geometry, RTSTRUCT fidelity, planted signal, determinism."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
import yaml
from scipy.stats import spearmanr

from radstore.synth import (
    CLINICAL_COLUMNS,
    MANIFEST_COLUMNS,
    OUTCOME_COLUMNS,
    SynthConfig,
    generate,
    scanner_profile,
)
from radstore.synth import cohort as model
from radstore.synth import phantom as ph
from radstore.synth.writers import SeriesTags, StudyTags, uid, write_ct_series, write_rtstruct, write_volume
from tests.synth.rtstruct_raster import dice, rasterise

CONFIG = SynthConfig(hospitals=3, patients_per_hospital=5, visits=2, second_reader=True, seed=0)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate(out, CONFIG, progress=False)
    return out


def _read_image(path: Path) -> sitk.Image:
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
        return reader.Execute()
    return sitk.ReadImage(str(path))


def _masks(entry: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in entry.split(";"))


def _read_mask(path: Path, image_path: Path) -> np.ndarray:
    if path.suffix == ".dcm":
        return rasterise(path, image_path)
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _study(frame: str = "1.2.3.4") -> StudyTags:
    return StudyTags(
        patient_name="Doe^Jane", patient_id="T-1", birth_date=dt.date(1950, 1, 2), sex="F", age=70,
        address="1 Test Street", other_patient_ids="123", accession_number="A1", institution="Test",
        referring_physician="Who^Dr", study_uid=uid("t", "study"), frame_uid=uid("t", frame),
        study_datetime=dt.datetime(2020, 1, 2, 3, 4, 5), study_id="1")


def _series(signed: bool, name: str = "ct") -> SeriesTags:
    return SeriesTags(
        series_uid=uid("t", name), series_number=2, description="PV 1.25mm",
        acquisition_datetime=dt.datetime(2020, 1, 2, 3, 4, 5), manufacturer="GE MEDICAL SYSTEMS",
        model="X", kvp=120.0, kernel="STANDARD", slice_thickness=1.25, signed_pixels=signed,
        contrast_agent="Iohexol", uid_entropy=("t", name))


def test_contract_columns_and_files(cohort: Path) -> None:
    for h in range(1, CONFIG.hospitals + 1):
        cdir = cohort / CONFIG.cohort_id(h)
        manifest = pd.read_csv(cdir / "manifest.csv")
        clinical = pd.read_csv(cdir / "clinical.csv")
        outcomes = pd.read_csv(cdir / "outcomes.csv")
        assert tuple(manifest.columns) == MANIFEST_COLUMNS
        assert tuple(clinical.columns) == CLINICAL_COLUMNS
        assert tuple(outcomes.columns) == OUTCOME_COLUMNS
        assert tuple(MANIFEST_COLUMNS) == ("source_patient_id", "phase", "acquisition_time", "image",
                                           "masks")
        meta = yaml.safe_load((cdir / "cohort.yaml").read_text())
        assert meta["cohort_id"] == CONFIG.cohort_id(h) and meta["hospital"] and meta["scanner"]
        assert set(manifest.phase) <= {"non_contrast", "arterial", "venous"}
        assert set(clinical.source_patient_id) == set(outcomes.source_patient_id) \
            == set(manifest.source_patient_id)
        assert set(clinical.grade) <= {"G1", "G2", "G3"} and set(clinical.sex) <= {"M", "F"}
        assert set(clinical.m_stage) <= {0, 1} and set(outcomes.os_event) <= {0, 1}
        assert (outcomes.rfs_months <= outcomes.os_months + 1e-9).all()
        assert (clinical.longest_diameter_mm > 0).all()
        for _, row in manifest.iterrows():
            dt.datetime.fromisoformat(row.acquisition_time)
            assert (cdir / row.image).exists()
            masks = _masks(row.masks)
            assert set(masks) == {"gtv", "gtv_r2"}
            assert all((cdir / p).is_file() for p in masks.values())
        per_patient = manifest.groupby("source_patient_id").phase.nunique()
        assert per_patient.between(2, 3).all()
    assert not any((cohort / CONFIG.cohort_id(h) / "_truth").exists() for h in range(1, 4))
    assert (cohort / "_truth" / "summary.json").is_file()


def test_hospital_formats_and_scanners_differ(cohort: Path) -> None:
    spacings = []
    for h, (img_kind, mask_suffixes) in enumerate(
            [("dir", {".dcm"}), ("dir", {".gz"}), ("file", {".gz", ".nrrd"})], start=1):
        cdir = cohort / CONFIG.cohort_id(h)
        manifest = pd.read_csv(cdir / "manifest.csv")
        kinds = {"dir" if (cdir / p).is_dir() else "file" for p in manifest.image}
        assert kinds == {img_kind}
        suffixes = {Path(p).suffix for m in manifest.masks for p in _masks(m).values()}
        assert suffixes == mask_suffixes
        img = _read_image(cdir / manifest.image.iloc[0])
        spacings.append(img.GetSpacing())
    assert len({s[0] for s in spacings}) == 3 and len({s[2] for s in spacings}) == 3
    assert all(0.6 <= s[0] <= 0.9 and 0.5 <= s[2] <= 5.0 for s in spacings)
    h3 = pd.read_csv(cohort / "hospital3" / "manifest.csv")
    assert {Path(p).suffix for p in h3.image} == {".gz", ".nrrd"}


@pytest.mark.parametrize("signed", [True, False])
def test_dicom_series_round_trip(tmp_path: Path, signed: bool) -> None:
    rng = np.random.default_rng(1)
    hu = rng.integers(-1024, 3072, size=(7, 20, 24)).astype(np.int16)
    grid = ph.Grid(hu.shape, (0.703125, 0.703125, 1.25), (-12.5, 30.25, -250.0))
    folder = tmp_path / "ct"
    uids = write_ct_series(folder, hu, grid, _study(), _series(signed))
    img = _read_image(folder)
    assert np.allclose(img.GetSpacing(), grid.spacing)
    assert np.allclose(img.GetOrigin(), grid.origin)
    assert np.allclose(img.GetDirection(), np.eye(3).ravel())
    assert np.array_equal(sitk.GetArrayFromImage(img), hu)
    for k in (0, 6):
        ds = pydicom.dcmread(folder / f"IM{7 - k:05d}.dcm")
        assert ds.SOPInstanceUID == uids[k] and ds.Modality == "CT"
        assert ds.PixelRepresentation == (1 if signed else 0)
        assert float(ds.RescaleIntercept) == (0 if signed else -1024)
        assert np.allclose([float(v) for v in ds.ImagePositionPatient], [-12.5, 30.25, -250 + 1.25 * k])
        assert float(ds.SpacingBetweenSlices) == 1.25 and float(ds.SliceThickness) == 1.25
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        values = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        assert np.array_equal(values, hu[k])
        # byte-level check of the fast encoder: pydicom re-writes the same dataset identically
        again = tmp_path / "again.dcm"
        pydicom.dcmwrite(again, ds, enforce_file_format=True)
        assert again.read_bytes() == (folder / f"IM{7 - k:05d}.dcm").read_bytes()


def test_generated_dicom_geometry_tags_and_phi(cohort: Path) -> None:
    for h in (1, 2):
        cdir = cohort / CONFIG.cohort_id(h)
        prof = scanner_profile(h)
        manifest = pd.read_csv(cdir / "manifest.csv")
        clinical = pd.read_csv(cdir / "clinical.csv").set_index("source_patient_id")
        row = manifest.iloc[0]
        img = _read_image(cdir / row.image)
        assert np.allclose(img.GetSpacing(), (prof.pixel_spacing, prof.pixel_spacing, prof.slice_spacing))
        arr = sitk.GetArrayFromImage(img)
        assert abs(float(np.median(arr[:, :3, :3])) - (-1000 + prof.hu_offset)) < 30  # air corner
        files = sorted((cdir / row.image).glob("*.dcm"))
        ds = pydicom.dcmread(files[0])
        assert ds.ImagePositionPatient[2] == max(
            float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files)
        lowest = pydicom.dcmread(files[-1], stop_before_pixels=True)
        assert np.allclose(img.GetOrigin(), [float(v) for v in lowest.ImagePositionPatient])
        assert ds.Manufacturer == prof.manufacturer and float(ds.KVP) == prof.kvp
        assert ds.ConvolutionKernel == prof.kernel and float(ds.SliceThickness) == prof.slice_thickness
        assert ds.SeriesDescription == prof.series_descriptions[row.phase]
        assert ds.AcquisitionDate == row.acquisition_time[:10].replace("-", "")
        phi = clinical.loc[row.source_patient_id]
        assert str(ds.PatientName).replace("^", " ") == phi.patient_name
        assert ds.PatientBirthDate == phi.birth_date.replace("-", "")
        assert ds.PatientAddress == phi.address and ds.OtherPatientIDs == str(phi.mrn)
        assert ds.InstitutionName and ds.AccessionNumber and ds.ReferringPhysicianName
        assert ds.FrameOfReferenceUID and ds.StudyInstanceUID.startswith("1.2.826.0.1.3680043.8.498.")


def test_nifti_nrrd_round_trip(tmp_path: Path) -> None:
    grid = ph.Grid((5, 9, 11), (0.859375, 0.859375, 5.0), (-40.1, -33.2, -300.0))
    arr = np.random.default_rng(2).integers(-1024, 2000, size=grid.shape).astype(np.int16)
    labels = (arr > 1500).astype(np.uint8) * 2
    for name, a in (("img.nii.gz", arr), ("img.nrrd", arr), ("m.nrrd", labels), ("m.nii.gz", labels)):
        write_volume(tmp_path / name, a, grid)
        back = sitk.ReadImage(str(tmp_path / name))
        assert np.array_equal(sitk.GetArrayFromImage(back), a)
        assert np.allclose(back.GetSpacing(), grid.spacing) and np.allclose(back.GetOrigin(), grid.origin,
                                                                           atol=1e-4)


def test_masks_on_image_grid_with_lesion_labels(cohort: Path) -> None:
    for h in (2, 3):
        cdir = cohort / CONFIG.cohort_id(h)
        for _, row in pd.read_csv(cdir / "manifest.csv").head(4).iterrows():
            img = _read_image(cdir / row.image)
            m = sitk.ReadImage(str(cdir / _masks(row.masks)["gtv"]))
            assert m.GetSize() == img.GetSize()
            assert np.allclose(m.GetOrigin(), img.GetOrigin(), atol=1e-3)
            assert np.allclose(m.GetSpacing(), img.GetSpacing())
            labels = np.unique(sitk.GetArrayFromImage(m))
            assert labels[0] == 0 and list(labels[1:]) == list(range(1, len(labels)))
            assert 1 <= len(labels) - 1 <= 3


def test_rtstruct_rasterises_back_to_the_mask(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    grid = ph.Grid((24, 96, 96), (0.703125, 0.703125, 1.25), (-33.4, -33.4, -215.0))
    anat = ph.draw_anatomy(rng, 0.28, -200.0)
    tissue = ph.tissue_map(anat, grid)
    shapes = [ph.draw_lesion_shape(rng, np.array(c), r, 0.15)
              for c, r in (((-10.0, -5.0, -200.0), 7.0), ((12.0, 8.0, -204.0), 4.0))]
    labels, _ = ph.render_lesions(rng, grid, tissue, shapes, 1.5)
    hu = np.where(labels > 0, 100, -100).astype(np.int16)
    uids = write_ct_series(tmp_path / "ct", hu, grid, _study(), _series(False))
    write_rtstruct(tmp_path / "rt.dcm", labels, grid, _study(), _series(False, "rt"),
                   uid("t", "ct"), uids, roi_prefix="GTV", structure_set_label="gtv")
    ds = pydicom.dcmread(tmp_path / "rt.dcm")
    assert ds.Modality == "RTSTRUCT"
    assert [r.ROINumber for r in ds.StructureSetROISequence] == [1, 2]
    ref = ds.ReferencedFrameOfReferenceSequence[0]
    assert ref.FrameOfReferenceUID == _study().frame_uid
    series_ref = ref.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series_ref.SeriesInstanceUID == uid("t", "ct")
    assert {c.ReferencedSOPInstanceUID for c in series_ref.ContourImageSequence} == set(uids)
    back = rasterise(tmp_path / "rt.dcm", tmp_path / "ct")
    for k in (1, 2):
        assert dice(back == k, labels == k) > 0.95


def test_generated_rtstruct_matches_its_series_and_readers_differ(cohort: Path) -> None:
    cdir = cohort / "hospital1"
    manifest = pd.read_csv(cdir / "manifest.csv")
    for _, row in manifest.head(3).iterrows():
        masks = _masks(row.masks)
        gtv = rasterise(cdir / masks["gtv"], cdir / row.image)
        r2 = rasterise(cdir / masks["gtv_r2"], cdir / row.image)
        ct = pydicom.dcmread(next((cdir / row.image).glob("*.dcm")), stop_before_pixels=True)
        rt = pydicom.dcmread(cdir / masks["gtv"])
        assert rt.FrameOfReferenceUID == ct.FrameOfReferenceUID
        assert rt.StudyInstanceUID == ct.StudyInstanceUID
        assert gtv.max() >= 1 and not np.array_equal(gtv, r2)
        assert 0.6 < dice(gtv > 0, r2 > 0) < 0.995


def test_longitudinal_visits(cohort: Path) -> None:
    manifest = pd.read_csv(cohort / "hospital1" / "manifest.csv")
    truth = pd.read_csv(cohort / "_truth" / "hospital1.csv").set_index("source_patient_id")
    outcomes = pd.read_csv(cohort / "hospital1" / "outcomes.csv").set_index("source_patient_id")
    for pid, g in manifest.groupby("source_patient_id"):
        visits = {Path(p).name.split("_")[0] for p in g.image}
        assert len(visits) == truth.loc[pid, "visits"]
        if truth.loc[pid, "visits"] == 2:
            times = sorted(dt.datetime.fromisoformat(t) for t in g.acquisition_time)
            gap = (times[-1] - times[0]).days
            assert 81 <= gap <= 87
        else:
            assert outcomes.loc[pid, "rfs_months"] * 52 / 12 <= 12
    assert (truth.visits == 2).any()


def test_planted_signal_oracle(cohort: Path) -> None:
    summary = json.loads((cohort / "_truth" / "summary.json").read_text())
    assert summary["overall"]["oracle_c_index_os"] > 0.75
    frames = []
    for h in range(1, 4):
        cid = CONFIG.cohort_id(h)
        frames.append(pd.read_csv(cohort / cid / "outcomes.csv").merge(
            pd.read_csv(cohort / "_truth" / f"{cid}.csv"), on="source_patient_id"))
    df = pd.concat(frames)
    c = model.oracle_c_index(df.os_months.to_numpy(), df.os_event.to_numpy(), df.linear_predictor.to_numpy())
    assert c == pytest.approx(summary["overall"]["oracle_c_index_os"], abs=1e-6)
    # a risk score without the signal is not concordant
    noise = np.random.default_rng(0).standard_normal(len(df))
    assert model.oracle_c_index(df.os_months.to_numpy(), df.os_event.to_numpy(), noise) < 0.7


def test_planted_signal_population() -> None:
    """The true model, drawn for 900 patients without images: oracle C > 0.75, AUC > 0.7, and each
    covariate's Cox sign matches its planted effect."""
    pts = [model.draw_patient(np.random.default_rng([7, h, i, 0]), h, i, scanner_profile(h))
           for h in (1, 2, 3) for i in range(300)]
    t = np.array([p.os_months for p in pts])
    e = np.array([p.os_event for p in pts])
    eta = np.array([p.eta for p in pts])
    assert model.oracle_c_index(t, e, eta) > 0.75
    assert model.oracle_auc(np.array([p.response for p in pts]),
                            np.array([p.response_probability for p in pts])) > 0.7
    assert 0.3 < e.mean() < 0.8
    z_het = np.array([p.z_het for p in pts])
    assert model.oracle_c_index(t, e, z_het) > 0.6


def test_image_drivers_are_recoverable(cohort: Path) -> None:
    """Lesion-1 HU SD tracks the latent heterogeneity; measured diameter tracks the latent size."""
    sds, z_het, diam, z_size = [], [], [], []
    for h in range(1, 4):
        cdir = cohort / CONFIG.cohort_id(h)
        truth = pd.read_csv(cohort / "_truth" / f"{CONFIG.cohort_id(h)}.csv").set_index("source_patient_id")
        clinical = pd.read_csv(cdir / "clinical.csv").set_index("source_patient_id")
        manifest = pd.read_csv(cdir / "manifest.csv")
        base = manifest[manifest.image.str.contains("v0_venous")]
        for _, row in base.iterrows():
            img = sitk.GetArrayFromImage(_read_image(cdir / row.image))
            m = _read_mask(cdir / _masks(row.masks)["gtv"], cdir / row.image)
            sds.append(float(img[m == 1].std()) - scanner_profile(h).noise_hu)
            z_het.append(truth.loc[row.source_patient_id, "z_heterogeneity"])
            diam.append(clinical.loc[row.source_patient_id, "longest_diameter_mm"])
            z_size.append(truth.loc[row.source_patient_id, "z_size"])
    assert spearmanr(sds, z_het)[0] > 0.5
    assert spearmanr(diam, z_size)[0] > 0.8


def test_deterministic_per_seed(tmp_path: Path) -> None:
    cfg = SynthConfig(hospitals=3, patients_per_hospital=2, seed=3, phases=("arterial", "venous"))
    generate(tmp_path / "a", cfg, progress=False)
    generate(tmp_path / "b", cfg, progress=False)
    generate(tmp_path / "c", cfg.model_copy(update={"seed": 4}), progress=False)
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b")
    assert _tree_hash(tmp_path / "a") != _tree_hash(tmp_path / "c")
    with pytest.raises(FileExistsError):
        generate(tmp_path / "a", cfg, progress=False)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="phases"):
        SynthConfig(phases=("venous", "venous"))
    with pytest.raises(ValueError, match="visits"):
        SynthConfig(visits=9)
    with pytest.raises(ValueError, match="size"):
        SynthConfig(size="huge")  # type: ignore[arg-type]


def test_longest_diameter_of_a_disc() -> None:
    yy, xx = np.mgrid[:41, :41]
    disc = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 15**2)[None]
    d = ph.longest_axial_diameter_mm(disc, (0.5, 0.5, 2.0))
    assert 15.0 <= d <= 16.5


def test_cli_smoke(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    runner = CliRunner()
    out = tmp_path / "cohort"
    res = runner.invoke(app, ["synth", str(out), "--hospitals", "1", "--patients", "2", "--seed", "1",
                              "--phases", "arterial,venous"])
    assert res.exit_code == 0, res.output
    assert "oracle" in res.output
    manifest = pd.read_csv(out / "hospital1" / "manifest.csv")
    assert set(manifest.phase) == {"arterial", "venous"}
    again = runner.invoke(app, ["synth", str(out), "--hospitals", "1", "--patients", "2"])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(app, ["synth", str(tmp_path / "x"), "--phases", "late"])
    assert bad.exit_code == 2 and "phases" in bad.output
