"""Point-in-time join of feature views onto entity rows (DuckDB for the keys, Arrow for values).

For entity row ``i`` (``patient_id``, ``as_of``) and a view, the chosen row is the scan-level row
(``lesion = 0``) of that patient with the largest ``event_timestamp <= as_of``; ties go to the
largest ``created_timestamp`` (a re-extraction), then to the file/row order — the same rule as
Feast's point-in-time join, so ``get_historical_features`` returns the same values.

The join runs in two steps so that feature values never pass through the SQL engine:
:func:`pick_rows` joins only the key columns and returns ``(row_idx, filename, file_row_number)``;
:func:`gather` reads each chosen file's feature columns once and takes the chosen rows.
"""

from __future__ import annotations

from collections import defaultdict

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from radstore.store.catalog import FeatureTable


def _files_sql(table: FeatureTable) -> str:
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in table.files) + "]"


def pick_rows(con: duckdb.DuckDBPyConnection, entity: pa.Table, table: FeatureTable) -> pa.Table:
    """``entity`` has ``row_idx`` (int64), ``patient_id``, ``as_of`` (timestamp µs UTC). Returns one
    row per matched entity row: ``row_idx, filename, file_row_number, scan_id, event_timestamp``."""
    con.register("_entity", entity)
    try:
        return con.sql(f"""
            WITH f AS (
                SELECT patient_id, scan_id, event_timestamp, created_timestamp, filename,
                       file_row_number
                FROM read_parquet({_files_sql(table)}, filename = true, file_row_number = true,
                                  hive_partitioning = false)
                WHERE lesion = 0),
            j AS (
                SELECT e.row_idx, f.filename, f.file_row_number, f.scan_id, f.event_timestamp,
                       row_number() OVER (PARTITION BY e.row_idx ORDER BY f.event_timestamp DESC,
                           f.created_timestamp DESC, f.filename DESC, f.file_row_number DESC) AS rn
                FROM _entity e JOIN f ON f.patient_id = e.patient_id AND f.event_timestamp <= e.as_of)
            SELECT row_idx, filename, file_row_number, scan_id, event_timestamp
            FROM j WHERE rn = 1 ORDER BY row_idx""").to_arrow_table()
    finally:
        con.unregister("_entity")


def gather(picked: pa.Table, table: FeatureTable, n_rows: int, prefix: str) -> pa.Table:
    """Feature columns of ``table`` aligned to ``n_rows`` entity rows (null where nothing was
    picked), renamed ``<prefix>__<feature>`` and ordered by feature name."""
    cols = sorted(table.features)
    row_idx = picked.column("row_idx").to_numpy()
    by_file: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(picked.column("filename").to_pylist()):
        by_file[f].append(i)
    file_rows = picked.column("file_row_number").to_numpy()
    parts, positions = [], []
    for fname in sorted(by_file):
        sel = np.asarray(by_file[fname])
        parts.append(pq.read_table(fname, columns=cols).take(pa.array(file_rows[sel])))
        positions.append(row_idx[sel])
    if parts:
        values = pa.concat_tables(parts)
        pos = np.concatenate(positions)
    else:
        schema = pa.schema([pa.field(c, table.type_of(c)) for c in cols])
        values, pos = schema.empty_table(), np.empty(0, dtype=np.int64)
    inv = np.full(n_rows, -1, dtype=np.int64)
    inv[pos] = np.arange(len(pos))
    aligned = values.take(pa.array(inv, mask=inv < 0))
    return aligned.rename_columns([f"{prefix}__{c}" for c in cols]).combine_chunks()
