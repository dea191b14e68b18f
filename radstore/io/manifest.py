"""Cohort manifest and clinical/outcome tables: parsing, typing, and manifest discovery.

Contract ("Cohort input" in docs/architecture.md): ``manifest.csv`` with ``source_patient_id,
phase, acquisition_time, image, masks`` (``masks`` = ``;``-separated ``segmentation_id=path``),
paths relative to the manifest; ``clinical.csv`` and ``outcomes.csv`` next to it. A YAML manifest
holds the same rows under ``scans:`` (``masks`` as a mapping or the same string) and may name the
tables under ``clinical:`` / ``outcomes:``.

Parsing never raises on a bad row: it returns the good rows plus :class:`radstore.validation.Issue`
records whose messages name the row and column but never echo a cell value (it could be PHI).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from radstore.deid import CLINICAL_COLUMNS, OUTCOME_COLUMNS
from radstore.validation import Issue, Rule

MANIFEST_COLUMNS: tuple[str, ...] = ("source_patient_id", "phase", "acquisition_time", "image", "masks")
SEGMENTATION_ID = re.compile(r"^[a-z0-9_]+$")
DEFAULT_SEGMENTATION = "gtv"


@dataclass(frozen=True)
class ScanEntry:
    """One manifest row; ``image`` and ``masks`` paths are relative to the manifest folder."""

    row: int
    source_patient_id: str
    phase: str
    acquisition_time: dt.datetime
    image: str
    masks: dict[str, str] = field(default_factory=dict)


@dataclass
class Manifest:
    path: Path
    entries: list[ScanEntry]
    issues: list[Issue]
    clinical: Path | None
    outcomes: Path | None

    @property
    def root(self) -> Path:
        return self.path.parent


def parse_time(value: Any) -> dt.datetime:
    """ISO 8601 date or date-time → timezone-aware UTC datetime (naive values are taken as UTC)."""
    s = str(value).strip()
    if not s:
        raise ValueError("empty")
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def parse_masks(value: Any) -> dict[str, str]:
    """``"gtv=a.nii.gz;gtv_r2=b.nrrd"`` (or a mapping) → ``{segmentation_id: path}``; a bare path
    is the default segmentation ``gtv``. A DICOM RTSTRUCT/SEG path may end in ``#NAME[,NAME...]``,
    the ROIs to take as labels 1..k (:func:`radstore.io.dicom.split_mask_ref`; kept in the path)."""
    from radstore.io.dicom import split_mask_ref
    if isinstance(value, Mapping):
        items = [(str(k), str(v)) for k, v in value.items()]
    else:
        items = []
        for part in str(value or "").split(";"):
            part = part.strip()
            if not part:
                continue
            seg, sep, p = part.partition("=")
            items.append((seg.strip(), p.strip()) if sep else (DEFAULT_SEGMENTATION, part))
    out: dict[str, str] = {}
    for seg, p in items:
        if not SEGMENTATION_ID.match(seg):
            raise ValueError(f"segmentation id {seg!r} must match [a-z0-9_]+")
        if seg in out:
            raise ValueError(f"segmentation id {seg!r} given twice")
        if not p:
            raise ValueError(f"segmentation {seg!r} has no path")
        try:
            split_mask_ref(p)
        except ValueError:
            raise ValueError(f"segmentation {seg!r}: give ROI names as 'path#NAME[,NAME...]', each "
                             "once and non-empty") from None
        out[seg] = p
    if not out:
        raise ValueError("no mask given")
    return out


def _rows_from_file(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if path.suffix.lower() in (".yaml", ".yml"):
        doc = yaml.safe_load(path.read_text()) or {}
        if not isinstance(doc, dict) or not isinstance(doc.get("scans"), list):
            raise ValueError(f"{path.name}: a YAML manifest needs a top-level 'scans:' list")
        return [dict(r) if isinstance(r, dict) else {} for r in doc["scans"]], doc
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path.name}: missing column(s) {', '.join(missing)}")
        return list(reader), {}


def read_manifest(path: Path | str) -> Manifest:
    """Parse a CSV/YAML manifest. Rows that cannot be parsed become ``bad_manifest_row`` issues
    (row numbers count data rows from 1). Raises ``ValueError`` only when the file as a whole is
    unusable (missing columns, not a manifest)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    rows, doc = _rows_from_file(path)
    entries: list[ScanEntry] = []
    issues: list[Issue] = []
    for i, r in enumerate(rows, start=1):
        where = str(r.get("image") or f"{path.name}:row {i}")
        try:
            sid = str(r.get("source_patient_id") or "").strip()
            if not sid:
                raise ValueError("source_patient_id is empty")
            image = str(r.get("image") or "").strip()
            if not image:
                raise ValueError("image is empty")
            try:
                when = parse_time(r.get("acquisition_time", ""))
            except ValueError:
                raise ValueError("acquisition_time is not an ISO 8601 date/time") from None
            entries.append(ScanEntry(i, sid, str(r.get("phase") or "").strip(), when, image,
                                     parse_masks(r.get("masks"))))
        except ValueError as exc:
            issues.append(Issue(where, str(Rule.BAD_MANIFEST_ROW), f"row {i}: {exc}"))
    clinical = doc.get("clinical", "clinical.csv")
    outcomes = doc.get("outcomes", "outcomes.csv")
    return Manifest(path, entries, issues,
                    path.parent / clinical if clinical else None,
                    path.parent / outcomes if outcomes else None)


