"""Feature extraction on Ray: deep and radiomic feature sets in one job.

Flow (per feature set, all feature sets interleaved in one event loop on the driver):

1. the scans to process come from ``catalog/scans/cohort=*/part-0.parquet`` (phase in the feature
   set's phases, its ``segmentation_id`` present); scans already in
   ``features/<name>/<version>/`` are skipped (idempotent re-runs);
2. a CPU task per scan (:func:`prepare_deep` / :func:`prepare_radiomics`) reads only the ROI chunks
   from Zarr (``labels`` bbox attributes + ``read_roi``) and preprocesses them; at most
   ``max_in_flight`` prepared scans are outstanding (bounded queue), so I/O and preprocessing of
   the next scans overlap with inference;
3. model actors (:class:`DeepActor`, :class:`RadiomicsActor`) load the backbone / settings once and
   take batches built across scans; they ask ``num_gpus = settings.ray.gpus_per_actor`` when the
   cluster has GPUs (each then sees its own ``CUDA_VISIBLE_DEVICES``) and are CPU actors otherwise.
   Every forward pass of a deep actor has one shape (:func:`forward_batch_size`, last chunk
   zero-padded), so an image's embedding does not depend on which scans shared its batch: two
   runs on the same machine and settings write the same numbers;
4. rows are aggregated (deep: slices → lesion → ``lesion = 0`` mean; radiomics: ``lesion = 0`` =
   the largest lesion) and flushed every ``flush_every`` scans to
   ``features/<name>/<version>/phase=<p>/cohort=<c>/part-<hash>.parquet`` (hash of the scan ids);
5. a scan whose task still fails after its retries is recorded in
   ``features/<name>/<version>/_failures/part-<run>.parquet`` (one row per scan and run; the
   leading underscore keeps it out of the ``phase=*/cohort=*`` table) and the job goes on; the
   next run retries it.

Task retries: prepare tasks are retried ``max_retries`` times on worker death and on ``OSError``
(transient storage errors); actors restart ``max_retries`` times and their calls are retried
(``max_task_retries``). Deterministic errors (a corrupt chunk, a missing label) fail at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from radstore.config import Settings
from radstore.feature_sets import FeatureSetSpec, load_feature_set
from radstore.io import tables
from radstore.io import zarr_store as zs

log = logging.getLogger(__name__)

KEY_COLUMNS = ("patient_id", "scan_id", "lesion", "event_timestamp", "created_timestamp")
FAILURE_DIR = "_failures"
RADIOMICS_MARGIN_VOX = (2, 2, 2)


# --------------------------------------------------------------------------------------------
# Work units and catalog
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScanTask:
    """One scan to extract (a catalog row)."""

    cohort_id: str
    patient_id: str
    scan_id: str
    phase: str
    event_timestamp: datetime
    zarr_path: str


@dataclass
class ExtractSummary:
    """What one run did for one feature set."""

    feature_set: str
    version: str
    kind: str
    scans: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    parts: list[str] = field(default_factory=list)
    failures_path: str | None = None
    actors: list[dict[str, Any]] = field(default_factory=list)
    seconds_startup: float = 0.0
    seconds_run: float = 0.0
    actor_stats: list[dict[str, float]] = field(default_factory=list)


def load_catalog(settings: Settings, cohorts: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Rows of ``catalog/scans/cohort=*/part-0.parquet`` (all cohorts, or those in ``cohorts``)."""
    base = settings.layout.catalog / "scans"
    paths = sorted(base.glob("cohort=*/part-0.parquet"))
    if cohorts:
        want = set(cohorts)
        paths = [p for p in paths if p.parent.name.removeprefix("cohort=") in want]
        missing = want - {p.parent.name.removeprefix("cohort=") for p in paths}
        if missing:
            raise FileNotFoundError(f"no scans catalog for cohort(s) {sorted(missing)} under {base}")
    rows: list[dict[str, Any]] = []
    for p in paths:
        rows.extend(tables.read_table(p).to_pylist())
    return rows


