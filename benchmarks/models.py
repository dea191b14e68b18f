"""Benchmark: LASSO-Cox path (1000 patients × 4300 features) and bootstrap C-index CI
(1000 resamples). Prints a table with hardware/versions/threads; writes
benchmarks/results/models.json."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--features", type=int, default=4300)
    ap.add_argument("--n-alphas", type=int, default=50)
    ap.add_argument("--cv-folds", type=int, default=5)
    ap.add_argument("--n-boot", type=int, default=1000)
    a = ap.parse_args()

    import sklearn
    import sksurv
    from sksurv.linear_model import CoxnetSurvivalAnalysis

    from radstore.models.estimators import LassoCox
    from radstore.stats.survival import concordance_ci, surv_array

    rng = np.random.default_rng(0)
    x = rng.normal(size=(a.patients, a.features))
    lp = x[:, :5] @ np.array([1.0, -0.8, 0.6, 0.5, -0.4])
    t = rng.exponential(np.exp(-lp))
    c = rng.exponential(2.0, a.patients)
    y = surv_array(np.minimum(t, c), t <= c)
    rows = []

    t0 = time.perf_counter()
    CoxnetSurvivalAnalysis(l1_ratio=1.0, n_alphas=a.n_alphas, alpha_min_ratio=0.01).fit(x, y)
    rows.append(("LASSO-Cox path (one fit)", time.perf_counter() - t0))

    t0 = time.perf_counter()
    m = LassoCox(n_alphas=a.n_alphas, cv_folds=a.cv_folds).fit(x, y)
    rows.append((f"LASSO-Cox + {a.cv_folds}-fold CV α", time.perf_counter() - t0))

    risk = m.predict(x)
    t0 = time.perf_counter()
    ci = concordance_ci(y["time"], y["event"], risk, n_boot=a.n_boot, seed=0)
    rows.append((f"Harrell C bootstrap CI ({a.n_boot})", time.perf_counter() - t0))

    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "omp_threads": threads, "python": platform.python_version(),
            "numpy": np.__version__, "sklearn": sklearn.__version__, "sksurv": sksurv.__version__,
            "patients": a.patients, "features": a.features, "n_alphas": a.n_alphas,
            "nonzero_coef": int((m.coef_ != 0).sum()), "alpha": m.alpha_,
            "c_index": ci.estimate, "c_lo": ci.lo, "c_hi": ci.hi}
    print(f"models benchmark — {info['cpu']}, {info['cores']} cores, OMP_NUM_THREADS={threads}, "
          f"numpy {np.__version__}, scikit-learn {sklearn.__version__}, scikit-survival "
          f"{sksurv.__version__}")
    print(f"{'step':<40} {'wall s':>8}")
    for name, s in rows:
        print(f"{name:<40} {s:8.2f}")
    print(f"selected {info['nonzero_coef']} features, C = {ci.estimate:.3f} ({ci.lo:.3f}–{ci.hi:.3f})")
    out = Path(__file__).parent / "results" / "models.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"info": info, "timings_s": dict(rows)}, indent=2))


if __name__ == "__main__":
    main()
