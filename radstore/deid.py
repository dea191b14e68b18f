"""Pseudonymisation and de-identification (DICOM PS3.15 Annex E, basic profile, for what we keep).

The store keeps nothing from a DICOM header except an allow-list of technical attributes that the
basic profile leaves in place (Annex E, Table E.1-1: attributes not listed there, e.g. Pixel
Spacing, Slice Thickness, KVP, Convolution Kernel, are retained; Manufacturer and Manufacturer's
Model Name are retained under the "Retain Device Identity" option — we keep only those two, never
Device Serial Number, Station Name or Institution Name). UIDs are used in memory to match series
and masks and are only stored as one-way hashes (scan ids). Patient identity is replaced by the
keyed pseudonym :func:`radstore.ids.patient_id`; acquisition times are kept as the manifest gives
them (the contract's ``event_timestamp``; a hospital shifts dates before export if it must).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# DICOM keyword -> stored attribute name; the only header values that reach the store.
TECHNICAL_TAGS: dict[str, str] = {
    "Manufacturer": "manufacturer",
    "ManufacturerModelName": "scanner",
    "KVP": "kvp",
    "ConvolutionKernel": "kernel",
    "SliceThickness": "slice_thickness",
    "PixelSpacing": "pixel_spacing",
}

# Clinical/outcome columns the catalog may hold (contract in docs/architecture.md); anything else
# in a hospital's table (names, birth dates, addresses, MRNs, free text) is dropped.
CLINICAL_COLUMNS: tuple[str, ...] = ("age", "sex", "tumour_site", "grade", "ki67", "m_stage",
                                     "longest_diameter_mm", "cea", "ca199")
OUTCOME_COLUMNS: tuple[str, ...] = ("os_months", "os_event", "rfs_months", "rfs_event", "response")
PHI_COLUMNS: tuple[str, ...] = ("patient_name", "birth_date", "address", "mrn")

_SAFE_TEXT = re.compile(r"[^A-Za-z0-9 ._+\-/()]")


def _clean_text(value: Any, max_len: int = 64) -> str | None:
    s = str(value).strip() if value is not None else ""
    if not s:
        return None
    return _SAFE_TEXT.sub("", s)[:max_len] or None


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v


def technical_tags(ds: Any) -> dict[str, Any]:
    """The allow-listed technical attributes of a DICOM dataset, as plain JSON-able values."""
    out: dict[str, Any] = {}
    for kw, name in TECHNICAL_TAGS.items():
        raw = ds.get(kw, None)
        if raw is None or raw == "":
            out[name] = None
        elif kw in ("KVP", "SliceThickness"):
            out[name] = _number(raw)
        elif kw == "PixelSpacing":
            out[name] = [float(v) for v in raw]
        elif kw == "ConvolutionKernel" and not isinstance(raw, str):
            out[name] = _clean_text("/".join(str(v) for v in raw))
        else:
            out[name] = _clean_text(raw)
    return out


class Redactor:
    """Replaces known identifying strings (source patient ids, names, MRNs, ...) in free text.

    Used on every message and input path written to the catalog or a log: a hospital's folder may
    be named after the MRN. Source ids map to their pseudonym, other values to ``[redacted]``.
    """

    def __init__(self, replacements: dict[str, str] | None = None, values: Iterable[str] = ()) -> None:
        self._map: dict[str, str] = {}
        for k, v in (replacements or {}).items():
            self.add(k, v)
        for v in values:
            self.add(v, "[redacted]")

    def add(self, value: Any, replacement: str = "[redacted]") -> None:
        s = str(value).strip() if value is not None else ""
        if len(s) >= 3 and s.lower() not in ("nan", "none", "nat"):
            self._map[s] = replacement

    def __call__(self, text: str) -> str:
        for k in sorted(self._map, key=len, reverse=True):
            if k in text:
                text = text.replace(k, self._map[k])
        return text
