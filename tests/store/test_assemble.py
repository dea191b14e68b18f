"""Training-set assembly: point-in-time correctness, reproducibility, splits, bad specs."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pipelines.assemble import AssemblyError, assemble, build_table, plan_study
from radstore.config import Settings, load_settings
from radstore.io.tables import TIMESTAMP_TYPE, read_table, write_table
from radstore.store.synthetic import SyntheticStore
from tests.store.conftest import spec_dict, write_spec

MEAN = "radiomics_original__venous__original_firstorder_Mean"


def _visit_weeks(table: pa.Table) -> np.ndarray:
    """The synthetic first radiomic feature is visit week + U(0, 0.5)."""
    return np.floor(table.column(MEAN).to_numpy()).astype(int)


@pytest.mark.parametrize(("landmark", "week"), [(None, 0), (11.9, 0), (12, 12), (30, 24), (100, 72)])
def test_point_in_time_picks_latest_visit_at_or_before_landmark(
        settings: Settings, tmp_path: Path, landmark: float | None, week: int) -> None:
    endpoint = {"kind": "survival", "time": "os_months", "event": "os_event", "landmark_weeks": landmark}
    plan = plan_study(settings, write_spec(tmp_path, endpoint=endpoint))
    table = build_table(plan)
    assert (_visit_weeks(table) == week).all()


def test_training_set_layout_and_manifest(settings: Settings, longitudinal: SyntheticStore,
                                          tmp_path: Path) -> None:
    ts = assemble(settings, write_spec(tmp_path))
    t = ts.table
    assert ts.path.parent == settings.layout.training_sets / "t_os"
    assert ts.path.name == ts.content_hash[:16]
    assert t.column_names[:8] == ["cohort_id", "patient_id", "split", "as_of", "os_months", "os_event",
                                  "clinical__age", "clinical__grade"]
    feats = t.column_names[8:]
    assert feats == sorted(feats) and "deep_resnet50__venous__embedding" in feats
    emb = t.column("deep_resnet50__venous__embedding")
    assert emb.type == pa.list_(pa.float32()) and set(pc.list_value_length(emb).to_pylist()) == {8}
    assert t.schema.field("as_of").type == TIMESTAMP_TYPE
    keys = list(zip(t.column("cohort_id").to_pylist(), t.column("patient_id").to_pylist(), strict=True))
    assert keys == sorted(keys)
    m = ts.manifest
    assert m["row_counts"] == {s: int(pc.sum(pc.equal(t.column("split"), s)).as_py() or 0)
                               for s in ("train", "internal", "external")}
    assert m["row_counts"]["external"] == len(longitudinal.patients["h3"])
    assert set(t.filter(pc.equal(t.column("split"), "external")).column("cohort_id").to_pylist()) == {"h3"}
    v = m["inputs"]["features"]["radiomics_original__venous"]
    assert v["version"] == longitudinal.versions["radiomics_original"]
    f0 = next(iter(v["files"]))
    assert v["files"][f0] == hashlib.sha256((settings.layout.root / f0).read_bytes()).hexdigest()
    assert m["data_sha256"] == hashlib.sha256(ts.parquet.read_bytes()).hexdigest()
    assert json.loads((ts.path / "manifest.json").read_text()) == m
    assert len(m["columns"]["features"]["radiomics_original__arterial"]) == 5


def test_byte_for_byte_reproducible_across_runs_and_copies(settings: Settings, tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    a = assemble(settings, spec)
    a_bytes = (a.parquet.read_bytes(), (a.path / "manifest.json").read_bytes())
    b = assemble(settings, spec)
    copy = tmp_path / "copy"
    shutil.copytree(settings.layout.root, copy, ignore=shutil.ignore_patterns("training_sets"))
    c = assemble(load_settings(store=copy, progress=False), spec)
    assert b.path == a.path
    for ts in (b, c):
        assert (ts.parquet.read_bytes(), (ts.path / "manifest.json").read_bytes()) == a_bytes
    other = assemble(settings, write_spec(tmp_path, split={"train_cohorts": ["h1", "h2"],
                                                           "external_cohorts": ["h3"], "seed": 4}))
    assert other.content_hash != a.content_hash


def test_population_filter_and_binary_endpoint(settings: Settings, tmp_path: Path) -> None:
    from radstore.sql import sql

    spec = write_spec(tmp_path, name="t_bin", population="grade = 'G3' AND age < 70",
                      endpoint={"kind": "binary", "label": "response"}, clinical=["grade"],
                      features=[{"feature_set": "radiomics_original", "phases": ["venous"]}],
                      split={"train_cohorts": ["h1", "h2"], "external_cohorts": ["h3"],
                             "internal_fraction": 0.0})
    t = assemble(settings, spec).table
    want = sql("SELECT patient_id FROM clinical WHERE grade = 'G3' AND age < 70 "
               "ORDER BY cohort_id, patient_id", settings=settings).column("patient_id").to_pylist()
    assert t.column("patient_id").to_pylist() == want
    assert set(t.column("clinical__grade").to_pylist()) == {"G3"} and "response" in t.column_names
    assert set(t.column("split").to_pylist()) == {"train", "external"}


def test_missing_features_drop_or_keep(tmp_path: Path, longitudinal: SyntheticStore) -> None:
    root = tmp_path / "s"
    shutil.copytree(longitudinal.root, root, ignore=shutil.ignore_patterns("training_sets", "feast"))
    part = next((root / "features/radiomics_original").glob("*/phase=venous/cohort=h1/*.parquet"))
    t = read_table(part)
    gone = longitudinal.patients["h1"][0]
    write_table(t.filter(pc.not_equal(t.column("patient_id"), gone)), part)
    deep = next((root / "features/deep_resnet50").glob("*/phase=venous/cohort=h1/*.parquet"))
    t = read_table(deep)
    write_table(t.filter(pc.not_equal(t.column("patient_id"), gone)), deep)
    s = load_settings(store=root, progress=False)
    dropped = assemble(s, write_spec(tmp_path))
    assert gone not in dropped.table.column("patient_id").to_pylist()
    assert dropped.manifest["counts"]["dropped_missing_features"] == 1
    kept = assemble(s, write_spec(tmp_path, missing_features="keep")).table
    row = kept.filter(pc.equal(kept.column("patient_id"), gone))
    assert row.column(MEAN).to_pylist() == [None]
    assert row.column("deep_resnet50__venous__embedding").to_pylist() == [None]
    emb = kept.column("deep_resnet50__venous__embedding")
    assert emb.null_count == 1 and len(emb.drop_null()[0].as_py()) == 8
    assert row.column("radiomics_original__arterial__original_firstorder_Mean").null_count == 0


def test_latest_version_unless_pinned(tmp_path: Path, longitudinal: SyntheticStore) -> None:
    root = tmp_path / "s"
    shutil.copytree(longitudinal.root, root, ignore=shutil.ignore_patterns("training_sets", "feast"))
    old = longitudinal.versions["radiomics_original"]
    new_dir = root / "features/radiomics_original/ffffffffff"
    shutil.copytree(root / "features/radiomics_original" / old, new_dir)
    for part in new_dir.glob("phase=*/cohort=*/*.parquet"):
        t = read_table(part)
        i = t.column_names.index("created_timestamp")
        later = pc.add(t.column(i), pa.scalar(86_400_000_000, pa.duration("us")))
        t = t.set_column(i, "created_timestamp", later)
        write_table(t.set_column(t.column_names.index("original_glcm_Contrast"), "original_glcm_Contrast",
                                 pa.array(np.full(t.num_rows, 7.0))), part)
    s = load_settings(store=root, progress=False)
    latest = assemble(s, write_spec(tmp_path))
    assert latest.manifest["inputs"]["features"]["radiomics_original__venous"]["version"] == "ffffffffff"
    assert set(latest.table.column("radiomics_original__venous__original_glcm_Contrast").to_pylist()) == {7.0}
    pinned = assemble(s, write_spec(tmp_path, features=[
        {"feature_set": "radiomics_original", "phases": ["venous"], "version": old}]))
    assert pinned.manifest["inputs"]["features"]["radiomics_original__venous"]["version"] == old


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"features": [{"feature_set": "radiomics_wavelet", "phases": ["venous"]}]},
         "features[0]: unknown feature set 'radiomics_wavelet'"),
        ({"features": [{"feature_set": "radiomics_original", "phases": ["delayed"]}]},
         "has no phase 'delayed'"),
        ({"features": [{"feature_set": "radiomics_original", "phases": ["venous"], "version": "0000000000"}]},
         "has no version '0000000000'"),
        ({"endpoint": {"kind": "survival", "time": "pfs_months", "event": "os_event"}},
         "endpoint: column 'pfs_months' is not in the outcomes table"),
        ({"clinical": ["bmi"]}, "clinical: column 'bmi' is not in the clinical table"),
        ({"population": "age >>> 3"}, "population: SQL error"),
        ({"population": "weight > 3"}, "population: SQL error"),
        ({"population": "age > 200"}, "has no patients left"),
        ({"split": {"train_cohorts": ["h1", "h9"], "external_cohorts": ["h3"]}},
         "split.train_cohorts: unknown cohorts ['h9']"),
        ({"split": {"train_cohorts": ["h1"], "external_cohorts": ["h3"], "internal_fraction": 0.01}},
         "split: cannot split 24 training-cohort patients 1% internal"),
        ({"split": {"train_cohorts": ["h1"], "external_cohorts": ["h1"]}},
         "in both train_cohorts and external_cohorts"),
    ],
)
def test_bad_specs_fail_before_any_work(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        overrides: dict, needle: str) -> None:
    import pipelines.assemble as mod

    def no_work(*a: object, **k: object) -> None:
        raise AssertionError("feature values were read for a bad spec")

    monkeypatch.setattr(mod, "build_table", no_work)
    with pytest.raises(AssemblyError) as exc:
        assemble(settings, write_spec(tmp_path, **overrides))
    assert needle in str(exc.value)
    if "both" not in needle:
        assert "study 't_os'" in str(exc.value)


def test_spec_from_name_in_studies_dir(settings: Settings, tmp_path: Path) -> None:
    write_spec(tmp_path, name="by_name")
    assert assemble(settings, "by_name", studies_dir=tmp_path).manifest["study"] == "by_name"
    with pytest.raises(AssemblyError, match="study spec not found"):
        assemble(settings, "nope", studies_dir=tmp_path)
    assert spec_dict()["name"] == "t_os"
