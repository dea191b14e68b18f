"""Packed online vector table: record codec, latest-row rule, incremental/idempotent
materialization, layout changes, unknown patients and views (no Feast here; equality with
Feast's ``get_online_features`` is in test_feast.py)."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from radstore.store.online import (
    Layout,
    PackedOnlineVectors,
    PackedStoreError,
    RecordDecoder,
    encode_records,
    latest_rows,
    packed_views,
    prune_packed_views,
    write_packed_view,
)

T0 = datetime(2020, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def mixed_table() -> pa.Table:
    return pa.table({
        "patient_id": ["a", "b", "c"],
        "event_timestamp": pa.array([T0] * 3, TS),
        "f64": pa.array([1.5, None, math.nan]),
        "f32": pa.array([0.1, 2.0, None], pa.float32()),
        "i64": pa.array([7, None, -3], pa.int64()),
        "i32": pa.array([1, 2, 3], pa.int32()),
        "flag": pa.array([True, False, None]),
        "name": pa.array(["G1", None, "ü"]),
        "when": pa.array([T0, None, datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)], TS),
        "emb": pa.array([[1.0, math.nan], None, []], pa.list_(pa.float32())),
    })


def test_codec_round_trip_with_feast_null_rules() -> None:
    t = mixed_table()
    cols = [c for c in t.column_names if c not in ("patient_id", "event_timestamp")]
    types = ["float64", "float32", "int64", "int32", "bool", "string", "timestamp", "float32_list"]
    layout = Layout("v", tuple(zip(cols, types, strict=True)))
    dec = RecordDecoder(layout)
    a, b, c = (dec(r) for r in encode_records(t, layout))
    assert a["v__f64"] == 1.5 and a["v__f32"] == float(np.float32(0.1)) and a["v__i64"] == 7
    assert a["v__flag"] is True and a["v__name"] == "G1" and a["v__i32"] == 1
    assert a["v__when"] == T0.replace(microsecond=0)  # Feast keeps whole Unix seconds
    np.testing.assert_array_equal(a["v__emb"], np.array([1.0, np.nan], np.float32))
    assert a["v__emb"].dtype == np.float32 and a["v__emb"].flags.writeable
    assert [b[k] for k in ("v__f64", "v__i64", "v__name", "v__when", "v__emb")] == [None] * 5
    assert b["v__flag"] is False and b["v__f32"] == 2.0
    assert c["v__f64"] is None  # NaN scalar → null, as Feast materializes it
    assert c["v__f32"] is None and c["v__flag"] is None and c["v__name"] == "ü"
    assert c["v__when"] == datetime(1970, 1, 1, tzinfo=UTC)  # int(timestamp()) truncates toward 0
    assert c["v__emb"].shape == (0,)
    assert list(a) == [f"v__{n}" for n in cols]


def test_latest_rows_event_then_created() -> None:
    t = pa.table({
        "patient_id": ["p", "p", "p", "q"],
        "event_timestamp": pa.array([T0, T0 + timedelta(days=1), T0 + timedelta(days=1), T0], TS),
        "created_timestamp": pa.array([T0 + timedelta(days=9), T0, T0 + timedelta(hours=1), T0], TS),
        "x": [1.0, 2.0, 3.0, 4.0],
    })
    out = latest_rows(t)
    assert out.column("patient_id").to_pylist() == ["p", "q"]
    assert out.column("x").to_pylist() == [3.0, 4.0]


def rows(pids: list[str], days: list[int], values: list[float], created: int = 0) -> pa.Table:
    return pa.table({
        "patient_id": pids,
        "event_timestamp": pa.array([T0 + timedelta(days=d) for d in days], TS),
        "created_timestamp": pa.array([T0 + timedelta(days=created)] * len(pids), TS),
        "x": values, "y": pa.array([[v, v] for v in values], pa.list_(pa.float32())),
    })


def test_materialization_is_incremental_and_latest_wins(tmp_path: Path) -> None:
    db = tmp_path / "online_vectors.db"
    assert write_packed_view(db, "v", rows(["a", "b"], [0, 0], [1.0, 2.0]), ["x", "y"]) == 2
    assert write_packed_view(db, "v", rows(["a", "b"], [0, 0], [1.0, 2.0]), ["x", "y"]) == 0
    reader = PackedOnlineVectors(db, ["v"])
    assert reader("a")["v__x"] == 1.0
    # a newer scan for a, an older one for b, a new patient c: only a and c are written
    assert write_packed_view(db, "v", rows(["a", "b", "c"], [5, -5, 0], [10.0, 20.0, 30.0]), ["x", "y"]) == 2
    assert [reader(p)["v__x"] for p in "abc"] == [10.0, 2.0, 30.0]
    np.testing.assert_array_equal(reader("a")["v__y"], np.array([10.0, 10.0], np.float32))
    # same event time, later created_timestamp (re-extraction) replaces
    assert write_packed_view(db, "v", rows(["b"], [0], [22.0], created=1), ["x", "y"]) == 1
    assert reader("b")["v__x"] == 22.0
    assert reader("nobody") == {"v__x": None, "v__y": None}


def test_layout_change_replaces_view_and_reader_follows(tmp_path: Path) -> None:
    db = tmp_path / "online_vectors.db"
    write_packed_view(db, "v", rows(["a", "b"], [0, 0], [1.0, 2.0]), ["x", "y"], {"version": "v1"})
    write_packed_view(db, "w", rows(["a"], [0], [5.0]), ["x"])
    reader = PackedOnlineVectors(db)
    assert reader.views == ["v", "w"] and reader.names == ["v__x", "v__y", "w__x"]
    assert reader("b")["v__y"] is not None
    # a new version with fewer patients and one column: old rows must not survive
    assert write_packed_view(db, "v", rows(["a"], [-9], [7.0]), ["x"], {"version": "v2"}) == 1
    assert reader("a") == {"v__x": 7.0, "w__x": 5.0}
    assert reader("b") == {"v__x": None, "w__x": None}
    assert prune_packed_views(db, ["v"]) == ["w"] and packed_views(db) == ["v"]
    with pytest.raises(KeyError, match="'w'"):
        PackedOnlineVectors(db, ["v", "w"])


def test_reader_threads_and_errors(tmp_path: Path) -> None:
    db = tmp_path / "online_vectors.db"
    with pytest.raises(PackedStoreError, match="no packed online table"):
        PackedOnlineVectors(db)
    pids = [f"p{i}" for i in range(50)]
    write_packed_view(db, "v", rows(pids, [0] * 50, [float(i) for i in range(50)]), ["x", "y"])
    reader = PackedOnlineVectors(db, ["v"])
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: reader(p)["v__x"], pids * 4))
    assert got == [float(i) for i in range(50)] * 4
    bad = pa.table({"patient_id": ["a"], "event_timestamp": pa.array([T0], TS),
                    "m": pa.array([{"k": 1}])})
    with pytest.raises(PackedStoreError, match=r"columns \['m'\]"):
        write_packed_view(db, "bad", bad, ["m"])
