"""Re-running an unchanged cohort writes nothing; a run killed with SIGKILL resumes to a complete,
duplicate-free store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipelines.ingest import ingest_cohort
from radstore.config import Settings
from radstore.io import zarr_store
from radstore.io.tables import read_table
from tests.ingest.factory import good_cohort

REPO = Path(__file__).resolve().parents[2]


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_second_run_writes_nothing(tmp_path: Path) -> None:
    c = good_cohort(tmp_path / "cohort", n_dicom=1)
    c.write()
    settings = Settings(store=tmp_path / "store", progress=False)
    first = ingest_cohort(settings, "idem", c.manifest)
    assert first.written == len(c.good) and first.report_path is not None
    before = _snapshot(settings.store)
    time.sleep(0.05)
    second = ingest_cohort(settings, "idem", c.manifest)
    assert second.written == 0 and second.unchanged == len(c.good) and second.tables_written == []
    assert _snapshot(settings.store) == before
    # a changed source is detected by its content hash and only that scan is rewritten
    img = c.root / "p2/image.nii.gz"
    from radstore.io.volumes import read_volume, write_volume

    v = read_volume(img)
    write_volume(v.with_array(v.array + 1), img)
    third = ingest_cohort(settings, "idem", c.manifest)
    assert third.written == 1 and third.unchanged == len(c.good) - 1 and "scans" in third.tables_written


def test_scans_left_out_of_the_catalog_are_reported_then_pruned(tmp_path: Path) -> None:
    """A manifest row removed on a re-run drops its scan from the catalog; its Zarr group stays and
    is reported until ``--prune`` deletes it (with its patient group, now empty)."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    c = good_cohort(tmp_path / "cohort", n_dicom=1)
    c.write()
    settings = Settings(store=tmp_path / "store", progress=False)
    vol = settings.layout.volumes
    first = ingest_cohort(settings, "orph", c.manifest, qc_report=False)
    assert first.orphaned == [] and first.pruned == 0
    scans = read_table(settings.layout.catalog_table("scans", "orph")).to_pylist()
    removed = c.rows.pop(0)
    c.write()
    second = ingest_cohort(settings, "orph", c.manifest, qc_report=False)
    kept = read_table(settings.layout.catalog_table("scans", "orph")).to_pylist()
    gone = sorted({r["zarr_path"] for r in scans} - {r["zarr_path"] for r in kept})
    assert len(gone) == 1 and second.orphaned == gone and second.pruned == 0
    assert (vol / gone[0] / "zarr.json").is_file()
    assert sorted(zarr_store.iter_scans(vol, "orph")) == sorted([r["zarr_path"] for r in kept] + gone)

    res = CliRunner().invoke(app, ["--store", str(settings.store), "ingest", "orph",
                                   str(c.manifest), "--no-report", "--prune"])
    assert res.exit_code == 0, res.output
    assert f"pruned 1 Zarr scan(s) not in the catalog: {gone[0]}" in res.output
    assert not (vol / gone[0]).exists() and not (vol / gone[0]).parent.exists()
    assert sorted(zarr_store.iter_scans(vol, "orph")) == sorted(r["zarr_path"] for r in kept)
    again = ingest_cohort(settings, "orph", c.manifest, qc_report=False, prune=True)
    assert again.orphaned == [] and again.pruned == 0 and again.written == 0
    c.rows.insert(0, removed)
    c.write()
    back = ingest_cohort(settings, "orph", c.manifest, qc_report=False)
    assert back.written == 1 and back.orphaned == []


_CHILD = textwrap.dedent("""
    import os, sys, time
    import radstore.io.zarr_store as zs
    _replace = zs.os.replace
    class _SlowOs:
        def __getattr__(self, name):
            return getattr(os, name)
        @staticmethod
        def replace(src, dst):
            time.sleep(0.6)  # widen the window between a scan's temp write and its commit
            return _replace(src, dst)
    zs.os = _SlowOs()
    from pathlib import Path
    from pipelines.ingest import ingest_cohort
    from radstore.config import Settings
    ingest_cohort(Settings(store=Path(sys.argv[1]), progress=False), "crash", Path(sys.argv[2]))
""")


@pytest.mark.timeout(240)
def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    c = good_cohort(tmp_path / "cohort", n_dicom=3)
    c.write()
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RADSTORE_DASK__SCHEDULER": "sync",
           "RADSTORE_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(store), str(c.manifest)], env=env,
                            cwd=REPO)
    vol = store / "volumes.zarr"
    deadline = time.time() + 180
    killed_mid_write = False
    try:
        while time.time() < deadline and proc.poll() is None:
            committed = list(zarr_store.iter_scans(vol))
            temps = list(vol.glob(f"*/*/{zarr_store.TMP_PREFIX}*")) if vol.exists() else []
            if committed and temps:
                proc.send_signal(signal.SIGKILL)
                killed_mid_write = True
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert killed_mid_write, "the child finished before it could be killed mid-write"
    assert proc.returncode == -signal.SIGKILL
    partial = list(zarr_store.iter_scans(vol))
    assert 0 < len(partial) < len(c.good)
    assert not Settings(store=store).layout.catalog_table("scans", "crash").exists()

    settings = Settings(store=store, progress=False)
    rep = ingest_cohort(settings, "crash", c.manifest)
    assert rep.stale_temps_removed >= 1 and rep.rejections == []
    assert rep.scans_ok == len(c.good) and rep.written == len(c.good) - len(partial)
    scans = read_table(settings.layout.catalog_table("scans", "crash")).to_pylist()
    assert len(scans) == len({r["scan_id"] for r in scans}) == len(c.good)
    assert sorted(zarr_store.iter_scans(vol)) == sorted(r["zarr_path"] for r in scans)
    assert not list(vol.glob(f"*/*/{zarr_store.TMP_PREFIX}*"))
    again = ingest_cohort(settings, "crash", c.manifest)
    assert again.written == 0 and again.tables_written == []
