"""Random ROIs and PyRadiomics settings for the randomized oracle (torch backend vs PyRadiomics).

Three generators, each a pure function of its seed:

- :func:`settings_case`: random shapes, spacings, pixel types (int16, uint8, float32, float64,
  integer-valued float32, two-level and constant images), labels with other labels around, and
  settings drawn over binWidth/binCount, normalisation (+ outliers), resampling (B-spline, linear,
  nearest; [1, 1, 0] keeps an axis), re-segmentation, voxelArrayShift, force2D, distances, GLCM
  symmetry and weighting, preCrop, LoG and wavelet, and the pointwise and gradient filters (Square,
  SquareRoot, Logarithm, Exponential, Gradient; held to 1e-4 like the original image).
- :func:`shape2d_case`: wavelet options (other wavelets, start_level, level 2), re-segmentation
  modes with ``resegmentShape``, single-slice ROIs with force2D + shape2D, minimum ROI size and
  dimensions, label 5 among label 7 noise.
- :func:`simple_filters_case`: :func:`settings_case`'s ROIs and settings with all five pointwise and
  gradient image types and LBP2D, and in about half the cases LBP3D.

A sweep over many seeds (minutes per thousand cases on 2 cores)::

    python -m tests.radiomics._random_cases settings 0 500
    python -m tests.radiomics._random_cases shape2d 0 500
    python -m tests.radiomics._random_cases filters 0 500

prints every case whose features differ (beyond 1e-4 relative, 1e-3 with filters) or where one side
refuses the ROI and the other does not (features PyRadiomics gives as NaN must be the ones our
ROIError names); ``test_oracle.py`` runs a fixed sample of both. With ``--device cuda`` (or
``--device torch-cpu``: the torch kernels CUDA runs, on the CPU) the same cases compare our engine on
that device with our engine on the CPU instead, within 1e-5 relative (:func:`compare_devices`; the
GPU check ``benchmarks/gpu_check.sh`` runs it)::

    python -m tests.radiomics._random_cases filters 0 100 --device cuda
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

Case = tuple[np.ndarray, np.ndarray, tuple[float, float, float], dict[str, Any], bool]
KINDS = ("int16", "uint8", "float32", "float64", "constant_float32", "constant_int16", "ct_float32",
         "two_level_int16")
SIMPLE_FILTERS = ("Square", "SquareRoot", "Logarithm", "Exponential", "Gradient")
ALL_CLASSES = ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


def _ellipsoid(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    zz, yy, xx = np.indices(shape)
    c, r = rng.uniform(0.3, 0.7, 3) * np.array(shape), rng.uniform(1.5, 7, 3)
    return (((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2) < 1, c


def settings_case(seed: int) -> Case:
    """(image, label map, spacing z/y/x, PyRadiomics params, filters enabled) for ``seed``."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(5, 26, 3))
    sp = (float(rng.choice([0.8, 1.0, 1.5, 2.5, 3.0, 5.0])),
          *[float(rng.choice([0.5, 0.7, 0.976562, 1.0]))] * 2)
    kind = str(rng.choice(KINDS))
    dt = kind.split("_")[-1]
    img = rng.normal(40, 200, shape)
    if kind.startswith("ct"):
        img = img.round()
    if kind.startswith("two_level"):
        img = np.where(rng.random(shape) < 0.5, -100.0, 300.0)
    if dt == "uint8":
        img = img.clip(0, 255).round()
    img = img.astype(dt) if dt.startswith("float") else img.round().astype(dt)
    if kind.startswith("constant"):
        img[:] = img.flat[0]
    inside, c = _ellipsoid(rng, shape)
    label = int(rng.choice([1, 1, 2]))
    mask = np.where(inside, label, 0).astype(np.uint8)
    mask[tuple(int(v) for v in c)] = label
    mask[int(c[0]), int(c[1]), max(int(c[2]) - 1, 0)] = label
    if rng.random() < 0.3:
        mask[rng.random(shape) < 0.05] = 3 - label
    st: dict[str, Any] = {"label": label}
    if rng.random() < 0.25:
        st["normalize"] = True
        st["normalizeScale"] = float(rng.choice([1, 100, 500]))
        if rng.random() < 0.5:
            st["removeOutliers"] = float(rng.choice([1.5, 3]))
    if rng.random() < 0.5:
        st["binCount"] = int(rng.choice([8, 16, 25, 32, 64, 7]))
    elif st.get("normalizeScale") == 1:  # values of a few units
        st["binWidth"] = float(rng.choice([0.1, 0.25, 0.5]))
    else:  # (narrower bins over ~1,000 HU: minutes in PyRadiomics; see test_many_narrow_bins...)
        st["binWidth"] = float(rng.choice([25, 10, 5, 12.5]))
    if rng.random() < 0.3:
        st["resampledPixelSpacing"] = [[1, 1, 1], [2, 2, 2], [1, 1, 0], [0.7, 0.7, 2]][rng.integers(4)]
        st["interpolator"] = str(rng.choice(["sitkBSpline", "sitkLinear", "sitkNearestNeighbor"]))
    if rng.random() < 0.2:
        st["resegmentRange"] = [-50.0, 250.0] if rng.random() < 0.5 else [0.0]
        if st.get("normalize"):
            st["resegmentRange"] = [-1.0 * st["normalizeScale"], 1.0 * st["normalizeScale"]]
    if rng.random() < 0.2:
        st["voxelArrayShift"] = int(rng.choice([0, 300, 1000]))
    if rng.random() < 0.2:
        st["force2D"] = True
        st["force2Ddimension"] = int(rng.integers(3))
    if rng.random() < 0.2:
        st["distances"] = [[1, 2], [2], [1, 3]][rng.integers(3)]
    if rng.random() < 0.2:
        st["symmetricalGLCM"] = False
    if rng.random() < 0.2:
        st["gldm_a"] = int(rng.integers(0, 3))
    if rng.random() < 0.2:
        st["weightingNorm"] = str(rng.choice(["manhattan", "euclidean", "infinity", "no_weighting"]))
    if rng.random() < 0.15:
        st["preCrop"] = True
    image_types: dict[str, Any] = {"Original": {}}
    filtered = False
    if rng.random() < 0.12 and not kind.startswith("constant"):  # LoG of a constant: rounding noise
        image_types["LoG"] = {"sigma": [float(rng.choice([1.0, 2.0, 3.0]))]}
        filtered = True
    if rng.random() < 0.1:
        image_types["Wavelet"] = {}
        filtered = True
    if rng.random() < 0.15:  # (drawn last: the cases of earlier sweeps keep everything else)
        for extra in rng.choice(SIMPLE_FILTERS, size=int(rng.integers(1, 3)), replace=False):
            image_types[str(extra)] = {}
        if "Gradient" in image_types and rng.random() < 0.3:
            image_types["Gradient"] = {"gradientUseSpacing": False}
    params: dict[str, Any] = {"setting": st, "imageType": image_types}  # (defaults: shape2D left out)
    return img, mask, sp, params, filtered


