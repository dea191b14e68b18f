"""No PHI value reaches any stored artefact: Zarr JSON and decompressed chunks, Parquet, the QC
report and the ingest logs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import zarr

from tests.ingest.conftest import Ingested
from tests.ingest.factory import PHI


def _phi_strings(ingested: Ingested) -> list[str]:
    vals = [v for group in PHI.values() for v in group]
    vals += [n.replace("^", " ") for n in PHI["names"]] + [n.split("^")[0] for n in PHI["names"]]
    vals += [r["source_patient_id"] for r in ingested.cohort.clinical]
    return sorted(set(vals))


def _artefact_texts(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for p in root.rglob("*"):
        if not p.is_file():
            continue
        out[str(p)] = p.read_bytes()
        if p.suffix == ".parquet":
            out[f"{p}#rows"] = pq.read_table(p).to_pandas().to_csv().encode()
    vol = root / "volumes.zarr"
    if vol.exists():
        g = zarr.open_group(str(vol), mode="r")

        def walk(grp, prefix: str) -> None:
            for name, a in grp.arrays():
                out[f"{prefix}/{name}#decoded"] = np.asarray(a[...]).tobytes()
            for name, sub in grp.groups():
                walk(sub, f"{prefix}/{name}")
        walk(g, str(vol))
    return out


def test_no_phi_in_store_report_or_logs(ingested: Ingested) -> None:
    store = ingested.settings.store
    texts = _artefact_texts(store)
    texts["log"] = ingested.log_path.read_bytes()
    assert any(k.endswith("#decoded") for k in texts) and any(k.endswith("qc.html") for k in texts)
    assert ingested.log_path.read_text().count("rejected") >= 12
    leaks = [(phi, where) for phi in _phi_strings(ingested) for where, blob in texts.items()
             if phi.encode() in blob or phi.lower().encode() in blob.lower()]
    assert not leaks, leaks[:5]
