"""Small synthetic stores written exactly per the catalog and feature-table contracts.

Used by the store tests and ``benchmarks/store.py`` (no real images needed): every table goes
through :func:`radstore.io.tables.write_table`, so timestamps are µs UTC as in production.
Feature values are random, except that each radiomic row's first feature encodes the visit week
(``visit_week``) so point-in-time tests can see which scan was picked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from radstore.config import StoreLayout
from radstore.ids import canonical_json, scan_id, settings_version
from radstore.io.tables import TIMESTAMP_TYPE, write_table

DEFAULT_RADIOMICS = (
    "original_firstorder_Mean",
    "original_firstorder_Entropy",
    "original_shape_Sphericity",
    "original_glcm_Contrast",
    "original_glrlm_RunEntropy",
)
CLINICAL_COLUMNS = ("age", "sex", "tumour_site", "grade", "ki67", "m_stage", "longest_diameter_mm",
                    "cea", "ca199")
EXTRACTED_AT = datetime(2025, 1, 15, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class SyntheticStore:
    """What :func:`write_synthetic_store` wrote: the root, the feature set versions and the
    patients per cohort (sorted)."""

    root: Path
    versions: dict[str, str]
    patients: dict[str, list[str]]
    index_dates: dict[str, datetime] = field(repr=False)


def _settings_for(name: str, kind: str, extra: dict) -> dict:
    return {"name": name, "kind": kind, "segmentation_id": "gtv", **extra}


def write_synthetic_store(
    root: Path | str,
    *,
    cohorts: dict[str, int] | None = None,
    radiomics: tuple[str, ...] = DEFAULT_RADIOMICS,
    deep_dim: int = 8,
    phases: tuple[str, ...] = ("arterial", "venous"),
    visit_weeks: tuple[int, ...] = (0,),
    lesions: int = 2,
    radiomics_set: str = "radiomics_original",
    deep_set: str = "deep_resnet50",
    seed: int = 0,
) -> SyntheticStore:
    """Write catalog (scans, clinical, outcomes, rejections) and two feature sets.

    Each patient has one scan per phase per visit; visit ``w`` is acquired ``w`` weeks (plus a
    few hours) after the index date, baseline visits (``w = 0``) a few days before it. Feature
    tables hold rows for lesions ``1..lesions`` and the scan aggregate ``lesion = 0``.
    """
    root = Path(root)
    layout = StoreLayout(root)
    rng = np.random.default_rng(seed)
    cohorts = cohorts or {"h1": 24, "h2": 16, "h3": 12}
    versions = {
        radiomics_set: settings_version(_settings_for(radiomics_set, "radiomics", {"bin_width": 25})),
        deep_set: settings_version(_settings_for(deep_set, "deep", {"dim": deep_dim})),
    }
    patients: dict[str, list[str]] = {}
    index_dates: dict[str, datetime] = {}
    for ci, (cohort, n) in enumerate(sorted(cohorts.items())):
        pids = [f"P{ci:02d}{i:013x}" for i in range(n)]
        patients[cohort] = pids
        days = rng.integers(0, 5 * 365, size=n)
        idx = [datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=int(d)) for d in days]
        index_dates.update(zip(pids, idx, strict=True))
        _write_catalog(layout, cohort, pids, idx, rng)
        scans = _scan_rows(cohort, pids, idx, phases, visit_weeks, rng)
        write_table([{k: v for k, v in s.items() if k != "visit_week"} for s in scans],
                    layout.catalog_table("scans", cohort))
        for phase in phases:
            rows = [s for s in scans if s["phase"] == phase]
            _write_features(layout, cohort, phase, rows, radiomics, deep_dim, lesions, versions,
                            radiomics_set, deep_set, rng)
    for name, kind, extra in ((radiomics_set, "radiomics", {"bin_width": 25}),
                              (deep_set, "deep", {"dim": deep_dim})):
        p = layout.features / name / versions[name] / "_settings.json"
        p.write_text(canonical_json(_settings_for(name, kind, extra)))
    return SyntheticStore(root, versions, patients, index_dates)


def _write_catalog(layout: StoreLayout, cohort: str, pids: list[str], idx: list[datetime],
                   rng: np.random.Generator) -> None:
    n = len(pids)
    ts = pa.array(idx, TIMESTAMP_TYPE)
    clinical = pa.table({
        "cohort_id": [cohort] * n, "patient_id": pids, "event_timestamp": ts,
        "age": rng.integers(30, 85, n).astype(np.int64),
        "sex": rng.choice(["M", "F"], n).tolist(),
        "tumour_site": rng.choice(["stomach", "pancreas", "colon"], n).tolist(),
        "grade": rng.choice(["G1", "G2", "G3"], n).tolist(),
        "ki67": rng.uniform(0, 60, n), "m_stage": rng.integers(0, 2, n).astype(np.int64),
        "longest_diameter_mm": rng.uniform(5, 80, n), "cea": rng.lognormal(1, 1, n),
        "ca199": rng.lognormal(2, 1, n),
    })
    write_table(clinical, layout.catalog_table("clinical", cohort))
    os_months = rng.uniform(1, 60, n)
    outcomes = pa.table({
        "cohort_id": [cohort] * n, "patient_id": pids, "event_timestamp": ts,
        "os_months": os_months, "os_event": rng.integers(0, 2, n).astype(np.int64),
        "rfs_months": os_months * rng.uniform(0.3, 1.0, n),
        "rfs_event": rng.integers(0, 2, n).astype(np.int64),
        "response": rng.integers(0, 2, n).astype(np.int64),
    })
    write_table(outcomes, layout.catalog_table("outcomes", cohort))
    write_table(pa.table({
        "cohort_id": [cohort], "input": ["images/broken.nii.gz"], "rule": ["unreadable_image"],
        "message": ["images/broken.nii.gz: not a NIfTI file"],
        "created_timestamp": pa.array([EXTRACTED_AT], TIMESTAMP_TYPE),
    }), layout.catalog_table("rejections", cohort))


def _scan_rows(cohort: str, pids: list[str], idx: list[datetime], phases: tuple[str, ...],
               visit_weeks: tuple[int, ...], rng: np.random.Generator) -> list[dict]:
    rows = []
    for pid, t0 in zip(pids, idx, strict=True):
        for w in visit_weeks:
            base = t0 + timedelta(weeks=w) if w else t0 - timedelta(days=int(rng.integers(1, 20)))
            for k, phase in enumerate(phases):
                t = base + timedelta(hours=10, minutes=k)
                sid = scan_id(pid, f"images/{pid}/{phase}.nii.gz@{t.isoformat()}")
                rows.append({
                    "cohort_id": cohort, "patient_id": pid, "scan_id": sid,
                    "phase": phase, "event_timestamp": t, "visit_week": w,
                    "zarr_path": f"{cohort}/{pid}/{sid}",
                    "shape_z": 40, "shape_y": 128, "shape_x": 128, "spacing_x": 0.8, "spacing_y": 0.8,
                    "spacing_z": 2.5, "slice_thickness": 2.5, "manufacturer": "SIEMENS", "kvp": 120.0,
                    "segmentation_ids": ["gtv"], "lesions": [1, 2], "source_hash": f"{pid}{w}{k}",
                    "status": "ok", "created_timestamp": EXTRACTED_AT,
                })
    return rows


def _write_features(layout: StoreLayout, cohort: str, phase: str, scans: list[dict],
                    radiomics: tuple[str, ...], deep_dim: int, lesions: int,
                    versions: dict[str, str], radiomics_set: str, deep_set: str,
                    rng: np.random.Generator) -> None:
    n_rows = len(scans) * (lesions + 1)
    keys = {
        "patient_id": [s["patient_id"] for s in scans for _ in range(lesions + 1)],
        "scan_id": [s["scan_id"] for s in scans for _ in range(lesions + 1)],
        "lesion": pa.array([le for _ in scans for le in range(lesions + 1)], pa.int32()),
        "event_timestamp": pa.array([s["event_timestamp"] for s in scans for _ in range(lesions + 1)],
                                    TIMESTAMP_TYPE),
        "created_timestamp": pa.array([EXTRACTED_AT] * n_rows, TIMESTAMP_TYPE),
    }
    weeks = np.array([s["visit_week"] for s in scans for _ in range(lesions + 1)], dtype=np.float64)
    rad = {name: rng.normal(size=n_rows) for name in radiomics}
    rad[radiomics[0]] = weeks + rng.uniform(0, 0.5, n_rows)
    write_table(pa.table({**keys, **rad}),
                layout.feature_dir(radiomics_set, versions[radiomics_set], phase, cohort)
                / "part-0.parquet")
    emb = rng.normal(size=(n_rows, deep_dim)).astype(np.float32)
    emb_arr = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), deep_dim)
    write_table(pa.table({**keys, "embedding": emb_arr}),
                layout.feature_dir(deep_set, versions[deep_set], phase, cohort) / "part-0.parquet")
