"""Feature-store benchmark: training-set assembly (DuckDB point-in-time join + Arrow gather) vs
Feast 0.67 ``get_historical_features`` (DuckDB offline store), and online lookup latency.

Shape: N patients in 3 cohorts (50/30/20 %), 2 phases × (107 PyRadiomics features + a 2048-d
ResNet-50 embedding), one lesion + the scan aggregate per scan, one study with 4 views and 3
clinical columns. Each measured method runs in a fresh subprocess so that its peak RSS
(``ru_maxrss``) and tracemalloc peak are its own. Writes ``benchmarks/results/store.json``.

    PYTHONPATH=$PWD python benchmarks/store.py --patients 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHASES = ["arterial", "venous"]
CLINICAL = ["age", "grade", "ki67"]


def radiomics_names() -> tuple[str, ...]:
    """The 107 default PyRadiomics 'original' features (3D shape, no shape2D), from pyradiomics."""
    from radiomics import getFeatureClasses

    return tuple(f"original_{cls}_{name}" for cls, c in getFeatureClasses().items() if cls != "shape2D"
                 for name, deprecated in c.getFeatureNames().items() if not deprecated)


def study_yaml(path: Path) -> Path:
    path.write_text(
        "name: bench\n"
        "endpoint: {kind: survival, time: os_months, event: os_event}\n"
        "features:\n"
        f"  - {{feature_set: radiomics_original, phases: [{', '.join(PHASES)}]}}\n"
        f"  - {{feature_set: deep_resnet50, phases: [{', '.join(PHASES)}]}}\n"
        f"clinical: [{', '.join(CLINICAL)}]\n"
        "split: {train_cohorts: [h1, h2], external_cohorts: [h3], seed: 0}\n"
        "models:\n  - {name: all, kind: cox, inputs: [features, clinical]}\n")
    return path


def _peak_rss_mb() -> float:
    """VmHWM (peak resident set of this process image; ``ru_maxrss`` would carry the parent's
    peak across fork + exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(kind: str, store: Path, spec: Path, out: Path, repeats: int, lookups: int) -> None:
    """Run one method ``repeats`` times in this process; write timings and memory to ``out``."""
    from radstore.config import load_settings

    settings = load_settings(store=store, progress=False)
    res: dict[str, Any] = {"kind": kind}
    if kind in ("ours", "ours_write"):
        import pyarrow  # noqa: F401
        import sklearn.model_selection  # noqa: F401  (imported lazily by the split; not timed)

        from pipelines.assemble import assemble, build_table, plan_study

        res["rss_after_import_mb"] = _rss_mb()
        if kind == "ours":  # first run cold: rebuilds the scan-level snapshots from the sources
            import shutil

            from pipelines.assemble import snapshot_dir

            shutil.rmtree(snapshot_dir(settings), ignore_errors=True)
        times = []
        for i in range(repeats):
            if i == repeats - 1:
                tracemalloc.start()
            t0 = time.perf_counter()
            if kind == "ours":
                table = build_table(plan_study(settings, spec))
            else:
                ts = assemble(settings, spec)
                table = ts.table
                res["path"] = str(ts.parquet)
            times.append(time.perf_counter() - t0)
        res["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        if kind == "ours":
            from radstore.io.tables import write_table

            write_table(table, out.with_suffix(".parquet"))
    elif kind == "feast":
        import pandas as pd
        from feast import FeatureStore

        from pipelines.assemble import plan_study
        from radstore.store.feast_defs import feature_refs

        plan = plan_study(settings, spec)
        ent = plan.entity
        entity_df = pd.DataFrame({"patient_id": ent.column("patient_id").to_pylist(),
                                  "event_timestamp": ent.column("as_of").to_pandas()})
        refs = feature_refs(plan.views, plan.spec.clinical)
        fs = FeatureStore(repo_path=str(settings.layout.feast_repo))
        res["rss_after_import_mb"] = _rss_mb()
        times = []
        for i in range(repeats):
            if i == repeats - 1:
                tracemalloc.start()
            t0 = time.perf_counter()
            table = fs.get_historical_features(entity_df=entity_df, features=refs,
                                               full_feature_names=True).to_arrow()
            times.append(time.perf_counter() - t0)
        res["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        import pyarrow.parquet as pq

        pq.write_table(table, out.with_suffix(".parquet"))
    elif kind == "online":
        from feast import FeatureStore

        from radstore.store.catalog import feature_tables
        from radstore.store.online import OnlineVectors

        fs = FeatureStore(repo_path=str(settings.layout.feast_repo))
        views = [t.name for t in feature_tables(settings.layout)] + ["clinical"]
        refs = [f"{v}:{f.name}" for v in views for f in fs.get_feature_view(v).features]
        reader = OnlineVectors(fs, views)
        import pyarrow.parquet as pq

        pids = pq.read_table(settings.layout.feast_repo / "data" / "clinical.parquet",
                             columns=["patient_id"]).column(0).to_pylist()
        lat: dict[str, list[float]] = {"feast_get_online_features": [], "direct_online_read": []}
        for i in range(lookups + 20):
            pid = pids[(i * 7919) % len(pids)]
            t0 = time.perf_counter()
            r = fs.get_online_features(features=refs, entity_rows=[{"patient_id": pid}],
                                       full_feature_names=True).to_dict()
            t1 = time.perf_counter()
            d = reader(pid)
            t2 = time.perf_counter()
            if i >= 20:
                lat["feast_get_online_features"].append(t1 - t0)
                lat["direct_online_read"].append(t2 - t1)
        res["n_values"] = sum(len(v[0]) if isinstance(v[0], list) else 1 for k, v in r.items()
                              if k != "patient_id")
        res["direct_equal"] = all(
            (d[k] is None and r[k][0] is None) or list(map(float, d[k])) == list(map(float, r[k][0]))
            if k.endswith("__embedding") else d[k] == r[k][0] for k in d)
        res["latency_ms"] = {k: {"p50": 1e3 * statistics.median(v),
                                 "p99": 1e3 * statistics.quantiles(v, n=100)[98]} for k, v in lat.items()}
        times = []
    res["times_s"] = times
    res["peak_rss_mb"] = _peak_rss_mb()
    out.write_text(json.dumps(res))


def run_worker(kind: str, store: Path, spec: Path, tmp: Path, repeats: int, lookups: int) -> dict[str, Any]:
    out = tmp / f"{kind}.json"
    cmd = [sys.executable, __file__, "--worker", kind, "--store", str(store), "--spec", str(spec),
           "--out", str(out), "--repeats", str(repeats), "--lookups", str(lookups)]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT), "RADSTORE_PROGRESS": "0"},
                   stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def compare(ours: Path, feast: Path) -> dict[str, Any]:
    """Same rows and identical values in every feature column (sorted by patient)."""
    import numpy as np
    import pyarrow.parquet as pq

    a = pq.read_table(ours).sort_by("patient_id")
    b = pq.read_table(feast).sort_by("patient_id")
    cols = [c for c in a.column_names if "__" in c]
    same = a.column("patient_id").equals(b.column("patient_id"))
    for c in cols:
        x, y = a.column(c), b.column(c)
        if c.endswith("__embedding"):
            same &= np.array_equal(np.asarray(x.combine_chunks().flatten()),
                                   np.asarray(y.combine_chunks().flatten()))
        else:
            same &= x.to_pylist() == y.to_pylist()
    return {"rows": a.num_rows, "columns_compared": len(cols), "identical": bool(same)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--deep-dim", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lookups", type=int, default=200)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="reuse the store (and Feast repo) in --workdir")
    ap.add_argument("--worker", default=None)
    ap.add_argument("--store", type=Path)
    ap.add_argument("--spec", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.store, args.spec, args.out, args.repeats, args.lookups)
        return

    import duckdb
    import feast
    import pyarrow as pa

    from radstore.config import load_settings
    from radstore.store.synthetic import write_synthetic_store

    tmp = Path(args.workdir or tempfile.mkdtemp(prefix="radstore-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    store = tmp / "store"
    n = args.patients
    names = radiomics_names()
    reuse = args.reuse and (store / "feast" / "online.db").is_file()
    t0 = time.perf_counter()
    if not reuse:
        cohorts = {"h1": n // 2, "h2": n * 3 // 10, "h3": n - n // 2 - n * 3 // 10}
        write_synthetic_store(store, cohorts=cohorts, radiomics=names, deep_dim=args.deep_dim,
                              phases=tuple(PHASES), lesions=1, seed=1)
    t_gen = time.perf_counter() - t0
    spec = study_yaml(tmp / "bench.yaml")
    (tmp / "studies").mkdir(exist_ok=True)
    study_yaml(tmp / "studies" / "bench.yaml")

    from pipelines.register import register

    t0 = time.perf_counter()
    if not reuse:
        register(load_settings(store=store, progress=False), studies_dir=tmp / "studies")
    t_reg = time.perf_counter() - t0 if not reuse else float("nan")

    ours = run_worker("ours", store, spec, tmp, args.repeats, 0)
    ours_w = run_worker("ours_write", store, spec, tmp, args.repeats, 0)
    fst = run_worker("feast", store, spec, tmp, args.repeats, 0)
    online = run_worker("online", store, spec, tmp, 1, args.lookups)
    check = compare(tmp / "ours.parquet", tmp / "feast.parquet")

    def best(r: dict[str, Any]) -> float:
        return min(r["times_s"])

    result = {
        "benchmark": "store", "patients": n, "phases": PHASES, "radiomic_features": len(names),
        "deep_dim": args.deep_dim,
        "hardware": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                     "python": platform.python_version()},
        "versions": {"duckdb": duckdb.__version__, "feast": feast.__version__, "pyarrow": pa.__version__},
        "threads": {"duckdb": "default (= cores)", "arrow_cpu": pa.cpu_count()},
        "load_average_1_5_15_at_end": list(os.getloadavg()),
        "generate_s": t_gen, "register_s (apply + materialize, incl. import feast)": t_reg,
        "assembly": {k: {"best_s": best(r), "times_s": r["times_s"], "peak_rss_mb": r["peak_rss_mb"],
                         "rss_after_import_mb": r["rss_after_import_mb"],
                         "tracemalloc_peak_mb": r["tracemalloc_peak_mb"]}
                     for k, r in (("duckdb_join", ours), ("duckdb_assemble_write_hash", ours_w),
                                  ("feast_get_historical_features", fst))},
        "speedup_join_vs_feast": best(fst) / best(ours),
        "identical_values": check,
        "online": {"values_per_vector": online["n_values"], "lookups": args.lookups,
                   "direct_equals_feast": online["direct_equal"], "latency_ms": online["latency_ms"]},
    }
    out = ROOT / "benchmarks" / "results" / "store.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"radstore store benchmark: {n} patients × {len(PHASES)} phases × ({len(names)} radiomic + "
          f"{args.deep_dim}-d deep)")
    print(f"hardware: {result['hardware']}  versions: {result['versions']}  threads: {result['threads']}")
    print(f"generate {t_gen:.1f} s, register (apply+materialize) {t_reg:.1f} s")
    print(f"{'method':42s} {'best s':>8s} {'runs s':>22s} {'peak RSS MB':>12s} {'tracemalloc MB':>15s}")
    for k, r in result["assembly"].items():
        runs = " ".join(f"{t:.2f}" for t in r["times_s"])
        print(f"{k:42s} {r['best_s']:8.2f} {runs:>22s} {r['peak_rss_mb']:12.0f} "
              f"{r['tracemalloc_peak_mb']:15.1f}")
    print(f"speedup (join vs Feast): {result['speedup_join_vs_feast']:.2f}x; identical values: {check}")
    for k, v in online["latency_ms"].items():
        print(f"online {k:26s} p50 {v['p50']:.2f} ms  p99 {v['p99']:.2f} ms  ({online['n_values']} values)")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