# ----------------------------------------------------------------------------- clinical tables

_CATEGORIES: dict[str, tuple[str, ...]] = {"sex": ("M", "F"), "grade": ("G1", "G2", "G3")}
_BINARY: tuple[str, ...] = ("m_stage", "os_event", "rfs_event", "response")
_TEXT: tuple[str, ...] = ("tumour_site",)


def _read_any(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path).astype("string")
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or str(v).strip() in ("", "NA", "nan", "<NA>")


def _convert(col: str, v: Any) -> Any:
    """One cell → its typed value (None if blank); ``ValueError`` names the expected type only."""
    if _blank(v):
        return None
    s = str(v).strip()
    if col in _CATEGORIES:
        up = s.upper()
        if up not in _CATEGORIES[col]:
            raise ValueError(f"must be one of {'/'.join(_CATEGORIES[col])}")
        return up
    if col in _BINARY:
        if s not in ("0", "1", "0.0", "1.0"):
            raise ValueError("must be 0 or 1")
        return int(float(s))
    if col in _TEXT:
        return re.sub(r"[^A-Za-z0-9 _\-]", "", s)[:64] or None
    try:
        x = float(s)
    except ValueError:
        raise ValueError("must be a number") from None
    if x != x or x in (float("inf"), float("-inf")) or x < 0:
        raise ValueError("must be a finite number >= 0")
    return x


