"""Zarr v3 scan groups: round trip, ROI reads, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radstore.io import zarr_store as zs
from radstore.volume import Volume


def _scan() -> tuple[Volume, np.ndarray]:
    rng = np.random.default_rng(0)
    img = rng.integers(-1000, 1000, (20, 64, 70)).astype(np.int16)
    m = np.zeros(img.shape, np.uint8)
    m[5:9, 10:20, 30:41] = 1
    m[15:16, 2:4, 2:3] = 2
    return Volume(img, (0.7, 0.7, 2.5), (-10.0, 5.0, 100.0)), m


def test_roundtrip_and_roi(tmp_path: Path) -> None:
    vol, m = _scan()
    zs.write_scan(tmp_path, "c/P1/S1", vol, {"gtv": m}, {"phase": "venous"})
    h = zs.open_scan(tmp_path, "c/P1/S1")
    assert h.attrs["phase"] == "venous" and h.attrs["spacing"] == [0.7, 0.7, 2.5]
    assert h.geometry().same_grid(vol)
    assert (h.image[...] == vol.array).all() and (h.mask("gtv")[...] == m).all()
    labels = h.labels("gtv")
    assert labels[1].bbox == (5, 9, 10, 20, 30, 41) and labels[1].voxels == 4 * 10 * 11
    assert labels[2].voxels == 2
    img, msk, sl = h.read_roi("gtv", 1, (1, 2, 2))
    assert (img == vol.array[sl]).all() and msk.sum() == labels[1].voxels
    assert sl == (slice(4, 10), slice(8, 22), slice(28, 43))
    with pytest.raises(KeyError):
        h.read_roi("gtv", 3)


def test_existing_scan_not_overwritten(tmp_path: Path) -> None:
    vol, m = _scan()
    zs.write_scan(tmp_path, "c/P1/S1", vol, {"gtv": m}, {})
    with pytest.raises(FileExistsError):
        zs.write_scan(tmp_path, "c/P1/S1", vol, {"gtv": m}, {})


def test_failed_write_leaves_nothing_visible(tmp_path: Path) -> None:
    vol, m = _scan()
    with pytest.raises(ValueError):
        zs.write_scan(tmp_path, "c/P1/S1", vol, {"gtv": m[:-1]}, {})
    assert list(zs.iter_scans(tmp_path)) == []
    assert not list(tmp_path.glob("c/P1/.tmp-*"))
    with pytest.raises(TypeError):
        zs.write_scan(tmp_path, "c/P1/S2", Volume(vol.array.astype(np.float32), vol.spacing), {}, {})


def test_remove_scan_keeps_siblings_and_drops_an_empty_patient(tmp_path: Path) -> None:
    vol, m = _scan()
    for path in ("c/P1/S1", "c/P1/S2", "d/P1/S1"):
        zs.write_scan(tmp_path, path, vol, {"gtv": m}, {})
    assert list(zs.iter_scans(tmp_path, "c")) == ["c/P1/S1", "c/P1/S2"]
    with pytest.raises(FileNotFoundError):
        zs.remove_scan(tmp_path, "c/P1")  # a patient group is not a scan
    zs.remove_scan(tmp_path, "c/P1/S1")
    assert list(zs.iter_scans(tmp_path)) == ["c/P1/S2", "d/P1/S1"]
    zs.remove_scan(tmp_path, "c/P1/S2")
    assert not (tmp_path / "c" / "P1").exists() and (tmp_path / "c" / "zarr.json").is_file()
    assert list(zs.iter_scans(tmp_path)) == ["d/P1/S1"]
    with pytest.raises(FileNotFoundError):
        zs.remove_scan(tmp_path, "c/P1/S2")