def scans_for(spec: FeatureSetSpec, catalog: list[dict[str, Any]]) -> list[ScanTask]:
    """Catalog scans the feature set applies to: status ok, phase listed, segmentation present."""
    out = []
    for r in catalog:
        if r.get("status", "ok") != "ok" or r["phase"] not in spec.phases:
            continue
        if spec.segmentation_id not in (r.get("segmentation_ids") or []):
            continue
        out.append(ScanTask(r["cohort_id"], r["patient_id"], r["scan_id"], r["phase"],
                            r["event_timestamp"], r["zarr_path"]))
    return out


def feature_root(settings: Settings, spec: FeatureSetSpec) -> Path:
    return settings.layout.features / spec.name / spec.version


def done_scan_ids(settings: Settings, spec: FeatureSetSpec) -> set[str]:
    """Scan ids already written for this feature set and version."""
    done: set[str] = set()
    for p in feature_root(settings, spec).glob("phase=*/cohort=*/part-*.parquet"):
        done.update(tables.read_table(p, columns=["scan_id"]).column("scan_id").to_pylist())
    return done


# --------------------------------------------------------------------------------------------
# Reading and preprocessing (CPU tasks)
# --------------------------------------------------------------------------------------------
def _lesion_labels(handle: zs.ScanHandle, seg: str) -> dict[int, zs.LabelInfo]:
    labels = handle.labels(seg)
    if not labels:
        raise ValueError(f"{handle.path}: mask {seg!r} has no lesion labels")
    return dict(sorted(labels.items()))


def read_lesion(handle: zs.ScanHandle, seg: str, label: int, cfg: Any
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[float, float, float]]:
    """HU crop, lesion mask and (``region: organ``) organ mask around one lesion, reading only
    the chunks of the box (lesion box, or lesion ∪ organ box, + the margin ``read_margin_mm``)."""
    from radstore.preprocess import read_margin_mm
    from radstore.preprocess.transforms import margin_voxels

    sx, sy, sz = handle.attrs["spacing"]
    spacing_zyx = (float(sz), float(sy), float(sx))
    mv = margin_voxels(read_margin_mm(cfg, spacing_zyx), spacing_zyx)
    if cfg.region == "lesion":
        img, msk, _ = handle.read_roi(seg, label, mv)  # type: ignore[arg-type]
        return img, msk, None, spacing_zyx
    labels = handle.labels(seg)
    if label not in labels:
        raise KeyError(f"{handle.path}: label {label} not in mask {seg!r}")
    organ_labels = handle.labels(cfg.organ_segmentation_id)
    if not organ_labels:
        raise ValueError(f"{handle.path}: organ mask {cfg.organ_segmentation_id!r} is empty")
    boxes = np.array([labels[label].bbox, *(i.bbox for i in organ_labels.values())])
    union = zs.LabelInfo(label, (int(boxes[:, 0].min()), int(boxes[:, 1].max()), int(boxes[:, 2].min()),
                                 int(boxes[:, 3].max()), int(boxes[:, 4].min()), int(boxes[:, 5].max())), 0)
    sl = union.slices(mv, handle.image.shape)  # type: ignore[arg-type]
    img = np.asarray(handle.image[sl])
    msk = np.asarray(handle.mask(seg)[sl]) == label
    organ = np.asarray(handle.mask(cfg.organ_segmentation_id)[sl]) != 0
    return img, msk, organ, spacing_zyx


def prepare_deep(volumes_root: str, task: ScanTask, seg: str, preprocess_json: dict[str, Any]
                 ) -> tuple[dict[str, Any], np.ndarray]:
    """All network inputs of one scan: ``({"lesions": [...], "counts": [...]}, (N, C, ...))``.

    ``preprocess_json`` is the feature set's ``preprocess`` block (no torch import here, so the
    preparing workers stay light)."""
    from radstore.preprocess import PreprocessConfig, prepare

    cfg = PreprocessConfig.model_validate(preprocess_json)
    handle = zs.open_scan(volumes_root, task.zarr_path)
    lesions, counts, arrays = [], [], []
    for label in _lesion_labels(handle, seg):
        img, msk, organ, spacing = read_lesion(handle, seg, label, cfg)
        x = prepare(img, msk, spacing, cfg, organ)
        lesions.append(label)
        counts.append(int(x.shape[0]))
        arrays.append(x)
    return {"lesions": lesions, "counts": counts}, np.concatenate(arrays)