def read_table(path: Path, kind: str) -> tuple[list[dict[str, Any]], list[Issue]]:
    """``clinical`` or ``outcomes`` table → typed rows ``{source_patient_id, _row (1-based data
    row), [index_date], <contract columns>}`` (every other column, PHI included, is dropped) and issues
    (``bad_table_value`` — also for a repeated patient —, ``missing_file``, ``unreadable``)."""
    columns = CLINICAL_COLUMNS if kind == "clinical" else OUTCOME_COLUMNS
    name = path.name
    if not path.is_file():
        return [], [Issue(name, str(Rule.MISSING_FILE), f"{kind} table not found")]
    try:
        df = _read_any(path)
    except Exception as exc:
        return [], [Issue(name, str(Rule.UNREADABLE), f"{kind} table cannot be parsed "
                          f"({type(exc).__name__})")]
    need = ["source_patient_id"] + (["index_date"] if kind == "clinical" else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        return [], [Issue(name, str(Rule.BAD_TABLE_VALUE), f"missing column(s) {', '.join(missing)}")]
    rows: list[dict[str, Any]] = []
    issues: list[Issue] = []
    seen: set[str] = set()
    for i, rec in enumerate(df.to_dict("records"), start=1):
        sid = "" if _blank(rec.get("source_patient_id")) else str(rec["source_patient_id"]).strip()
        if not sid:
            issues.append(Issue(name, str(Rule.BAD_TABLE_VALUE), f"row {i}: source_patient_id is empty"))
            continue
        if sid in seen:
            issues.append(Issue(name, str(Rule.BAD_TABLE_VALUE), f"row {i}: patient listed twice"))
            continue
        out: dict[str, Any] = {"source_patient_id": sid, "_row": i}
        try:
            if kind == "clinical":
                try:
                    out["index_date"] = parse_time(rec.get("index_date", ""))
                except ValueError:
                    raise ValueError("column 'index_date' is not an ISO date") from None
            for c in columns:
                try:
                    out[c] = _convert(c, rec.get(c))
                except ValueError as exc:
                    raise ValueError(f"column {c!r} {exc}") from None
        except ValueError as exc:
            issues.append(Issue(name, str(Rule.BAD_TABLE_VALUE), f"row {i}: {exc}"))
            continue
        seen.add(sid)
        rows.append(out)
    return rows, issues


def phi_values(path: Path | None, columns: Sequence[str]) -> list[str]:
    """The raw values of the PHI columns of a table (for redaction; never stored)."""
    if path is None or not path.is_file():
        return []
    try:
        df = _read_any(path)
    except Exception:
        return []
    out: list[str] = []
    for c in columns:
        if c in df.columns:
            out.extend(str(v) for v in df[c].tolist() if not _blank(v))
    return out


# ----------------------------------------------------------------------------- discovery

DEFAULT_PHASE_RULES: tuple[tuple[str, str], ...] = (
    (r"non[\s_-]?contrast|native|plain|pre[\s_-]?contrast|unenhanced|\bnc\b|\bnative\b", "non_contrast"),
    (r"arterial|\bart\b|\bap\b", "arterial"),
    (r"portal|\bpv\b|\bpvp\b", "portal"),
    (r"venous|\bven\b|\bvp\b", "venous"),
    (r"delay|equilibrium|\beq\b|late", "delayed"),
)


def load_phase_rules(path: Path | str | None) -> list[tuple[re.Pattern[str], str]]:
    """Phase rules: a YAML list of ``{pattern: <regex>, phase: <phase>}`` tried in order before the
    defaults (case-insensitive search in SeriesDescription)."""
    from radstore.config import PHASES

    rules: list[tuple[str, str]] = []
    if path is not None:
        doc = yaml.safe_load(Path(path).read_text()) or []
        if isinstance(doc, dict):
            doc = doc.get("rules", [])
        if not isinstance(doc, list):
            raise ValueError(f"{path}: phase rules must be a list of {{pattern, phase}}")
        for i, r in enumerate(doc, start=1):
            if not isinstance(r, dict) or "pattern" not in r or "phase" not in r:
                raise ValueError(f"{path}: rule {i} needs 'pattern' and 'phase'")
            if r["phase"] not in PHASES:
                raise ValueError(f"{path}: rule {i}: phase {r['phase']!r} not in {', '.join(PHASES)}")
            try:
                re.compile(r["pattern"])
            except re.error as exc:
                raise ValueError(f"{path}: rule {i}: bad regex ({exc})") from None
            rules.append((str(r["pattern"]), str(r["phase"])))
    rules.extend(DEFAULT_PHASE_RULES)
    return [(re.compile(p, re.IGNORECASE), ph) for p, ph in rules]


def phase_of(description: str, rules: Sequence[tuple[re.Pattern[str], str]]) -> str | None:
    for pat, ph in rules:
        if pat.search(description or ""):
            return ph
    return None


def discover(dicom_root: Path | str, manifest_dir: Path | str,
             phase_rules: Sequence[tuple[re.Pattern[str], str]]) -> tuple[list[dict[str, str]], list[str]]:
    """Build manifest rows from a DICOM tree: CT series grouped by SeriesInstanceUID, phase from
    the SeriesDescription rules, RTSTRUCT/SEG matched to the series they reference (else to the
    only CT series with their frame of reference). Returns ``(rows, warnings)``; a series whose
    phase no rule matches gets ``phase = ""`` (ingest rejects it as ``unknown_phase`` until the
    reviewer fills it in)."""
    import pydicom

    from radstore.io.dicom import scan_tree

    root = Path(dicom_root)
    mdir = Path(manifest_dir).resolve()
    groups = scan_tree(root)
    images = [g for g in groups if g.modality == "CT"]
    masks = [g for g in groups if g.modality in ("RTSTRUCT", "SEG")]
    warnings: list[str] = [
        f"{g.files[0].parent.relative_to(root)}: a {g.modality or 'modality-less'} series: skipped "
        "(the store holds CT)" for g in groups
        if g.modality not in ("CT", "RTSTRUCT", "SEG", "RTPLAN", "RTDOSE", "SR", "PR")]
    by_uid = {g.series_uid: g for g in images}
    attached: dict[str, list[Path]] = {g.series_uid: [] for g in images}
    for m in masks:
        target = next((u for u in m.referenced_series_uids if u in by_uid), None)
        if target is None:
            same_for = [g for g in images if g.frame_of_reference_uid
                        and g.frame_of_reference_uid == m.frame_of_reference_uid]
            target = same_for[0].series_uid if len(same_for) == 1 else None
        if target is None:
            warnings.append(f"{m.files[0].relative_to(root)}: {m.modality} matches no image series")
            continue
        attached[target].extend(sorted(m.files))
        warnings.extend(w for w in (_several_rois(f, root) for f in sorted(m.files)) if w)
    rows: list[dict[str, str]] = []
    sharing: dict[Path, list[int | None]] = {}  # folder -> series numbers of the series in it
    for g in images:
        if len(folders := {p.parent for p in g.files}) == 1:
            sharing.setdefault(folders.pop(), []).append(g.series_number)
    for g in images:
        folders = {p.parent for p in g.files}
        if len(folders) != 1:
            first = sorted(folders)[0].relative_to(root)
            warnings.append(f"series in {len(folders)} folders (first {first}): skipped; put each "
                            "series in its own folder")
            continue
        folder = folders.pop()
        rel = Path(_relpath(folder, mdir))
        numbers = sharing[folder]
        if len(numbers) > 1:  # a flat export: the series is named by its number in the folder
            if g.series_number is None or numbers.count(g.series_number) > 1:
                warnings.append(f"{rel}: {len(numbers)} series share the folder and this one has no "
                                "series number of its own: skipped; put each series in its own folder")
                continue
            rel = Path(f"{rel}#{g.series_number}")
        if not attached[g.series_uid]:
            warnings.append(f"{rel}: no RTSTRUCT/SEG references this series: skipped")
            continue
        phase = phase_of(g.series_description, phase_rules)
        if phase is None:
            warnings.append(f"{rel}: no phase rule matches its SeriesDescription; fill in 'phase'")
        ds = pydicom.dcmread(g.files[0], stop_before_pixels=True)
        seg_ids = [DEFAULT_SEGMENTATION] + [f"{DEFAULT_SEGMENTATION}_r{i}" for i in range(2, 100)]
        mask_str = ";".join(f"{s}={_relpath(p, mdir)}"
                            for s, p in zip(seg_ids, attached[g.series_uid], strict=False))
        rows.append({"source_patient_id": str(ds.get("PatientID", "")), "phase": phase or "",
                     "acquisition_time": g.acquisition or "", "image": str(rel), "masks": mask_str})
    return rows, warnings


def _several_rois(path: Path, root: Path) -> str:
    """A review warning when RTSTRUCT/SEG ``path`` holds several ROIs (all would become lesions,
    and overlapping ones are refused at ingest), else ``""``."""
    from radstore.io.dicom import mask_rois
    from radstore.validation import ValidationFailure

    try:
        rois = mask_rois(path)
    except ValidationFailure:  # (ingest reports an unreadable mask with its rule)
        return ""
    if len(rois) < 2:
        return ""
    listing = ", ".join(f"{lab} {name!r}" for lab, name in rois.items())
    return (f"{path.relative_to(root)}: {len(rois)} ROIs ({listing}) all become lesions, and ROIs "
            "that overlap are refused: to keep only the lesions, end the mask path with "
            "'#NAME[,NAME...]'")


def _relpath(p: Path, start: Path) -> str:
    import os

    return os.path.relpath(Path(p).resolve(), start)


def write_manifest(rows: Sequence[Mapping[str, str]], path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS))
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in MANIFEST_COLUMNS})
    return path
