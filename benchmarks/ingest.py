"""Ingest benchmark: DICOM → Zarr throughput, and chunk shape / codec choice for ROI crops.

Generates a full-size cohort (512×512×``--slices`` CT series as DICOM + NIfTI label masks with two
tumour-sized lesions; ``--synth`` uses ``radstore.synth`` with size='full' instead), then measures

1. end-to-end ``ingest_cohort`` (default chunks/codec): source MB/s and scans/s;
2. per chunk shape / codec: write time, compression ratio (raw int16 bytes / stored image bytes),
   and the median time to read one lesion's crop (bbox + margin) from Zarr via ``read_roi``,
   against reading the same crop from the source files (whole DICOM series / whole .nii.gz).

Prints a table (hardware, versions, threads) and writes ``benchmarks/results/ingest.json``.
Page cache is warm for every read (the same files were just written); numbers are for comparing
layouts on one machine, not absolute I/O rates.

    PYTHONPATH=. python benchmarks/ingest.py --scans 3 --slices 150
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._hardware import cpu_name

REPO = Path(__file__).resolve().parents[1]


def _phantom(seed: int, nz: int, n: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Abdomen-like HU volume (noisy soft tissue, fat rim, air) with two spherical lesions."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    body = ((y - n / 2) / (n * 0.36)) ** 2 + ((x - n / 2) / (n * 0.44)) ** 2
    sl = np.where(body <= 1, np.where(body > 0.8, -90.0, 45.0), -1000.0).astype(np.float32)
    img = np.repeat(sl[None], nz, axis=0)
    img += rng.normal(0, 12, img.shape).astype(np.float32)
    mask = np.zeros(img.shape, np.uint8)
    zz, yy, xx = np.ogrid[0:nz, 0:n, 0:n]
    for lab, (cz, cy, cx, r) in enumerate([(nz * 0.45, n * 0.45, n * 0.4, 18),
                                           (nz * 0.6, n * 0.55, n * 0.62, 12)], start=1):
        ball = ((zz - cz) * 2.0) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        mask[ball] = lab
        img[ball] = 95 + rng.normal(0, 15, int(ball.sum()))
    return np.rint(img), mask


def make_cohort(root: Path, scans: int, slices: int) -> Path:
    from radstore.io.dicom import write_ct_series
    from radstore.io.volumes import write_volume
    from radstore.volume import Volume

    root.mkdir(parents=True, exist_ok=True)
    rows, clin = [], []
    for i in range(scans):
        img, mask = _phantom(i, slices)
        vol = Volume(img, (0.78, 0.78, 2.0), (-200.0, -200.0, -150.0))
        write_ct_series(vol, root / f"p{i}/ct", technical={"Manufacturer": "bench", "KVP": "120"},
                        acquisition=dt.datetime(2022, 1, 1 + i, 9))
        write_volume(vol.with_array(mask), root / f"p{i}/mask.nii.gz")
        write_volume(Volume(img.astype(np.int16), vol.spacing, vol.origin), root / f"p{i}/image.nii.gz")
        rows.append([f"B{i}", "venous", f"2022-01-0{1 + i % 9}T09:00:00", f"p{i}/ct",
                     f"gtv=p{i}/mask.nii.gz"])
        clin.append([f"B{i}", "2021-12-01", 60])
    with open(root / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source_patient_id", "phase", "acquisition_time", "image", "masks"])
        w.writerows(rows)
    with open(root / "clinical.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["source_patient_id", "index_date", "age"], *clin])
    with open(root / "outcomes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["source_patient_id", "os_months", "os_event"],
                                  *[[r[0], 12, 0] for r in rows]])
    return root / "manifest.csv"


def synth_cohort(root: Path, scans: int) -> Path:
    from radstore.synth import SynthConfig, generate

    res = generate(root, SynthConfig(hospitals=1, patients_per_hospital=max(2, scans), size="full",
                                     phases=("venous",)), progress=True)
    return res.cohorts[0].path / "manifest.csv"


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _median_time(fn: Any, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def configs() -> list[dict[str, Any]]:
    from zarr.codecs import BloscCodec, BloscShuffle

    zstd = BloscCodec(cname="zstd", clevel=3, shuffle=BloscShuffle.bitshuffle)
    lz4 = BloscCodec(cname="lz4", clevel=5, shuffle=BloscShuffle.shuffle)
    return [
        {"name": "32x128x128 zstd3+bitshuffle", "chunks": (32, 128, 128), "codec": zstd},
        {"name": "64x64x64 zstd3+bitshuffle", "chunks": (64, 64, 64), "codec": zstd},
        {"name": "16x64x64 zstd3+bitshuffle", "chunks": (16, 64, 64), "codec": zstd},
        {"name": "16x256x256 lz4-5+shuffle", "chunks": (16, 256, 256), "codec": lz4},
        {"name": "1x512x512 zstd3+bitshuffle", "chunks": (1, 512, 512), "codec": zstd},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scans", type=int, default=3)
    ap.add_argument("--slices", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--synth", action="store_true", help="use radstore.synth size='full'")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    os.environ.setdefault("RADSTORE_PSEUDONYM_KEY", "benchmark-key")
    import numcodecs
    import pydicom
    import zarr

    from pipelines.ingest import ingest_cohort, read_image, read_mask
    from radstore.config import DaskSettings, Settings
    from radstore.io import zarr_store
    from radstore.io.manifest import read_manifest
    from radstore.io.volumes import read_volume
    from radstore.volume import Volume

    work = args.workdir or Path(tempfile.mkdtemp(prefix="radstore-bench-"))
    t0 = time.perf_counter()
    if args.synth:
        manifest = synth_cohort(work / "synth", args.scans)
    elif (work / "cohort" / "manifest.csv").is_file():  # reuse a cohort kept with --workdir
        manifest = work / "cohort" / "manifest.csv"
    else:
        manifest = make_cohort(work / "cohort", args.scans, args.slices)
    gen_s = time.perf_counter() - t0
    m = read_manifest(manifest)
    entries = m.entries
    src_bytes = sum(_du(p) if p.is_dir() else p.stat().st_size for p in (m.root / e.image for e in entries))

    # 1. end-to-end ingest with the defaults
    shutil.rmtree(work / "store", ignore_errors=True)
    settings = Settings(store=work / "store", progress=False,
                        dask=DaskSettings(scheduler="threads", num_workers=args.workers))
    t = time.perf_counter()
    rep = ingest_cohort(settings, "bench", manifest, qc_report=False)
    ingest_s = time.perf_counter() - t
    assert rep.scans_ok == rep.written == len(entries), rep.rejections
    e2e = {"scans": rep.scans_ok, "source_mb": src_bytes / 1e6, "seconds": ingest_s,
           "mb_per_s": src_bytes / 1e6 / ingest_s, "scans_per_s": rep.scans_ok / ingest_s,
           "workers": args.workers, "default_chunks": list(zarr_store.DEFAULT_CHUNKS)}
    t = time.perf_counter()
    rep2 = ingest_cohort(settings, "bench", manifest, qc_report=False)
    e2e["rerun_unchanged_s"] = time.perf_counter() - t
    assert rep2.written == 0

    # 2. layouts: write, size, ROI crop reads
    vols: list[tuple[Any, Volume, dict[str, np.ndarray]]] = []
    for e in entries:
        img = read_image(m.root / e.image)
        vols.append((e, Volume(np.rint(img.array).astype(np.int16), img.spacing, img.origin,
                               img.direction),
                     {s: read_mask(m.root / p, img) for s, p in e.masks.items()}))
    raw_bytes = sum(v.array.nbytes for _, v, _ in vols)
    results = []
    layouts = []
    for cfg in configs():
        root = work / f"layout-{cfg['chunks'][0]}-{cfg['chunks'][1]}-{cfg['codec'].cname}"
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        paths = []
        for i, (_, v, masks) in enumerate(vols):
            gp = f"bench/P{i:015d}/S{i:015d}"
            zarr_store.write_scan(root, gp, v, masks, {"scan_id": gp}, chunks=cfg["chunks"],
                                  compressor=cfg["codec"])
            paths.append(gp)
        layouts.append((cfg, root, paths, time.perf_counter() - t))
    # crop reads interleaved over layouts (round-robin), so load changes hit every layout alike
    crops: dict[str, list[float]] = {cfg["name"]: [] for cfg, *_ in layouts}
    for _ in range(args.repeat):
        for cfg, root, paths, _ in layouts:
            for gp in paths:
                h = zarr_store.open_scan(root, gp)
                for lab in h.labels("gtv"):
                    t = time.perf_counter()
                    h.read_roi("gtv", lab, (2, 8, 8))
                    crops[cfg["name"]].append(1e3 * (time.perf_counter() - t))
    for cfg, root, paths, write_s in layouts:
        stored = sum(_du(root / gp / "image") for gp in paths)
        chunk_counts, crop_vox = [], []
        for gp in paths:
            h = zarr_store.open_scan(root, gp)
            for info in h.labels("gtv").values():
                sl = info.slices((2, 8, 8), h.image.shape)
                n = 1
                for s_, c in zip(sl, h.image.chunks, strict=True):
                    n *= (s_.stop - 1) // c - s_.start // c + 1
                chunk_counts.append(n)
                crop_vox.append(int(np.prod([s_.stop - s_.start for s_ in sl])))
        full_s = sum(_median_time(lambda gp=gp, r=root: zarr_store.open_scan(r, gp).image[...], 2)
                     for gp in paths)
        chunk_mb = float(np.prod(cfg["chunks"])) * 2 / 1e6
        results.append({"layout": cfg["name"], "chunks": list(cfg["chunks"]), "write_s": write_s,
                        "full_read_mb_per_s": raw_bytes / 1e6 / full_s,
                        "write_mb_per_s": raw_bytes / 1e6 / write_s,
                        "compression_ratio": raw_bytes / stored,
                        "roi_crop_ms_median": statistics.median(crops[cfg["name"]]),
                        "roi_chunks_per_crop": statistics.median(chunk_counts),
                        "roi_decoded_mb_per_crop": statistics.median(chunk_counts) * chunk_mb,
                        "roi_crop_voxels_median": int(statistics.median(crop_vox))})
    for _, root, _, _ in layouts:
        shutil.rmtree(root, ignore_errors=True)

    # ROI crops from the source files (the whole file/series must be decoded)
    dicom_ms, nifti_ms = [], []
    for e, _, _ in vols[:2]:
        folder = m.root / e.image
        dicom_ms.append(1e3 * _median_time(lambda f=folder: read_image(f), max(1, args.repeat // 2)))
        nii = folder.parent / "image.nii.gz"
        if nii.is_file():
            nifti_ms.append(1e3 * _median_time(lambda f=nii: read_volume(f), max(1, args.repeat // 2)))
    source = {"dicom_series_crop_ms": statistics.median(dicom_ms),
              "nifti_gz_crop_ms": statistics.median(nifti_ms) if nifti_ms else None}

    env = {"python": platform.python_version(), "platform": platform.platform(),
           "cpu": cpu_name(), "cpus": os.cpu_count(), "zarr": zarr.__version__,
           "numcodecs": numcodecs.__version__, "pydicom": pydicom.__version__,
           "blosc_threads": numcodecs.blosc.get_nthreads(), "dask_workers": args.workers,
           "shape": list(vols[0][1].shape), "scans": len(vols), "generate_s": gen_s,
           "source": "radstore.synth size=full" if args.synth else "benchmarks/ingest.py phantom",
           "load_avg": os.getloadavg()}
    out = {"env": env, "end_to_end": e2e, "layouts": results, "source_reads": source}
    _print(out)
    dest = REPO / "benchmarks" / "results" / "ingest.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nwrote {dest}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


def _print(out: dict[str, Any]) -> None:
    env, e2e = out["env"], out["end_to_end"]
    print(f"# ingest benchmark — {env['cpu']} ({env['cpus']} CPUs, load {env['load_avg'][0]:.1f}), "
          f"python {env['python']}, zarr {env['zarr']}, numcodecs {env['numcodecs']}, "
          f"blosc threads {env['blosc_threads']}, dask workers {env['dask_workers']}")
    print(f"# cohort: {env['scans']} scans of {env['shape']} ({env['source']})")
    print(f"\nend-to-end DICOM → Zarr (default chunks {e2e['default_chunks']}): "
          f"{e2e['source_mb']:.0f} MB in {e2e['seconds']:.1f} s = {e2e['mb_per_s']:.1f} MB/s, "
          f"{e2e['scans_per_s']:.2f} scans/s; unchanged re-run {e2e['rerun_unchanged_s']:.1f} s")
    print("\n| layout | write MB/s | full read MB/s | compression | ROI crop ms (median) "
          "| chunks / crop | decoded MB / crop |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in out["layouts"]:
        print(f"| {r['layout']} | {r['write_mb_per_s']:.0f} | {r['full_read_mb_per_s']:.0f} | "
              f"{r['compression_ratio']:.2f}× | "
              f"{r['roi_crop_ms_median']:.1f} | {r['roi_chunks_per_crop']:.0f} | "
              f"{r['roi_decoded_mb_per_crop']:.2f} |")
    s = out["source_reads"]
    print(f"(lesion crop = bbox + 2/8/8 voxel margin, median {out['layouts'][0]['roi_crop_voxels_median']} "
          "voxels; crops read round-robin over layouts)")
    nifti = f"{s['nifti_gz_crop_ms']:.0f}" if s["nifti_gz_crop_ms"] is not None else "n/a"
    print(f"| source: whole DICOM series | | | | {s['dicom_series_crop_ms']:.0f} | | |")
    print(f"| source: whole .nii.gz | | | | {nifti} | | |")


if __name__ == "__main__":
    main()
