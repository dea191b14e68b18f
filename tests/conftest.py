"""Shared fixtures. Reference data lives in ../shared/data (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()

os.environ.setdefault("RADSTORE_PSEUDONYM_KEY", "test-key-not-secret")
os.environ.setdefault("RADSTORE_PROGRESS", "0")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; tests needing it are skipped with a message if it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty store root for one test."""
    return tmp_path / "store"
