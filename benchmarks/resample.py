"""B-spline resampling benchmark: ``radstore.radiomics.resample`` vs SimpleITK's ResampleImageFilter.

The grid is PyRadiomics' (``resampleImage``: the ROI box + 5 voxels of padding, 1 mm isotropic), on
real CTs (IBSI CT phantom, the two STS sarcoma scans) and a small lesion in a whole 512 x 512 x 60
CT. Both run on one thread, best of N, interleaved; the outputs are compared voxel by voxel (same
pixel type). Prints a table and writes ``benchmarks/results/resample.json``.

    PYTHONPATH=$PWD python benchmarks/resample.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from benchmarks._hardware import cpu_details, cpu_name  # noqa: E402
from radstore.radiomics import RadiomicsSettings, imageops, resample  # noqa: E402
from radstore.radiomics.imageops import _resample  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETTING = RadiomicsSettings.from_params(
    {"setting": {"resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkBSpline"}}).setting


def cases() -> dict[str, tuple[np.ndarray, np.ndarray, tuple[float, float, float]]]:
    from benchmarks.radiomics import full_ct_lesion
    from radstore.radiomics.files import read_image, read_mask

    out = {}
    phantom = SHARED / "ibsi1" / "ct_phantom" / "nifti"
    if phantom.is_dir():
        im = sitk.ReadImage(str(phantom / "image" / "phantom.nii.gz"))
        ma = sitk.ReadImage(str(phantom / "mask" / "mask.nii.gz"))
        out["ibsi_ct_phantom"] = (sitk.GetArrayFromImage(im), sitk.GetArrayFromImage(ma) > 0,
                                  tuple(float(s) for s in im.GetSpacing()[::-1]))
    for case in ("STS_001", "STS_002"):
        base = SHARED / "sts" / case / "CT" / "dicom"
        if base.is_dir():
            vol = read_image(base / "image")
            out[f"sarcoma_ct_{case.lower()}"] = (vol.array, read_mask(base / "mask" / "RS.dcm", vol),
                                                 vol.spacing_zyx)
    image, lesion, spacing = full_ct_lesion()
    out["lesion_in_full_ct"] = (image, lesion.astype(bool), spacing)
    return out


def simpleitk_resample(image: np.ndarray, roi: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """PyRadiomics' call: the same grid, SimpleITK's B-spline on the whole image (and its nearest
    neighbour for the mask)."""
    supported, ambiguous = resample.supported, resample.ambiguous
    reproduced = imageops.itk_positions_reproduced
    resample.supported = lambda *_: False  # type: ignore[assignment]
    resample.ambiguous = lambda *_: True  # type: ignore[assignment]
    imageops.itk_positions_reproduced = lambda: False  # type: ignore[assignment]
    try:
        return _resample(image, roi, spacing, SETTING)[0]
    finally:
        resample.supported, resample.ambiguous = supported, ambiguous  # type: ignore[assignment]
        imageops.itk_positions_reproduced = reproduced  # type: ignore[assignment]


def separable_used(image: np.ndarray, roi: np.ndarray, spacing: tuple[float, float, float]) -> bool:
    """Whether ``_resample`` resampled the image separably (not handed to SimpleITK: interpolator,
    2-sample axis, or integer casts that ITK's rounding decides)."""
    calls: list[bool] = []
    original = resample.resample

    def recording(*a: Any, **k: Any) -> np.ndarray | None:
        out = original(*a, **k)
        calls.append(out is not None)
        return out

    resample.resample = recording  # type: ignore[assignment]
    try:
        _resample(image, roi, spacing, SETTING)
    finally:
        resample.resample = original  # type: ignore[assignment]
    return calls == [True]


def timed(fn) -> tuple[float, np.ndarray]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "resample.json"))
    args = ap.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    info = {"cpu": cpu_name(), "cpu_details": cpu_details(), "python": platform.python_version(),
            "numpy": np.__version__, "simpleitk": sitk.Version.VersionString(), "threads": 1}
    print("hardware/versions:", json.dumps(info))
    rows = []
    for name, (image, roi, spacing) in cases().items():
        ours_t = sitk_t = float("inf")
        ours = ref = None
        for _ in range(args.repeat):  # interleaved: both see the same load
            t, ours = timed(lambda i=image, r=roi, s=spacing: _resample(i, r, s, SETTING)[0])
            ours_t = min(ours_t, t)
            t, ref = timed(lambda i=image, r=roi, s=spacing: simpleitk_resample(i, r, s))
            sitk_t = min(sitk_t, t)
        assert ours is not None and ref is not None
        rows.append({"case": name, "input_shape": list(image.shape), "output_shape": list(ours.shape),
                     "dtype": str(image.dtype), "simpleitk_s": round(sitk_t, 4),
                     "radstore_s": round(ours_t, 4), "speedup": round(sitk_t / ours_t, 1),
                     "separable": separable_used(image, roi, spacing),
                     "equal_voxels": bool(np.array_equal(ours, ref)),
                     "max_abs_difference": float(np.abs(ours.astype(np.float64) - ref).max())})
        print(rows[-1], flush=True)
    hdr = (f"{'case':<22} {'input':>12} {'output':>12} {'dtype':>8} {'SimpleITK s':>11} {'ours s':>8} "
           f"{'x':>6} separable equal")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for r in rows:
        shapes = ["x".join(map(str, r[k])) for k in ("input_shape", "output_shape")]
        print(f"{r['case']:<22} {shapes[0]:>12} {shapes[1]:>12} {r['dtype']:>8} {r['simpleitk_s']:>11} "
              f"{r['radstore_s']:>8} {r['speedup']:>6} {r['separable']!s:>9} {r['equal_voxels']}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"info": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