ROI = tuple[np.ndarray, np.ndarray, tuple[float, float, float]]


def prepare_radiomics(volumes_root: str, task: ScanTask, seg: str) -> tuple[dict[str, Any], list[ROI]]:
    """ROIs of one scan for ``extract_batch``: ``({"lesions", "voxels"}, [(HU, mask, spacing_zyx)])``."""
    handle = zs.open_scan(volumes_root, task.zarr_path)
    sx, sy, sz = handle.attrs["spacing"]
    spacing_zyx = (float(sz), float(sy), float(sx))
    lesions: list[int] = []
    voxels: list[int] = []
    rois: list[ROI] = []
    for label, info in _lesion_labels(handle, seg).items():
        img, msk, _ = handle.read_roi(seg, label, RADIOMICS_MARGIN_VOX)
        lesions.append(label)
        voxels.append(info.voxels)
        rois.append((img, msk.astype(np.uint8), spacing_zyx))
    return {"lesions": lesions, "voxels": voxels}, rois


def warm_worker() -> int:
    """Import the preparing tasks' libraries in a worker (run while the actors start)."""
    import SimpleITK  # noqa: F401
    import zarr  # noqa: F401

    import radstore.preprocess  # noqa: F401

    return os.getpid()


# --------------------------------------------------------------------------------------------
# Actors
# --------------------------------------------------------------------------------------------
def _actor_device(device_pref: str) -> str:
    import torch

    return "cuda" if device_pref != "cpu" and torch.cuda.is_available() else "cpu"


def _set_threads() -> None:
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, round(cpus)))


def forward_batch_size(device: str, batch_size: int) -> int:
    """Rows per forward pass of a deep actor: ``batch_size`` on a GPU; 1 on CPU, where calls carry
    a few images each (as many as were prepared meanwhile) and padding them to ``batch_size`` would
    cost more than one image per pass does (ResNet50 alone: 21% more time per image than at 16 rows
    per pass, ``benchmarks/results/extract.json``)."""
    return batch_size if device.startswith("cuda") else 1


