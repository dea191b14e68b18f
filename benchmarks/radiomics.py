"""Radiomics benchmark: torch engine vs PyRadiomics 3.1 (pyradiomics backend) in the same run.

Cases: the IBSI CT phantom ROI, a real soft-tissue sarcoma CT (STS_001, DICOM + RTSTRUCT), a small
synthetic ROI, a large one (>= 200k voxels) and a small lesion in a whole 512 x 512 x 60 CT field of
view, each with original features, with LoG (1, 3 mm) + wavelet images, and with original features
after resampling to 1 mm isotropic (B-spline, PyRadiomics' default interpolator, as most published
CT studies do); plus batch throughput (ROIs/s) of
``extract_batch`` on 16 small ROIs (ours one by one too; PyRadiomics as a cohort run would use the
same cores: one case per core, a pool of N single-threaded processes for N threads; for N > 1 also
ours on N single-threaded processes, as ``radstore radiomics cases.csv -j N`` runs).
Each case is timed best-of-N, ours and PyRadiomics alternating (same load; ms-scale cases in blocks
of 5 calls, so that each engine runs warm as in a cohort run, see ``timed_pair``); the
1-minute load average at the start of each row is recorded (the machine may be shared). Torch and
SimpleITK threads are set to the same count for both backends
(PyRadiomics' own code is single-threaded). Prints a table and writes
``benchmarks/results/radiomics.json``; with ``--runs K`` the whole table K times and, per case, the
median, min and max speedup (on a shared VM whole runs drift by tens of percent).

    PYTHONPATH=$PWD python benchmarks/radiomics.py [--threads 1 2] [--runs 3] [--device cuda]
        [--skip-pyradiomics-filters] [--cases small_roi large_roi] [--batch-size 64] [--quick]
        [--data DIR]

``--cases`` times only the named cases (the batch rows always run), ``--batch-size`` sets the number
of small ROIs in the batch rows (16; a GPU wants more), ``--quick`` takes fewer repeats (best of 5
for ms-scale calls, 1 for large ones: for a short GPU lease, see ``benchmarks/gpu_check.sh``) and
``--data`` reads the reference images from another folder than ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

# this file is named radiomics.py: keep its folder off sys.path so `import radiomics` is PyRadiomics
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402

from benchmarks._hardware import cpu_details, cpu_name  # noqa: E402
from radstore.radiomics import RadiomicsSettings, _compiled, extract, extract_batch  # noqa: E402
from radstore.radiomics._heap import keep_freed_heap  # noqa: E402
from radstore.radiomics.firstorder import fastest_order_method  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ORIGINAL = RadiomicsSettings.from_params(None)
FILTERS = RadiomicsSettings.from_params(
    {"imageType": {"Original": {}, "LoG": {"sigma": [1.0, 3.0]}, "Wavelet": {}}})
RESAMPLED = RadiomicsSettings.from_params(
    {"setting": {"resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkBSpline"}})
SETTINGS = {"original": ORIGINAL, "log+wavelet": FILTERS, "resampled_1mm": RESAMPLED}


def synthetic(shape: tuple[int, int, int], radii: tuple[float, float, float], seed: int = 0):
    rng = np.random.default_rng(seed)
    image = (rng.normal(40, 40, shape) + 30 * np.sin(np.indices(shape)[2] / 3)).round().astype(np.int16)
    zz, yy, xx = np.indices(shape)
    c = np.array(shape) / 2
    r = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip((zz, yy, xx), c, radii, strict=True))
    return image, (r < 1).astype(np.uint8), (1.5, 0.8, 0.8)


def full_ct_lesion(shape: tuple[int, int, int] = (60, 512, 512), seed: int = 3):
    """A small lesion (~4k voxels) in a whole CT field of view (air around an elliptic body), the
    common clinical case: PyRadiomics filters the whole image, we filter a window around the ROI."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    body = ((yy - 256) / 200.0) ** 2 + ((xx - 256) / 240.0) ** 2 < 1
    image = np.where(body, 40 + 25 * np.sin(xx / 9.0) * np.cos(yy / 7.0), -1000.0)
    image = (image + rng.normal(0, 20, shape)).round().astype(np.int16)
    r = ((zz - 30) / 4.5) ** 2 + ((yy - 300) / 15.0) ** 2 + ((xx - 200) / 14.0) ** 2
    lesion = r < 1
    image[lesion] += 60
    return image, lesion.astype(np.uint8), (2.5, 0.75, 0.75)


