"""``radstore demo``: every stage, end to end, on a synthetic multi-hospital cohort.

synth → ingest → extract (deep + radiomics on Ray) → register (Feast) → sql → assemble → train →
promote. Each stage is the same function its own command calls; the demo only chooses inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from radstore.config import Settings

REPO = Path(__file__).resolve().parents[1]
DEMO_FEATURE_SETS = ("radiomics_original", "deep_resnet50_random")
DEMO_STUDIES = ("demo_os", "demo_response")


@dataclass
class DemoConfig:
    """What the demo generates and runs (the defaults take a few minutes on 2 CPU cores)."""

    hospitals: int = 3
    patients_per_hospital: int = 40
    visits: int = 1
    seed: int = 0
    n_boot: int = 200
    feature_sets: tuple[str, ...] = DEMO_FEATURE_SETS
    studies: tuple[str, ...] = DEMO_STUDIES
    studies_dir: Path = field(default_factory=lambda: REPO / "studies" / "demo")
    feature_sets_dir: Path = field(default_factory=lambda: REPO / "feature_sets")


@dataclass
class DemoResult:
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


def _step(result: DemoResult, name: str, fn: Callable[[], Any], say: Callable[[Any], None]) -> Any:
    say(f"[bold cyan]▶ {name}[/]")
    t0 = time.perf_counter()
    out = fn()
    result.timings[name] = time.perf_counter() - t0
    say(f"  [green]✓[/] {name} ({result.timings[name]:.1f} s)")
    return out


def run_demo(settings: Settings, config: DemoConfig | None = None,
             say: Callable[[Any], None] = print) -> DemoResult:
    """Run every stage into ``settings.store``; re-running reuses what is already there."""
    from pipelines.assemble import assemble
    from pipelines.extract import extract
    from pipelines.ingest import ingest_all
    from pipelines.promote import promote
    from pipelines.register import register
    from pipelines.train import train_study
    from radstore.progress import frame_table
    from radstore.sql import sql
    from radstore.study import load_study
    from radstore.synth import SynthConfig, generate

    cfg = config or DemoConfig()
    res = DemoResult()
    layout = settings.layout
    source = layout.root / "synthetic-input"

    def _synth() -> Any:
        if (source / "_truth" / "summary.json").is_file():
            say(f"  synthetic cohort already in {source}")
            return None
        return generate(source, SynthConfig(hospitals=cfg.hospitals,
                                            patients_per_hospital=cfg.patients_per_hospital,
                                            size="small", seed=cfg.seed, visits=cfg.visits),
                        progress=settings.progress)

    _step(res, "synth", _synth, say)

    reports = _step(res, "ingest", lambda: ingest_all(settings, source), say)
    for cid, rep in reports.items():
        say(f"  {cid}: {rep.scans_ok} scans ok, {rep.written} written, "
            f"{len(rep.rejections)} rejected, QC report {rep.report_path}")
    say(f"  all cohorts side by side: {layout.reports / 'qc.html'}")
    res.outputs["ingest"] = reports

    fs_paths = [cfg.feature_sets_dir / f"{n}.yaml" for n in cfg.feature_sets]
    def _extract() -> Any:
        import ray

        try:
            return extract(settings, fs_paths)
        finally:
            ray.shutdown()  # the demo's later stages need no cluster; free its workers' memory

    summaries = _step(res, "extract", _extract, say)
    for s in summaries:
        say(f"  {s.feature_set} v{s.version}: {s.done} scans done, {s.skipped} skipped, "
            f"{s.failed} failed")
    res.outputs["extract"] = summaries

    reg = _step(res, "register", lambda: register(settings, studies_dir=cfg.studies_dir), say)
    say(f"  Feast repo {reg.repo}: {len(reg.views)} views, {len(reg.services)} services")

    query = ("SELECT r.cohort_id, c.grade, count(*) AS patients, "
             "round(avg(r.original_firstorder_Mean), 1) AS mean_hu, "
             "round(avg(r.original_glcm_Contrast), 2) AS glcm_contrast "
             "FROM radiomics_original__venous r JOIN clinical c USING (patient_id) "
             "GROUP BY ALL ORDER BY ALL")
    table = _step(res, "sql", lambda: sql(query, settings=settings), say)
    say(f"  {query}")
    for row in table.to_pylist():
        say(f"    {row}")

    for name in cfg.studies:
        spec = load_study(cfg.studies_dir / f"{name}.yaml")
        ts = _step(res, f"assemble {name}", partial(assemble, settings, spec), say)
        counts = ts.manifest["row_counts"]
        say(f"  training set {ts.path} rows {counts}")
        tr = _step(res, f"train {name}",
                   partial(train_study, spec, ts.path, settings, n_boot=cfg.n_boot), say)
        res.outputs[f"train {name}"] = tr
        say(frame_table(tr.results, f"{name}: results per model and cohort"))
        say(f"  report: {tr.report_dir}/results.html")
        pr = _step(res, f"promote {name}", partial(promote, spec, settings), say)
        verdict = "champion" if pr.promoted else "challenger"
        say(f"  {pr.registered_model} v{pr.version} → {verdict}: {pr.reason}")
        res.outputs[f"promote {name}"] = pr
    return res
