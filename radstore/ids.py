"""Pseudonymous identifiers and content hashes (contracts in docs/architecture.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PATIENT_ID_LEN = 16
SCAN_ID_LEN = 16
VERSION_LEN = 10


def patient_id(source_id: str, key: bytes, cohort_id: str) -> str:
    """Keyed pseudonym ``"P" + HMAC-SHA256(key, cohort_id/source_id)[:15]`` (hex).

    Without the key the source id cannot be recovered or re-derived; the same source id in two
    cohorts gives two pseudonyms (hospitals' id spaces overlap).
    """
    if not source_id or not str(source_id).strip():
        raise ValueError("empty source patient id")
    digest = hmac.new(key, f"{cohort_id}/{source_id}".encode(), hashlib.sha256).hexdigest()
    return "P" + digest[: PATIENT_ID_LEN - 1]


def scan_id(patient: str, series_key: str) -> str:
    """``"S" + SHA-256(patient_id/series_key)[:15]``; ``series_key`` is a SeriesInstanceUID or
    the source path of the image relative to the manifest plus the acquisition time."""
    return "S" + hashlib.sha256(f"{patient}/{series_key}".encode()).hexdigest()[: SCAN_ID_LEN - 1]


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace) used for every settings hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def settings_version(settings: Any) -> str:
    """Short hash of extraction settings: a changed setting is a new version, never an overwrite.

    Accepts a pydantic model (``model_dump(mode="json")``), a dataclass-like mapping or any JSON-able
    object.
    """
    if hasattr(settings, "model_dump"):
        settings = settings.model_dump(mode="json")
    return hashlib.sha256(canonical_json(settings).encode()).hexdigest()[:VERSION_LEN]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_files(paths: Iterable[Path], chunk: int = 1 << 20) -> str:
    """SHA-256 over the contents of ``paths`` in sorted order (file names are not hashed)."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        with open(p, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()