class DeepActor:
    """Holds one backbone; ``embed(*arrays)`` runs them as one batch stream, returns per-array
    embeddings (``(n_i, dim)`` float32)."""

    def __init__(self, settings_json: dict[str, Any], batch_size: int, device_pref: str) -> None:
        from radstore.deep import load_backbone
        from radstore.deep.config import DeepSettings

        _set_threads()
        self.settings = DeepSettings.model_validate(settings_json)
        self.device = _actor_device(device_pref)
        self.batch_size = forward_batch_size(self.device, batch_size)
        self.model, self.weights = load_backbone(self.settings.backbone, self.device)
        self.busy_s, self.images, self.calls = 0.0, 0, 0

    def info(self) -> dict[str, Any]:
        import ray
        import torch

        return {"kind": "deep", "device": self.device, "weights": self.weights,
                "threads": torch.get_num_threads(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}

    def stats(self) -> dict[str, float]:
        """Seconds spent in ``embed``, images and calls since start (for utilisation figures)."""
        return {"busy_s": self.busy_s, "images": self.images, "calls": self.calls}

    def embed(self, *arrays: np.ndarray) -> list[np.ndarray]:
        import time

        import torch

        from radstore.deep import embed

        t = time.perf_counter()
        x = torch.from_numpy(np.concatenate(arrays))
        y = embed(self.model, x, self.settings.backbone.precision, self.batch_size).numpy()
        self.busy_s += time.perf_counter() - t
        self.images += x.shape[0]
        self.calls += 1
        return np.split(y, np.cumsum([a.shape[0] for a in arrays])[:-1])


class RadiomicsActor:
    """Holds the radiomics settings; ``extract(*roi_lists)`` → per-scan lists of feature dicts."""

    def __init__(self, params: dict[str, Any], device_pref: str) -> None:
        from radstore.radiomics import RadiomicsSettings, feature_names

        _set_threads()
        self.settings = RadiomicsSettings.from_params(params)
        self.names = feature_names(self.settings)
        self.device = _actor_device(device_pref)

    def info(self) -> dict[str, Any]:
        import ray

        return {"kind": "radiomics", "device": self.device, "features": len(self.names),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid()}

    def feature_names(self) -> list[str]:
        return list(self.names)

    def extract(self, *roi_lists: list) -> list[list[dict[str, float]]]:
        from radstore.radiomics import extract_batch

        flat = [roi for rois in roi_lists for roi in rois]
        feats = extract_batch(flat, self.settings, label=1, device=self.device)
        out, i = [], 0
        for rois in roi_lists:
            out.append(feats[i:i + len(rois)])
            i += len(rois)
        return out


# --------------------------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActorPlan:
    n: int
    num_cpus: float
    num_gpus: float

    def for_radiomics(self, num_actors: int | None) -> ActorPlan:
        """A CPU radiomics set runs its CPU share as single-CPU actors (``k`` CPUs -> ``k`` actors
        of 1): its per-ROI work is mostly Python holding the GIL, so threads in one actor barely
        add throughput while processes scale. GPU plans and a given ``num_actors`` are kept."""
        if num_actors is not None or self.num_gpus > 0 or self.num_cpus < 2:
            return self
        return ActorPlan(self.n * int(self.num_cpus), 1.0, 0.0)


def plan_resources(cpus: float, gpus: float, n_sets: int, gpus_per_actor: float,
                   num_actors: int | None, use_gpu: bool) -> tuple[ActorPlan, float]:
    """Actors per feature set and the CPU share of a prepare task.

    GPU: ``share = min(gpus_per_actor, gpus / n_sets)``, ``n = floor(gpus / n_sets / share)`` per
    set (every set gets at least one actor, none waits for another's GPU). CPU: one actor per set
    (or ``num_actors``); the actors share half the CPUs (``floor(cpus / 2 / actors)`` each, torch
    threads = that) when there are at least two per actor, else ``(cpus - 1) / actors`` (or less),
    so at least one CPU is left for the prepare tasks (which take ``min(1, remaining)``). Radiomics
    sets split their share into single-CPU actors (:meth:`ActorPlan.for_radiomics`).
    """
    if use_gpu and gpus > 0:
        share = min(gpus_per_actor, gpus / n_sets)
        n = num_actors or max(1, int(gpus / n_sets / share + 1e-9))
        actor_cpus = min(1.0, max(cpus - 1, 0.5) / (n * n_sets))
        return ActorPlan(n, actor_cpus, share), max(0.25, min(1.0, cpus - actor_cpus * n * n_sets))
    n = num_actors or 1
    total = n * n_sets
    if cpus >= 2 * total:
        actor_cpus = float(int(cpus / 2 / total))
    else:
        actor_cpus = min(1.0, max(cpus - 1.0, cpus / (total + 1)) / total)
    return ActorPlan(n, actor_cpus, 0.0), max(0.25, min(1.0, cpus - actor_cpus * total))


# --------------------------------------------------------------------------------------------
# Rows and writing
# --------------------------------------------------------------------------------------------
def deep_rows(task: ScanTask, meta: dict[str, Any], per_image: np.ndarray, ds: Any,
              created: datetime) -> list[dict[str, Any]]:
    """Lesion rows (slices aggregated by ``slice_aggregation``) + the ``lesion = 0`` row
    (``lesion_aggregation`` over lesions)."""
    from radstore.deep import aggregate

    rows, vecs, start = [], [], 0
    for label, n in zip(meta["lesions"], meta["counts"], strict=True):
        v = aggregate(per_image[start:start + n], ds.slice_aggregation, ds.kmeans_clusters,
                      ds.backbone.seed)
        start += n
        vecs.append(v)
        rows.append(_key(task, label, created) | {"embedding": v})
    agg = aggregate(np.stack(vecs), ds.lesion_aggregation)
    return [_key(task, 0, created) | {"embedding": agg}, *rows]


def radiomics_rows(task: ScanTask, meta: dict[str, Any], feats: list[dict[str, float]],
                   names: list[str], created: datetime) -> list[dict[str, Any]]:
    """Lesion rows + the ``lesion = 0`` row = the largest lesion's (most voxels) values."""
    rows = []
    for label, f in zip(meta["lesions"], feats, strict=True):
        missing = [n for n in names if n not in f]
        if missing:
            raise KeyError(f"radiomics result for lesion {label} lacks {missing[:3]}")
        rows.append(_key(task, label, created) | {n: float(f[n]) for n in names})
    largest = int(np.argmax(meta["voxels"]))
    return [{**rows[largest], "lesion": 0}, *rows]


def _key(task: ScanTask, lesion: int, created: datetime) -> dict[str, Any]:
    return {"patient_id": task.patient_id, "scan_id": task.scan_id, "lesion": int(lesion),
            "event_timestamp": task.event_timestamp, "created_timestamp": created}


def _key_arrays(rows: list[dict[str, Any]]) -> list[pa.Array]:
    ts = tables.TIMESTAMP_TYPE
    return [pa.array([r["patient_id"] for r in rows], pa.string()),
            pa.array([r["scan_id"] for r in rows], pa.string()),
            pa.array([r["lesion"] for r in rows], pa.int32()),
            pa.array([r["event_timestamp"] for r in rows]).cast(ts) if rows else pa.array([], ts),
            pa.array([r["created_timestamp"] for r in rows]).cast(ts) if rows else pa.array([], ts)]


def rows_to_table(rows: list[dict[str, Any]], kind: str, names: list[str] | None = None,
                  dim: int | None = None) -> pa.Table:
    """The feature table schema: keys + ``embedding`` (fixed-size list<float32>) or float64 columns."""
    keys = _key_arrays(rows)
    if kind == "deep":
        assert dim is not None
        flat = np.concatenate([np.asarray(r["embedding"], np.float32) for r in rows]) if rows else \
            np.zeros(0, np.float32)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)
        return pa.Table.from_arrays([*keys, emb], names=[*KEY_COLUMNS, "embedding"])
    assert names is not None
    cols = [pa.array([r[n] for r in rows], pa.float64()) for n in names]
    return pa.Table.from_arrays([*keys, *cols], names=[*KEY_COLUMNS, *names])


