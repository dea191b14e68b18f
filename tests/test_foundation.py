"""Config, ids, Volume, tables and the CLI skeleton."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from radstore import ids
from radstore.config import Settings, load_settings
from radstore.io.tables import TIMESTAMP_TYPE, read_table, write_table
from radstore.volume import Volume


def test_settings_yaml_env_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("seed: 7\nstore: /tmp/a\nray:\n  num_cpus: 2\n")
    s = load_settings(cfg)
    assert s.seed == 7 and s.store == Path("/tmp/a") and s.ray.num_cpus == 2
    monkeypatch.setenv("RADSTORE_SEED", "9")
    assert load_settings(cfg).seed == 9  # env beats the file
    assert load_settings(cfg, store=Path("/tmp/b")).store == Path("/tmp/b")  # flags beat both


def test_settings_reject_unknown_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sede: 7\n")
    with pytest.raises(ValueError, match="sede"):
        load_settings(cfg)


def test_secret_key_file_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RADSTORE_PSEUDONYM_KEY", raising=False)
    s = Settings(pseudonym_key_file=tmp_path / "k" / "key")
    k1 = s.secret_key()
    assert k1 == s.secret_key() and len(k1) == 64
    assert (tmp_path / "k" / "key").stat().st_mode & 0o777 == 0o600


def test_ids_are_keyed_and_stable() -> None:
    a = ids.patient_id("MRN123", b"k1", "h1")
    assert a == ids.patient_id("MRN123", b"k1", "h1") and a.startswith("P") and len(a) == 16
    assert a != ids.patient_id("MRN123", b"k2", "h1")
    assert a != ids.patient_id("MRN123", b"k1", "h2")
    assert "MRN123" not in a
    with pytest.raises(ValueError):
        ids.patient_id(" ", b"k", "h")
    assert ids.settings_version({"b": 1, "a": 2}) == ids.settings_version({"a": 2, "b": 1})
    assert ids.settings_version({"a": 1}) != ids.settings_version({"a": 2})


def test_volume_sitk_roundtrip() -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    v = Volume(arr, (0.5, 0.7, 2.0), (1.0, 2.0, 3.0))
    w = Volume.from_sitk(v.to_sitk())
    assert w.same_grid(v) and (w.array == arr).all() and w.spacing_zyx == (2.0, 0.7, 0.5)
    with pytest.raises(ValueError):
        Volume(arr[0], (1, 1, 1))


def test_tables_write_microsecond_utc(tmp_path: Path) -> None:
    t = pa.table({"t": pa.array([1_700_000_000_000_000_000], pa.timestamp("ns")), "x": [1.0]})
    out = write_table(t, tmp_path / "a" / "t.parquet")
    back = read_table(out)
    assert back.schema.field("t").type == TIMESTAMP_TYPE
    assert back.column("t")[0].value == 1_700_000_000_000_000
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_cli_help_is_fast_and_lists_stages() -> None:
    exe = Path(sys.executable).with_name("radstore")
    t0 = time.perf_counter()
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - t0
    assert "Usage" in out
    assert elapsed < 5.0, f"radstore --help took {elapsed:.2f}s: a command imports something heavy"
