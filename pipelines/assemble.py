"""``radstore assemble <study>``: a study spec → a reproducible, point-in-time-correct training set.

Steps (everything up to the split is cheap and runs before any feature value is read, so a bad
spec fails in seconds with a message naming the study and the field):

1. resolve each ``features[i]`` (feature set × phase, latest version unless pinned);
2. check the endpoint, clinical and stratify columns and the cohorts against the catalog;
3. population: ``SELECT * FROM clinical WHERE (<population>)`` joined to the outcomes;
4. ``as_of = index date + landmark_weeks + 1 day − 1 µs`` (scans of the index day count);
5. point-in-time pick per view on the key columns (:mod:`radstore.store.pit`);
6. split (:func:`radstore.store.split.assign_split`), checked non-empty;
7. gather the picked feature values, write ``training_sets/<study>/<hash>/train.parquet`` and
   ``manifest.json`` with fixed writer options: same inputs → same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from radstore.config import Settings
from radstore.ids import canonical_json, sha256_bytes, sha256_files
from radstore.io.tables import TIMESTAMP_TYPE
from radstore.store.catalog import FeatureTable, StoreError, catalog_files, feature_table, latest_version
from radstore.study import StudySpec, StudySpecError, find_study, load_study

AS_OF_RULE = ("as_of = index date + landmark_weeks + 1 day - 1 us: per view, the latest scan "
              "acquired on or before the index day (+ landmark)")
KEY_COLUMNS = ("cohort_id", "patient_id", "split", "as_of")
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "lz4", "write_statistics": True, "row_group_size": 65536, "data_page_size": 1 << 20,
    "version": "2.6", "data_page_version": "1.0",
}


class AssemblyError(ValueError):
    """A study that cannot be assembled; the message names the study and the field."""


@dataclass(frozen=True)
class TrainingSet:
    """``path`` is ``training_sets/<study>/<hash>/``; ``manifest`` is its ``manifest.json``."""

    path: Path
    manifest: dict[str, Any]

    @property
    def parquet(self) -> Path:
        return self.path / "train.parquet"

    @property
    def table(self) -> pa.Table:
        return pq.read_table(self.parquet)

    @property
    def content_hash(self) -> str:
        return str(self.manifest["content_hash"])


@dataclass
class StudyPlan:
    """A validated study: the views, the entity rows (keys, split, endpoint, clinical) and the
    picked feature rows per view, before any feature value is read."""

    spec: StudySpec
    views: list[FeatureTable]
    snapshots: dict[str, FeatureTable]
    entity: pa.Table
    picks: dict[str, pa.Table]
    endpoint_columns: tuple[str, ...]
    stratified_by: str
    counts: dict[str, int] = field(default_factory=dict)


def snapshot_dir(settings: Settings) -> Path:
    """Scan-level snapshots of the views (:func:`radstore.store.pit.scan_level_snapshot`)."""
    return settings.layout.training_sets / ".cache" / "scan_level"


def file_hashes(settings: Settings, files: list[Path]) -> dict[str, str]:
    """SHA-256 of each file, cached by (path, size, mtime_ns) in ``training_sets/.cache``."""
    cache_path = settings.layout.training_sets / ".cache" / "sha256.json"
    cache: dict[str, str] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    out, changed = {}, False
    for f in files:
        st = f.stat()
        key = f"{f}|{st.st_size}|{st.st_mtime_ns}"
        if key not in cache:
            cache[key], changed = sha256_files([f]), True
        out[str(f)] = cache[key]
    if changed:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(cache, sort_keys=True))
        os.replace(tmp, cache_path)
    return out


def resolve_study(study: StudySpec | Path | str, studies_dir: Path | str = "studies") -> StudySpec:
    """A StudySpec, a path to a YAML file, or a study name under ``studies_dir``."""
    if isinstance(study, StudySpec):
        return study
    try:
        return load_study(find_study(str(study), studies_dir))
    except StudySpecError as exc:
        raise AssemblyError(str(exc)) from exc


def _endpoint_columns(spec: StudySpec) -> tuple[str, ...]:
    e = spec.endpoint
    return (e.time, e.event) if e.kind == "survival" else (e.label,)  # type: ignore[return-value]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def plan_study(settings: Settings, study: StudySpec | Path | str,
               studies_dir: Path | str = "studies") -> StudyPlan:
    """Validate ``study`` against the store and compute everything but the feature values."""
    import duckdb

    from radstore.sql import connect
    from radstore.store.pit import pick_rows, scan_level_snapshot
    from radstore.store.split import SplitError, assign_split

    spec = resolve_study(study, studies_dir)
    layout = settings.layout

    def err(where: str, msg: str) -> AssemblyError:
        return AssemblyError(f"study {spec.name!r}: {where}: {msg}")

    views: list[FeatureTable] = []
    for i, fi in enumerate(spec.features):
        try:
            version = fi.version or latest_version(layout, fi.feature_set)
        except StoreError as exc:
            raise err(f"features[{i}]", str(exc)) from exc
        for ph in fi.phases:
            try:
                t = feature_table(layout, fi.feature_set, ph, version)
            except StoreError as exc:
                raise err(f"features[{i}]", str(exc)) from exc
            if any(v.name == t.name for v in views):
                raise err(f"features[{i}]", f"view {t.name} is listed twice")
            views.append(t)
    for name in ("clinical", "outcomes"):
        if not catalog_files(layout, name):
            raise err("catalog", f"no {layout.catalog / name} tables in the store (run `radstore ingest`)")

    con = connect(settings=settings, features=False)
    try:
        clin_cols = [r[0] for r in con.sql("DESCRIBE clinical").fetchall()]
        out_cols = [r[0] for r in con.sql("DESCRIBE outcomes").fetchall()]
        endpoint = _endpoint_columns(spec)
        for c in endpoint:
            if c not in out_cols:
                raise err("endpoint", f"column {c!r} is not in the outcomes table (columns: "
                          f"{', '.join(out_cols)})")
        for c in spec.clinical:
            if c not in clin_cols:
                raise err("clinical", f"column {c!r} is not in the clinical table (columns: "
                          f"{', '.join(clin_cols)})")
        stratify = spec.split.stratify or (spec.endpoint.event if spec.endpoint.kind == "survival"
                                           else spec.endpoint.label)
        if stratify is None or (stratify not in out_cols and stratify not in clin_cols):
            raise err("split.stratify", f"column {stratify!r} is neither an outcomes nor a clinical column")
        known = {r[0] for r in con.sql("SELECT DISTINCT cohort_id FROM clinical").fetchall()}
        for where, listed in (("split.train_cohorts", spec.split.train_cohorts),
                              ("split.external_cohorts", spec.split.external_cohorts)):
            unknown = sorted(set(listed) - known)
            if unknown:
                raise err(where, f"unknown cohorts {unknown} (cohorts in the catalog: {sorted(known)})")

        cohorts = [*spec.split.train_cohorts, *spec.split.external_cohorts]
        cohort_list = ", ".join("'" + c.replace("'", "''") + "'" for c in cohorts)
        where = f"({spec.population})" if spec.population else "TRUE"
        strat_src = "o" if stratify in out_cols else "c"
        clin_sel = "".join(f", c.{_q(c)} AS {_q('clinical__' + c)}" for c in spec.clinical)
        end_sel = "".join(f", o.{_q(c)}" for c in endpoint)
        query = f"""
            SELECT c.cohort_id, c.patient_id, c.event_timestamp AS index_timestamp{end_sel}{clin_sel},
                   CAST({strat_src}.{_q(stratify)} AS VARCHAR) AS _stratum
            FROM (SELECT * FROM clinical WHERE cohort_id IN ({cohort_list}) AND {where}) c
            JOIN outcomes o ON o.cohort_id = c.cohort_id AND o.patient_id = c.patient_id
            ORDER BY c.cohort_id, c.patient_id"""
        try:
            pop = con.sql(query).to_arrow_table()
        except duckdb.Error as exc:
            raise err("population", f"SQL error in {spec.population!r}: {exc}") from exc
        if pop.num_rows != len(set(pop.column("patient_id").to_pylist())):
            raise err("catalog", "a patient has several clinical/outcomes rows")
        counts = {"population": pop.num_rows}
        ok = pc.and_(*[pc.is_valid(pop.column(c)) for c in endpoint]) if len(endpoint) > 1 \
            else pc.is_valid(pop.column(endpoint[0]))
        pop = pop.filter(ok)
        counts["dropped_missing_endpoint"] = counts["population"] - pop.num_rows

        weeks = spec.endpoint.landmark_weeks or 0.0
        shift = pa.scalar(timedelta(weeks=weeks, days=1) - timedelta(microseconds=1), pa.duration("us"))
        idx = pop.column("index_timestamp").cast(TIMESTAMP_TYPE)
        as_of = pc.add(idx, shift).cast(TIMESTAMP_TYPE)
        entity = pa.table({"row_idx": pa.array(np.arange(pop.num_rows, dtype=np.int64)),
                           "patient_id": pop.column("patient_id"), "as_of": as_of})
        snapshots = {v.name: scan_level_snapshot(v, snapshot_dir(settings)) for v in views}
        picks = {v.name: pick_rows(con, entity, snapshots[v.name]) for v in views}
    finally:
        con.close()

    keep = np.ones(pop.num_rows, dtype=bool)
    for v in views:
        counts[f"missing__{v.name}"] = int(pop.num_rows - picks[v.name].num_rows)
        if spec.missing_features == "drop":
            has = np.zeros(pop.num_rows, dtype=bool)
            has[picks[v.name].column("row_idx").to_numpy()] = True
            keep &= has
    counts["dropped_missing_features"] = int((~keep).sum())
    if not keep.all():
        new_idx = np.cumsum(keep) - 1
        for name, p in picks.items():
            old = p.column("row_idx").to_numpy()
            p = p.filter(pa.array(keep[old]))
            picks[name] = p.set_column(0, "row_idx", pa.array(new_idx[p.column("row_idx").to_numpy()]))
        pop = pop.filter(pa.array(keep))
        as_of = as_of.filter(pa.array(keep))

    cohort_arr = np.asarray(pop.column("cohort_id").to_pylist(), dtype=object)
    try:
        labels, by = assign_split(cohort_arr, np.asarray(pop.column("_stratum").to_pylist(), dtype=object),
                                  spec.split)
    except SplitError as exc:
        raise err("split", str(exc)) from exc
    for where, cs in (("split.train_cohorts", spec.split.train_cohorts),
                      ("split.external_cohorts", spec.split.external_cohorts)):
        for c in cs:
            if not (cohort_arr == c).any():
                raise err(where, f"cohort {c!r} has no patients left (population filter, missing "
                          f"endpoint or features: {counts})")
    holdout = spec.split.kind == "holdout" and spec.split.internal_fraction > 0
    for s in ("train", "internal") if holdout else ("train",):
        if not (labels == s).any():
            raise err("split", f"the {s!r} split is empty ({counts})")

    base = pa.table({"cohort_id": pop.column("cohort_id"), "patient_id": pop.column("patient_id"),
                     "split": pa.array(labels.tolist(), pa.string()), "as_of": as_of})
    for c in endpoint:
        base = base.append_column(c, pop.column(c))
    for c in spec.clinical:
        base = base.append_column(f"clinical__{c}", pop.column(f"clinical__{c}"))
    for s in ("train", "internal", "external"):
        counts[s] = int((labels == s).sum())
    return StudyPlan(spec, views, snapshots, base, picks, endpoint, by, counts)


def build_table(plan: StudyPlan) -> pa.Table:
    """The training-set table: keys, endpoint, ``clinical__*``, then each view's features
    (views and features in sorted order) as ``<view>__<feature>``; embeddings as
    ``list<float32>`` (null where a patient has no scan and ``missing_features: keep``)."""
    from radstore.store.pit import gather

    out = plan.entity
    for v in sorted(plan.views, key=lambda t: t.name):
        g = gather(plan.picks[v.name], plan.snapshots[v.name], out.num_rows, v.name)
        for name, col in zip(g.column_names, g.columns, strict=True):
            if pa.types.is_fixed_size_list(col.type):  # pyarrow cannot read null fixed-size lists back
                col = col.cast(pa.list_(col.type.value_type))
            out = out.append_column(name, col)
    return out.replace_schema_metadata(None).combine_chunks()


def write_parquet(table: pa.Table, path: Path) -> None:
    """Fixed writer options (:data:`PARQUET_OPTIONS`; dictionary encoding for string columns
    only, floats gain nothing from it): the same table gives the same bytes."""
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    pq.write_table(table.replace_schema_metadata(None), path, use_dictionary=strings, **PARQUET_OPTIONS)


def _manifest(plan: StudyPlan, table: pa.Table, data_sha: str, settings: Settings,
              file_hashes: dict[str, str]) -> dict[str, Any]:
    root = settings.layout.root
    spec = plan.spec
    inputs = {
        v.name: {"feature_set": v.feature_set, "version": v.version, "phase": v.phase, "kind": v.kind,
                 "files": {str(f.relative_to(root)): file_hashes[str(f)] for f in v.files}}
        for v in sorted(plan.views, key=lambda t: t.name)
    }
    catalog = {str(f.relative_to(root)): file_hashes[str(f)]
               for name in ("clinical", "outcomes") for f in catalog_files(settings.layout, name)}
    features = {v.name: [f"{v.name}__{c}" for c in sorted(v.features)]
                for v in sorted(plan.views, key=lambda t: t.name)}
    body = {
        "study": spec.name,
        "spec": spec.model_dump(mode="json"),
        "as_of_rule": AS_OF_RULE,
        "inputs": {"features": inputs, "catalog": catalog},
        "columns": {"keys": list(KEY_COLUMNS), "endpoint": list(plan.endpoint_columns),
                    "clinical": [f"clinical__{c}" for c in spec.clinical], "features": features},
        "split": {"stratified_by": plan.stratified_by, "seed": spec.split.seed},
        "row_counts": {k: plan.counts[k] for k in ("train", "internal", "external")},
        "counts": dict(sorted(plan.counts.items())),
        "rows": table.num_rows,
        "data_sha256": data_sha,
    }
    body["content_hash"] = sha256_bytes(canonical_json(body).encode())
    return body


def assemble(settings: Settings, study: StudySpec | Path | str,
             studies_dir: Path | str = "studies") -> TrainingSet:
    """Plan, build and write the training set; returns it (re-running gives the same bytes and
    the same directory)."""
    plan = plan_study(settings, study, studies_dir)
    table = build_table(plan)
    out_root = settings.layout.training_sets / plan.spec.name
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = out_root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        write_parquet(table, tmp / "train.parquet")
        data_sha = sha256_files([tmp / "train.parquet"])
        files = [f for v in plan.views for f in v.files] + [
            f for n in ("clinical", "outcomes") for f in catalog_files(settings.layout, n)]
        hashes = file_hashes(settings, files)
        manifest = _manifest(plan, table, data_sha, settings, hashes)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        final = out_root / manifest["content_hash"][:16]
        if final.exists():
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return TrainingSet(final, manifest)
