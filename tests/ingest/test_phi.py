"""No PHI value reaches any stored artefact: Zarr JSON and decompressed chunks, Parquet, the QC
report and the ingest logs."""

from __future__ import annotations

import base64
import re
import struct
import zlib
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


DATA_URI = re.compile(rb"data:image/png;base64,([A-Za-z0-9+/=]+)")


def _png_texts(png: bytes) -> bytes:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG: where an image can carry words."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(png):
        (n,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        body = png[pos + 8:pos + 8 + n]
        if kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            body = key + b" " + zlib.decompress(rest[1:])
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            out.append(body)
        pos += 12 + n
    return b"\n".join(out)


def _artefact_texts(root: Path) -> dict[str, bytes]:
    """Every file's bytes (an HTML page's embedded PNGs as their text chunks: base64 pixel data
    holds any three-letter name by chance), Parquet rows as CSV, Zarr arrays decoded."""
    out: dict[str, bytes] = {}
    for p in root.rglob("*"):
        if not p.is_file():
            continue
        out[str(p)] = p.read_bytes()
        if p.suffix == ".html":
            for k, m in enumerate(DATA_URI.finditer(out[str(p)])):
                out[f"{p}#png{k}"] = _png_texts(base64.b64decode(m.group(1)))
            out[str(p)] = DATA_URI.sub(b"data:image/png;base64,", out[str(p)])
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
    assert any("qc.html#png" in k for k in texts)
    assert ingested.log_path.read_text().count("rejected") >= 12
    leaks = [(phi, where) for phi in _phi_strings(ingested) for where, blob in texts.items()
             if phi.encode() in blob or phi.lower().encode() in blob.lower()]
    assert not leaks, leaks[:5]
