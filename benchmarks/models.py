"""Benchmark: LASSO-Cox path (1000 patients × 4300 features) with scikit-survival's Coxnet
options and univariable prescreening, and the bootstrap C-index CI (1000 resamples): the
Fenwick-tree batch kernel vs one scikit-survival call per resample. Prints a table with
hardware/versions/threads; writes benchmarks/results/models.json.

    PYTHONPATH=$PWD python benchmarks/models.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from benchmarks._hardware import cpu_name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--features", type=int, default=4300)
    ap.add_argument("--n-alphas", type=int, default=50)
    ap.add_argument("--cv-folds", type=int, default=5)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--prescreen", type=int, default=500)
    ap.add_argument("--skip-cv", action="store_true", help="skip the full CV fits (slow)")
    a = ap.parse_args()

    import sklearn
    import sksurv
    from sksurv.metrics import concordance_index_censored

    from radstore.models.estimators import LassoCox
    from radstore.stats.survival import concordance_ci, harrell_c, surv_array

    rng = np.random.default_rng(0)
    x = rng.normal(size=(a.patients, a.features))
    lp = x[:, :5] @ np.array([1.0, -0.8, 0.6, 0.5, -0.4])
    t = rng.exponential(np.exp(-lp))
    c = rng.exponential(2.0, a.patients)
    y = surv_array(np.minimum(t, c), t <= c)
    xt = rng.normal(size=(a.patients, a.features))  # independent test cohort, same model
    lpt = xt[:, :5] @ np.array([1.0, -0.8, 0.6, 0.5, -0.4])
    tt = rng.exponential(np.exp(-lpt))
    ct = rng.exponential(2.0, a.patients)
    yt = surv_array(np.minimum(tt, ct), tt <= ct)
    rows: list[dict] = []

    ref: dict[str, np.ndarray] = {}

    def path(label: str, **kw) -> None:
        m = LassoCox(n_alphas=a.n_alphas, cv_folds=2, **kw)
        t0 = time.perf_counter()
        alphas, coef = m._fit_path(x, y)
        s = time.perf_counter() - t0
        # test-cohort C along the path; coefficient error vs the default fit at the same α
        cs = [harrell_c(yt["time"], yt["event"], xt @ coef[:, j]) for j in range(coef.shape[1])]
        j = int(np.argmax(cs))
        note = (f"{len(alphas)} α, best test C {cs[j]:.3f} at {int((coef[:, j] != 0).sum())} "
                f"features")
        if not ref:
            ref.update(alphas=alphas, coef=coef, best=j)
        elif len(alphas) == len(ref["alphas"]) and np.allclose(alphas, ref["alphas"]):
            k = ref["best"]  # the default path's best α; the p > n tail of the path is unstable
            note += (f"; at the default's best α max |Δβ| "
                     f"{np.abs(coef[:, k] - ref['coef'][:, k]).max():.1e}")
        rows.append({"step": f"LASSO-Cox path, one fit ({label})", "wall_s": s, "note": note})

    path("default tol 1e-7")
    path("tol 1e-5", tol=1e-5)
    path(f"prescreen {a.prescreen}", prescreen=a.prescreen)
    path("α_min ratio 0.05", alpha_min_ratio=0.05)
    if not a.skip_cv:
        for label, kw in (("default", {}), (f"prescreen {a.prescreen}", {"prescreen": a.prescreen})):
            t0 = time.perf_counter()
            m = LassoCox(n_alphas=a.n_alphas, cv_folds=a.cv_folds, **kw).fit(x, y)
            s = time.perf_counter() - t0
            rows.append({"step": f"LASSO-Cox + {a.cv_folds}-fold CV α ({label})", "wall_s": s,
                         "note": f"{int((m.coef_ != 0).sum())} features, test C "
                                 f"{harrell_c(yt['time'], yt['event'], m.predict(xt)):.3f}"})

    risk = x[:, :5] @ np.array([1.0, -0.8, 0.6, 0.5, -0.4])
    t0 = time.perf_counter()
    ci = concordance_ci(y["time"], y["event"], risk, n_boot=a.n_boot, seed=0)
    rows.append({"step": f"Harrell C bootstrap CI ({a.n_boot}), batch kernel",
                 "wall_s": time.perf_counter() - t0,
                 "note": f"C {ci.estimate:.3f} ({ci.lo:.3f}–{ci.hi:.3f})"})
    n_ref = min(a.n_boot, 100)
    draw = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(n_ref):
        i = draw.integers(0, a.patients, a.patients)
        concordance_index_censored(y["event"][i], y["time"][i], risk[i])
    s = time.perf_counter() - t0
    rows.append({"step": f"Harrell C bootstrap ({a.n_boot}), sksurv per resample",
                 "wall_s": s * a.n_boot / n_ref, "note": f"extrapolated from {n_ref} resamples"})

    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    info = {"cpu": cpu_name(), "cores": os.cpu_count(),
            "omp_threads": threads, "python": platform.python_version(),
            "numpy": np.__version__, "sklearn": sklearn.__version__, "sksurv": sksurv.__version__,
            "patients": a.patients, "features": a.features, "n_alphas": a.n_alphas,
            "load_avg_1min": os.getloadavg()[0]}
    print(f"models benchmark — {info['cpu']}, {info['cores']} cores, OMP_NUM_THREADS={threads}, "
          f"load {info['load_avg_1min']:.1f}, numpy {np.__version__}, scikit-learn "
          f"{sklearn.__version__}, scikit-survival {sksurv.__version__}; "
          f"{a.patients} patients × {a.features} features")
    print(f"{'step':<58} {'wall s':>8}  note")
    for r in rows:
        print(f"{r['step']:<58} {r['wall_s']:8.2f}  {r['note']}")
    out = Path(__file__).parent / "results" / "models.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"info": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
