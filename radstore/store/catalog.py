"""Discovery of feature tables and catalog tables under a store (contracts in
docs/architecture.md, "Feature sets and tables" and "Catalog").

A *view* is one feature set × version × phase: its Parquet parts under
``features/<set>/<version>/phase=<phase>/cohort=*/part-*.parquet``. Only metadata (schemas and
row-group statistics) is read here, never feature values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from radstore.config import PHASES, StoreLayout

KEY_COLUMNS = ("patient_id", "scan_id", "lesion", "event_timestamp", "created_timestamp")
CATALOG_TABLES = ("scans", "rejections", "clinical", "outcomes")


class StoreError(ValueError):
    """The store does not hold what was asked for; the message names the path and the rule."""


@dataclass(frozen=True)
class FeatureTable:
    """One feature set × version × phase. ``features`` are the value columns in file order;
    ``kind`` is ``deep`` when the table has an ``embedding`` column, else ``radiomics``."""

    feature_set: str
    version: str
    phase: str
    kind: str
    features: tuple[str, ...]
    types: tuple[pa.DataType, ...]
    files: tuple[Path, ...]

    @property
    def name(self) -> str:
        """The Feast feature view / SQL view name ``<feature_set>__<phase>``."""
        return f"{self.feature_set}__{self.phase}"

    @property
    def cohorts(self) -> tuple[str, ...]:
        return tuple(sorted({f.parent.name.removeprefix("cohort=") for f in self.files}))

    def type_of(self, feature: str) -> pa.DataType:
        return self.types[self.features.index(feature)]


def feature_set_versions(layout: StoreLayout, feature_set: str) -> list[str]:
    """Versions of ``feature_set`` that hold at least one Parquet part, sorted."""
    base = layout.features / feature_set
    if not base.is_dir():
        known = ", ".join(list_feature_sets(layout)) or "none"
        raise StoreError(f"unknown feature set {feature_set!r}: no {base} (feature sets in the store: "
                         f"{known})")
    return sorted(v.name for v in base.iterdir()
                  if v.is_dir() and not v.name.startswith(".") and any(v.glob("phase=*/cohort=*/*.parquet")))


def list_feature_sets(layout: StoreLayout) -> list[str]:
    if not layout.features.is_dir():
        return []
    return sorted(p.name for p in layout.features.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and any(p.glob("*/phase=*/cohort=*/*.parquet")))


def _max_created(path: Path) -> int:
    """Largest ``created_timestamp`` in a part, from row-group statistics (µs since epoch)."""
    md = pq.ParquetFile(path).metadata
    col = md.schema.to_arrow_schema().get_field_index("created_timestamp")
    best = 0
    for rg in range(md.num_row_groups):
        st = md.row_group(rg).column(col).statistics
        if st is not None and st.has_min_max:
            mx = st.max
            best = max(best, int(mx.timestamp() * 1_000_000) if hasattr(mx, "timestamp") else int(mx))
        else:
            t = pq.read_table(path, columns=["created_timestamp"]).column(0)
            return int(pc.max(t).cast(pa.int64()).as_py() or 0)
    return best


def latest_version(layout: StoreLayout, feature_set: str) -> str:
    """The version whose data was extracted last (largest ``created_timestamp``; ties: the
    larger version string). Deterministic for a given store content."""
    versions = feature_set_versions(layout, feature_set)
    if not versions:
        raise StoreError(f"feature set {feature_set!r} has no extracted version under "
                         f"{layout.features / feature_set}")
    stamps = {v: max(_max_created(p) for p in (layout.features / feature_set / v).glob(
        "phase=*/cohort=*/*.parquet")) for v in versions}
    return max(versions, key=lambda v: (stamps[v], v))


def feature_table(layout: StoreLayout, feature_set: str, phase: str,
                  version: str | None = None) -> FeatureTable:
    """Resolve one view; checks that every part has the same schema and the contract's keys."""
    if phase not in PHASES:
        raise StoreError(f"unknown phase {phase!r} (phases: {', '.join(PHASES)})")
    versions = feature_set_versions(layout, feature_set)
    if version is None:
        version = latest_version(layout, feature_set)
    elif version not in versions:
        raise StoreError(f"feature set {feature_set!r} has no version {version!r} "
                         f"(versions: {', '.join(versions) or 'none'})")
    vdir = layout.features / feature_set / version
    files = tuple(sorted(vdir.glob(f"phase={phase}/cohort=*/*.parquet")))
    if not files:
        have = sorted(p.name.removeprefix("phase=") for p in vdir.glob("phase=*"))
        raise StoreError(f"feature set {feature_set!r} version {version} has no phase {phase!r} "
                         f"(phases: {', '.join(have) or 'none'})")
    schema = pq.read_schema(files[0])
    for f in files[1:]:
        other = pq.read_schema(f)
        if not other.remove_metadata().equals(schema.remove_metadata()):
            raise StoreError(f"{f}: schema differs from {files[0]} (all parts of a view must match)")
    missing = [k for k in KEY_COLUMNS if k not in schema.names]
    if missing:
        raise StoreError(f"{files[0]}: missing key columns {missing} (contract: {list(KEY_COLUMNS)})")
    if "embedding" in schema.names:
        t = schema.field("embedding").type
        if not (pa.types.is_fixed_size_list(t) and t.value_type == pa.float32()):
            raise StoreError(f"{files[0]}: 'embedding' must be fixed_size_list<float32>, got {t}")
        kind, feats = "deep", ["embedding"]
    else:
        kind = "radiomics"
        feats = [f.name for f in schema if f.name not in KEY_COLUMNS and pa.types.is_floating(f.type)]
        if not feats:
            raise StoreError(f"{files[0]}: no float feature columns")
    return FeatureTable(feature_set, version, phase, kind, tuple(feats),
                        tuple(schema.field(n).type for n in feats), files)


def feature_tables(layout: StoreLayout, versions: dict[str, str] | None = None) -> list[FeatureTable]:
    """Every feature set × phase in the store, at ``versions[set]`` or the latest version."""
    out: list[FeatureTable] = []
    for fs in list_feature_sets(layout):
        v = (versions or {}).get(fs) or latest_version(layout, fs)
        phases = sorted(p.name.removeprefix("phase=") for p in (layout.features / fs / v).glob("phase=*")
                        if any(p.glob("cohort=*/*.parquet")))
        out.extend(feature_table(layout, fs, ph, v) for ph in phases if ph in PHASES)
    return out


def catalog_files(layout: StoreLayout, name: str) -> list[Path]:
    """``catalog/<name>/cohort=*/part-0.parquet`` files, sorted (empty when not ingested yet)."""
    if name not in CATALOG_TABLES:
        raise StoreError(f"unknown catalog table {name!r} (tables: {', '.join(CATALOG_TABLES)})")
    return sorted((layout.catalog / name).glob("cohort=*/*.parquet"))
