"""Benchmark: radstore texture kernels vs PyRadiomics 3.1 feature classes (same discretised input).

ROIs: the IBSI 1 CT phantom GTV (binWidth 25) and a large box ROI (>= 200k voxels) of the same CT.
Threads: ``--threads N`` for torch and the BLAS/OpenMP pools (default 1; PyRadiomics' C code and
our NumPy matrix code are single-threaded, the NumPy/torch feature code runs on the N threads).
Times: PyRadiomics = feature-class construction + execute (median of ``--repeat`` runs); ours =
median of ``--repeat`` warm runs, and "cold" = the first call on the ROI's grid shape in a process
already warmed up on another shape (imports and one-time set-up excluded; any per-shape cost
included). CPU times (``time.process_time``, all threads) are recorded too, as wall times on a
shared machine include time spent waiting for a core. Prints a table and writes
benchmarks/results/texture.json (``texture_t<N>.json`` for N > 1).
Usage: PYTHONPATH=. python benchmarks/texture.py [--data DIR] [--threads N] [--families glcm,...]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

# this folder holds radiomics.py: keep it off sys.path so `import radiomics` is PyRadiomics
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._hardware import cpu_name  # noqa: E402
from radstore.radiomics import _pyrad_reference as ref  # noqa: E402
from radstore.radiomics.texture_params import TextureParams  # noqa: E402

FAMILIES = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")


def rois(data: Path) -> dict[str, tuple[np.ndarray, np.ndarray, int, tuple[float, float, float]]]:
    import SimpleITK as sitk
    from radiomics import imageoperations

    root = data / "ibsi1" / "ct_phantom" / "nifti"
    img_i = sitk.ReadImage(str(root / "image" / "phantom.nii.gz"))
    img = sitk.GetArrayFromImage(img_i).astype(np.float64)
    m = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "mask" / "mask.nii.gz"))) > 0
    spacing = tuple(float(s) for s in img_i.GetSpacing()[::-1])
    out = {}
    zz, yy, xx = (np.nonzero(m.any(axis=ax))[0] for ax in ((1, 2), (0, 2), (0, 1)))
    bb = np.s_[zz.min() : zz.max() + 1, yy.min() : yy.max() + 1, xx.min() : xx.max() + 1]
    big = np.s_[15:45, 30:130, 30:130]
    for name, sl, mm in (("ibsi_ct_gtv", bb, m[bb]), ("large_box", big, np.ones_like(m[big]))):
        q, _ = imageoperations.binImage(img[sl], mm, binWidth=25)
        q = np.where(mm, q, 1).astype(np.int64)
        out[name] = (q, mm, int(q[mm].max()), spacing)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--families", default=",".join(FAMILIES))
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)  # NumPy's BLAS (PyRadiomics' eigvals) and OpenMP pools too
    families = tuple(f for f in args.families.split(",") if f)
    out = args.out or Path(__file__).resolve().parent / "results" / (
        "texture.json" if args.threads == 1 else f"texture_t{args.threads}.json"
    )
    warnings.simplefilter("ignore")
    import radiomics

    rng = np.random.default_rng(0)
    wq = torch.from_numpy(rng.integers(1, 9, size=(1, 7, 11, 13)))
    wm = torch.ones_like(wq, dtype=torch.bool)
    for fam in families:  # warm-up on another shape: imports, one-time set-up
        importlib.import_module(f"radstore.radiomics.{fam}").compute(wq, wm, 8, TextureParams())
        ref.features(fam, wq[0].numpy(), wm[0].numpy(), TextureParams())

    rows = []
    for roi_name, (q, m, n, spacing) in rois(args.data).items():
        params = TextureParams(spacing_zyx=spacing)
        qt, mt = torch.from_numpy(q)[None], torch.from_numpy(m)[None]
        for fam in families:
            mod = importlib.import_module(f"radstore.radiomics.{fam}")
            t0 = time.perf_counter()
            ours = mod.compute(qt, mt, n, params)
            first = time.perf_counter() - t0
            warm, warm_cpu = [], []
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                ours = mod.compute(qt, mt, n, params)
                warm.append(time.perf_counter() - t0)
                warm_cpu.append(time.process_time() - c0)
            py_times, py_cpu = [], []
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                theirs = ref.features(fam, q, m, params)
                py_times.append(time.perf_counter() - t0)
                py_cpu.append(time.process_time() - c0)
            t_py = statistics.median(py_times)
            err = max(abs(float(ours[k][0]) - theirs[k]) / max(abs(theirs[k]), 1e-2) for k in mod.FEATURES)
            ours_t = statistics.median(warm)
            rows.append(
                {
                    "roi": roi_name,
                    "voxels": int(m.sum()),
                    "n_levels": n,
                    "family": fam,
                    "pyradiomics_s": t_py,
                    "ours_first_s": first,
                    "ours_warm_s": ours_t,
                    "speedup_warm": t_py / ours_t,
                    "speedup_first": t_py / first,
                    "pyradiomics_cpu_s": statistics.median(py_cpu),
                    "ours_warm_cpu_s": statistics.median(warm_cpu),
                    "speedup_warm_cpu": statistics.median(py_cpu) / statistics.median(warm_cpu),
                    "max_rel_err": err,
                }
            )
            r = rows[-1]
            print(
                f"{roi_name:12s} {r['voxels']:7d} {n:4d} {fam:6s} pyrad {t_py:8.3f}s  ours {ours_t:7.3f}s "
                f"(cold {first:7.3f}s)  x{r['speedup_warm']:6.1f} (cold x{r['speedup_first']:5.1f}, "
                f"cpu-time x{r['speedup_warm_cpu']:5.1f})  max rel err {err:.1e}"
            )
    meta = {
        "platform": platform.platform(),
        "processor": cpu_name(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyradiomics": radiomics.__version__,
        "torch_threads": torch.get_num_threads(),
        "blas_openmp_threads": args.threads,
        "load_average_1min": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "device": "cpu",
    }
    print(json.dumps(meta))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
