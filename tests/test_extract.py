"""Extraction job on a local Ray (one shared session with 2 logical GPUs, none physical)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pipelines import extract as ex
from radstore.config import Settings
from radstore.feature_sets import FeatureSetError, load_feature_set, spec_from_dict
from radstore.io import zarr_store as zs
from tests.deep.synthetic_store import corrupt_image_chunk, drop_labels, make_store

ray = pytest.importorskip("ray")

DEEP = {"name": "deep_test", "kind": "deep", "segmentation_id": "gtv",
        "phases": ["arterial", "venous"],
        "settings": {"preprocess": {"size": 64, "margin_mm": 5.0},
                     "backbone": {"name": "resnet18", "weights": "random", "seed": 0, "pooling": "max"}}}


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.integration
def test_deep_actor_embedding_does_not_depend_on_batch_companions(ray_session) -> None:
    """The dispatcher packs whatever scans are prepared into one call, so the same image comes with
    other companions in each run; every forward pass has one shape, so its embedding is the same
    to the bit (oneDNN picks its convolution algorithm by batch size)."""
    actor = ray.remote(ex.DeepActor).options(num_cpus=1).remote(DEEP["settings"], 4, "cpu")
    g = np.random.default_rng(0)
    a, b = (g.normal(size=(n, 3, 64, 64)).astype(np.float32) for n in (1, 6))
    alone = ray.get(actor.embed.remote(a))[0]
    after, with_others = ray.get(actor.embed.remote(b, a))
    assert with_others.shape == alone.shape == (1, 512) and after.shape == (6, 512)
    np.testing.assert_array_equal(with_others, alone)
    assert ex.forward_batch_size("cpu", 32) == 1 and ex.forward_batch_size("cuda", 32) == 32
    ray.kill(actor)


@pytest.mark.integration
def test_radiomics_actor_features_do_not_depend_on_batch_companions(ray_session) -> None:
    """A radiomics actor's call also carries whatever scans were prepared meanwhile: a lesion's
    features are the same bits alone and beside lesions of wider grey-level ranges (more bins than
    its own, compacted above 64), so two runs of one cohort write the same feature tables."""
    from tests.radiomics.test_batch_invariance import ROIS

    actor = ray.remote(ex.RadiomicsActor).options(num_cpus=1).remote({}, "cpu")
    narrow, wide, wider = ROIS[0], ROIS[1], ROIS[3]
    (alone,) = ray.get(actor.extract.remote([narrow]))
    (others, (with_others, _)) = ray.get(actor.extract.remote([wide, wider], [narrow, wider]))
    assert len(others) == 2 and list(with_others) == list(alone[0])
    bits = {k: np.float64(v).tobytes() for k, v in alone[0].items()}
    assert not [k for k, v in with_others.items() if np.float64(v).tobytes() != bits[k]]
    ray.kill(actor)


@pytest.mark.integration
def test_logical_gpus_give_actors_distinct_cuda_visible_devices(ray_session) -> None:
    @ray.remote(num_gpus=1, num_cpus=0)
    class Probe:
        def devices(self) -> tuple[str | None, list]:
            return os.environ.get("CUDA_VISIBLE_DEVICES"), [str(g) for g in ray.get_gpu_ids()]

    probes = [Probe.remote() for _ in range(2)]
    seen = ray.get([p.devices.remote() for p in probes])
    assert {s[0] for s in seen} == {"0", "1"}
    assert sorted(g for s in seen for g in s[1]) == ["0", "1"]
    for p in probes:
        ray.kill(p)


@pytest.mark.integration
def test_extract_deep_and_radiomics_one_job_contract_tables_failures_idempotent(
        ray_session, tmp_path: Path) -> None:
    from radstore.radiomics import RadiomicsSettings, feature_names

    rows = make_store(tmp_path, [("ca", "P1", 1, "venous"), ("ca", "P2", 2, "arterial"),
                                 ("cb", "P3", 1, "venous"), ("cb", "P4", 1, "venous"),
                                 ("cb", "P5", 1, "venous"), ("cb", "P6", 1, "delayed")])
    corrupt_image_chunk(tmp_path, rows[3]["zarr_path"])
    drop_labels(tmp_path, rows[4]["zarr_path"])
    spec = spec_from_dict(DEEP)
    rad = load_feature_set("radiomics_original").model_copy(update={"phases": ("arterial", "venous")})
    settings = Settings(store=tmp_path, progress=False)
    s, r = ex.extract(settings, [spec, rad], device="cpu", batch_size=2, flush_every=2)
    # P6 is delayed (not in phases): not applicable; P4 corrupt, P5 without labels: failures
    assert (s.scans, s.done, s.failed, s.skipped) == (5, 3, 2, 0)
    assert (r.scans, r.done, r.failed, r.skipped) == (5, 3, 2, 0)
    assert [a["device"] for a in s.actors] == ["cpu"] and s.actors[0]["gpu_ids"] == []

    root = tmp_path / "features" / "deep_test" / spec.version
    parts = sorted(root.glob("phase=*/cohort=*/part-*.parquet"))
    assert {p.parent.parent.name + "/" + p.parent.name for p in parts} == {
        "phase=venous/cohort=ca", "phase=arterial/cohort=ca", "phase=venous/cohort=cb"}
    table = pa.concat_tables([pq.read_table(p) for p in parts])
    assert table.schema.names == ["patient_id", "scan_id", "lesion", "event_timestamp",
                                  "created_timestamp", "embedding"]
    assert table.schema.field("lesion").type == pa.int32()
    assert table.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("created_timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 512)
    df = table.to_pandas()
    assert sorted(zip(df.scan_id, df.lesion, strict=True)) == sorted(
        [(rows[0]["scan_id"], 0), (rows[0]["scan_id"], 1), (rows[1]["scan_id"], 0),
         (rows[1]["scan_id"], 1), (rows[1]["scan_id"], 2), (rows[2]["scan_id"], 0), (rows[2]["scan_id"], 1)])
    emb = {(x.scan_id, x.lesion): np.asarray(x.embedding) for x in df.itertuples()}
    two = rows[1]["scan_id"]
    np.testing.assert_allclose(emb[(two, 0)], (emb[(two, 1)] + emb[(two, 2)]) / 2, rtol=1e-6)

    # the job's embedding equals the direct pipeline: read ROI -> prepare -> backbone
    from radstore.deep import embed, load_backbone
    from radstore.preprocess import prepare

    ds = spec.deep_settings()
    handle = zs.open_scan(settings.layout.volumes, rows[1]["zarr_path"])
    img, msk, _, spacing = ex.read_lesion(handle, "gtv", 2, ds.preprocess)
    model, _ = load_backbone(ds.backbone)
    direct = embed(model, torch.from_numpy(prepare(img, msk, spacing, ds.preprocess))).numpy().mean(0)
    np.testing.assert_allclose(emb[(two, 2)], direct, rtol=1e-4, atol=1e-5)

    fails = pq.read_table(s.failures_path).to_pandas()
    assert sorted(fails.scan_id) == [rows[3]["scan_id"], rows[4]["scan_id"]]
    assert set(fails.stage) == {"read/preprocess"}
    assert "no lesion labels" in fails.set_index("scan_id").loc[rows[4]["scan_id"], "message"]
    doc = json.loads((root / "_settings.json").read_text())
    assert doc["version"] == spec.version and doc["settings"] == spec.settings

    # radiomics: float64 columns with PyRadiomics names; lesion 0 = the largest lesion
    names = feature_names(RadiomicsSettings.from_params(rad.settings))
    rroot = tmp_path / "features" / "radiomics_original" / rad.version
    t = pa.concat_tables([pq.read_table(p) for p in sorted(rroot.glob("phase=*/cohort=*/*.parquet"))])
    assert t.schema.names == [*ex.KEY_COLUMNS, *names]
    assert all(t.schema.field(n).type == pa.float64() for n in names)
    assert any(n.startswith("original_glcm_") for n in names) and t.num_rows == 7
    rdf = t.to_pandas().set_index(["scan_id", "lesion"])
    assert np.isfinite(rdf[names].to_numpy(float)).all()
    labels = handle.labels("gtv")
    big = max(labels, key=lambda lab: labels[lab].voxels)
    np.testing.assert_allclose(rdf.loc[(two, 0), names].to_numpy(float),
                               rdf.loc[(two, big), names].to_numpy(float))
    assert sorted(pq.read_table(r.failures_path).column("scan_id").to_pylist()) == sorted(fails.scan_id)

    # re-run: written scans are skipped, only the failed ones are tried again; with device auto
    # on a cluster declaring GPUs, the model actors ask for (and each hold) one GPU; without CUDA
    # they compute on the CPU
    (s2,) = ex.extract(settings, [spec], device="auto")
    assert (s2.skipped, s2.done, s2.failed) == (3, 0, 2)
    assert sorted(root.glob("phase=*/cohort=*/part-*.parquet")) == parts
    cuda = "cuda" if torch.cuda.is_available() else "cpu"
    assert s2.actors and all(len(a["gpu_ids"]) == 1 and a["device"] == cuda for a in s2.actors)


def test_plan_resources() -> None:
    plan, prep = ex.plan_resources(2, 0, 2, 1.0, None, use_gpu=False)
    assert plan.n == 1 and plan.num_gpus == 0 and 2 * plan.num_cpus + prep <= 2 + 1e-9
    plan, prep = ex.plan_resources(2, 0, 1, 1.0, None, use_gpu=False)
    assert (plan.num_cpus, prep) == (1.0, 1.0)
    plan, prep = ex.plan_resources(16, 0, 2, 1.0, None, use_gpu=False)
    assert (plan.n, plan.num_cpus, prep) == (1, 4.0, 1.0)  # half the CPUs for the two model actors
    plan, prep = ex.plan_resources(16, 4, 1, 0.5, None, use_gpu=True)
    assert (plan.n, plan.num_gpus) == (8, 0.5)
    plan, _ = ex.plan_resources(16, 1, 2, 1.0, None, use_gpu=True)
    assert (plan.n, plan.num_gpus) == (1, 0.5)  # two feature sets share the one GPU
    assert plan.for_radiomics(None) == plan  # GPU actors stay as planned


def test_radiomics_sets_get_single_cpu_actors() -> None:
    """On CPU a radiomics set's share becomes single-CPU actors (processes scale, threads do not);
    a 2-CPU machine, GPU plans and an explicit actor count keep the plan."""
    plan, _ = ex.plan_resources(16, 0, 2, 1.0, None, use_gpu=False)
    rad = plan.for_radiomics(None)
    assert (rad.n, rad.num_cpus, rad.num_gpus) == (4, 1.0, 0.0)
    assert 2 * rad.n * rad.num_cpus == 2 * plan.n * plan.num_cpus  # same CPUs, split
    assert ex.plan_resources(16, 0, 2, 1.0, 3, use_gpu=False)[0].for_radiomics(3).n == 3
    small, _ = ex.plan_resources(2, 0, 1, 1.0, None, use_gpu=False)
    assert small.for_radiomics(None) == small


def test_parts_hold_rows_by_scan_not_completion_order(tmp_path: Path) -> None:
    """Scans finish in any order; a part lists them by scan id (each scan's lesions as the actor
    returned them), so the same scans give the same table."""
    from collections import deque
    from datetime import UTC, datetime

    spec = load_feature_set("radiomics_original")
    st = ex._SetState(spec=spec, summary=ex.ExtractSummary(spec.name, spec.version, spec.kind), todo=deque())
    st.names = ["original_firstorder_Mean"]
    when = datetime(2024, 1, 1, tzinfo=UTC)

    def scan(sid: str, n_lesions: int) -> tuple[ex.ScanTask, list[dict]]:
        task = ex.ScanTask("ca", "P" + sid, sid, "venous", when, f"{sid}.zarr")
        return task, [ex._key(task, lesion, when) | {"original_firstorder_Mean": float(lesion)}
                      for lesion in range(n_lesions)]

    st.buffers[("venous", "ca")] = [scan("S3", 2), scan("S1", 3), scan("S2", 1)]
    ex._flush(Settings(store=tmp_path, progress=False), st)
    (path,) = st.summary.parts
    keys = pq.read_table(path, columns=["scan_id", "lesion"]).to_pylist()
    assert [(k["scan_id"], k["lesion"]) for k in keys] == [
        ("S1", 0), ("S1", 1), ("S1", 2), ("S2", 0), ("S3", 0), ("S3", 1)]


def test_part_name_and_empty_schema() -> None:
    assert ex.part_name(["b", "a"]) == ex.part_name(["a", "b"])
    t = ex.rows_to_table([], "radiomics", names=["original_firstorder_Mean"])
    assert t.schema.names == [*ex.KEY_COLUMNS, "original_firstorder_Mean"]


def test_feature_set_files_load_and_errors_name_file_and_field(tmp_path: Path) -> None:
    spec = load_feature_set("deep_resnet50")
    assert spec.kind == "deep" and len(spec.version) == 10
    assert spec.deep_settings().backbone.name == "resnet50"
    assert load_feature_set("radiomics_original").kind == "radiomics"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: deep\nsettings: {preprocess: {size: 3}}\n")
    with pytest.raises(FeatureSetError, match=r"bad.yaml.*settings.preprocess.size"):
        load_feature_set(bad)
    bad.write_text("name: x\nkind: radiomics\nsettings: params/none.yaml\n")
    with pytest.raises(FeatureSetError, match="params file that does not exist"):
        load_feature_set(bad)
    bad.write_text("name: X-1\nkind: deep\n")
    with pytest.raises(FeatureSetError, match="field 'name'"):
        load_feature_set(bad)
    with pytest.raises(FeatureSetError, match="feature set not found"):
        load_feature_set("no_such_set")
    # a changed setting is a new version
    other = spec_from_dict({**DEEP, "settings": {**DEEP["settings"], "slice_aggregation": "max"}})
    assert other.version != spec_from_dict(DEEP).version


def test_gradcam_command_writes_overlays(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    rows = make_store(tmp_path / "store", [("ca", "P1", 2, "venous")])
    fs = tmp_path / "deep_test.yaml"
    fs.write_text(json.dumps(DEEP))  # JSON is YAML
    out = tmp_path / "cams"
    res = CliRunner().invoke(app, ["--store", str(tmp_path / "store"), "gradcam", "-f", str(fs),
                                   "--scan-id", rows[0]["scan_id"], "--out", str(out)])
    assert res.exit_code == 0, res.output
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"{rows[0]['scan_id']}_l1_0.png", f"{rows[0]['scan_id']}_l2_0.png"]
    res = CliRunner().invoke(app, ["--store", str(tmp_path / "store"), "gradcam", "-f", str(fs),
                                   "--scan-id", rows[0]["scan_id"], "--lesion", "7", "--out", str(out)])
    assert res.exit_code == 2 and "lesion 7 not in mask" in res.output


def test_prepare_deep_reads_roi_chunks_and_whole_organ_box(tmp_path: Path) -> None:
    from radstore.preprocess import PreprocessConfig
    from tests.deep.synthetic_store import synthetic_scan

    vol, gtv = synthetic_scan(0, 2)
    liver = np.zeros_like(gtv)
    liver[2:14, 4:44, 4:44] = 1
    zs.write_scan(tmp_path, "c/P1/S1", vol, {"gtv": gtv, "liver": liver}, {"phase": "venous"},
                  chunks=(8, 24, 24))
    task = ex.ScanTask("c", "P1", "S1", "venous", None, "c/P1/S1")  # type: ignore[arg-type]
    cfg = PreprocessConfig(size=32, normalisation="unit", input_mode="lesion_mask")
    meta, x = ex.prepare_deep(str(tmp_path), task, "gtv", cfg.model_dump(mode="json"))
    assert meta == {"lesions": [1, 2], "counts": [1, 1]} and x.shape == (2, 3, 32, 32)
    organ = cfg.model_copy(update={"region": "organ", "organ_segmentation_id": "liver"})
    meta_o, xo = ex.prepare_deep(str(tmp_path), task, "gtv", organ.model_dump(mode="json"))
    assert meta_o == meta and xo.shape == x.shape
    # lesion crops: lesion + 5 mm margin (a disc in its box: ~20 % lesion); organ crops: mostly organ
    assert ((x > 0).mean(axis=(1, 2, 3)) < 0.4).all()
    assert ((xo > 0).mean(axis=(1, 2, 3)) > 0.6).all()
    with pytest.raises(KeyError, match="label 3"):
        ex.read_lesion(zs.open_scan(tmp_path, "c/P1/S1"), "gtv", 3, organ)


def _pids_titled(prefix: str) -> set[int]:
    """Processes whose title (Ray sets ``ray::<Actor>`` on actor workers) starts with ``prefix``."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                title = (d / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title.startswith(prefix):
                out.add(int(d.name))
    return out


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc to find the actor process")
def test_extract_survives_a_killed_model_actor(ray_session, tmp_path: Path) -> None:
    """SIGKILL the radiomics actor as soon as it exists: Ray restarts it (``max_restarts``) and
    retries its calls (``max_task_retries``), so every scan is still written, none fails."""
    import signal
    import threading
    import time

    make_store(tmp_path, [("ca", f"P{i}", 1 + i % 2, "venous") for i in range(4)])
    rad = load_feature_set("radiomics_original").model_copy(update={"phases": ("venous",)})
    settings = Settings(store=tmp_path, progress=False)
    killed: list[int] = []
    seen_after: set[int] = set()
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set():
            pids = _pids_titled("ray::RadiomicsActor")
            if not killed and pids:
                pid = min(pids)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            elif killed:
                seen_after.update(pids - set(killed))
            time.sleep(0.005)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        (r,) = ex.extract(settings, [rad], device="cpu", batch_size=1, num_actors=1)
    finally:
        stop.set()
        thread.join()
    assert killed and seen_after, "the actor was not killed and restarted during the job"
    assert (r.scans, r.done, r.failed) == (4, 4, 0)
    assert r.failures_path is None
    root = tmp_path / "features" / "radiomics_original" / rad.version
    t = pa.concat_tables([pq.read_table(p) for p in sorted(root.glob("phase=*/cohort=*/*.parquet"))])
    assert t.num_rows == 4 + 6  # lesion 0 per scan + one row per lesion (1, 2, 1, 2 lesions)
