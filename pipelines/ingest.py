"""Ingest stage: a hospital cohort (manifest + images + masks + clinical/outcome tables) →
validated, pseudonymised Zarr scans and catalog tables (contracts in docs/architecture.md).

Flow: parse the manifest and tables (pure checks: phase, times, duplicates, clinical coverage)
→ per scan, in parallel on Dask: hash the sources, skip when the catalog (or a committed Zarr group
from a crashed run) already holds the same hash, else read, validate, rasterise masks and write
the scan atomically → write the catalog tables only when their content changed → QC report.

Re-running an unchanged cohort writes nothing; a run killed at any point leaves only committed
scans (plus hidden temp dirs, removed on the next run), and the next run completes the cohort.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radstore import ids
from radstore.config import Settings
from radstore.deid import PHI_COLUMNS, Redactor
from radstore.io import zarr_store
from radstore.io.manifest import Manifest, ScanEntry, read_manifest, read_table
from radstore.io.manifest import phi_values as table_phi_values
from radstore.io.tables import read_table as read_parquet
from radstore.io.tables import write_table
from radstore.progress import track
from radstore.validation import (
    Issue,
    Rule,
    ValidationFailure,
    check_geometry,
    check_hu,
    check_label_map,
    check_phase,
    duplicate_keys,
)
from radstore.volume import Volume

log = logging.getLogger("radstore.ingest")

INGEST_VERSION = "1"
COHORT_ID = re.compile(r"^[a-z0-9_-]+$")
SCAN_COLUMNS: tuple[str, ...] = (
    "cohort_id", "patient_id", "scan_id", "phase", "event_timestamp", "zarr_path", "shape_z",
    "shape_y", "shape_x", "spacing_x", "spacing_y", "spacing_z", "slice_thickness", "manufacturer",
    "kvp", "segmentation_ids", "lesions", "source_hash", "status", "created_timestamp")


@dataclass(frozen=True)
class ScanTask:
    """Everything a worker needs for one scan (picklable; paths absolute)."""

    cohort_id: str
    patient_id: str
    scan_id: str
    entry: ScanEntry
    phase: str
    root: Path
    volumes: Path
    hu_range: tuple[float, float]
    known_hash: str | None


@dataclass
class IngestReport:
    """What one ingest run did; ``written`` counts scans (re)written, ``unchanged`` skipped ones;
    ``orphaned`` lists the cohort's Zarr scans (``cohort/patient/scan``) that are not in its scans
    catalog after the run (rows removed from the manifest, or rejected this time), ``pruned`` how
    many of them were deleted (``prune=True``)."""

    cohort_id: str
    scans_ok: int = 0
    written: int = 0
    unchanged: int = 0
    rejections: list[Issue] = field(default_factory=list)
    clinical_rows: int = 0
    outcome_rows: int = 0
    tables_written: list[str] = field(default_factory=list)
    stale_temps_removed: int = 0
    orphaned: list[str] = field(default_factory=list)
    pruned: int = 0
    report_path: Path | None = None

    @property
    def rejected(self) -> int:
        return len(self.rejections)


# ------------------------------------------------------------------------------------ per scan

def _is_dicom_dir(p: Path) -> bool:
    return p.is_dir()


def source_files(entry: ScanEntry, root: Path) -> list[Path]:
    """The files whose bytes define a scan: the image (the files of a DICOM folder that
    :func:`radstore.io.dicom.series_files` reads) + masks."""
    from radstore.io.dicom import series_files

    img = _image_ref(entry, root)[0]
    files = series_files(img) if img.is_dir() else [img]
    return files + [root / _mask_ref(ref, root)[0] for ref in entry.masks.values()]


def _image_ref(entry: ScanEntry, root: Path) -> tuple[Path, int | None]:
    """A manifest image reference → (path, series number of a folder holding several series)."""
    from radstore.io.dicom import split_series_ref

    try:
        path, number = split_series_ref(entry.image, root)
    except ValueError:  # (not echoed: paths may hold source ids)
        raise ValidationFailure(Rule.BAD_MANIFEST_ROW, "an image reference's series number is "
                                "malformed: give 'folder#<series number>'") from None
    return root / path, number


def _mask_ref(ref: str, root: Path) -> tuple[str, tuple[str, ...]]:
    """A manifest mask reference → (path, ROI names); a malformed one is a bad manifest row."""
    from radstore.io.dicom import split_mask_ref

    try:
        return split_mask_ref(ref, root)
    except ValueError:  # (the reference itself is not echoed: paths may hold source ids)
        raise ValidationFailure(Rule.BAD_MANIFEST_ROW, "a mask reference's ROI names are malformed: "
                                "give 'path#NAME[,NAME...]', each name once and non-empty") from None


def source_hash(entry: ScanEntry, phase: str, root: Path) -> str:
    """SHA-256 over the source bytes and the manifest fields that reach the store."""
    files = source_files(entry, root)
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise ValidationFailure(Rule.MISSING_FILE, f"{missing[0].name}: file not found")
    h = ids.sha256_files(files)
    fields: dict[str, Any] = {"phase": phase, "time": entry.acquisition_time.isoformat(),
                              "masks": sorted(entry.masks), "ingest": INGEST_VERSION}
    rois = {seg: list(names) for seg, ref in entry.masks.items() if (names := _mask_ref(ref, root)[1])}
    if rois:  # (absent otherwise: the hashes of scans without ROI names stay as they were)
        fields["rois"] = rois
    number = _image_ref(entry, root)[1]
    if number is not None:  # (likewise)
        fields["series_number"] = number
    desc = ids.canonical_json(fields)
    return ids.sha256_bytes((h + desc).encode())


def series_key(entry: ScanEntry, root: Path) -> str:
    """SeriesInstanceUID for a DICOM folder (of the numbered series, for ``folder#<number>``), else
    ``<image path>@<acquisition time ISO>``."""
    img, number = _image_ref(entry, root)
    if _is_dicom_dir(img):
        import pydicom

        from radstore.io.dicom import series_files

        for f in series_files(img):
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=[
                    "SeriesInstanceUID", "SeriesNumber", "Modality"])
            except Exception:
                continue
            if number is not None and str(ds.get("SeriesNumber", "")).strip() != str(number):
                continue
            if "SeriesInstanceUID" in ds and str(ds.get("Modality", "")) not in ("RTSTRUCT", "SEG"):
                return str(ds.SeriesInstanceUID)
    return f"{entry.image}@{entry.acquisition_time.isoformat()}"


def read_image(path: Path, series_number: int | None = None) -> Volume:
    from radstore.io.dicom import read_series
    from radstore.io.volumes import read_volume

    if path.is_dir():
        image = read_series(path, series_number)
        modality = image.meta.get("_modality") or "CT"
        if modality != "CT":
            raise ValidationFailure(Rule.NOT_CT, f"{path.name}: a {modality} series, not CT (the "
                                    "store holds CT; HU checks and features assume it)")
        return image
    if not path.exists():
        raise ValidationFailure(Rule.MISSING_FILE, f"{path.name}: file not found")
    return read_volume(path)


def read_mask(path: Path, image: Volume, rois: Sequence[str] = ()) -> np.ndarray:
    """A mask file on ``image``'s grid: NIfTI/NRRD (geometry checked), RTSTRUCT or SEG (all ROIs,
    or those named in ``rois`` as labels 1..k; overlapping ROIs are refused)."""
    from radstore.io import dicom, volumes

    if not path.is_file():
        raise ValidationFailure(Rule.MISSING_FILE, f"{path.name}: file not found")
    if volumes.is_volume_file(path):
        if rois:
            raise ValidationFailure(Rule.BAD_MANIFEST_ROW, f"{path.name}: ROI names ('#...') select "
                                    "from a DICOM RTSTRUCT or SEG, not from a label-map file")
        m = volumes.read_volume(path)
        check_geometry((image.shape, image.spacing, image.origin, image.direction),
                       (m.shape, m.spacing, m.origin, m.direction), path.name)
        return check_label_map(m.array, path.name)
    import pydicom

    try:
        modality = str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
                       .get("Modality", ""))
    except Exception as exc:
        raise ValidationFailure(Rule.UNREADABLE, f"{path.name}: neither NIfTI/NRRD nor DICOM") from exc
    if modality == "RTSTRUCT":
        arr, _ = dicom.rasterise_rtstruct(path, image, rois=list(rois) or None)
    elif modality == "SEG":
        arr = dicom.read_seg(path, image, segments=list(rois) or None)
    else:
        raise ValidationFailure(Rule.UNREADABLE, f"{path.name}: DICOM {modality or '?'} is not a mask")
    return check_label_map(arr, path.name)


def _row_from_attrs(attrs: dict[str, Any], masks: dict[str, list[int]], zarr_path: str,
                    created: dt.datetime) -> dict[str, Any]:
    sx, sy, sz = attrs["spacing"]
    nz, ny, nx = attrs["shape"]
    return {
        "cohort_id": attrs["cohort_id"], "patient_id": attrs["patient_id"], "scan_id": attrs["scan_id"],
        "phase": attrs["phase"], "event_timestamp": dt.datetime.fromisoformat(attrs["acquisition_time"]),
        "zarr_path": zarr_path, "shape_z": int(nz), "shape_y": int(ny), "shape_x": int(nx),
        "spacing_x": float(sx), "spacing_y": float(sy), "spacing_z": float(sz),
        "slice_thickness": attrs.get("slice_thickness"), "manufacturer": attrs.get("manufacturer"),
        "kvp": attrs.get("kvp"), "segmentation_ids": sorted(masks),
        "lesions": sorted({lab for labs in masks.values() for lab in labs}),
        "source_hash": attrs["source_hash"], "status": "ok", "created_timestamp": created,
    }


def _committed_row(task: ScanTask, shash: str) -> dict[str, Any] | None:
    """The catalog row of an already committed Zarr scan with this source hash (resume), else None."""
    gp = f"{task.cohort_id}/{task.patient_id}/{task.scan_id}"
    try:
        h = zarr_store.open_scan(task.volumes, gp)
    except FileNotFoundError:
        return None
    attrs = h.attrs
    if attrs.get("source_hash") != shash:
        return None
    masks = {s: sorted(h.labels(s)) for s in h.segmentation_ids}
    return _row_from_attrs(attrs, masks, gp, dt.datetime.now(dt.UTC))


def process_scan(task: ScanTask) -> dict[str, Any]:
    """Validate and write one scan. Returns ``{"status": "unchanged"|"written", "row": ...}`` or
    ``{"status": "rejected", "rule", "message"}``; never raises for bad input."""
    try:
        shash = source_hash(task.entry, task.phase, task.root)
        gp = f"{task.cohort_id}/{task.patient_id}/{task.scan_id}"
        if task.known_hash == shash and (task.volumes / gp / "zarr.json").exists():
            return {"status": "unchanged", "row": None, "scan_id": task.scan_id}
        row = _committed_row(task, shash)
        if row is not None:
            return {"status": "resumed", "row": row, "scan_id": task.scan_id}
        image = read_image(*_image_ref(task.entry, task.root))
        hu = check_hu(image.array, Path(task.entry.image).name, lo=task.hu_range[0], hi=task.hu_range[1])
        vol = Volume(hu, image.spacing, image.origin, image.direction)
        masks: dict[str, np.ndarray] = {}
        for seg, ref in task.entry.masks.items():
            mask_path, rois = _mask_ref(ref, task.root)
            masks[seg] = read_mask(task.root / mask_path, image, rois)
        meta = image.meta
        attrs = {
            "cohort_id": task.cohort_id, "patient_id": task.patient_id, "scan_id": task.scan_id,
            "phase": task.phase, "acquisition_time": task.entry.acquisition_time.isoformat(),
            "slice_thickness": meta.get("slice_thickness") or float(image.spacing[2]),
            "manufacturer": meta.get("manufacturer"), "scanner": meta.get("scanner"),
            "kvp": meta.get("kvp"), "kernel": meta.get("kernel"), "source_hash": shash,
            "ingest_version": INGEST_VERSION,
        }
        zarr_store.write_scan(task.volumes, gp, vol, masks, attrs, overwrite=True)
        h = zarr_store.open_scan(task.volumes, gp)
        labels = {s: sorted(h.labels(s)) for s in h.segmentation_ids}
        return {"status": "written", "scan_id": task.scan_id,
                "row": _row_from_attrs(h.attrs, labels, gp, dt.datetime.now(dt.UTC))}
    except ValidationFailure as exc:
        return {"status": "rejected", "scan_id": task.scan_id, "rule": exc.rule, "message": exc.message}
    except Exception as exc:
        return {"status": "rejected", "scan_id": task.scan_id, "rule": str(Rule.UNREADABLE),
                "message": f"{Path(task.entry.image).name}: unexpected {type(exc).__name__} "
                           "while reading"}


# ------------------------------------------------------------------------------------ scheduling

def run_tasks(fn: Callable[[Any], Any], items: Sequence[Any], settings: Settings) -> Iterator[Any]:
    """Yield ``fn(item)`` for every item as each finishes, on Dask: a distributed scheduler when
    ``settings.dask.scheduler`` is an address, else the local ``threads``/``processes``/``sync``
    scheduler (results are streamed through a scheduler callback so a progress bar can follow)."""
    if not items:
        return
    sched = settings.dask.scheduler
    workers = settings.dask.num_workers
    if "://" in sched or re.match(r"^[\w.-]+:\d+$", sched):
        from distributed import Client, as_completed

        with Client(sched) as client:
            futures = client.map(fn, list(items), pure=False)
            for fut in as_completed(futures):
                yield fut.result()
        return
    import dask
    from dask.callbacks import Callback

    tasks = [dask.delayed(fn, pure=False)(it) for it in items]
    keys = {t.key for t in tasks}
    results: queue.Queue[tuple[str, Any]] = queue.Queue()

    class _Stream(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if key in keys:
                results.put(("ok", result))

    def _run() -> None:
        try:
            kwargs: dict[str, Any] = {"scheduler": sched}
            if workers and sched in ("threads", "processes"):
                kwargs["num_workers"] = workers
            with _Stream():
                dask.compute(*tasks, **kwargs)
            results.put(("done", None))
        except BaseException as exc:
            results.put(("error", exc))

    th = threading.Thread(target=_run, daemon=True)
    th.start()
    n = 0
    while True:
        kind, val = results.get()
        if kind == "ok":
            n += 1
            yield val
        elif kind == "error":
            raise val
        else:
            break
    th.join()


# ------------------------------------------------------------------------------------ tables

def _existing(path: Path) -> list[dict[str, Any]]:
    return read_parquet(path).to_pylist() if path.is_file() else []


def _same(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]) -> bool:
    """Equal content ignoring ``created_timestamp`` (timestamps compared as UTC instants)."""
    def norm(rows: list[dict[str, Any]]) -> list[str]:
        return sorted(ids.canonical_json({k: v for k, v in r.items() if k != "created_timestamp"})
                      for r in rows)
    return norm(rows_a) == norm(rows_b)


def _write_if_changed(rows: list[dict[str, Any]], path: Path, schema: Any, keys: Sequence[str]
                      ) -> bool:
    """Write ``rows`` unless the file holds the same content; unchanged rows keep their
    ``created_timestamp``. Returns whether the file was written."""
    import pyarrow as pa

    old = _existing(path)
    if path.is_file() and _same(_normalise_ts(old), _normalise_ts(rows)):
        return False
    created = {tuple(r[k] for k in keys): r.get("created_timestamp") for r in old}
    for r in rows:
        prev = created.get(tuple(r[k] for k in keys))
        if prev is not None:
            r["created_timestamp"] = prev
    write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return True


def _normalise_ts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        out.append({k: (v.astimezone(dt.UTC).isoformat() if isinstance(v, dt.datetime) else v)
                    for k, v in r.items()})
    return out


def _schemas() -> dict[str, Any]:
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    scans = pa.schema([
        ("cohort_id", pa.string()), ("patient_id", pa.string()), ("scan_id", pa.string()),
        ("phase", pa.string()), ("event_timestamp", ts), ("zarr_path", pa.string()),
        ("shape_z", pa.int32()), ("shape_y", pa.int32()), ("shape_x", pa.int32()),
        ("spacing_x", pa.float64()), ("spacing_y", pa.float64()), ("spacing_z", pa.float64()),
        ("slice_thickness", pa.float64()), ("manufacturer", pa.string()), ("kvp", pa.float64()),
        ("segmentation_ids", pa.list_(pa.string())), ("lesions", pa.list_(pa.int32())),
        ("source_hash", pa.string()), ("status", pa.string()), ("created_timestamp", ts)])
    rejections = pa.schema([("cohort_id", pa.string()), ("input", pa.string()), ("rule", pa.string()),
                            ("message", pa.string()), ("created_timestamp", ts)])
    clinical = pa.schema([
        ("cohort_id", pa.string()), ("patient_id", pa.string()), ("event_timestamp", ts),
        ("age", pa.float64()), ("sex", pa.string()), ("tumour_site", pa.string()),
        ("grade", pa.string()), ("ki67", pa.float64()), ("m_stage", pa.int8()),
        ("longest_diameter_mm", pa.float64()), ("cea", pa.float64()), ("ca199", pa.float64()),
        ("created_timestamp", ts)])
    outcomes = pa.schema([
        ("cohort_id", pa.string()), ("patient_id", pa.string()), ("event_timestamp", ts),
        ("os_months", pa.float64()), ("os_event", pa.int8()), ("rfs_months", pa.float64()),
        ("rfs_event", pa.int8()), ("response", pa.int8()), ("created_timestamp", ts)])
    return {"scans": scans, "rejections": rejections, "clinical": clinical, "outcomes": outcomes}


# ------------------------------------------------------------------------------------ the stage

def ingest_cohort(
    settings: Settings,
    cohort_id: str,
    manifest_path: Path | str,
    *,
    hospital: str | None = None,
    hu_range: tuple[float, float] = (-3100.0, 4095.0),
    qc_report: bool = True,
    prune: bool = False,
) -> IngestReport:
    """Ingest one cohort (see module docstring). ``hospital`` labels the QC report (default: the
    ``hospital`` of a ``cohort.yaml`` next to the manifest, else the cohort id). Zarr scans of the
    cohort left out of the new scans catalog are reported (``orphaned``) and, with ``prune``,
    deleted once the catalog is written; without it they stay (downstream stages read the catalog,
    so they are unused)."""
    if not COHORT_ID.match(cohort_id):
        raise ValueError(f"cohort_id {cohort_id!r} must match [a-z0-9_-]+")
    layout = settings.layout
    manifest: Manifest = read_manifest(manifest_path)
    root = manifest.root.resolve()
    key = settings.secret_key()
    now = dt.datetime.now(dt.UTC)
    report = IngestReport(cohort_id)
    report.stale_temps_removed = zarr_store.remove_stale_temps(layout.volumes)
    hospital = hospital or _hospital_of(root) or cohort_id

    pid_of: dict[str, str] = {}

    def pid(source: str) -> str:
        if source not in pid_of:
            pid_of[source] = ids.patient_id(source, key, cohort_id)
        return pid_of[source]

    for e in manifest.entries:
        pid(e.source_patient_id)
    clinical_rows, clin_issues = (read_table(manifest.clinical, "clinical") if manifest.clinical
                                  else ([], []))
    outcome_rows, out_issues = (read_table(manifest.outcomes, "outcomes") if manifest.outcomes
                                else ([], []))
    for r in clinical_rows + outcome_rows:
        pid(r["source_patient_id"])
    redact = Redactor(dict(pid_of), table_phi_values(manifest.clinical, PHI_COLUMNS)
                      + table_phi_values(manifest.outcomes, PHI_COLUMNS))
    issues: list[Issue] = list(manifest.issues) + clin_issues + out_issues

    # pure, cohort-level checks
    clinical_ids = {r["source_patient_id"] for r in clinical_rows}
    have_clinical = manifest.clinical is not None and manifest.clinical.is_file()
    candidates: list[tuple[ScanEntry, str]] = []
    for e in manifest.entries:
        try:
            phase = check_phase(e.phase, e.image)
        except ValidationFailure as exc:
            issues.append(Issue(e.image, exc.rule, exc.message))
            continue
        if have_clinical and e.source_patient_id not in clinical_ids:
            issues.append(Issue(e.image, str(Rule.SCANS_WITHOUT_CLINICAL),
                                f"row {e.row}: the patient has no row in the clinical table"))
            continue
        candidates.append((e, phase))
    dups = duplicate_keys((e.source_patient_id, ph, e.acquisition_time) for e, ph in candidates)
    tasks: list[ScanTask] = []
    known = {r["scan_id"]: r for r in _existing(layout.catalog_table("scans", cohort_id))}
    seen_scan: dict[str, int] = {}
    for e, phase in candidates:
        if (e.source_patient_id, phase, e.acquisition_time) in dups:
            issues.append(Issue(e.image, str(Rule.DUPLICATE_SCAN),
                                f"row {e.row}: same patient, phase and acquisition time as another row"))
            continue
        p = pid(e.source_patient_id)
        s = ids.scan_id(p, series_key(e, root))
        if s in seen_scan:
            issues.append(Issue(e.image, str(Rule.DUPLICATE_SCAN),
                                f"row {e.row}: same image series as row {seen_scan[s]}"))
            continue
        seen_scan[s] = e.row
        tasks.append(ScanTask(cohort_id, p, s, e, phase, root, layout.volumes.resolve(), hu_range,
                              known.get(s, {}).get("source_hash")))

    _prepare_groups(layout.volumes, {f"{cohort_id}/{t.patient_id}" for t in tasks})
    scan_rows: list[dict[str, Any]] = []
    by_id = {t.scan_id: t for t in tasks}
    for res in track(run_tasks(process_scan, tasks, settings), f"ingest {cohort_id}",
                     total=len(tasks), enabled=settings.progress):
        t = by_id[res["scan_id"]]
        if res["status"] == "rejected":
            issues.append(Issue(t.entry.image, res["rule"], res["message"]))
            continue
        if res["status"] == "unchanged":
            report.unchanged += 1
            scan_rows.append(dict(known[t.scan_id]))
        else:
            report.written += res["status"] == "written"
            report.unchanged += res["status"] == "resumed"
            scan_rows.append(res["row"])
    report.scans_ok = len(scan_rows)

    # clinical coverage (rows without any accepted or attempted scan)
    scanned = {e.source_patient_id for e in manifest.entries}
    kept_clinical = []
    for r in clinical_rows:
        if r["source_patient_id"] not in scanned:
            issues.append(Issue(manifest.clinical.name if manifest.clinical else "clinical",
                                str(Rule.CLINICAL_WITHOUT_SCANS),
                                f"patient {pid(r['source_patient_id'])} (row {r['_row']}) has no scan in "
                                "the manifest"))
            continue
        kept_clinical.append(r)
    index_date = {r["source_patient_id"]: r["index_date"] for r in kept_clinical}

    clin_out = [{"cohort_id": cohort_id, "patient_id": pid(r["source_patient_id"]),
                 "event_timestamp": r["index_date"],
                 **{k: v for k, v in r.items() if k not in ("source_patient_id", "index_date", "_row")},
                 "created_timestamp": now} for r in kept_clinical]
    out_out = []
    for r in outcome_rows:
        when = index_date.get(r["source_patient_id"])
        if when is None and r["source_patient_id"] in clinical_ids:
            continue  # its clinical row was rejected (no scans): already reported
        if when is None:
            issues.append(Issue(manifest.outcomes.name if manifest.outcomes else "outcomes",
                                str(Rule.OUTCOMES_WITHOUT_CLINICAL),
                                f"patient {pid(r['source_patient_id'])} (row {r['_row']}): outcome "
                                "row without a "
                                "clinical row (no index date)"))
            continue
        out_out.append({"cohort_id": cohort_id, "patient_id": pid(r["source_patient_id"]),
                        "event_timestamp": when,
                        **{k: v for k, v in r.items() if k not in ("source_patient_id", "_row")},
                        "created_timestamp": now})
    report.clinical_rows, report.outcome_rows = len(clin_out), len(out_out)

    rej_rows: list[dict[str, Any]] = []
    for iss in issues:
        rej_rows.append({"cohort_id": cohort_id, "input": redact(iss.input), "rule": iss.rule,
                         "message": redact(iss.message), "created_timestamp": now})
    report.rejections = [Issue(r["input"], r["rule"], r["message"]) for r in rej_rows]
    for r in scan_rows:
        r.setdefault("created_timestamp", now)

    schemas = _schemas()
    tables = {
        "scans": (sorted(scan_rows, key=lambda r: r["scan_id"]), ("scan_id",)),
        "rejections": (sorted(rej_rows, key=lambda r: (r["input"], r["rule"], r["message"])),
                       ("input", "rule", "message")),
        "clinical": (sorted(clin_out, key=lambda r: r["patient_id"]), ("patient_id",)),
        "outcomes": (sorted(out_out, key=lambda r: r["patient_id"]), ("patient_id",)),
    }
    for name, (rows, keys) in tables.items():
        if _write_if_changed(rows, layout.catalog_table(name, cohort_id), schemas[name], keys):
            report.tables_written.append(name)
    catalogued = {r["zarr_path"] for r in scan_rows}
    report.orphaned = [g for g in zarr_store.iter_scans(layout.volumes, cohort_id) if g not in catalogued]
    if prune:
        for g in report.orphaned:
            zarr_store.remove_scan(layout.volumes, g)
        report.pruned = len(report.orphaned)
    elif report.orphaned:
        log.warning("%d Zarr scan(s) of %s are not in its catalog (removed from the manifest or "
                    "rejected this run); prune=True / --prune deletes them", len(report.orphaned),
                    cohort_id)
    for iss in report.rejections:
        log.warning("rejected %s: [%s] %s", iss.input, iss.rule, iss.message)
    log.info("ingest %s: %d scans ok (%d written, %d unchanged), %d rejections, tables written: %s",
             cohort_id, report.scans_ok, report.written, report.unchanged, report.rejected,
             ", ".join(report.tables_written) or "none")

    qc_path = layout.reports / cohort_id / "qc.html"
    if qc_report and (report.tables_written or report.written or not qc_path.exists()):
        from radstore.qc.report import write_qc_report

        report.report_path = write_qc_report(settings, cohort_id, hospital)
    elif qc_path.exists():
        report.report_path = qc_path
    return report


def _prepare_groups(volumes: Path, parents: set[str]) -> None:
    """Create the cohort and patient Zarr groups up front, in one thread: concurrent workers
    creating the same parent group race in zarr (``ContainsGroupError``)."""
    import zarr

    for rel in sorted(parents):
        parts = rel.split("/")
        for i in range(len(parts) + 1):
            sub = volumes.joinpath(*parts[:i])
            if not (sub / "zarr.json").exists():
                zarr.open_group(store=str(sub), mode="a", zarr_format=3)


def _hospital_of(root: Path) -> str | None:
    import yaml

    p = root / "cohort.yaml"
    if not p.is_file():
        return None
    try:
        doc = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError:
        return None
    h = doc.get("hospital") if isinstance(doc, dict) else None
    return re.sub(r"[^A-Za-z0-9 _\-]", "", str(h))[:64] if h else None


def discover_cohort(dicom_root: Path | str, manifest_out: Path | str,
                    phase_rules: Path | str | None = None) -> tuple[Path, list[dict[str, str]], list[str]]:
    """Discovery mode: build ``manifest.csv`` from a DICOM tree for review (see
    :func:`radstore.io.manifest.discover`). Returns ``(path, rows, warnings)``."""
    from radstore.io.manifest import discover, load_phase_rules, write_manifest

    out = Path(manifest_out)
    rows, warnings = discover(dicom_root, out.parent, load_phase_rules(phase_rules))
    return write_manifest(rows, out), rows, warnings


def ingest_all(settings: Settings, root: Path | str, **kwargs: Any) -> dict[str, IngestReport]:
    """Ingest every cohort folder under ``root`` (a folder holding ``manifest.csv``; the cohort id
    is ``cohort_id`` from its ``cohort.yaml``, else the folder name), e.g. the output of
    ``radstore synth``. Folders starting with ``_`` or ``.`` are skipped. Afterwards the
    store-wide QC page ``reports/qc.html`` compares every cohort in the store."""
    import yaml

    out: dict[str, IngestReport] = {}
    for d in sorted(Path(root).iterdir()):
        if not d.is_dir() or d.name.startswith(("_", ".")) or not (d / "manifest.csv").is_file():
            continue
        cid = d.name
        meta = d / "cohort.yaml"
        if meta.is_file():
            doc = yaml.safe_load(meta.read_text()) or {}
            cid = str(doc.get("cohort_id", cid)) if isinstance(doc, dict) else cid
        out[cid] = ingest_cohort(settings, cid, d / "manifest.csv", **kwargs)
    changed = any(r.written or r.tables_written for r in out.values())
    missing = not (settings.layout.reports / "qc.html").exists()
    if out and kwargs.get("qc_report", True) and (changed or missing):
        from radstore.qc.report import write_store_qc_report

        write_store_qc_report(settings)
    return out
