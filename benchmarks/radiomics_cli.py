"""Command-line benchmark: ``radstore radiomics`` vs PyRadiomics' own ``pyradiomics`` command, end to end.

``benchmarks/radiomics.py`` times the engines in one warm process. A user replacing ``pyradiomics``
runs a command instead, and then also pays for starting Python, importing the libraries (torch
alone takes ~2.5 s to import here), reading the files and writing the output. This script times
exactly that, each command in a fresh process, in the same run, alternating the two commands:

- one case (the IBSI CT phantom, NIfTI), one process, as ``radstore radiomics IMAGE MASK``;
- a batch CSV of the four NIfTI/NRRD reference cases (IBSI CT phantom, PyRadiomics' brain1, brain2,
  breast1), each listed ``--copies`` times (4: 16 rows, a small cohort), as
  ``radstore radiomics cases.csv -j N`` and ``pyradiomics cases.csv -j N``;

each with original features and with LoG (1, 3 mm) + wavelet images. Before timing, one run of
each command checks that both wrote the same features (1e-4 relative; 1e-3 with filters,
the oracle tests' tolerances), so a failing command cannot pass as a fast one. Wall time is best
of ``--repeat``; the machine's core count, CPU and the 1-minute load average are recorded.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/radiomics_cli.py [--repeat 3] [--jobs 1 2] [--copies 4]

Prints a table and writes ``benchmarks/results/radiomics_cli.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._hardware import cpu_details, cpu_name

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PARAMS = {
    "original": "imageType:\n  Original: {}\n",
    "log+wavelet": "imageType:\n  Original: {}\n  LoG:\n    sigma: [1.0, 3.0]\n  Wavelet: {}\n",
}
TOLERANCE = {"original": 1e-4, "log+wavelet": 1e-3}


def reference_cases(data: Path) -> list[tuple[str, Path, Path]]:
    """(name, image, mask) of the NIfTI/NRRD reference cases both command lines read."""
    pyrad = data / "pyradiomics"
    phantom = data / "ibsi1" / "ct_phantom" / "nifti"
    out = [("ibsi_ct_phantom", phantom / "image" / "phantom.nii.gz", phantom / "mask" / "mask.nii.gz")]
    out += [(name, pyrad / f"{name}_image.nrrd", pyrad / f"{name}_label.nrrd")
            for name in ("brain1", "brain2", "breast1")]
    missing = [str(p) for _, i, m in out for p in (i, m) if not p.exists()]
    if missing:
        raise SystemExit(f"reference images missing (see ../shared/data/README.md): {missing}")
    return out


def run_timed(cmd: list[str], env: dict[str, str]) -> float:
    """Wall seconds of ``cmd`` in a fresh process; its output is shown if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return seconds


