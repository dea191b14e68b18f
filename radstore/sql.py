"""SQL over the offline store (DuckDB): ``radstore.sql("SELECT ...") -> pyarrow.Table``.

Views (created at connect time over the store's Parquet files; nothing is copied):

- ``<feature_set>__<phase>``: the scan-level rows (``lesion = 0``) of the latest version (or the
  pinned one) with ``cohort_id, patient_id, scan_id, event_timestamp, created_timestamp`` + the
  feature columns (radiomics: one float column per feature; deep: ``embedding``);
- ``<feature_set>__<phase>_lesions``: every row, with ``lesion``;
- ``<deep view>_long``: the embedding unnested to ``(cohort_id, patient_id, scan_id,
  event_timestamp, idx, value)``, ``idx`` 0-based;
- ``scans``, ``rejections``, ``clinical``, ``outcomes``: the catalog tables (all cohorts).

This module is callable: ``radstore.sql(query)`` is :func:`sql` (the package exports it lazily).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radstore.store.catalog import CATALOG_TABLES, FeatureTable, catalog_files, feature_tables

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

    from radstore.config import Settings


class SqlError(ValueError):
    """A query that DuckDB rejected; the message lists the views that exist."""


def _files_sql(files: list[Path] | tuple[Path, ...]) -> str:
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def feature_view_sql(table: FeatureTable, *, lesions: bool = False) -> str:
    """SELECT over one view's parts; ``lesions=False`` keeps only ``lesion = 0``."""
    cols = ", ".join(_ident(c) for c in table.features)
    lesion = "lesion, " if lesions else ""
    where = "" if lesions else " WHERE lesion = 0"
    return (f"SELECT cohort AS cohort_id, patient_id, scan_id, {lesion}event_timestamp, "
            f"created_timestamp, {cols} FROM read_parquet({_files_sql(table.files)}, "
            f"hive_partitioning = true){where}")


def _resolve_settings(store: Path | str | None, settings: Settings | None) -> Settings:
    from radstore.config import load_settings

    if settings is not None:
        return settings
    return load_settings(store=Path(store) if store is not None else None)


def connect(store: Path | str | None = None, *, settings: Settings | None = None,
            versions: dict[str, str] | None = None, features: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views above. ``versions`` pins feature sets;
    ``features=False`` creates only the catalog views."""
    import duckdb

    settings = _resolve_settings(store, settings)
    layout = settings.layout
    con = duckdb.connect()
    for t in feature_tables(layout, versions) if features else []:
        con.execute(f"CREATE VIEW {_ident(t.name)} AS {feature_view_sql(t)}")
        con.execute(f"CREATE VIEW {_ident(t.name + '_lesions')} AS {feature_view_sql(t, lesions=True)}")
        if t.kind == "deep":
            con.execute(
                f"CREATE VIEW {_ident(t.name + '_long')} AS SELECT cohort_id, patient_id, scan_id, "
                f"event_timestamp, CAST(generate_subscripts(embedding, 1) - 1 AS INTEGER) AS idx, "
                f"unnest(embedding) AS value FROM {_ident(t.name)}")
    for name in CATALOG_TABLES:
        files = catalog_files(layout, name)
        if files:
            con.execute(f"CREATE VIEW {_ident(name)} AS SELECT * FROM read_parquet("
                        f"{_files_sql(files)}, union_by_name = true, hive_partitioning = false)")
    return con


def view_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name").fetchall()]


def query(con: duckdb.DuckDBPyConnection, text: str) -> pa.Table:
    """Run ``text`` on ``con``; DuckDB errors become :class:`SqlError` naming the known views."""
    import duckdb
    import pyarrow as pa

    from radstore.io.tables import normalise_timestamps

    try:
        rel = con.sql(text)
        table = rel.to_arrow_table() if rel is not None else pa.table({})
    except duckdb.Error as exc:
        raise SqlError(f"{exc}\n(views: {', '.join(view_names(con)) or 'none — empty store?'})") from exc
    return normalise_timestamps(table)


def sql(text: str, *, store: Path | str | None = None, settings: Settings | None = None,
        versions: dict[str, str] | None = None) -> pa.Table:
    """Run one query against the store's views and return an Arrow table."""
    con = connect(store, settings=settings, versions=versions)
    try:
        return query(con, text)
    finally:
        con.close()


def sql_df(text: str, **kwargs: Any) -> pd.DataFrame:
    """:func:`sql` as a pandas DataFrame."""
    return sql(text, **kwargs).to_pandas()


class _CallableModule(types.ModuleType):
    def __call__(self, text: str, **kwargs: Any) -> pa.Table:
        return sql(text, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
