"""Parquet read/write (pyarrow). Timestamps are always ``timestamp[us, tz=UTC]``.

Feast's DuckDB offline store fails on nanosecond timestamps and DuckDB refuses to compare ns with
µs in joins, so every table written through here is normalised to microseconds.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


def normalise_timestamps(table: pa.Table) -> pa.Table:
    """Cast every timestamp column to µs UTC (naive timestamps are taken as UTC)."""
    fields = []
    for f in table.schema:
        if pa.types.is_timestamp(f.type) and f.type != TIMESTAMP_TYPE:
            col = table.column(f.name)
            if f.type.tz is None:
                col = col.cast(pa.timestamp(f.type.unit)).cast(pa.timestamp(f.type.unit, tz="UTC"))
            fields.append((f.name, col.cast(TIMESTAMP_TYPE, safe=False)))
    for name, col in fields:
        table = table.set_column(table.schema.get_field_index(name), name, col)
    return table


def to_arrow(data: Any) -> pa.Table:
    """pandas DataFrame, list of dicts, dict of columns or Arrow table → Arrow table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, list):
        return pa.Table.from_pylist(data)
    if isinstance(data, dict):
        return pa.Table.from_pydict(data)
    return pa.Table.from_pandas(data, preserve_index=False)


def write_table(data: Any, path: Path | str, *, compression: str = "zstd") -> Path:
    """Write atomically (temp file in the same directory, then rename): readers never see half
    a file. Returns the final path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = normalise_timestamps(to_arrow(data))
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression=compression)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_table(path: Path | str, **kwargs: Any) -> pa.Table:
    """Read a Parquet file or a hive-partitioned directory."""
    return pq.read_table(path, **kwargs)