def part_name(scan_ids: Sequence[str]) -> str:
    """``part-<16 hex of SHA-256 of the sorted scan ids>.parquet``."""
    return f"part-{hashlib.sha256(','.join(sorted(scan_ids)).encode()).hexdigest()[:16]}.parquet"


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------------
@dataclass
class _SetState:
    spec: FeatureSetSpec
    summary: ExtractSummary
    todo: deque[ScanTask]
    actors: list[Any] = field(default_factory=list)
    inflight: list[int] = field(default_factory=list)
    ready: deque[tuple[ScanTask, dict[str, Any], Any]] = field(default_factory=deque)
    buffers: dict[tuple[str, str], list[tuple[ScanTask, list[dict[str, Any]]]]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    names: list[str] | None = None
    deep: Any = None
    dim: int | None = None


def _ensure_ray(settings: Settings, address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    addr = address or settings.ray.address
    if addr:
        ray.init(address=addr, log_to_driver=False,
                 runtime_env={"env_vars": {"RADSTORE_PROGRESS": "0"}})
    else:
        ray.init(num_cpus=settings.ray.num_cpus, num_gpus=settings.ray.num_gpus,
                 include_dashboard=False, log_to_driver=False)


def extract(settings: Settings, feature_sets: Sequence[str | Path | FeatureSetSpec],
            cohorts: Sequence[str] | None = None, *, address: str | None = None,
            batch_size: int = 32, num_actors: int | None = None, max_in_flight: int | None = None,
            max_retries: int = 2, flush_every: int = 64, device: str | None = None
            ) -> list[ExtractSummary]:
    """Extract ``feature_sets`` for every applicable scan of ``cohorts`` (all when None) in one Ray job.

    Connects to ``address`` / ``settings.ray.address`` or starts a local Ray (reused when already
    initialised). ``device`` (default ``settings.device``): ``cpu`` forces CPU actors; ``auto`` /
    ``cuda`` use GPU actors when the cluster has GPUs. Returns one summary per feature set.
    """
    import time

    import ray

    t_start = time.perf_counter()
    specs = [s if isinstance(s, FeatureSetSpec) else load_feature_set(s) for s in feature_sets]
    if len({s.name for s in specs}) != len(specs):
        raise ValueError("a feature set is listed twice")
    catalog = load_catalog(settings, cohorts)
    created = datetime.now(UTC)
    _ensure_ray(settings, address)
    resources = ray.cluster_resources()
    device_pref = device or settings.device
    use_gpu = device_pref != "cpu" and resources.get("GPU", 0) > 0
    plan, prep_cpus = plan_resources(resources.get("CPU", 1), resources.get("GPU", 0), len(specs),
                                     settings.ray.gpus_per_actor, num_actors, use_gpu)
    rad_plan = plan.for_radiomics(num_actors)
    in_flight_cap = max_in_flight or max(4, 2 * rad_plan.n * len(specs) + int(resources.get("CPU", 1)))
    volumes = str(settings.layout.volumes)

    states: list[_SetState] = []
    for spec in specs:
        todo = scans_for(spec, catalog)
        done = done_scan_ids(settings, spec)
        remaining = [t for t in todo if t.scan_id not in done]
        summ = ExtractSummary(spec.name, spec.version, spec.kind, scans=len(todo),
                              skipped=len(todo) - len(remaining))
        st = _SetState(spec, summ, deque(remaining))
        set_plan = plan if spec.kind == "deep" else rad_plan
        opts = {"num_cpus": set_plan.num_cpus, "num_gpus": set_plan.num_gpus, "max_restarts": max_retries,
                "max_task_retries": max_retries}
        if not remaining:
            states.append(st)
            continue
        if spec.kind == "deep":
            st.deep = spec.deep_settings()
            st.dim = st.deep.backbone.dim
            if st.deep.backbone.weights == "random":
                log.warning("feature set %s uses RANDOM backbone weights (seed %d): not ImageNet features",
                            spec.name, st.deep.backbone.seed)
            deep_cls: Any = ray.remote(DeepActor).options(**opts)
            st.actors = [deep_cls.remote(spec.settings, batch_size, device_pref) for _ in range(set_plan.n)]
        else:
            rad_cls: Any = ray.remote(RadiomicsActor).options(**opts)
            st.actors = [rad_cls.remote(spec.settings, device_pref) for _ in range(set_plan.n)]
        st.inflight = [0] * set_plan.n
        states.append(st)

    n_prep = max(1, int(resources.get("CPU", 1) / prep_cpus))
    warm = [ray.remote(warm_worker).options(num_cpus=prep_cpus).remote() for _ in range(n_prep)]
    for st in states:
        if not st.actors:
            continue
        try:
            st.summary.actors = ray.get([a.info.remote() for a in st.actors])
            if st.spec.kind == "radiomics":
                st.names = ray.get(st.actors[0].feature_names.remote())
        except Exception as exc:
            for a in st.actors:
                ray.kill(a)
            raise RuntimeError(f"feature set {st.spec.name}: actors failed to start: {exc}") from exc
        doc = st.spec.settings_document() | {"provenance": {"actors": st.summary.actors}}
        _write_json(feature_root(settings, st.spec) / "_settings.json", doc)

    if any(st.actors for st in states):
        ray.get(warm)
    total = sum(len(st.todo) for st in states)
    from radstore.progress import track

    t_ready = time.perf_counter()

    loop = _event_loop(states, volumes, prep_cpus, in_flight_cap, max_retries, batch_size, created)
    for st_idx, _task in track(loop, "extracting features", total=total, enabled=settings.progress):
        st = states[st_idx]
        if sum(len(v) for v in st.buffers.values()) >= flush_every:
            _flush(settings, st)
    for st in states:
        _flush(settings, st)
        if st.failures:
            name = f"part-{created:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}.parquet"
            path = feature_root(settings, st.spec) / FAILURE_DIR / name
            tables.write_table(pa.Table.from_pylist(st.failures), path)
            st.summary.failures_path = str(path)
    t_end = time.perf_counter()
    for st in states:
        st.summary.seconds_startup = t_ready - t_start
        st.summary.seconds_run = t_end - t_ready
        if st.spec.kind == "deep" and st.actors:
            st.summary.actor_stats = ray.get([a.stats.remote() for a in st.actors])
        for a in st.actors:
            ray.kill(a)
    return [st.summary for st in states]


def _event_loop(states: list[_SetState], volumes: str, prep_cpus: float, cap: int, max_retries: int,
                batch_size: int, created: datetime) -> Iterator[tuple[int, ScanTask]]:
    """Yield ``(feature set index, scan)`` as each scan finishes (written to a buffer or failed)."""
    import ray

    prep_deep: Any = ray.remote(prepare_deep).options(num_cpus=prep_cpus, num_returns=2,
                                                 max_retries=max_retries, retry_exceptions=[OSError])
    prep_rad: Any = ray.remote(prepare_radiomics).options(num_cpus=prep_cpus, num_returns=2,
                                                     max_retries=max_retries, retry_exceptions=[OSError])
    pending: dict[Any, tuple[int, ScanTask, Any]] = {}   # meta ref -> (set, scan, data ref)
    running: dict[Any, tuple[int, int, list[tuple[ScanTask, dict[str, Any]]]]] = {}
    queued = lambda: sum(len(st.ready) for st in states)  # noqa: E731

    while True:
        # 1. keep the bounded prepare queue full, round-robin over feature sets
        progressed = True
        while progressed and len(pending) + queued() < cap:
            progressed = False
            for i, st in enumerate(states):
                if st.todo and len(pending) + queued() < cap:
                    t = st.todo.popleft()
                    fn = prep_deep if st.spec.kind == "deep" else prep_rad
                    args = (volumes, t, st.spec.segmentation_id)
                    if st.spec.kind == "deep":
                        meta, data = fn.remote(*args, st.spec.settings["preprocess"])
                    else:
                        meta, data = fn.remote(*args)
                    pending[meta] = (i, t, data)
                    progressed = True
        # 2. dispatch batches built across scans to actors with < 2 calls in flight
        for i, st in enumerate(states):
            for a_idx, actor in enumerate(st.actors):
                if not st.ready or st.inflight[a_idx] >= 2:
                    continue
                if st.inflight[a_idx] > 0 and _ready_items(st) < batch_size and (st.todo or pending):
                    continue
                items, refs, n = [], [], 0
                while st.ready and n < batch_size:
                    t, meta, data = st.ready.popleft()
                    items.append((t, meta))
                    refs.append(data)
                    n += sum(meta["counts"]) if st.spec.kind == "deep" else len(meta["lesions"])
                ref = actor.embed.remote(*refs) if st.spec.kind == "deep" else actor.extract.remote(*refs)
                running[ref] = (i, a_idx, items)
                st.inflight[a_idx] += 1
        if not pending and not running:
            if any(st.todo or st.ready for st in states):
                continue
            return
        done, _ = ray.wait([*pending, *running], num_returns=1)
        ref = done[0]
        if ref in pending:
            i, t, data = pending.pop(ref)
            st = states[i]
            try:
                meta = ray.get(ref)
            except Exception as exc:
                _fail(st, t, "read/preprocess", exc, created)
                yield i, t
                continue
            st.ready.append((t, meta, data))
        else:
            i, a_idx, items = running.pop(ref)
            st = states[i]
            st.inflight[a_idx] -= 1
            try:
                results = ray.get(ref)
            except Exception as exc:
                for t, _ in items:
                    _fail(st, t, "model", exc, created)
                    yield i, t
                continue
            for (t, meta), res in zip(items, results, strict=True):
                try:
                    rows = (deep_rows(t, meta, res, st.deep, created) if st.spec.kind == "deep"
                            else radiomics_rows(t, meta, res, st.names or [], created))
                except Exception as exc:
                    _fail(st, t, "aggregate", exc, created)
                else:
                    st.buffers.setdefault((t.phase, t.cohort_id), []).append((t, rows))
                    st.summary.done += 1
                yield i, t


def _ready_items(st: _SetState) -> int:
    return sum(sum(m["counts"]) if st.spec.kind == "deep" else len(m["lesions"]) for _, m, _ in st.ready)


def _fail(st: _SetState, t: ScanTask, stage: str, exc: BaseException, created: datetime) -> None:
    cause = getattr(exc, "cause", None) or exc
    msg = str(cause).strip().splitlines()
    st.failures.append({
        "feature_set": st.spec.name, "version": st.spec.version, "cohort_id": t.cohort_id,
        "patient_id": t.patient_id, "scan_id": t.scan_id, "phase": t.phase, "stage": stage,
        "error": type(cause).__name__, "message": (msg[-1] if msg else "")[:2000],
        "created_timestamp": created})
    st.summary.failed += 1
    log.warning("feature set %s: scan %s failed at %s: %s", st.spec.name, t.scan_id, stage,
                msg[-1] if msg else type(cause).__name__)


def _flush(settings: Settings, st: _SetState) -> None:
    """Write each buffered (phase, cohort) group as one part file, rows by scan id then lesion
    (not in completion order: the same scans give the same rows in the same order); clear the
    buffers."""
    for (phase, cohort), items in st.buffers.items():
        if not items:
            continue
        rows = [r for _, rs in sorted(items, key=lambda item: item[0].scan_id) for r in rs]
        table = rows_to_table(rows, st.spec.kind, st.names, st.dim)
        path = settings.layout.feature_dir(st.spec.name, st.spec.version, phase, cohort) / part_name(
            [t.scan_id for t, _ in items])
        tables.write_table(table, path)
        st.summary.parts.append(str(path))
    st.buffers.clear()


# --------------------------------------------------------------------------------------------
# Grad-CAM (no Ray: one scan)
# --------------------------------------------------------------------------------------------
def gradcam_scan(settings: Settings, feature_set: str | Path | FeatureSetSpec, scan_id: str,
                 out_dir: Path | str, lesion: int | None = None,
                 target: int | np.ndarray | None = None) -> list[Path]:
    """Grad-CAM overlays ``<out_dir>/<scan_id>_l<lesion>_<i>.png`` for each network input of the
    scan's lesions (2-D deep feature sets; the first channel is the grey background)."""
    import torch

    from radstore.deep import load_backbone
    from radstore.deep.gradcam import gradcam, save_overlay
    from radstore.preprocess import prepare

    spec = feature_set if isinstance(feature_set, FeatureSetSpec) else load_feature_set(feature_set)
    ds = spec.deep_settings()
    if ds.preprocess.spatial_dims != 2:
        raise ValueError(f"feature set {spec.name}: Grad-CAM overlays need a 2-D backbone")
    rows = [r for r in load_catalog(settings) if r["scan_id"] == scan_id]
    if not rows:
        raise KeyError(f"scan {scan_id} is not in the catalog under {settings.layout.catalog}")
    handle = zs.open_scan(settings.layout.volumes, rows[0]["zarr_path"])
    labels = _lesion_labels(handle, spec.segmentation_id)
    if lesion is not None and lesion not in labels:
        raise KeyError(f"scan {scan_id}: lesion {lesion} not in mask {spec.segmentation_id!r} "
                       f"({sorted(labels)})")
    model, _ = load_backbone(ds.backbone, "cpu")
    paths = []
    for label in [lesion] if lesion is not None else list(labels):
        img, msk, organ, spacing = read_lesion(handle, spec.segmentation_id, label, ds.preprocess)
        x = prepare(img, msk, spacing, ds.preprocess, organ)
        cams = gradcam(model, torch.from_numpy(x), target)
        for i, (xi, cam) in enumerate(zip(x, cams, strict=True)):
            paths.append(save_overlay(xi[0], cam, Path(out_dir) / f"{scan_id}_l{label}_{i}.png",
                                      title=f"{spec.name} {scan_id} lesion {label}"))
    return paths