def shape2d_case(seed: int) -> Case:
    """As :func:`settings_case`, over wavelet options, re-segmentation modes, single-slice ROIs
    with force2D + shape2D, minimum ROI size/dimensions and label 5 among label-7 noise."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(6, 24, 3))
    sp = (float(rng.choice([1.0, 2.0, 3.0, 5.0])), *[float(rng.choice([0.6, 0.8, 1.0]))] * 2)
    dt = str(rng.choice(["int16", "float32", "float64", "uint16"]))
    img = rng.normal(300, 150, shape).clip(0, None)
    img = img.astype(dt) if dt.startswith("float") else img.round().astype(dt)
    inside, c = _ellipsoid(rng, shape)
    label = int(rng.choice([1, 2, 5]))
    mask = np.where(inside, label, 0).astype(np.uint8)
    mask[tuple(int(v) for v in c)] = label
    mask[int(c[0]), int(c[1]), max(int(c[2]) - 1, 0)] = label
    mask[(rng.random(shape) < 0.1) & ~inside] = 7
    st: dict[str, Any] = {"label": label}
    single = bool(rng.random() < 0.25)
    if single:
        dim = int(rng.integers(3))
        keep = [slice(None)] * 3
        keep[dim] = slice(int(c[dim]), int(c[dim]) + 1)
        kept = mask[tuple(keep)].copy()
        mask[mask == label] = 0
        mask[tuple(keep)] = kept
        st["force2D"] = True
        st["force2Ddimension"] = dim
    if rng.random() < 0.5:
        st["binCount"] = int(rng.choice([8, 16, 32, 5]))
    else:
        st["binWidth"] = float(rng.choice([25, 10, 5, 2.5]))
    if rng.random() < 0.35:
        mode = str(rng.choice(["absolute", "relative", "sigma"]))
        st["resegmentMode"] = mode
        st["resegmentRange"] = {"absolute": [150.0, 500.0], "relative": [0.2, 0.9],
                                "sigma": [-2.0, 2.0]}[mode]
        if rng.random() < 0.5:
            st["resegmentShape"] = True
    if rng.random() < 0.2:
        st["minimumROIDimensions"] = int(rng.choice([1, 2, 3]))
    if rng.random() < 0.2:
        st["minimumROISize"] = int(rng.choice([5, 50]))
    if rng.random() < 0.2:
        st["preCrop"] = True
    image_types: dict[str, Any] = {"Original": {}}
    filtered = False
    if rng.random() < 0.3 and not single:
        wavelet: dict[str, Any] = {"wavelet": str(rng.choice(["coif1", "haar", "db2", "sym3"]))}
        if rng.random() < 0.3:
            wavelet["start_level"] = 1
        if rng.random() < 0.3:
            wavelet["level"] = 2
        image_types["Wavelet"] = wavelet
        filtered = True
    if rng.random() < 0.2:
        image_types["LoG"] = {"sigma": [float(rng.choice([1.0, 2.0]))]}
        filtered = True
    params: dict[str, Any] = {"setting": st, "imageType": image_types}
    if single:
        params["featureClass"] = {fc: None for fc in ("shape2D", *ALL_CLASSES[1:])}
    return img, mask, sp, params, filtered


def simple_filters_case(seed: int) -> Case:
    """:func:`settings_case`'s ROI and settings with every pointwise and gradient filter and LBP2D
    (and no LoG or wavelet), ``gradientUseSpacing`` and the LBP2D arguments (with its own bin width
    or count, as its values are small integers) drawn, and in half the cases LBP3D with its
    arguments drawn: the sweep that aims at those image types."""
    img, mask, sp, params, _ = settings_case(seed)
    rng = np.random.default_rng([seed, 1])
    image_types: dict[str, Any] = {"Original": {}, **{f: {} for f in SIMPLE_FILTERS}}
    image_types["Gradient"] = {"gradientUseSpacing": bool(rng.random() < 0.7)}
    method = str(rng.choice(["uniform", "default", "ror", "var"]))
    # (bins of width 1 only for "uniform"'s P + 2 codes: over "default"/"ror"'s 2^P codes or "var"'s
    # variances PyRadiomics' dense GLCM runs out of memory)
    bins = {"binWidth": 1.0, "binCount": None} if method == "uniform" else {"binCount": 8, "binWidth": None}
    image_types["LBP2D"] = {"lbp2DRadius": float(rng.choice([1.0, 1.5, 2.0])),
                            "lbp2DSamples": int(rng.choice([4, 8, 12])), "lbp2DMethod": method, **bins}
    lbp3d = np.random.default_rng([seed, 2])  # (its own stream: the cases before LBP3D stay as they were)
    if lbp3d.random() < 0.5:  # (levels from 2: PyRadiomics' LBP3D fails at 1)
        image_types["LBP3D"] = {"lbp3DLevels": int(lbp3d.integers(2, 4)),
                                "lbp3DIcosphereRadius": float(lbp3d.choice([1.0, 1.5, 2.0])),
                                "lbp3DIcosphereSubdivision": int(lbp3d.integers(0, 3)),
                                "binCount": 8, "binWidth": None}
    return img, mask, sp, {**params, "imageType": image_types}, False


GENERATORS = {"settings": settings_case, "shape2d": shape2d_case, "filters": simple_filters_case}


def compare(case: Case) -> str | None:
    """None when both backends agree (same features within tolerance, or both refuse the ROI), else
    a one-line description of the difference."""
    from radstore.radiomics import RadiomicsSettings, extract
    from radstore.radiomics import pyradiomics_backend as pb

    img, mask, spacing, params, filtered = case
    settings = RadiomicsSettings.from_params(params)
    try:
        ref = pb.extract(img, mask, spacing, settings)
    except Exception as exc:  # PyRadiomics refuses the ROI: so must we
        try:
            extract(img, mask, spacing, settings)
        except Exception:
            return None
        return f"PyRadiomics raised {type(exc).__name__}: {str(exc)[:120]} but ours did not"
    try:
        ours = extract(img, mask, spacing, settings)
    except Exception as exc:
        undefined = [k for k, v in ref.items() if np.isnan(v)]
        if undefined and f"non-finite feature values for {undefined[:5]}" in str(exc):
            return None  # PyRadiomics' NaN features, named in our ROIError: the designed behaviour
        return f"ours raised {type(exc).__name__}: {str(exc)[:160]}"
    if list(ours) != list(ref):
        return f"names differ: {sorted(set(ours) ^ set(ref))[:5]}"
    rtol = 1e-3 if filtered else 1e-4
    # (GLCM MCC whose second eigenvalue, 0 in exact arithmetic, PyRadiomics' rounding makes negative
    # in every direction: PyRadiomics NaN, ours the exact 0 by design; see glcm._pyradiomics_tie_features)
    bad = [(k, ours[k], ref[k]) for k in ref if not (np.isnan(ours[k]) and np.isnan(ref[k]))
           and not (k.endswith("_glcm_MCC") and np.isnan(ref[k]) and ours[k] == 0.0)
           and not np.isclose(ours[k], ref[k], rtol=rtol, atol=1e-6)]
    return f"{len(bad)}/{len(ref)} features differ: {bad[:3]}" if bad else None


def compare_devices(case: Case, device: str) -> str | None:
    """None when our engine gives the same features on ``device`` as on the CPU (within 1e-5
    relative, 1e-8 absolute: the CPU/CUDA agreement the engine promises) or refuses the ROI on both
    with the same exception type, else a one-line description of the difference. ``device``
    "torch-cpu" runs the torch kernels and formulas that CUDA runs, on the CPU (``torch_kernels()``)."""
    import contextlib

    from radstore.radiomics import RadiomicsSettings, extract
    from radstore.radiomics._neighbours import torch_kernels

    img, mask, spacing, params, _ = case
    settings = RadiomicsSettings.from_params(params)
    results: list[dict[str, float] | str] = []
    for dev in ("cpu", device):
        scope = torch_kernels() if dev == "torch-cpu" else contextlib.nullcontext()
        try:
            with scope:
                results.append(extract(img, mask, spacing, settings,
                                       device="cpu" if dev == "torch-cpu" else dev))
        except Exception as exc:
            results.append(f"{type(exc).__name__}: {str(exc)[:120]}")
    cpu, other = results
    if isinstance(cpu, str) or isinstance(other, str):
        outcome = [r if isinstance(r, str) else "features" for r in (cpu, other)]
        if outcome[0].split(":")[0] == outcome[1].split(":")[0]:
            return None  # the same exception type on both: the same refusal
        return f"cpu: {outcome[0]}; {device}: {outcome[1]}"
    if list(cpu) != list(other):
        return f"names differ: {sorted(set(cpu) ^ set(other))[:5]}"
    bad = [(k, other[k], cpu[k]) for k in cpu
           if not np.isclose(other[k], cpu[k], rtol=1e-5, atol=1e-8)]
    return f"{len(bad)}/{len(cpu)} features differ: {bad[:3]}" if bad else None


def main(argv: list[str]) -> int:
    """``KIND START COUNT [--device DEVICE]``: sweep seeds ``START..START+COUNT-1``; exit code 1 when
    any case differs."""
    import argparse
    import warnings

    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser(prog="python -m tests.radiomics._random_cases")
    ap.add_argument("kind", choices=sorted(GENERATORS))
    ap.add_argument("start", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--device", default=None,
                    help="compare our engine on this device (cuda, torch-cpu) with ours on the CPU "
                         "instead of with PyRadiomics")
    args = ap.parse_args(argv)
    generator = GENERATORS[args.kind]
    failures = 0
    for seed in range(args.start, args.start + args.count):
        case = generator(seed)
        problem = compare(case) if args.device is None else compare_devices(case, args.device)
        if problem is not None:
            failures += 1
            img, _, spacing, params, _ = case
            print(f"seed {seed}: {img.dtype} {img.shape} {spacing} {params}\n  {problem}", flush=True)
    against = "PyRadiomics" if args.device is None else f"ours on {args.device} vs ours on cpu"
    print(f"{args.kind} seeds {args.start}..{args.start + args.count - 1} ({against}): {failures} differ",
          flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