def cases(shared: Path = SHARED) -> dict[str, tuple[np.ndarray, np.ndarray, tuple[float, float, float]]]:
    """The timed cases by name; the IBSI phantom and the sarcoma CT where ``shared`` holds them."""
    out = {}
    base = shared / "ibsi1" / "ct_phantom" / "nifti"
    if base.is_dir():
        im = sitk.ReadImage(str(base / "image" / "phantom.nii.gz"))
        ma = sitk.ReadImage(str(base / "mask" / "mask.nii.gz"))
        out["ibsi_ct_phantom"] = (sitk.GetArrayFromImage(im), sitk.GetArrayFromImage(ma),
                                  tuple(float(s) for s in im.GetSpacing()[::-1]))
    sts = shared / "sts" / "STS_001" / "CT" / "dicom"
    if sts.is_dir():
        from radstore.radiomics.files import read_image, read_mask

        vol = read_image(sts / "image")
        out["sarcoma_ct_sts_001"] = (vol.array, read_mask(sts / "mask" / "RS.dcm", vol), vol.spacing_zyx)
    out["small_roi"] = synthetic((24, 48, 48), (5, 9, 8), 1)
    out["large_roi"] = synthetic((70, 130, 130), (32, 60, 55), 2)
    out["lesion_in_full_ct"] = full_ct_lesion()
    return out


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


_POOL_BATCH: list = []


def _pool_init(batch: list) -> None:
    """A worker process: one SimpleITK and one torch thread, the batch held once."""
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    torch.set_num_threads(1)
    _POOL_BATCH[:] = batch


def _pool_extract(job: tuple[int, str]) -> int:
    from radstore.radiomics import pyradiomics_backend as pb

    i, label = job
    pb.extract(*_POOL_BATCH[i], ORIGINAL if label == "original" else FILTERS)
    return i


def pyradiomics_batch_time(batch: list, label: str, threads: int, repeat: int) -> float:
    """Best-of-``repeat`` wall time of PyRadiomics over ``batch`` as a cohort run on ``threads``
    cores would do it: one case per core, i.e. a pool of ``threads`` single-threaded processes
    (warmed up; also for 1 thread: PyRadiomics alone in a worker runs ~5-10 % faster than in this
    process, which holds our engine and the benchmark data)."""
    jobs = [(i, label) for i in range(len(batch))]
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(threads, mp_context=ctx, initializer=_pool_init, initargs=(batch,)) as pool:
        list(pool.map(_pool_extract, jobs))  # warm-up: imports, PyRadiomics' first-call costs
        return timed(lambda: list(pool.map(_pool_extract, jobs)), repeat)


def _ours_group(job: tuple[list[int], str]) -> int:
    indices, label = job
    extract_batch([_POOL_BATCH[i] for i in indices], ORIGINAL if label == "original" else FILTERS)
    return len(indices)


