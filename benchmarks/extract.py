"""Extraction throughput: scans/s end to end from Zarr (Ray job) vs model-only on the same device.

End to end = ``pipelines.extract.extract`` over a synthetic store (Zarr ROI reads, resampling,
windowing, cropping, resizing in CPU tasks; the backbone in one model actor), timed from actors
ready to the last Parquet part written. Model-only = the same backbone and thread count embedding
the same number of already-preprocessed images in one process, at ``--batch-size`` rows per
forward pass (the backbone's best) and at the actors' own forward size
(``pipelines.extract.forward_batch_size``: 1 on CPU, where fixed shapes keep embeddings
reproducible). Target: end to end ≥ 70 % of model-only at the actors' size; the gap between the
two model-only figures is the price of that reproducibility. CPU always; CUDA too when available.

    PYTHONPATH=$PWD python benchmarks/extract.py [--scans 24] [--size 112] [--backbone resnet50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks._hardware import cpu_name
from radstore.config import Settings, StoreLayout
from radstore.io import tables
from radstore.io import zarr_store as zs
from radstore.volume import Volume

SHAPE = (48, 192, 192)
SPACING_XYZ = (0.8, 0.8, 2.5)


def build_store(root: Path, n_scans: int) -> int:
    """``n_scans`` CT-like scans (one or two spherical lesions each) + their catalog; returns lesions."""
    layout = StoreLayout(root)
    rows, lesions = [], 0
    z, y, x = np.indices(SHAPE, dtype=np.float32)
    t0 = datetime(2021, 1, 1, tzinfo=UTC)
    for i in range(n_scans):
        rng = np.random.default_rng(i)
        img = rng.normal(40, 20, SHAPE).astype(np.float32)
        mask = np.zeros(SHAPE, np.uint8)
        n_les = 1 + i % 2
        for lab in range(1, n_les + 1):
            c = rng.uniform([15, 50, 50], [33, 142, 142])
            r = rng.uniform(8, 20)
            inside = ((z - c[0]) * 2.5) ** 2 + ((y - c[1]) * 0.8) ** 2 + ((x - c[2]) * 0.8) ** 2 <= r * r
            img[inside] = rng.normal(130, 25, int(inside.sum()))
            mask[inside] = lab
        lesions += len(zs.label_infos(mask))
        sid = f"S{i:015d}"
        rel = layout.scan_group("bench", f"P{i:015d}", sid)
        zs.write_scan(layout.volumes, rel, Volume(img.astype(np.int16), SPACING_XYZ), {"gtv": mask},
                      {"phase": "venous", "scan_id": sid})
        rows.append({"cohort_id": "bench", "patient_id": f"P{i:015d}", "scan_id": sid, "phase": "venous",
                     "event_timestamp": t0 + timedelta(days=i), "zarr_path": rel,
                     "segmentation_ids": ["gtv"], "lesions": list(range(1, n_les + 1)), "status": "ok",
                     "created_timestamp": t0})
    t = pa.Table.from_pylist(rows)
    t = t.set_column(t.schema.get_field_index("lesions"), "lesions",
                     t.column("lesions").cast(pa.list_(pa.int32())))
    tables.write_table(t, layout.catalog_table("scans", "bench"))
    return lesions


def model_only(spec_settings: dict, device: str, threads: int, n_images: int, batch_size: int) -> float:
    """Images/s of the backbone alone on preprocessed-size random inputs (same threads; forward
    passes of ``batch_size`` rows)."""
    import torch

    from radstore.deep import DeepSettings, embed, load_backbone

    torch.set_num_threads(threads)
    ds = DeepSettings.model_validate(spec_settings)
    model, _ = load_backbone(ds.backbone, device)
    size = ds.preprocess.size
    x = torch.randn(n_images, 3, size, size)
    embed(model, x[:batch_size], ds.backbone.precision, batch_size)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    embed(model, x, ds.backbone.precision, batch_size)
    if device == "cuda":
        torch.cuda.synchronize()
    return n_images / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scans", type=int, default=24)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    import ray
    import torch

    from pipelines.extract import extract, forward_batch_size
    from radstore.feature_sets import spec_from_dict

    os.environ.setdefault("RADSTORE_PROGRESS", "0")
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        n_lesions = build_store(root, args.scans)
        built = time.perf_counter() - t
        print(f"store: {args.scans} scans {SHAPE}, {n_lesions} lesions, built in {built:.1f} s")
        ray.init(num_cpus=args.num_cpus, num_gpus=torch.cuda.device_count(), include_dashboard=False,
                 log_to_driver=False)
        for device in devices:
            spec = spec_from_dict({
                "name": f"bench_{device}", "kind": "deep", "phases": ["venous"], "settings": {
                    "preprocess": {"size": args.size},
                    "backbone": {"name": args.backbone, "weights": "random", "pooling": "max"}}})
            settings = Settings(store=root, progress=False, device=device)
            (s,) = extract(settings, [spec], device=device, batch_size=args.batch_size)
            assert s.done == args.scans, s
            e2e = s.done / s.seconds_run
            threads = int(s.actors[0]["threads"])
            n_img = max(2 * args.batch_size, n_lesions)
            ips = model_only(spec.settings, device, threads, n_img, args.batch_size)
            # the actors' own forward-pass size (fixed shapes for reproducible embeddings)
            forward = forward_batch_size(device, args.batch_size)
            ips_fwd = ips if forward == args.batch_size else model_only(
                spec.settings, device, threads, n_img, forward)
            model_scans = ips / (n_lesions / args.scans)  # one image per lesion (largest slice)
            model_fwd_scans = ips_fwd / (n_lesions / args.scans)
            results.append({"device": device, "scans": s.done, "lesions": n_lesions,
                            "e2e_scans_per_s": e2e, "model_only_scans_per_s": model_scans,
                            "model_only_images_per_s": ips, "ratio": e2e / model_scans,
                            "forward_batch": forward, "model_only_forward_scans_per_s": model_fwd_scans,
                            "ratio_forward": e2e / model_fwd_scans,
                            "actor_startup_s": s.seconds_startup, "run_s": s.seconds_run,
                            "model_threads": threads, "actors": len(s.actors),
                            "model_busy_fraction": sum(a["busy_s"] for a in s.actor_stats) / s.seconds_run,
                            "model_calls": sum(a["calls"] for a in s.actor_stats)})
        ray.shutdown()

    env = {"python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__,
           "cpu": cpu_name(), "cpu_count": os.cpu_count(),
           "ray_num_cpus": args.num_cpus, "torch_threads_default": torch.get_num_threads(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "backbone": args.backbone, "input": f"3x{args.size}x{args.size}", "batch_size": args.batch_size,
           "load_avg": os.getloadavg()}
    print(" ".join(f"{k}={v}" for k, v in env.items()))
    hdr = f"{'device':<6} {'scans':>5} {'lesions':>7} {'e2e scans/s':>11} {'model scans/s':>13} " \
          f"{'e2e/model':>9} {'fwd rows':>8} {'model@fwd':>9} {'e2e/model@fwd':>13} {'threads':>7} " \
          f"{'startup s':>9} {'model busy':>10} {'batches':>7}"
    print(hdr)
    for r in results:
        print(f"{r['device']:<6} {r['scans']:>5} {r['lesions']:>7} {r['e2e_scans_per_s']:>11.2f} "
              f"{r['model_only_scans_per_s']:>13.2f} {r['ratio']:>9.0%} {r['forward_batch']:>8} "
              f"{r['model_only_forward_scans_per_s']:>9.2f} {r['ratio_forward']:>13.0%} "
              f"{r['model_threads']:>7} {r['actor_startup_s']:>9.1f} {r['model_busy_fraction']:>10.0%} "
              f"{r['model_calls']:>7}")
    out = Path(__file__).parent / "results" / "extract.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": env, "results": results}, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
