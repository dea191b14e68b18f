"""A CPU radiomics set on a Ray cluster with spare CPUs runs as several single-CPU actors (its own
Ray session: 6 logical CPUs, so the set's half share is 3 actors of 1 CPU)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import extract as ex
from radstore.config import Settings
from radstore.feature_sets import load_feature_set
from tests.deep.synthetic_store import make_store

ray = pytest.importorskip("ray")

SCANS = [("ca", f"P{i}", 1 + i % 2, "venous") for i in range(5)]


@pytest.fixture(scope="module")
def ray_six_cpus():
    ray.init(num_cpus=6, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _table(root: Path, version: str) -> pa.Table:
    parts = sorted((root / "features" / "radiomics_original" / version).glob("phase=*/cohort=*/*.parquet"))
    t = pa.concat_tables([pq.read_table(p) for p in parts]).drop(["created_timestamp"])
    return t.sort_by([("scan_id", "ascending"), ("lesion", "ascending")])


def test_radiomics_set_runs_as_single_cpu_actors(ray_six_cpus, tmp_path: Path) -> None:
    rad = load_feature_set("radiomics_original").model_copy(update={"phases": ("venous",)})
    many, one = tmp_path / "many", tmp_path / "one"
    make_store(many, SCANS)
    make_store(one, SCANS)
    (r,) = ex.extract(Settings(store=many, progress=False), [rad], device="cpu", batch_size=1)
    assert (r.scans, r.done, r.failed) == (5, 5, 0)
    assert len(r.actors) == 3 and len({a["pid"] for a in r.actors}) == 3
    (r1,) = ex.extract(Settings(store=one, progress=False), [rad], device="cpu", batch_size=1,
                       num_actors=1)
    assert len(r1.actors) == 1 and r1.done == 5
    assert _table(many, rad.version).equals(_table(one, rad.version))
