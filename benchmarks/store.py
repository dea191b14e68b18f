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
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks._hardware import cpu_name

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
    from radstore.store.catalog import feature_tables

    settings = load_settings(store=store, progress=False)
    res: dict[str, Any] = {"kind": kind, "load_avg_at_start": list(os.getloadavg())}
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
        import numpy as np
        from feast import FeatureStore

        from radstore.store.online import PACKED_FILE, OnlineVectors, PackedOnlineVectors

        fs = FeatureStore(repo_path=str(settings.layout.feast_repo))
        views = [t.name for t in feature_tables(settings.layout)] + ["clinical"]
        refs = [f"{v}:{f.name}" for v in views for f in fs.get_feature_view(v).features]
        direct = OnlineVectors(fs, views)
        packed = PackedOnlineVectors(settings.layout.feast_repo / PACKED_FILE, views)
        res["rss_after_open_mb"] = _rss_mb()
        import pyarrow.parquet as pq

        pids = pq.read_table(settings.layout.feast_repo / "data" / "clinical.parquet",
                             columns=["patient_id"]).column(0).to_pylist()
        rng = np.random.default_rng(0)
        n_unknown = max(lookups // 5, 100)
        order = [pids[i] for i in rng.integers(0, len(pids), lookups)]
        order += [f"P_unknown_{i:06d}" for i in range(n_unknown)]
        order = [order[i] for i in rng.permutation(len(order))]
        methods = {"feast_get_online_features": lambda p: fs.get_online_features(
                       features=refs, entity_rows=[{"patient_id": p}], full_feature_names=True).to_dict(),
                   "direct_online_read": direct, "packed": packed}
        lat: dict[str, dict[str, list[float]]] = {m: {"known": [], "unknown": []} for m in methods}
        cpu: dict[str, list[float]] = {m: [] for m in methods}
        for pid in order[:20]:  # warm-up (connections, registry cache), not timed
            for fn in methods.values():
                fn(pid)
        import gc

        gc.collect()
        gc.freeze()  # as a server does after start-up: long-lived objects leave the GC's scans
        # each method runs its own block of lookups (a service does one kind of read; interleaving
        # would charge the scheduler penalty of a 30 ms Feast call to the next method), and the
        # blocks rotate over 5 rounds so that all methods see the same drift in machine load
        loads = [os.getloadavg()[0]]
        rounds = 5
        for r in range(rounds):
            chunk = order[r * len(order) // rounds:(r + 1) * len(order) // rounds]
            for m, fn in methods.items():
                for pid in chunk:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    fn(pid)
                    dt = time.perf_counter() - t0
                    cpu[m].append(time.thread_time() - c0)
                    lat[m]["unknown" if pid.startswith("P_unknown_") else "known"].append(dt)
            loads.append(os.getloadavg()[0])
        mismatches = 0  # equality, untimed: packed vs get_online_features for every id looked up
        for pid in order:
            f, d = methods["feast_get_online_features"](pid), packed(pid)
            mismatches += set(d) != set(f) - {"patient_id"} or not all(
                (d[k] is None and f[k][0] is None) or (
                    np.array_equal(d[k], np.asarray(f[k][0], dtype=np.float32)) if k.endswith("__embedding")
                    else d[k] == f[k][0]) for k in d)
        one = methods["feast_get_online_features"](pids[0])
        res["n_values"] = sum(len(v[0]) if isinstance(v[0], list) else 1
                              for k, v in one.items() if k != "patient_id")
        res["lookups"] = {"known": lookups, "unknown": n_unknown}
        res["packed_mismatches_vs_feast"] = mismatches
        res["load_avg_1min_during"] = loads

        def q(v: list[float], p: int) -> float:
            return 1e3 * float(np.percentile(v, p))

        res["latency_ms"] = {m: {w: {"p50": q(v, 50), "p99": q(v, 99), "max": 1e3 * max(v),
                                     "over_5ms": sum(x > 5e-3 for x in v)}
                                 for w, v in by.items()} for m, by in lat.items()}
        # CPU time of the lookup thread (all ids): wall minus this is waiting (run queue, I/O)
        res["cpu_ms"] = {m: {"p50": q(v, 50), "p99": q(v, 99), "max": 1e3 * max(v)} for m, v in cpu.items()}
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


def reg_version(store: Path) -> str:
    """The registered version of ``deep_resnet50`` (the only version directory under it)."""
    return next(p.name for p in (store / "features" / "deep_resnet50").iterdir() if p.is_dir())


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
    ap.add_argument("--lookups", type=int, default=1000, help="online lookups of known patients "
                    "(+ max(lookups/5, 100) unknown ids), per method")
    ap.add_argument("--feast-online", default="all", help="register's feast_online (all|services|none)")
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

    loads = {"before_register": list(os.getloadavg())}
    t0 = time.perf_counter()
    reg = None
    if not reuse:
        reg = register(load_settings(store=store, progress=False), studies_dir=tmp / "studies",
                       feast_online=args.feast_online)
    t_reg = time.perf_counter() - t0 if not reuse else float("nan")
    loads["after_register"] = list(os.getloadavg())
    repo = store / "feast"
    register_info = {
        "total_s (incl. import feast)": t_reg, "feast_online": args.feast_online if reg else "reused",
        "steps_s": reg.timings_s if reg else None,
        "packed_rows_written": sum(reg.packed.values()) if reg else None,
        "feast_online_db_mb": sum(f.stat().st_size for f in repo.glob("online.db*")) / 2**20,
        "packed_db_mb": sum(f.stat().st_size for f in repo.glob("online_vectors.db*")) / 2**20,
    }
    if reg is not None:  # again without Feast's online materialization: the packed step writes nothing
        t0 = time.perf_counter()
        again = register(load_settings(store=store, progress=False), studies_dir=tmp / "studies",
                         feast_online="none")
        register_info["rerun_feast_online_none"] = {
            "total_s": time.perf_counter() - t0, "steps_s": again.timings_s,
            "packed_rows_written": sum(again.packed.values())}

    loads["before_assembly"] = list(os.getloadavg())
    ours = run_worker("ours", store, spec, tmp, args.repeats, 0)
    ours_w = run_worker("ours_write", store, spec, tmp, args.repeats, 0)
    fst = run_worker("feast", store, spec, tmp, args.repeats, 0)
    loads["before_online"] = list(os.getloadavg())
    online = run_worker("online", store, spec, tmp, 1, args.lookups)
    check = compare(tmp / "ours.parquet", tmp / "feast.parquet")

    def best(r: dict[str, Any]) -> float:
        return min(r["times_s"])

    result = {
        "benchmark": "store", "patients": n, "phases": PHASES, "radiomic_features": len(names),
        "deep_dim": args.deep_dim,
        "hardware": {"cpu": cpu_name(), "cores": os.cpu_count(),
                     "python": platform.python_version()},
        "versions": {"duckdb": duckdb.__version__, "feast": feast.__version__, "pyarrow": pa.__version__},
        "threads": {"duckdb": "default (= cores)", "arrow_cpu": pa.cpu_count()},
        "load_average_1_5_15": {**loads, "at_end": list(os.getloadavg())},
        "generate_s": t_gen, "register": register_info,
        "assembly": {k: {"best_s": best(r), "times_s": r["times_s"], "peak_rss_mb": r["peak_rss_mb"],
                         "rss_after_import_mb": r["rss_after_import_mb"],
                         "load_avg_at_start": r["load_avg_at_start"],
                         "tracemalloc_peak_mb": r["tracemalloc_peak_mb"]}
                     for k, r in (("duckdb_join", ours), ("duckdb_assemble_write_hash", ours_w),
                                  ("feast_get_historical_features", fst))},
        "speedup_join_vs_feast": best(fst) / best(ours),
        "identical_values": check,
        "online": {"values_per_vector": online["n_values"], "lookups": online["lookups"],
                   "packed_mismatches_vs_feast": online["packed_mismatches_vs_feast"],
                   "latency_ms": online["latency_ms"], "thread_cpu_ms": online["cpu_ms"],
                   "peak_rss_mb": online["peak_rss_mb"],
                   "rss_after_open_mb": online["rss_after_open_mb"],
                   "load_avg_1min_during": online["load_avg_1min_during"]},
    }
    out = ROOT / "benchmarks" / "results" / "store.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if reuse and out.is_file():  # keep the register measurement of the run that built this store
        prev = json.loads(out.read_text())
        if (prev.get("patients"), prev.get("deep_dim")) == (n, args.deep_dim) and "register" in prev:
            result["register"] = {**prev["register"], "measured_in_earlier_run": True,
                                  "load_average_then": prev.get("load_average_1_5_15")}
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"radstore store benchmark: {n} patients × {len(PHASES)} phases × ({len(names)} radiomic + "
          f"{args.deep_dim}-d deep)")
    print(f"hardware: {result['hardware']}  versions: {result['versions']}  threads: {result['threads']}")
    print(f"load average (1, 5, 15 min): {result['load_average_1_5_15']}")
    print(f"generate {t_gen:.1f} s, register {t_reg:.1f} s: {register_info}")
    print(f"{'method':42s} {'best s':>8s} {'runs s':>22s} {'peak RSS MB':>12s} {'tracemalloc MB':>15s}")
    for k, r in result["assembly"].items():
        runs = " ".join(f"{t:.2f}" for t in r["times_s"])
        print(f"{k:42s} {r['best_s']:8.2f} {runs:>22s} {r['peak_rss_mb']:12.0f} "
              f"{r['tracemalloc_peak_mb']:15.1f}")
    print(f"speedup (join vs Feast): {result['speedup_join_vs_feast']:.2f}x; identical values: {check}")
    print(f"online lookups {online['lookups']} per method, {online['n_values']} values per vector, "
          f"packed mismatches vs Feast: {online['packed_mismatches_vs_feast']}, "
          f"peak RSS {online['peak_rss_mb']:.0f} MB, load (1 min) during {online['load_avg_1min_during']}")
    for k, by in online["latency_ms"].items():
        for w, v in by.items():
            print(f"online {k:26s} {w:8s} p50 {v['p50']:7.2f} ms  p99 {v['p99']:7.2f} ms  "
                  f"max {v['max']:7.2f} ms  >5 ms: {v['over_5ms']}")
        c = online["cpu_ms"][k]
        print(f"online {k:26s} cpu      p50 {c['p50']:7.2f} ms  p99 {c['p99']:7.2f} ms  "
              f"max {c['max']:7.2f} ms")
    print(f"-> {out}")


if __name__ == "__main__":
    # running the script puts benchmarks/ first on sys.path, where benchmarks/radiomics.py would
    # shadow pyradiomics' ``radiomics`` package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    main()
