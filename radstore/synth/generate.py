"""Orchestration: draw every patient, render their scans, write the cohort folders and the truth.

Output (``out_dir``)::

    <cohort_id>/manifest.csv, clinical.csv, outcomes.csv, cohort.yaml   ("Cohort input" contract)
    <cohort_id>/images/<pid>/v<k>_<phase>/IM*.dcm | v<k>_<phase>.nii.gz | .nrrd
    <cohort_id>/masks/<pid>/v<k>_<phase>_<segmentation>.dcm (RTSTRUCT) | .nii.gz | .nrrd
    _truth/<cohort_id>.csv      per patient: true linear predictor, texture and size drivers
    _truth/summary.json         oracle C-index (OS, RFS) and response AUC per hospital and overall

Random streams are ``numpy.random.default_rng([seed, hospital, patient, stream])``, so a patient's
data do not depend on how many other patients are generated.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from radstore.progress import track
from radstore.synth import cohort as model
from radstore.synth import phantom as ph
from radstore.synth.config import FOLLOW_UP_WEEKS, ScannerProfile, SynthConfig, scanner_profile
from radstore.synth.writers import SeriesTags, StudyTags, uid, write_ct_series, write_rtstruct, write_volume

MANIFEST_COLUMNS = ("source_patient_id", "phase", "acquisition_time", "image", "masks")
CLINICAL_COLUMNS = ("source_patient_id", "index_date", "age", "sex", "tumour_site", "grade", "ki67",
                    "m_stage", "longest_diameter_mm", "cea", "ca199", "patient_name", "birth_date",
                    "address", "mrn")
OUTCOME_COLUMNS = ("source_patient_id", "os_months", "os_event", "rfs_months", "rfs_event", "response")
TRUTH_DIR = "_truth"

ANATOMY_SCALE = {"small": 0.28, "full": 1.0}
LESION_BASE_MM = {"small": 5.5, "full": 13.0}
PHASE_OFFSET_S = {"non_contrast": 0, "arterial": 150, "venous": 185, "portal": 190, "delayed": 420}
CONTRAST_AGENT = "Iohexol 350"
MONTH_WEEKS = 52.0 / 12.0


@dataclass(frozen=True)
class CohortSummary:
    cohort_id: str
    path: Path
    storage: str
    manufacturer: str
    pixel_spacing: float
    slice_spacing: float
    patients: int
    scans: int
    os_events: int
    oracle_c_os: float | None
    oracle_auc_response: float | None


@dataclass(frozen=True)
class SynthResult:
    out_dir: Path
    truth_dir: Path
    cohorts: tuple[CohortSummary, ...]
    summary: dict


def grid_shape(profile: ScannerProfile, size: str) -> tuple[int, int, int]:
    """``(nz, ny, nx)``: 'small' ~100 mm in-plane FOV (multiple of 8) and 20–48 slices;
    'full' 512×512 with 100–300 slices (~320 mm)."""
    if size == "small":
        n = int(math.ceil(100.0 / profile.pixel_spacing / 8.0) * 8)
        nz = int(np.clip(round(60.0 / profile.slice_spacing), 20, 48))
    else:
        n = 512
        nz = int(np.clip(round(320.0 / profile.slice_spacing), 100, 300))
    return nz, n, n


def _place_lesions(rng: np.random.Generator, anat: ph.Anatomy, grid: ph.Grid, truth: model.PatientTruth,
                   size: str) -> list[ph.LesionShape]:
    """Index lesion first (radius from ``z_size``), smaller satellites after; centres at slice
    centres inside the liver, away from the scan's z ends, not overlapping."""
    base = LESION_BASE_MM[size]
    dz = grid.spacing[2]
    r1 = max(model.index_lesion_radius(truth.z_size, base), 0.6 * dz)
    satellites = (max(r1 * float(rng.uniform(0.4, 0.8)), 0.45 * base, 0.6 * dz)
                  for _ in range(truth.n_lesions - 1))
    radii = [r1, *sorted(satellites, reverse=True)]
    irregularity = float(rng.uniform(0.04, 0.18))
    c, a = anat.liver_ellipsoid_mm()
    z_axis = grid.axes()[0]
    shapes: list[ph.LesionShape] = []
    for r in radii:
        for _ in range(200):
            shape = ph.draw_lesion_shape(rng, np.zeros(3), r, irregularity)
            ext = shape.extent_mm
            ok_z = z_axis[(z_axis > z_axis[0] + ext + dz) & (z_axis < z_axis[-1] - ext - dz)]
            if ok_z.size == 0:
                ok_z = z_axis[len(z_axis) // 2: len(z_axis) // 2 + 1]
            z = float(ok_z[int(rng.integers(ok_z.size))])
            s = math.sqrt(max(1.0 - ((z - c[2]) / a[2]) ** 2, 0.05))
            rad, ang = 0.7 * math.sqrt(float(rng.random())), float(rng.uniform(0, 2 * math.pi))
            center = np.array([c[0] + a[0] * s * rad * math.cos(ang),
                               c[1] + a[1] * s * rad * math.sin(ang), z])
            if all(np.linalg.norm(center - np.array(o.center)) > 1.1 * (ext + o.extent_mm) + 1.0
                   for o in shapes):
                shapes.append(replace(shape, center=ph.vec3(center)))
                break
    return shapes


@dataclass(frozen=True)
class _Rendered:
    """What rendering one patient produced (manifest rows and measured/realised drivers)."""

    rows: list[dict]
    longest_diameter_mm: float
    visits: int
    index_radius_mm: float
    n_lesions: int


def _render_patient(cfg: SynthConfig, profile: ScannerProfile, truth: model.PatientTruth,
                    cohort_dir: Path, hospital: int) -> _Rendered:
    """Render and write every visit and phase of one patient."""
    rng = np.random.default_rng([cfg.seed, hospital, truth.index, 1])
    scale = ANATOMY_SCALE[cfg.size]
    nz, ny, nx = grid_shape(profile, cfg.size)
    px, dz = profile.pixel_spacing, profile.slice_spacing
    center_z = round(float(rng.uniform(-320.0, -120.0)), 1)
    anat = ph.draw_anatomy(rng, scale, center_z)
    x0 = round(-(nx - 1) / 2 * px + float(rng.uniform(-2, 2)) * scale, 2)
    y0 = round(-(ny - 1) / 2 * px + float(rng.uniform(-2, 2)) * scale, 2)
    z0 = round(center_z - (nz - 1) / 2 * dz, 2)
    base_grid = ph.Grid((nz, ny, nx), (px, px, dz), (x0, y0, z0))
    shapes = _place_lesions(rng, anat, base_grid, truth, cfg.size)
    phases = list(cfg.phases)
    if len(phases) > 2 and rng.random() < 0.3:
        phases = phases[1:]
    nc, art, ven = float(rng.normal(38, 5)), float(rng.uniform(20, 85)), float(rng.uniform(15, 50))
    appearance = ph.LesionAppearance(
        base_hu=(nc, nc + art, nc + ven, nc + 0.7 * ven),
        amplitude_hu=truth.amplitude_hu, texture_scale_mm=truth.texture_scale_mm,
        necrosis_frac=truth.necrosis_frac)
    start = dt.datetime.combine(truth.index_date, dt.time(8, 0)) + dt.timedelta(
        minutes=int(rng.integers(0, 540)))
    pid = truth.source_patient_id
    cid = cfg.cohort_id(hospital)
    rows: list[dict] = []
    diameter = float("nan")
    weeks = (0, *FOLLOW_UP_WEEKS)[: cfg.visits]
    written = 0
    for v, week in enumerate(weeks):
        if week > 0 and week / MONTH_WEEKS >= truth.rfs_months:
            break
        vrng = np.random.default_rng([cfg.seed, hospital, truth.index, 2, v])
        shift = (0.0, 0.0) if v == 0 else tuple(round(float(vrng.uniform(-2, 2)) * scale, 2) for _ in "xy")
        grid = ph.Grid(base_grid.shape, base_grid.spacing, (x0 + shift[0], y0 + shift[1], z0))
        factor = model.growth_factor(truth.growth_per_year, week)
        visit_shapes = [s.scaled(factor) for s in shapes]
        tissue = ph.tissue_map(anat, grid)
        labels, lesions = ph.render_lesions(vrng, grid, tissue, visit_shapes, truth.texture_scale_mm)
        if v == 0:
            diameter = round(ph.longest_axial_diameter_mm(labels == 1, grid.spacing), 1)
        seg_maps = {"gtv": labels}
        if cfg.second_reader:
            seg_maps["gtv_r2"] = ph.second_reader(labels, vrng)
        parenchyma = ph.correlated_noise(
            vrng, grid.shape, tuple(3.0 * scale / s for s in grid.spacing_zyx)) * np.float32(4.0)
        when = start + dt.timedelta(days=7 * week + (int(vrng.integers(-3, 4)) if week else 0))
        study = StudyTags(
            patient_name=truth.patient_name, patient_id=pid, birth_date=truth.birth_date,
            sex=truth.sex, age=truth.age + week // 52, address=truth.address,
            other_patient_ids=truth.mrn, accession_number=f"A{int(vrng.integers(10**8, 10**9))}",
            institution=profile.institution,
            referring_physician=f"{model.LAST_NAMES[int(vrng.integers(len(model.LAST_NAMES)))]}^Dr",
            study_uid=uid(cfg.seed, cid, pid, v, "study"), frame_uid=uid(cfg.seed, cid, pid, v, "frame"),
            study_datetime=when, study_id=str(v + 1))
        for j, phase in enumerate(phases):
            noise = ph.kernel_noise(vrng, grid.shape, profile.kernel_blur_px)
            hu = ph.render_phase(tissue, lesions, grid, phase, anat, appearance, parenchyma, noise,
                                 profile.noise_hu, profile.hu_offset)
            acq = when + dt.timedelta(seconds=PHASE_OFFSET_S[phase])
            stem = f"v{v}_{phase}"
            image_rel, mask_rels = _write_scan(cfg, profile, cohort_dir, pid, truth.index, stem, hu,
                                               seg_maps, grid, study, acq, phase, j, cid, v)
            rows.append({"source_patient_id": pid, "phase": phase,
                         "acquisition_time": acq.isoformat(timespec="seconds"), "image": image_rel,
                         "masks": ";".join(f"{k}={p}" for k, p in mask_rels.items())})
        written += 1
    return _Rendered(rows=rows, longest_diameter_mm=diameter, visits=written,
                     index_radius_mm=shapes[0].radius, n_lesions=len(shapes))


def _write_scan(cfg: SynthConfig, profile: ScannerProfile, cohort_dir: Path, pid: str, index: int,
                stem: str, hu: np.ndarray, seg_maps: dict[str, np.ndarray], grid: ph.Grid,
                study: StudyTags, acq: dt.datetime, phase: str, j: int, cid: str,
                visit: int) -> tuple[str, dict[str, str]]:
    """Write one scan and its masks in the hospital's storage format; returns relative paths."""
    img_dir = Path("images") / pid
    mask_dir = Path("masks") / pid
    masks: dict[str, str] = {}
    if profile.storage in ("dicom_rtstruct", "dicom_nifti"):
        series = SeriesTags(
            series_uid=uid(cfg.seed, cid, pid, visit, phase, "series"), series_number=j + 2,
            description=profile.series_descriptions[phase], acquisition_datetime=acq,
            manufacturer=profile.manufacturer, model=profile.model, kvp=profile.kvp,
            kernel=profile.kernel, slice_thickness=profile.slice_thickness,
            signed_pixels=profile.signed_pixels,
            contrast_agent=None if phase == "non_contrast" else CONTRAST_AGENT,
            uid_entropy=(str(cfg.seed), cid, pid, str(visit), phase))
        image_rel = img_dir / stem
        sop_uids = write_ct_series(cohort_dir / image_rel, hu, grid, study, series)
        for n, (seg, labels) in enumerate(seg_maps.items()):
            if profile.storage == "dicom_rtstruct":
                rel = mask_dir / f"{stem}_{seg}.dcm"
                rt_series = SeriesTags(**{
                    **asdict(series), "series_uid": uid(cfg.seed, cid, pid, visit, phase, seg, "rt"),
                    "series_number": 100 + 10 * j + n, "description": f"RTSTRUCT {seg}",
                    "uid_entropy": (*series.uid_entropy, seg)})
                write_rtstruct(cohort_dir / rel, labels, grid, study, rt_series, series.series_uid,
                               sop_uids, roi_prefix="GTV" if seg == "gtv" else f"GTV_{seg.upper()}",
                               structure_set_label=seg)
            else:
                rel = mask_dir / f"{stem}_{seg}.nii.gz"
                write_volume(cohort_dir / rel, labels, grid)
            masks[seg] = rel.as_posix()
    else:
        image_ext, mask_ext = (".nii.gz", ".nrrd") if index % 2 == 0 else (".nrrd", ".nii.gz")
        image_rel = img_dir / f"{stem}{image_ext}"
        write_volume(cohort_dir / image_rel, hu, grid)
        for seg, labels in seg_maps.items():
            rel = mask_dir / f"{stem}_{seg}{mask_ext}"
            write_volume(cohort_dir / rel, labels, grid)
            masks[seg] = rel.as_posix()
    return image_rel.as_posix(), masks


def _prepare_out_dir(out_dir: Path, cfg: SynthConfig, overwrite: bool) -> None:
    targets = [out_dir / cfg.cohort_id(h) for h in range(1, cfg.hospitals + 1)] + [out_dir / TRUTH_DIR]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} already exists (pass overwrite=True / --overwrite to "
                              "replace the synthetic cohort)")
    for t in existing:
        shutil.rmtree(t)
    out_dir.mkdir(parents=True, exist_ok=True)


