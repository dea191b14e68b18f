"""Shared ingest fixtures: one good + broken cohort, ingested once per session (logs captured)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.ingest import IngestReport, ingest_cohort
from radstore.config import Settings
from tests.ingest.factory import Cohort, bad_corpus, good_cohort


@dataclass
class Ingested:
    cohort: Cohort
    settings: Settings
    report: IngestReport
    log_path: Path


@pytest.fixture(scope="session")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    base = tmp_path_factory.mktemp("ingest")
    c = bad_corpus(good_cohort(base / "cohort"))
    c.write()
    settings = Settings(store=base / "store", progress=False)
    log_path = base / "ingest.log"
    handler = logging.FileHandler(log_path)
    handler.setLevel(logging.DEBUG)
    logger = logging.getLogger("radstore")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        rep = ingest_cohort(settings, "hosp_a", c.manifest)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
        handler.close()
    return Ingested(c, settings, rep, log_path)
