"""Online reads of one patient's full feature vector.

Two readers, both returning ``{"<view>__<feature>": value or None}`` — the names and values of
``FeatureStore.get_online_features(..., full_feature_names=True)`` (tested equal), except that
``Array(Float32)`` features come back as ``float32`` arrays instead of lists:

- :class:`PackedOnlineVectors` (the serving fast path): one SQLite row per ``(patient_id, view)``
  in ``<store>/feast/online_vectors.db`` holding the whole lesion-0 feature row of the view as
  one binary record; column names and types are stored once per view. One primary-key range
  scan per lookup, no Feast import. Written by ``radstore register`` next to Feast's own
  materialization (:func:`write_packed_view`).
- :class:`OnlineVectors`: the configured Feast online store's ``online_read`` per view (Feast's
  SQLite layout is one row and one protobuf per feature, so a 2 × 107 + 2 × 2048 vector is ~220
  rows); kept for online stores other than the packed table (Redis in production).

Packed record layout (little-endian), for a view with columns ``c_1..c_n`` (header order):
``valid[n]`` (one byte per column, 0 = null) · the fixed-width columns packed back to back
(``struct`` codes ``d f q i ?``; timestamps as int64 Unix seconds) · for each variable-width
column a ``uint32`` byte length then its bytes (UTF-8 string, or float32 array).
Nulls follow Feast's materialization: a null or NaN scalar is null; array elements are kept.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from feast import FeatureStore

PACKED_FILE = "online_vectors.db"
MMAP_BYTES = 1 << 30
FORMAT = 1
_FIXED = {"float64": "d", "float32": "f", "int64": "q", "int32": "i", "bool": "?", "timestamp": "q"}
_NUMPY = {"float64": "<f8", "float32": "<f4", "int64": "<i8", "int32": "<i4", "bool": "u1",
          "timestamp": "<i8"}
_VARIABLE = ("string", "float32_list")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS packed_views (
    view TEXT PRIMARY KEY, layout TEXT NOT NULL, header TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packed_vectors (
    patient_id TEXT NOT NULL, view TEXT NOT NULL, layout TEXT NOT NULL,
    event_ts INTEGER NOT NULL, created_ts INTEGER, data BLOB NOT NULL,
    PRIMARY KEY (patient_id, view));
"""


class PackedStoreError(ValueError):
    """The packed online table cannot be written or read as asked."""


def packed_type(t: pa.DataType) -> str | None:
    """Arrow type → packed column type (the types :func:`feast_defs.feast_type` serves)."""
    if pa.types.is_float64(t):
        return "float64"
    if pa.types.is_float32(t):
        return "float32"
    if pa.types.is_integer(t):
        return "int32" if t.bit_width <= 32 and pa.types.is_signed_integer(t) else "int64"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if (pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t)) \
            and pa.types.is_float32(t.value_type):
        return "float32_list"
    return None


@dataclass(frozen=True)
class Layout:
    """A view's packed columns ``[(name, type)]``; ``key`` identifies it in each row."""

    view: str
    columns: tuple[tuple[str, str], ...]
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def header(self) -> str:
        return json.dumps({"format": FORMAT, "view": self.view, "columns": [list(c) for c in self.columns],
                           "tags": dict(self.tags)}, sort_keys=True)

    @property
    def key(self) -> str:
        return hashlib.sha256(self.header.encode()).hexdigest()[:16]

    @classmethod
    def from_header(cls, header: str) -> Layout:
        h = json.loads(header)
        if h.get("format") != FORMAT:
            raise PackedStoreError(f"packed view {h.get('view')}: format {h.get('format')} != {FORMAT}")
        return cls(view=h["view"], columns=tuple((n, t) for n, t in h["columns"]),
                   tags=tuple(sorted(h.get("tags", {}).items())))


# --- pure kernels: Arrow rows → records, record → values -------------------------------------