def feature_rows(path: Path) -> list[dict[str, float]]:
    """The feature columns (``original_…``, ``log-…``, ``wavelet-…``) of each row of a CSV output."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    keep = ("original_", "log-sigma", "wavelet-")
    return [{k: float(v) for k, v in r.items() if k and k.startswith(keep) and v not in ("", None)}
            for r in rows]


def worst_difference(ours: Path, theirs: Path) -> tuple[int, float]:
    """(features compared, worst relative difference; absolute below 1e-6) over all rows."""
    a, b = feature_rows(ours), feature_rows(theirs)
    if len(a) != len(b) or not a:
        raise SystemExit(f"row counts differ: {ours} has {len(a)}, {theirs} has {len(b)}")
    n, worst = 0, 0.0
    for ra, rb in zip(a, b, strict=True):
        if set(ra) != set(rb):
            raise SystemExit(f"feature columns differ: {sorted(set(ra) ^ set(rb))[:5]} …")
        for k, x in ra.items():
            y = rb[k]
            n += 1
            if math.isnan(x) or math.isnan(y):
                if math.isnan(x) != math.isnan(y):
                    return n, math.inf
                continue
            d = abs(x - y)
            worst = max(worst, d / abs(y) if abs(y) > 1e-6 and d > 1e-6 else 0.0)
    return n, worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs per command")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="batch rows: worker processes (-j)")
    ap.add_argument("--copies", type=int, default=4, help="batch rows: how often each case is listed")
    ap.add_argument("--images", nargs="+", default=list(PARAMS), choices=list(PARAMS))
    ap.add_argument("--data", type=Path, default=SHARED, help="folder holding ibsi1/ and pyradiomics/")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "radiomics_cli.json"))
    args = ap.parse_args()
    bindir = Path(sys.executable).parent
    ours_cmd = shutil.which("radstore", path=str(bindir))
    theirs_cmd = shutil.which("pyradiomics", path=str(bindir))
    if ours_cmd is None or theirs_cmd is None:
        raise SystemExit(f"needs the `radstore` and `pyradiomics` commands beside {sys.executable} "
                         "(make install)")
    version = subprocess.run([theirs_cmd, "--version"], capture_output=True, text=True).stdout.strip()

    env = {**os.environ, "RADSTORE_PROGRESS": "0"}
    info = {"cpu": cpu_name(), "cpu_details": cpu_details(), "cores": os.cpu_count(),
            "python": platform.python_version(), "pyradiomics": version}
    print("hardware/versions:", json.dumps(info))
    cases = reference_cases(args.data)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        batch = tmp / "cases.csv"
        with batch.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Case", "Image", "Mask"])
            w.writerows([name, str(image), str(mask)]
                        for _ in range(args.copies) for name, image, mask in cases)
        _, image, mask = cases[0]
        for images in args.images:
            params = tmp / f"{images.replace('+', '_')}.yaml"
            params.write_text(PARAMS[images])
            runs = [("one case, 1 process", [str(image), str(mask)], [])]
            runs += [(f"batch CSV of {len(cases) * args.copies}, -j {j}", [str(batch)], ["-j", str(j)])
                     for j in args.jobs]
            for mode, inputs, jobs in runs:
                ours_out, theirs_out = tmp / "ours.csv", tmp / "theirs.csv"
                ours = [ours_cmd, "radiomics", *inputs, "-p", str(params), "--format", "csv",
                        "--output", str(ours_out), *jobs]
                theirs = [theirs_cmd, *inputs, "-p", str(params), "-f", "csv", "-o", str(theirs_out), *jobs]
                ours_out.unlink(missing_ok=True)
                theirs_out.unlink(missing_ok=True)  # (pyradiomics appends to -o)
                load = os.getloadavg()[0]
                t_ours, t_theirs = [run_timed(ours, env)], [run_timed(theirs, env)]
                n, worst = worst_difference(ours_out, theirs_out)
                if worst > TOLERANCE[images]:
                    raise SystemExit(f"{mode}, {images}: outputs differ by {worst:.2e} relative")
                for _ in range(args.repeat - 1):
                    t_ours.append(run_timed(ours, env))
                    theirs_out.unlink()
                    t_theirs.append(run_timed(theirs, env))
                row = {"mode": mode, "images": images, "radstore_s": round(min(t_ours), 2),
                       "pyradiomics_s": round(min(t_theirs), 2),
                       "speedup": round(min(t_theirs) / min(t_ours), 2), "features_compared": n,
                       "worst_relative_difference": float(f"{worst:.2e}"), "load_1min": round(load, 2)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    hdr = (f"{'mode':<26} {'images':<12} {'radstore s':>10} {'pyrad s':>8} {'x':>6} {'worst rel':>9} "
           f"{'load':>5}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for r in rows:
        print(f"{r['mode']:<26} {r['images']:<12} {r['radstore_s']:>10} {r['pyradiomics_s']:>8} "
              f"{r['speedup']:>6} {r['worst_relative_difference']:>9} {r['load_1min']:>5}")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"info": info, "repeat": args.repeat, "copies": args.copies, "rows": rows},
                              indent=2))


if __name__ == "__main__":
    main()
