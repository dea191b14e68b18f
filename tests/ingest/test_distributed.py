"""Ingest on a Dask distributed scheduler given by address (settings.dask.scheduler)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.ingest import ingest_cohort
from radstore.config import DaskSettings, Settings
from tests.ingest.factory import good_cohort

distributed = pytest.importorskip("distributed")


def test_ingest_on_a_scheduler_address(tmp_path: Path) -> None:
    c = good_cohort(tmp_path / "cohort", n_dicom=1)
    c.write()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        settings = Settings(store=tmp_path / "store", progress=False,
                            dask=DaskSettings(scheduler=cluster.scheduler_address))
        rep = ingest_cohort(settings, "dist", c.manifest, qc_report=False)
    assert rep.rejections == [] and rep.written == len(c.good)
