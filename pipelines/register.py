"""``radstore register``: the store's feature tables + catalog → a Feast repo under ``<store>/feast/``.

1. ``feature_store.yaml`` (from ``feature_repo/`` or ``--template``; an existing one is kept, so a
   production config copied there stays) and ``.feastignore``;
2. derived Feast sources under ``feast/data/``: ``<view>.parquet`` = the ``lesion = 0`` rows of
   the latest version of each feature set × phase (+ ``cohort_id``; embeddings as
   ``list<float32>``), ``clinical.parquet`` and ``scans.parquet`` from the catalog;
3. ``FeatureStore.apply`` of the generated objects (:mod:`radstore.store.feast_defs`), deleting
   views and services that are no longer generated;
4. ``FeatureStore.materialize`` over the full event-time range into Feast's online store (all
   views, only the views some feature service reads, or none: ``feast_online``);
5. the packed online table ``feast/online_vectors.db`` (:mod:`radstore.store.online`): the latest
   row per patient of every patient-keyed view, the scoring service's fast path;
6. the assembly's scan-level snapshots (``training_sets/.cache``) are written ahead of use.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from radstore.config import Settings
from radstore.io.tables import write_table
from radstore.progress import track
from radstore.store.catalog import FeatureTable, catalog_files, feature_tables
from radstore.store.pit import scan_level_snapshot

if TYPE_CHECKING:
    from feast.feast_object import FeastObject

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "feature_repo"
SCAN_COLUMNS = ("cohort_id", "scan_id", "patient_id", "phase", "event_timestamp", "created_timestamp",
                "shape_z", "shape_y", "shape_x", "spacing_x", "spacing_y", "spacing_z", "slice_thickness",
                "manufacturer", "kvp")


class RegisterError(ValueError):
    """The store cannot be registered (nothing extracted, bad template, ...)."""


@dataclass(frozen=True)
class RegisterReport:
    repo: Path
    views: dict[str, int]
    services: list[str]
    skipped_studies: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    materialized: tuple[datetime, datetime] | None = None
    feast_materialized: list[str] = field(default_factory=list)
    packed: dict[str, int] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)


FeastOnline = Literal["all", "services", "none"]
FEAST_ONLINE = ("all", "services", "none")


def write_view_source(table: FeatureTable, path: Path) -> pa.Table:
    """The ``lesion = 0`` rows of ``table`` with ``cohort_id``, written to ``path``; returns them."""
    parts = []
    for f in table.files:
        t = pq.read_table(f, columns=["patient_id", "scan_id", "lesion", "event_timestamp",
                                      "created_timestamp", *table.features], filters=[("lesion", "=", 0)])
        t = t.drop_columns(["lesion"])
        cohort = f.parent.name.removeprefix("cohort=")
        parts.append(t.add_column(0, "cohort_id", pa.array([cohort] * t.num_rows, pa.string())))
    out = pa.concat_tables(parts)
    if "embedding" in out.column_names:
        i = out.column_names.index("embedding")
        out = out.set_column(i, "embedding", out.column("embedding").cast(pa.list_(pa.float32())))
    write_table(out, path)
    return out


def _catalog_source(settings: Settings, name: str, path: Path,
                    columns: tuple[str, ...] | None = None) -> pa.Table | None:
    files = catalog_files(settings.layout, name)
    if not files:
        return None
    t = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    if columns:
        t = t.select([c for c in columns if c in t.column_names])
    write_table(t, path)
    return t


def _prepare_repo(repo: Path, template: Path | None) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    target = repo / "feature_store.yaml"
    src = Path(template) if template is not None else TEMPLATE_DIR / "feature_store.yaml"
    if template is not None or not target.exists():
        if not src.is_file():
            raise RegisterError(f"Feast template not found: {src}")
        shutil.copyfile(src, target)
    ignore = TEMPLATE_DIR / ".feastignore"
    if ignore.is_file():
        shutil.copyfile(ignore, repo / ".feastignore")


def _services_views(services: list) -> set[str]:
    return {p.name for s in services for p in s.feature_view_projections}


def register(settings: Settings, *, studies_dir: Path | str = "studies", template: Path | None = None,
             materialize: bool = True, feast_online: FeastOnline = "all") -> RegisterReport:
    """Generate, apply and (by default) materialize the Feast repo of the store.

    ``materialize`` loads the online stores: Feast's (``feast_online``: ``all`` views, only the
    views a feature service reads, or ``none``) and always the packed table
    ``feast/online_vectors.db`` (every patient-keyed view)."""
    from feast import FeatureStore

    from pipelines.assemble import snapshot_dir
    from radstore.store.feast_defs import PATIENT, SCAN, feature_services, feature_view, table_view
    from radstore.store.online import PACKED_FILE, prune_packed_views, write_packed_view
    from radstore.study import StudySpecError, load_study

    if feast_online not in FEAST_ONLINE:
        raise RegisterError(f"feast_online must be one of {FEAST_ONLINE}, not {feast_online!r}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    layout = settings.layout
    tables = feature_tables(layout)
    if not tables:
        raise RegisterError(f"no feature tables under {layout.features} (run `radstore extract` first)")
    repo = layout.feast_repo
    _prepare_repo(repo, template)
    data = repo / "data"
    views, rows, stamps, sources = {}, {}, [], {}
    for t in track(tables, "feast sources", total=len(tables), enabled=settings.progress):
        scan_level_snapshot(t, snapshot_dir(settings))
        src = write_view_source(t, data / f"{t.name}.parquet")
        views[t.name] = feature_view(t, data / f"{t.name}.parquet")
        rows[t.name] = src.num_rows
        sources[t.name] = (src, list(t.features), {"feature_set": t.feature_set, "version": t.version,
                                                   "phase": t.phase, "kind": t.kind})
        ts = src.column("event_timestamp")
        stamps += [pc.min(ts).as_py(), pc.max(ts).as_py()]
    extra = []
    clinical_view = None
    clin = _catalog_source(settings, "clinical", data / "clinical.parquet")
    if clin is not None:
        clinical_view = table_view("clinical", clin.schema, data / "clinical.parquet", PATIENT,
                                   skip=("patient_id", "event_timestamp", "created_timestamp"))
        extra.append(clinical_view)
        rows["clinical"] = clin.num_rows
        sources["clinical"] = (clin, [f.name for f in clinical_view.features], {})
    scans = _catalog_source(settings, "scans", data / "scans.parquet", SCAN_COLUMNS)
    if scans is not None:
        extra.append(table_view("scans", scans.schema, data / "scans.parquet", SCAN,
                                skip=("scan_id", "event_timestamp", "created_timestamp")))
        rows["scans"] = scans.num_rows

    services, skipped = [], {}
    for path in sorted(Path(studies_dir).glob("*.yaml")) if Path(studies_dir).is_dir() else []:
        try:
            services += feature_services(load_study(path), views, clinical_view)
        except (StudySpecError, KeyError) as exc:
            skipped[path.stem] = str(exc).strip("'\"")

    fs = FeatureStore(repo_path=str(repo))
    wanted_views = set(views) | {v.name for v in extra}
    wanted_services = {s.name for s in services}
    stale: list[FeastObject] = [v for v in fs.list_feature_views() if v.name not in wanted_views]
    stale += [s for s in fs.list_feature_services() if s.name not in wanted_services]
    timings["sources_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fs.apply([PATIENT, SCAN, *views.values(), *extra, *services], objects_to_delete=stale, partial=False)
    timings["apply_s"] = time.perf_counter() - t0

    window = None
    feast_views: list[str] = []
    packed: dict[str, int] = {}
    if materialize and stamps:
        window = (min(stamps) - timedelta(seconds=1), max(stamps) + timedelta(seconds=1))
        for tb in (clin, scans):
            if tb is not None:
                window = (min(window[0], pc.min(tb.column("event_timestamp")).as_py() - timedelta(seconds=1)),
                          max(window[1], pc.max(tb.column("event_timestamp")).as_py() + timedelta(seconds=1)))
        feast_views = sorted(wanted_views) if feast_online == "all" else \
            sorted(_services_views(services)) if feast_online == "services" else []
        t0 = time.perf_counter()
        if feast_views:
            # Feast prints each view's name (the report lists them) and, inside its DuckDB/ibis
            # reads, raises a DuckDB deprecation per view that users cannot act on
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated",
                                        category=DeprecationWarning)
                fs.materialize(start_date=window[0], end_date=window[1], feature_views=feast_views)
        timings["feast_materialize_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        prune_packed_views(repo / PACKED_FILE, sources)
        for name, (src, columns, tags) in sources.items():
            packed[name] = write_packed_view(repo / PACKED_FILE, name, src, columns, tags)
        timings["packed_materialize_s"] = time.perf_counter() - t0
    return RegisterReport(repo=repo, views=rows, services=sorted(wanted_services), skipped_studies=skipped,
                          removed=sorted(o.name for o in stale), materialized=window,
                          feast_materialized=feast_views, packed=packed, timings_s=timings)
