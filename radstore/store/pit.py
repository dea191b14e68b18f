"""Point-in-time join of feature views onto entity rows (DuckDB for the keys, Arrow for values).

For entity row ``i`` (``patient_id``, ``as_of``) and a view, the chosen row is the scan-level row
(``lesion = 0``) of that patient with the largest ``event_timestamp <= as_of``; ties go to the
largest ``created_timestamp`` (a re-extraction), then to the file/row order — the same rule as
Feast's point-in-time join, so ``get_historical_features`` returns the same values.

The join runs in two steps so that feature values never pass through the SQL engine:
:func:`pick_rows` joins only the key columns and returns ``(row_idx, filename, file_row_number)``;
:func:`gather` reads each chosen file's feature columns once and takes the chosen rows.

Both run on a *scan-level snapshot* of the view (:func:`scan_level_snapshot`): its ``lesion = 0``
rows in one file, embeddings stored as ``fixed_size_binary`` (no Parquet list levels to decode,
~5× faster to read than ``list<float32>``), LZ4, no dictionary. A snapshot is a cache: its name
carries a hash of the source parts' paths, sizes and mtimes, so changed sources get a new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from radstore.store.catalog import FeatureTable

SNAPSHOT_OPTIONS = {"compression": "lz4", "use_dictionary": False, "row_group_size": 1 << 20}


def _ident(table: FeatureTable) -> str:
    stats = [(str(f), (st := os.stat(f)).st_size, st.st_mtime_ns) for f in table.files]
    return hashlib.sha256(repr(stats).encode()).hexdigest()[:16]


def _to_binary(col: pa.ChunkedArray) -> pa.Array:
    """fixed_size_list<float32>[d] → fixed_size_binary(4 d), zero-copy on the values buffer."""
    arr = col.combine_chunks()
    d = arr.type.list_size
    flat = arr.values.slice(arr.offset * d, len(arr) * d).to_numpy(zero_copy_only=False)
    validity = None if arr.null_count == 0 else pa.array(arr.is_valid()).buffers()[1]
    return pa.Array.from_buffers(pa.binary(4 * d), len(arr),
                                 [validity, pa.py_buffer(np.ascontiguousarray(flat, dtype=np.float32))])


def _from_binary(arr: pa.Array, typ: pa.DataType) -> pa.Array:
    """fixed_size_binary(4 d) → ``typ`` (fixed_size_list<float32>[d]), zero-copy."""
    d = typ.list_size
    n = len(arr) + arr.offset
    values = pa.Array.from_buffers(pa.float32(), n * d, [None, arr.buffers()[1]])
    return pa.Array.from_buffers(typ, len(arr), [arr.buffers()[0]], offset=arr.offset, children=[values])


def scan_level_snapshot(table: FeatureTable, cache_dir: Path) -> FeatureTable:
    """The view's ``lesion = 0`` rows in one read-optimised file under ``cache_dir`` (written once
    per source state); returns the view pointing at it."""
    path = (cache_dir / table.feature_set / table.version /
            f"phase={table.phase}-{_ident(table)}.parquet")
    if not path.exists():
        parts = []
        for f in table.files:
            t = pq.read_table(f, columns=["patient_id", "scan_id", "lesion", "event_timestamp",
                                          "created_timestamp", *table.features],
                              filters=[("lesion", "=", 0)])
            for i, field in enumerate(t.schema):
                if pa.types.is_fixed_size_list(field.type):
                    t = t.set_column(i, field.name, _to_binary(t.column(i)))
            parts.append(t)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            pq.write_table(pa.concat_tables(parts), tmp, **SNAPSHOT_OPTIONS)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    return dataclasses.replace(table, files=(path,))


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
    aligned = values.take(pa.array(inv, mask=inv < 0)).combine_chunks()
    for i, c in enumerate(cols):
        col = aligned.column(i)
        if pa.types.is_fixed_size_binary(col.type):
            arr = col.chunk(0) if col.num_chunks else pa.array([], col.type)
            aligned = aligned.set_column(i, c, _from_binary(arr, table.type_of(c)))
    return aligned.rename_columns([f"{prefix}__{c}" for c in cols])