def ours_process_pool_time(batch: list, label: str, processes: int, repeat: int) -> float:
    """Best-of-``repeat`` wall time of ``extract_batch`` over ``batch`` split into ``processes``
    contiguous groups on as many single-threaded worker processes (spawned: no inherited torch
    thread state), as ``radstore radiomics cases.csv -j N`` and the extraction job's actors run."""
    step = -(-len(batch) // processes)
    jobs = [(list(range(i, min(i + step, len(batch)))), label) for i in range(0, len(batch), step)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=ctx, initializer=_pool_init, initargs=(batch,)) as pool:
        list(pool.map(_ours_group, jobs))  # warm-up: imports, first-call caches
        return timed(lambda: list(pool.map(_ours_group, jobs)), repeat)


def timed_pair(fa, fb, repeat: int, block: int = 1) -> tuple[float, float | None]:
    """Best-of-``repeat`` wall times of ``fa`` and ``fb`` (None: not timed), in alternating blocks of
    ``block`` consecutive calls so that both see the same load on a shared machine. Blocks of
    several calls time each engine warm, as a cohort run on one engine runs: alternating every call,
    each engine's run evicts the other's code and data from the caches (the small ROI then takes
    ~35 % longer with ours, ~10 % with PyRadiomics)."""
    ba, bb = float("inf"), float("inf")
    for _ in range(max(1, repeat // block)):
        ba = min(ba, timed(fa, block))
        if fb is not None:
            bb = min(bb, timed(fb, block))
    return ba, (None if fb is None else bb)


def one_run(data: dict, threads_list: list[int], device: str, pb, skip_filters: bool, run: int,
            batch_size: int = 16, quick: bool = False, on_row=None) -> list[dict]:
    """One pass over every case and thread count: a row per case (``run`` recorded), then the batch
    rows over ``batch_size`` small ROIs; ``quick``: fewer repeats; ``on_row(row)`` after each row."""
    rows: list[dict] = []

    def done(row: dict) -> None:
        row["run"] = run
        rows.append(row)
        print(row, flush=True)
        if on_row is not None:
            on_row(row)

    for threads in threads_list:
        torch.set_num_threads(threads)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        for name, roi in data.items():
            nvox = int((roi[1] > 0).sum())
            for label, settings in SETTINGS.items():
                extract(*roi, settings, device=device)  # warm-up
                load = os.getloadavg()[0]
                fb = None
                if pb is not None and not (label == "log+wavelet" and skip_filters):
                    fb = partial(pb.extract, *roi, settings)
                repeat = 15 if roi[0].size < 200_000 else (3 if label == "original" else 2)
                if quick:
                    repeat = 5 if roi[0].size < 200_000 else 1
                block = 5 if roi[0].size < 200_000 else 1  # (ms-scale calls: each engine warm)
                t_ours, t_pyr = timed_pair(lambda r=roi, s=settings: extract(*r, s, device=device), fb,
                                           repeat, block)
                done({"threads": threads, "case": name, "voxels": nvox, "images": label,
                      "torch_s": round(t_ours, 4),
                      "pyradiomics_s": None if t_pyr is None else round(t_pyr, 4),
                      "speedup": None if t_pyr is None else round(t_pyr / t_ours, 2),
                      "repeat": repeat, "block": block, "load_1min": round(load, 2)})
        batch = [synthetic((24, 40, 40), (5 + i % 3, 8, 7 + i % 4), 10 + i) for i in range(batch_size)]
        batch_case = f"batch_{batch_size}_small_rois"
        for label, settings in (("original", ORIGINAL), ("log+wavelet", FILTERS)):
            extract_batch(batch[:2], settings, device=device)
            load = os.getloadavg()[0]
            repeat = 1 if quick else 5  # (best of 5: the process-pool rows vary by ~20 % run to run)
            t_batch, t_single = timed_pair(
                lambda b=batch, s=settings: extract_batch(b, s, device=device),
                lambda b=batch, s=settings: [extract(*r, s, device=device) for r in b], repeat)
            t_pyr = None
            if pb is not None and not (label != "original" and skip_filters):
                t_pyr = pyradiomics_batch_time(batch, label, threads, repeat)
            done({"threads": threads, "case": batch_case, "voxels": None, "images": label,
                  "torch_s": round(t_batch, 4),
                  "pyradiomics_s": None if t_pyr is None else round(t_pyr, 4),
                  "speedup": None if t_pyr is None else round(t_pyr / t_batch, 2),
                  "rois_per_s": round(batch_size / t_batch, 2),
                  "rois_per_s_one_by_one": round(batch_size / t_single, 2),
                  "repeat": repeat, "load_1min": round(load, 2)})
            if threads > 1:  # the same cores as processes: the way to scale small-ROI throughput
                load = os.getloadavg()[0]
                t_proc = ours_process_pool_time(batch, label, threads, repeat)
                done({"threads": threads, "case": f"{batch_case}_processes", "voxels": None,
                      "images": label, "torch_s": round(t_proc, 4),
                      "pyradiomics_s": None if t_pyr is None else round(t_pyr, 4),
                      "speedup": None if t_pyr is None else round(t_pyr / t_proc, 2),
                      "rois_per_s": round(batch_size / t_proc, 2), "repeat": repeat,
                      "load_1min": round(load, 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-pyradiomics-filters", action="store_true",
                    help="do not time PyRadiomics with filters (minutes on large ROIs)")
    ap.add_argument("--runs", type=int, default=1,
                    help="repeat the whole table this many times (shared VMs drift): median speedups")
    ap.add_argument("--cases", nargs="+", default=None, help="time only these cases (batch rows always run)")
    ap.add_argument("--batch-size", type=int, default=16, help="small ROIs in the batch rows")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a short GPU lease)")
    ap.add_argument("--data", type=Path, default=SHARED, help="folder holding ibsi1/ and sts/")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "radiomics.json"))
    args = ap.parse_args()
    try:
        import radiomics

        from radstore.radiomics import pyradiomics_backend as pb

        pyr_version = radiomics.__version__  # (also where PyRadiomics is a source tree, see gpu_check.sh)
    except ImportError:
        pb, pyr_version = None, "not installed"
    info = {"cpu": cpu_name(), "cpu_details": cpu_details(),
            "first_order_order_statistics": {n: fastest_order_method(n) for n in (1000, 100_000)},
            "python": platform.python_version(),
            "torch": torch.__version__, "simpleitk": sitk.Version.VersionString(), "pyradiomics": pyr_version,
            "numpy": np.__version__, "device": args.device,
            "compiled_kernels": _compiled.numba.__version__ if _compiled.ENABLED else "off (NumPy kernels)",
            "glibc_heap_kept": keep_freed_heap(),  # (as extract_batch does; PyRadiomics' forked workers too)
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    print("hardware/versions:", json.dumps(info))
    data = cases(args.data)
    if args.cases is not None:
        unknown = sorted(set(args.cases) - set(data))
        if unknown:
            ap.error(f"unknown or unavailable cases {unknown}; available: {sorted(data)}")
        data = {k: v for k, v in data.items() if k in args.cases}
    rows: list[dict] = []
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)

    so_far: list[dict] = []

    def save_partial(row: dict) -> None:  # (a run stopped at a time limit keeps its rows)
        so_far.append(row)
        partial = {"info": info, "runs": args.runs, "complete": False, "rows": so_far}
        out.write_text(json.dumps(partial, indent=2))

    for run in range(args.runs):
        if args.runs > 1:
            print(f"--- run {run + 1} of {args.runs}", flush=True)
        rows += one_run(data, args.threads, args.device, pb, args.skip_pyradiomics_filters, run,
                        args.batch_size, args.quick, save_partial)
    hdr = (f"{'thr':>3} {'case':<29} {'voxels':>8} {'images':<12} {'torch s':>8} {'pyrad s':>8} {'x':>6} "
           f"{'load':>5}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for r in rows:
        extra = (f"  {r['rois_per_s']} ROIs/s batched" + (f", {r['rois_per_s_one_by_one']} one by one"
                                                              if "rois_per_s_one_by_one" in r else "")
                 if "rois_per_s" in r else "")
        print(f"{r['threads']:>3} {r['case']:<29} {r['voxels'] or '':>8} {r['images']:<12} {r['torch_s']:>8} "
              f"{r.get('pyradiomics_s') or '':>8} {r.get('speedup') or '':>6} {r['load_1min']:>5}{extra}")
    summary = summarise(rows)
    if args.runs > 1:
        print(f"\nspeedup over {args.runs} runs: median (min - max)")
        for r in summary:
            print(f"{r['threads']:>3} {r['case']:<29} {r['images']:<12} {r['speedup_median']:>7} "
                  f"({r['speedup_min']} - {r['speedup_max']})")
    result = {"info": info, "runs": args.runs, "complete": True, "summary": summary, "rows": rows}
    out.write_text(json.dumps(result, indent=2))


def summarise(rows: list[dict]) -> list[dict]:
    """Per (threads, case, images): the median, min and max speedup over the runs."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        if r.get("speedup") is not None:
            groups.setdefault((r["threads"], r["case"], r["images"]), []).append(r["speedup"])
    return [{"threads": t, "case": c, "images": i, "speedup_median": round(float(np.median(v)), 2),
             "speedup_min": min(v), "speedup_max": max(v), "n_runs": len(v)}
            for (t, c, i), v in groups.items()]


if __name__ == "__main__":
    main()
