"""Benchmark of ``radstore.synth.generate``: wall time per configuration.

Usage: ``PYTHONPATH=$PWD python benchmarks/synth.py [--full]``. Prints a table (hardware, versions,
threads) and writes ``benchmarks/results/synth.json``. ``--full`` adds a 512×512 run (2 patients,
1 hospital).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from benchmarks._hardware import cpu_name
from radstore.synth import SynthConfig, generate


def _run(cfg: SynthConfig) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = generate(Path(tmp) / "out", cfg, progress=False)
        wall = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (Path(tmp) / "out").rglob("*") if p.is_file())
    scans = sum(c.scans for c in res.cohorts)
    return {"config": cfg.model_dump(mode="json"), "wall_s": round(wall, 2), "scans": scans,
            "patients": cfg.hospitals * cfg.patients_per_hospital, "megabytes": round(size / 2**20, 1),
            "oracle_c_index_os": res.summary["overall"]["oracle_c_index_os"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="also time a 512x512 cohort")
    args = ap.parse_args()
    import numpy as np
    import pydicom
    import SimpleITK as sitk

    configs = [SynthConfig(hospitals=3, patients_per_hospital=10, size="small", seed=0),
               SynthConfig(hospitals=3, patients_per_hospital=12, size="small", seed=0, visits=2,
                           second_reader=True)]
    if args.full:
        configs.append(SynthConfig(hospitals=1, patients_per_hospital=2, size="full", seed=0,
                                   phases=("arterial", "venous")))
    rows = [_run(c) for c in configs]
    env = {"machine": platform.machine(), "processor": cpu_name(), "cpus": os.cpu_count(),
           "python": platform.python_version(), "numpy": np.__version__, "pydicom": pydicom.__version__,
           "SimpleITK": sitk.Version_VersionString(),
           "omp_threads": os.environ.get("OMP_NUM_THREADS", "unset")}
    print(" | ".join(f"{k}={v}" for k, v in env.items()))
    print(f"{'size':6} {'hosp':>4} {'pat/h':>5} {'visits':>6} {'r2':>3} {'scans':>5} {'MB':>7} {'wall s':>7} "
          f"{'s/scan':>6} {'C*':>6}")
    for r in rows:
        c = r["config"]
        print(f"{c['size']:6} {c['hospitals']:>4} {c['patients_per_hospital']:>5} {c['visits']:>6} "
              f"{'y' if c['second_reader'] else 'n':>3} {r['scans']:>5} {r['megabytes']:>7} "
              f"{r['wall_s']:>7} {r['wall_s'] / r['scans']:>6.2f} {r['oracle_c_index_os']:>6}")
    out = Path(__file__).parent / "results" / "synth.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": env, "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