def _rounded(v: float | None, nd: int = 6) -> float | None:
    return None if v is None else round(float(v), nd)


def generate(out_dir: Path, config: SynthConfig | None = None, *, overwrite: bool = False,
             progress: bool = True) -> SynthResult:
    """Write a synthetic multi-hospital CT cohort under ``out_dir`` (see the module docstring).

    Deterministic: the same ``config`` gives byte-identical files. Raises ``FileExistsError`` when
    a cohort folder exists and ``overwrite`` is False (then only the folders it writes are replaced).
    """
    import pandas as pd
    import yaml

    cfg = config or SynthConfig()
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, cfg, overwrite)
    truth_dir = out_dir / TRUTH_DIR
    truth_dir.mkdir()
    profiles = {h: scanner_profile(h) for h in range(1, cfg.hospitals + 1)}
    patients = {h: [model.draw_patient(np.random.default_rng([cfg.seed, h, i, 0]), h, i, profiles[h])
                    for i in range(cfg.patients_per_hospital)] for h in profiles}
    work = [(h, p) for h in profiles for p in patients[h]]
    rendered: dict[tuple[int, int], _Rendered] = {}
    for h, p in track(work, "synth: rendering patients", total=len(work), enabled=progress):
        rendered[(h, p.index)] = _render_patient(cfg, profiles[h], p, out_dir / cfg.cohort_id(h), h)

    summaries: list[CohortSummary] = []
    stats: dict[str, dict] = {}
    all_p = [p for h in profiles for p in patients[h]]
    for h, prof in profiles.items():
        cid = cfg.cohort_id(h)
        cdir = out_dir / cid
        pts = patients[h]
        manifest = [row for p in pts for row in rendered[(h, p.index)].rows]
        pd.DataFrame(manifest, columns=list(MANIFEST_COLUMNS)).to_csv(
            cdir / "manifest.csv", index=False, lineterminator="\n")
        clinical = [{
            "source_patient_id": p.source_patient_id, "index_date": p.index_date.isoformat(),
            "age": p.age, "sex": p.sex, "tumour_site": p.tumour_site, "grade": f"G{p.grade}",
            "ki67": p.ki67, "m_stage": p.m_stage, "longest_diameter_mm": (
                rendered[(h, p.index)].longest_diameter_mm),
            "cea": p.cea, "ca199": p.ca199, "patient_name": p.patient_name.replace("^", " "),
            "birth_date": p.birth_date.isoformat(), "address": p.address, "mrn": p.mrn} for p in pts]
        pd.DataFrame(clinical, columns=list(CLINICAL_COLUMNS)).to_csv(
            cdir / "clinical.csv", index=False, lineterminator="\n")
        outcomes = [{"source_patient_id": p.source_patient_id, "os_months": p.os_months,
                     "os_event": p.os_event, "rfs_months": p.rfs_months, "rfs_event": p.rfs_event,
                     "response": p.response} for p in pts]
        pd.DataFrame(outcomes, columns=list(OUTCOME_COLUMNS)).to_csv(
            cdir / "outcomes.csv", index=False, lineterminator="\n")
        with open(cdir / "cohort.yaml", "w") as fh:
            yaml.safe_dump({"cohort_id": cid, "hospital": f"Hospital {h} (synthetic)",
                            "scanner": prof.scanner_tags()}, fh, sort_keys=False)
        truth_rows = [{
            "source_patient_id": p.source_patient_id, "cohort_id": cid,
            "linear_predictor": round(p.eta, 6), "z_heterogeneity": round(p.z_het, 6),
            "z_size": round(p.z_size, 6), "texture_amplitude_hu": round(p.amplitude_hu, 4),
            "texture_scale_mm": round(p.texture_scale_mm, 4),
            "necrosis_fraction": round(p.necrosis_frac, 4),
            "index_lesion_radius_mm": round(rendered[(h, p.index)].index_radius_mm, 4),
            "n_lesions": rendered[(h, p.index)].n_lesions,
            "growth_per_year": round(p.growth_per_year, 6),
            "response_probability": round(p.response_probability, 6),
            "visits": rendered[(h, p.index)].visits} for p in pts]
        pd.DataFrame(truth_rows).to_csv(truth_dir / f"{cid}.csv", index=False, lineterminator="\n")
        stats[cid] = _oracle(pts)
        summaries.append(CohortSummary(
            cohort_id=cid, path=cdir, storage=prof.storage, manufacturer=prof.manufacturer,
            pixel_spacing=prof.pixel_spacing, slice_spacing=prof.slice_spacing, patients=len(pts),
            scans=len(manifest), os_events=sum(p.os_event for p in pts),
            oracle_c_os=stats[cid]["oracle_c_index_os"],
            oracle_auc_response=stats[cid]["oracle_auc_response"]))
    summary = {
        "config": cfg.model_dump(mode="json"),
        "model": {"beta": model.BETA, "eta_center": model.ETA_CENTER,
                  "weibull_shape": model.WEIBULL_SHAPE, "scale_os_months": model.SCALE_OS_MONTHS,
                  "scale_prog_months": model.SCALE_PROG_MONTHS,
                  "response_coef": model.RESPONSE_COEF,
                  "amplitude_hu": f"{model.AMPLITUDE_BASE_HU} * exp({model.AMPLITUDE_SLOPE} z_het)",
                  "index_lesion_radius_mm": f"{LESION_BASE_MM[cfg.size]} * exp({model.SIZE_SLOPE} z_size)"},
        "cohorts": stats,
        "overall": _oracle(all_p),
    }
    (truth_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return SynthResult(out_dir=out_dir, truth_dir=truth_dir, cohorts=tuple(summaries), summary=summary)


def _oracle(pts: list[model.PatientTruth]) -> dict:
    eta = np.array([p.eta for p in pts])
    return {
        "patients": len(pts),
        "os_events": int(sum(p.os_event for p in pts)),
        "rfs_events": int(sum(p.rfs_event for p in pts)),
        "responders": int(sum(p.response for p in pts)),
        "oracle_c_index_os": _rounded(model.oracle_c_index(
            np.array([p.os_months for p in pts]), np.array([p.os_event for p in pts]), eta)),
        "oracle_c_index_rfs": _rounded(model.oracle_c_index(
            np.array([p.rfs_months for p in pts]), np.array([p.rfs_event for p in pts]), eta)),
        "oracle_auc_response": _rounded(model.oracle_auc(
            np.array([p.response for p in pts]), np.array([p.response_probability for p in pts]))),
    }
