"""A tiny store for extraction tests: Zarr scans written with ``zarr_store.write_scan`` and the
``catalog/scans`` table written with ``tables.write_table`` (contract in docs/architecture.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from radstore.config import StoreLayout
from radstore.io import tables
from radstore.io import zarr_store as zs
from radstore.volume import Volume

SHAPE = (16, 48, 48)
SPACING_XYZ = (0.8, 0.8, 2.0)


def synthetic_scan(seed: int, n_lesions: int = 1) -> tuple[Volume, np.ndarray]:
    """Soft-tissue background with ``n_lesions`` ellipsoidal lesions (labels 1..n)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(40, 15, SHAPE)
    mask = np.zeros(SHAPE, np.uint8)
    z, y, x = np.indices(SHAPE)
    centres = [(7, 16, 16), (8, 32, 32), (6, 14, 34)]
    for lab in range(1, n_lesions + 1):
        cz, cy, cx = centres[lab - 1]
        r = 5 + rng.integers(0, 3)
        inside = ((z - cz) * 2.0) ** 2 / 36 + ((y - cy) * 0.8) ** 2 / r**2 + ((x - cx) * 0.8) ** 2 / r**2 <= 1
        img[inside] = rng.normal(120 + 30 * lab, 20, inside.sum())
        mask[inside] = lab
    return Volume(img.astype(np.int16), SPACING_XYZ), mask


def make_store(root: Path, scans: list[tuple[str, str, int, str]]) -> list[dict]:
    """Write scans ``(cohort, patient, n_lesions, phase)`` and their catalog; returns catalog rows."""
    layout = StoreLayout(root)
    rows: dict[str, list[dict]] = {}
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    for i, (cohort, patient, n_les, phase) in enumerate(scans):
        vol, mask = synthetic_scan(i, n_les)
        scan_id = f"S{i:015d}"
        rel = layout.scan_group(cohort, patient, scan_id)
        zs.write_scan(layout.volumes, rel, vol, {"gtv": mask},
                      {"cohort_id": cohort, "patient_id": patient, "scan_id": scan_id, "phase": phase},
                      chunks=(8, 24, 24))
        rows.setdefault(cohort, []).append({
            "cohort_id": cohort, "patient_id": patient, "scan_id": scan_id, "phase": phase,
            "event_timestamp": t0 + timedelta(days=i), "zarr_path": rel,
            "shape_z": SHAPE[0], "shape_y": SHAPE[1], "shape_x": SHAPE[2],
            "spacing_x": SPACING_XYZ[0], "spacing_y": SPACING_XYZ[1], "spacing_z": SPACING_XYZ[2],
            "slice_thickness": SPACING_XYZ[2], "manufacturer": "synthetic", "kvp": 120.0,
            "segmentation_ids": ["gtv"], "lesions": list(range(1, n_les + 1)), "source_hash": f"h{i}",
            "status": "ok", "created_timestamp": t0})
    for cohort, rs in rows.items():
        schema = pa.Table.from_pylist(rs).schema
        schema = schema.set(schema.get_field_index("lesions"), pa.field("lesions", pa.list_(pa.int32())))
        tables.write_table(pa.Table.from_pylist(rs, schema=schema), layout.catalog_table("scans", cohort))
    return [r for rs in rows.values() for r in rs]


def corrupt_image_chunk(root: Path, zarr_path: str) -> None:
    """Overwrite every stored chunk of a scan's image with garbage (decompression fails)."""
    chunk_dir = StoreLayout(root).volumes / zarr_path / "image" / "c"
    for f in chunk_dir.rglob("*"):
        if f.is_file():
            f.write_bytes(b"not a blosc chunk")


def drop_labels(root: Path, zarr_path: str) -> None:
    """Make a scan's ``gtv`` mask empty: its ``labels`` attribute lists no lesion."""
    import zarr

    arr = zarr.open_array(store=str(StoreLayout(root).volumes / zarr_path / "masks" / "gtv"), mode="r+")
    arr[...] = 0
    arr.attrs["labels"] = {}