def latest_rows(table: pa.Table) -> pa.Table:
    """One row per ``patient_id``: the largest ``event_timestamp``, ties broken by the largest
    ``created_timestamp`` (Feast's materialization rule)."""
    keys = [("patient_id", "ascending", "at_end"), ("event_timestamp", "descending", "at_end")]
    if "created_timestamp" in table.column_names:
        keys.append(("created_timestamp", "descending", "at_end"))
    t = table.take(pc.sort_indices(table, sort_keys=keys))
    pid = t.column("patient_id").to_numpy(zero_copy_only=False)
    first = np.ones(len(pid), dtype=bool)
    first[1:] = pid[1:] != pid[:-1]
    return t.filter(pa.array(first))


def _valid(col: pa.ChunkedArray, kind: str) -> np.ndarray:
    ok = pc.is_valid(col)
    if kind in ("float64", "float32"):
        ok = pc.and_(ok, pc.invert(pc.fill_null(pc.is_nan(col), True)))
    return ok.to_numpy(zero_copy_only=False).astype(np.uint8)


def _fixed_values(col: pa.ChunkedArray, kind: str) -> np.ndarray:
    if kind == "timestamp":
        us = pc.cast(col.cast(pa.timestamp("us", tz="UTC")), pa.int64()).fill_null(0).to_numpy()
        return np.sign(us) * (np.abs(us) // 1_000_000)  # Feast: int(datetime.timestamp())
    if kind == "bool":
        return col.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8)
    filled = col.fill_null(0) if col.null_count else col
    return filled.to_numpy(zero_copy_only=False).astype(_NUMPY[kind])


def encode_records(table: pa.Table, layout: Layout) -> list[bytes]:
    """One packed record per row of ``table`` (columns as in ``layout``; see the module doc)."""
    n, rows = len(layout.columns), table.num_rows
    valid = np.empty((rows, n), dtype=np.uint8)
    fixed = [(name, kind) for name, kind in layout.columns if kind in _FIXED]
    rec = np.zeros(rows, dtype=np.dtype([(f"c{i}", _NUMPY[k]) for i, (_, k) in enumerate(fixed)]))
    for i, (name, kind) in enumerate(layout.columns):
        valid[:, i] = _valid(table.column(name), kind)
    for i, (name, kind) in enumerate(fixed):
        rec[f"c{i}"] = _fixed_values(table.column(name), kind)
    head = np.hstack([valid, rec.view(np.uint8).reshape(rows, rec.dtype.itemsize)]) if fixed else valid
    variable = []
    for name, kind in layout.columns:
        if kind == "string":
            variable.append([b"" if s is None else s.encode() for s in table.column(name).to_pylist()])
        elif kind == "float32_list":
            arr = table.column(name).combine_chunks()
            if pa.types.is_fixed_size_list(arr.type):
                arr = arr.cast(pa.list_(pa.float32()))
            offsets = arr.offsets.to_numpy()
            values = arr.values.to_numpy(zero_copy_only=False).astype("<f4", copy=False)
            variable.append([values[offsets[r]:offsets[r + 1]].tobytes() for r in range(rows)])
    out = []
    for r in range(rows):
        parts = [head[r].tobytes()]
        for col in variable:
            parts += [struct.pack("<I", len(col[r])), col[r]]
        out.append(b"".join(parts))
    return out


class RecordDecoder:
    """``decoder(blob) -> {"<view>__<name>": value}`` for one :class:`Layout`."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.names = [f"{layout.view}__{name}" for name, _ in layout.columns]
        self._n = len(layout.columns)
        kinds = [k for _, k in layout.columns]
        unknown = sorted({k for k in kinds if k not in _FIXED and k not in _VARIABLE})
        if unknown:
            raise PackedStoreError(f"packed view {layout.view}: unknown column types {unknown}")
        self._fixed_idx = [i for i, k in enumerate(kinds) if k in _FIXED]
        self._ts_idx = [i for i, k in enumerate(kinds) if k == "timestamp"]
        self._var = [(i, k) for i, k in enumerate(kinds) if k in _VARIABLE]
        self._struct = struct.Struct("<" + "".join(_FIXED[kinds[i]] for i in self._fixed_idx))

    def __call__(self, blob: bytes) -> dict[str, Any]:
        n = self._n
        values: list[Any] = [None] * n
        for i, v in zip(self._fixed_idx, self._struct.unpack_from(blob, n), strict=True):
            values[i] = v
        for i in self._ts_idx:
            values[i] = datetime.fromtimestamp(values[i], tz=UTC)
        pos = n + self._struct.size
        for i, kind in self._var:
            (size,) = struct.unpack_from("<I", blob, pos)
            pos += 4
            if kind == "string":
                values[i] = blob[pos:pos + size].decode()
            else:
                values[i] = np.frombuffer(blob, dtype="<f4", count=size // 4, offset=pos).copy()
            pos += size
        return {name: (v if blob[i] else None)
                for i, (name, v) in enumerate(zip(self.names, values, strict=True))}

    def nulls(self) -> dict[str, None]:
        return dict.fromkeys(self.names)


# --- I/O: the SQLite file ---------------------------------------------------------------------

def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only = 1")
        conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")  # page reads without a read() per page
    else:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
    return conn


def _us(col: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(col.cast(pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy(zero_copy_only=False)


def write_packed_view(path: Path | str, view: str, table: pa.Table, columns: Sequence[str],
                      tags: dict[str, str] | None = None) -> int:
    """Materialize ``view`` into the packed table at ``path``; returns the rows written.

    ``table`` holds ``patient_id, event_timestamp[, created_timestamp]`` and ``columns``. Per
    patient the latest row (:func:`latest_rows`) is written unless the stored row is as new or
    newer (same layout): re-running is a no-op, new scans replace older ones. A changed layout
    (columns, types or tags, e.g. a new feature-set version) replaces all rows of the view.
    """
    kinds = [(c, packed_type(table.schema.field(c).type)) for c in columns]
    bad = [c for c, k in kinds if k is None]
    if bad:
        raise PackedStoreError(f"packed view {view}: columns {bad} have types the packed table cannot hold")
    layout = Layout(view=view, columns=tuple((c, k) for c, k in kinds if k is not None),
                    tags=tuple(sorted((tags or {}).items())))
    latest = latest_rows(table)
    ev = _us(latest.column("event_timestamp"))
    has_created = "created_timestamp" in latest.column_names
    cr = _us(latest.column("created_timestamp").fill_null(pa.scalar(0, pa.timestamp("us", tz="UTC")))) \
        if has_created else np.zeros(latest.num_rows, dtype=np.int64)
    pids = latest.column("patient_id").to_pylist()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(Path(path))
    try:
        conn.execute("BEGIN IMMEDIATE")
        stored = conn.execute("SELECT layout FROM packed_views WHERE view = ?", (view,)).fetchone()
        if stored is None or stored[0] != layout.key:
            conn.execute("DELETE FROM packed_vectors WHERE view = ?", (view,))
            conn.execute("INSERT OR REPLACE INTO packed_views VALUES (?, ?, ?)",
                         (view, layout.key, layout.header))
            have: dict[str, tuple[int, int]] = {}
        else:
            have = {p: (e, c or 0) for p, e, c in conn.execute(
                "SELECT patient_id, event_ts, created_ts FROM packed_vectors WHERE view = ?", (view,))}
        keep = np.array([(p not in have) or (int(e), int(c)) > have[p]
                         for p, e, c in zip(pids, ev, cr, strict=True)], dtype=bool)
        idx = np.flatnonzero(keep)
        blobs = encode_records(latest.take(pa.array(idx, pa.int64())), layout) if len(idx) else []
        conn.executemany(
            "INSERT INTO packed_vectors VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(patient_id, view) DO UPDATE SET layout = excluded.layout, "
            "event_ts = excluded.event_ts, created_ts = excluded.created_ts, "
            "data = excluded.data",
            ((pids[r], view, layout.key, int(ev[r]), int(cr[r]) if has_created else None, b)
             for r, b in zip(idx, blobs, strict=True)))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return len(idx)


def prune_packed_views(path: Path | str, keep: Iterable[str]) -> list[str]:
    """Delete the views not in ``keep`` (and their rows) from the packed table; returns them."""
    if not Path(path).is_file():
        return []
    keep = set(keep)
    conn = _connect(Path(path))
    try:
        stale = [v for (v,) in conn.execute("SELECT view FROM packed_views") if v not in keep]
        with conn:
            for v in stale:
                conn.execute("DELETE FROM packed_vectors WHERE view = ?", (v,))
                conn.execute("DELETE FROM packed_views WHERE view = ?", (v,))
    finally:
        conn.close()
    return sorted(stale)


def packed_views(path: Path | str) -> list[str]:
    """The views held by the packed table at ``path`` (sorted)."""
    conn = _connect(Path(path), readonly=True)
    try:
        return sorted(v for (v,) in conn.execute("SELECT view FROM packed_views"))
    finally:
        conn.close()


class PackedOnlineVectors:
    """``reader(patient_id) -> {"<view>__<feature>": value or None}`` over ``views`` (all views
    of the table when None) from the packed table at ``path``; an unknown patient gets all
    ``None``. Thread-safe (one read-only connection per thread); a view re-materialized with a
    new layout is picked up on the next read."""

    def __init__(self, path: Path | str, views: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise PackedStoreError(f"no packed online table at {self.path} (run `radstore register`)")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._decoders: dict[str, RecordDecoder] = {}
        self._load_layouts()
        self.views = list(views) if views is not None else sorted(self._decoders)
        missing = [v for v in self.views if v not in self._decoders]
        if missing:
            raise KeyError(f"views {missing} are not in the packed online table {self.path}")
        marks = ",".join("?" * len(self.views))
        self._sql = ("SELECT view, layout, data FROM packed_vectors "
                     f"WHERE patient_id = ? AND view IN ({marks})")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path, readonly=True)
        return conn

    def _load_layouts(self) -> None:
        with self._lock:
            self._decoders = {v: RecordDecoder(Layout.from_header(h)) for v, h in
                              self._conn().execute("SELECT view, header FROM packed_views")}
            self._keys = {v: d.layout.key for v, d in self._decoders.items()}

    @property
    def names(self) -> list[str]:
        """The ``<view>__<feature>`` names a lookup returns, in view then column order."""
        return [n for v in self.views for n in self._decoders[v].names]

    def __call__(self, patient_id: str) -> dict[str, Any]:
        rows = {v: (k, d) for v, k, d in self._conn().execute(self._sql, (patient_id, *self.views))}
        if any(k != self._keys.get(v) for v, (k, _) in rows.items()):
            self._load_layouts()
        out: dict[str, Any] = {}
        for v in self.views:
            dec = self._decoders[v]
            out.update(dec(rows[v][1]) if v in rows else dec.nulls())
        return out

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class OnlineVectors:
    """``reader(patient_id) -> {"<view>__<feature>": value or None}`` over ``views`` through
    the Feast online store's ``online_read`` (one call per view, pre-serialised entity key)."""

    def __init__(self, fs: FeatureStore, views: list[str]) -> None:
        from feast.infra.online_stores.helpers import get_online_store_from_config
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import feast_value_type_to_python_type

        self._entity_key, self._value, self._to_python = EntityKey, Value, feast_value_type_to_python_type
        self._config = fs.config
        self._store = get_online_store_from_config(fs.config.online_store)
        self._views = [fs.get_feature_view(v) for v in views]
        self._names = {v.name: [f.name for f in v.features] for v in self._views}

    def __call__(self, patient_id: str) -> dict[str, Any]:
        key = self._entity_key(join_keys=["patient_id"], entity_values=[self._value(string_val=patient_id)])
        out: dict[str, Any] = {}
        for view in self._views:
            _, values = self._store.online_read(self._config, view, [key], self._names[view.name])[0]
            for name in self._names[view.name]:
                v = None if values is None else values.get(name)
                if v is None:
                    out[f"{view.name}__{name}"] = None
                elif v.WhichOneof("val") == "float_list_val":
                    out[f"{view.name}__{name}"] = np.asarray(v.float_list_val.val, dtype=np.float32)
                else:
                    out[f"{view.name}__{name}"] = self._to_python(v)
        return out
