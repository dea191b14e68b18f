"""The real Feast 0.67 (DuckDB offline, SQLite online) on a small longitudinal store: apply,
materialize, historical retrieval equal to our assembly, online retrieval, unknown patients.

One repo is registered per module (``import feast`` alone takes ~10 s)."""

from __future__ import annotations

import contextlib
import io
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from radstore.config import Settings
from tests.store.conftest import write_spec

pytestmark = pytest.mark.integration
LANDMARK = {"kind": "survival", "time": "os_months", "event": "os_event", "landmark_weeks": 30}


@pytest.fixture(scope="module")
def registered(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from feast import FeatureStore

    from pipelines.register import register

    studies = tmp_path_factory.mktemp("studies")
    spec = write_spec(studies, endpoint=LANDMARK)
    write_spec(studies, name="needs_missing_set",
               features=[{"feature_set": "radiomics_wavelet", "phases": ["venous"]}])
    import feast  # noqa: F401  (its import-time filters first, as in a CLI run)

    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always", DeprecationWarning)
        report = register(settings, studies_dir=studies)
    return {"report": report, "warnings": [str(w.message) for w in caught],
            "stdout": printed.getvalue(),
            "fs": FeatureStore(repo_path=str(report.repo)), "spec": spec}


def test_apply_and_materialize(registered: dict[str, Any], settings: Settings) -> None:
    from feast.types import Array, Float32, Float64

    report, fs = registered["report"], registered["fs"]
    views = {v.name: v for v in fs.list_feature_views()}
    assert set(views) == {"radiomics_original__arterial", "radiomics_original__venous",
                          "deep_resnet50__arterial", "deep_resnet50__venous", "clinical", "scans"}
    assert {e.name for e in fs.list_entities()} >= {"patient", "scan"}
    rad = views["radiomics_original__venous"]
    assert {f.dtype for f in rad.features} == {Float64}
    assert [f.dtype for f in views["deep_resnet50__venous"].features] == [Array(Float32)]
    assert views["scans"].entities == ["scan"] and rad.entities == ["patient"]
    assert rad.tags["phase"] == "venous"
    assert sorted(s.name for s in fs.list_feature_services()) == ["t_os__comb", "t_os__rad"]
    assert "needs_missing_set" in report.skipped_studies
    src = pq.read_table(report.repo / "data" / "radiomics_original__venous.parquet")
    assert "lesion" not in src.column_names and src.num_rows == 52 * 7
    assert (report.repo / ".feastignore").is_file() and (report.repo / "online.db").is_file()
    assert report.materialized is not None


def test_register_keeps_feasts_internal_output_quiet(registered: dict[str, Any]) -> None:
    """Feast's DuckDB reads call a deprecated DuckDB method once per materialized view, and Feast
    prints each view's name; users cannot act on the one and the report has the other."""
    assert registered["report"].feast_materialized
    assert not [m for m in registered["warnings"] if "fetch_arrow_table" in m]
    assert registered["stdout"] == ""


def test_historical_features_equal_assembly(registered: dict[str, Any], settings: Settings) -> None:
    from pipelines.assemble import build_table, plan_study
    from radstore.store.feast_defs import feature_refs

    plan = plan_study(settings, registered["spec"])
    ours = build_table(plan)
    entity = pd.DataFrame({"patient_id": ours.column("patient_id").to_pylist(),
                           "event_timestamp": ours.column("as_of").to_pandas()})
    refs = feature_refs(plan.views, plan.spec.clinical)
    theirs = registered["fs"].get_historical_features(entity_df=entity, features=refs,
                                                      full_feature_names=True).to_arrow()
    theirs = theirs.sort_by("patient_id")
    ours = ours.sort_by("patient_id")
    assert theirs.column("patient_id").to_pylist() == ours.column("patient_id").to_pylist()
    cols = [c for c in ours.column_names if "__" in c]
    assert sorted(c for c in theirs.column_names if "__" in c) == sorted(cols)
    for c in cols:
        a, b = ours.column(c).to_pylist(), theirs.column(c).to_pylist()
        if c.endswith("__embedding"):
            np.testing.assert_array_equal(np.array(a, dtype=np.float32), np.array(b, dtype=np.float32))
        else:
            assert a == b, c
    weeks = np.floor(ours.column("radiomics_original__venous__original_firstorder_Mean").to_numpy())
    assert (weeks == 24).all()


def test_online_latest_vector_and_unknown_patients(registered: dict[str, Any], settings: Settings) -> None:
    from radstore.sql import sql

    fs = registered["fs"]
    pid = sql("SELECT min(patient_id) AS p FROM clinical", settings=settings).column("p")[0].as_py()
    latest = sql(f"SELECT original_glcm_Contrast, embedding FROM deep_resnet50__venous d JOIN "
                 f"radiomics_original__venous r USING (patient_id, event_timestamp) "
                 f"WHERE patient_id = '{pid}' ORDER BY event_timestamp DESC LIMIT 1",
                 settings=settings).to_pylist()[0]
    out = fs.get_online_features(features=fs.get_feature_service("t_os__comb"),
                                 entity_rows=[{"patient_id": pid}, {"patient_id": "P_not_a_patient"}],
                                 full_feature_names=True).to_dict()
    assert out["radiomics_original__venous__original_glcm_Contrast"][0] == latest["original_glcm_Contrast"]
    assert out["deep_resnet50__venous__embedding"][0] == pytest.approx(latest["embedding"])
    assert out["clinical__age"][0] is not None
    assert all(v[1] is None for k, v in out.items() if k != "patient_id")

    hist = fs.get_historical_features(
        entity_df=pd.DataFrame({"patient_id": ["P_not_a_patient", pid],
                                "event_timestamp": [datetime(2030, 1, 1, tzinfo=UTC)] * 2}),
        features=["radiomics_original__venous:original_glcm_Contrast", "clinical:age"],
        full_feature_names=True).to_arrow().sort_by("patient_id")
    row = hist.filter(pc.equal(hist.column("patient_id"), "P_not_a_patient")).to_pylist()[0]
    assert row["radiomics_original__venous__original_glcm_Contrast"] is None and row["clinical__age"] is None
    assert hist.num_rows == 2


def test_cli_register_reports(registered: dict[str, Any], settings: Settings, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    studies = tmp_path / "studies"
    studies.mkdir()
    write_spec(studies, name="t_cli")
    res = CliRunner().invoke(app, ["--store", str(settings.store), "register", "--studies", str(studies),
                                   "--no-materialize"])
    assert res.exit_code == 0, res.output
    assert "service t_cli__comb" in res.output and "removed t_os__comb" in res.output


def test_direct_online_reader_equals_feast(registered: dict[str, Any], settings: Settings) -> None:
    from radstore.sql import sql
    from radstore.store.online import OnlineVectors

    fs = registered["fs"]
    views = ["radiomics_original__venous", "deep_resnet50__venous", "clinical"]
    reader = OnlineVectors(fs, views)
    pid = sql("SELECT max(patient_id) AS p FROM clinical", settings=settings).column("p")[0].as_py()
    direct = reader(pid)
    refs = [f"{v.name}:{f.name}" for v in map(fs.get_feature_view, views) for f in v.features]
    feast_out = fs.get_online_features(features=refs, entity_rows=[{"patient_id": pid}],
                                       full_feature_names=True).to_dict()
    assert set(direct) == set(feast_out) - {"patient_id"}
    for k, v in direct.items():
        if k.endswith("__embedding"):
            np.testing.assert_array_equal(v, np.asarray(feast_out[k][0], dtype=np.float32))
        else:
            assert v == feast_out[k][0], k
    assert all(v is None for v in reader("P_not_a_patient").values())


def test_packed_online_vectors_equal_feast(registered: dict[str, Any], settings: Settings) -> None:
    from radstore.store.online import PACKED_FILE, PackedOnlineVectors

    fs, report = registered["fs"], registered["report"]
    patient_views = sorted(set(report.views) - {"scans"})
    assert sorted(report.packed) == patient_views and all(n > 0 for n in report.packed.values())
    reader = PackedOnlineVectors(report.repo / PACKED_FILE)
    assert reader.views == patient_views
    refs = [f"{v.name}:{f.name}" for v in map(fs.get_feature_view, patient_views) for f in v.features]
    pids = pq.read_table(report.repo / "data" / "clinical.parquet").column("patient_id").to_pylist()
    pids += ["P_not_a_patient"]
    theirs = fs.get_online_features(features=refs, entity_rows=[{"patient_id": p} for p in pids],
                                    full_feature_names=True).to_dict()
    assert set(reader.names) == set(theirs) - {"patient_id"}
    for i, pid in enumerate(pids):
        ours = reader(pid)
        for k, v in ours.items():
            if k.endswith("__embedding") and theirs[k][i] is not None:
                np.testing.assert_array_equal(v, np.asarray(theirs[k][i], dtype=np.float32))
            else:
                assert v == theirs[k][i] and type(v) is type(theirs[k][i]), (pid, k)
    assert all(v is None for v in reader("P_not_a_patient").values())


def test_scoring_readers_packed_equals_feast(registered: dict[str, Any]) -> None:
    from radstore.store.online import PACKED_FILE
    from services.scoring.app import feast_online_reader, packed_online_reader

    repo = registered["report"].repo
    columns = ["radiomics_original__venous__original_glcm_Contrast", "deep_resnet50__arterial__embedding",
               "clinical__age", "clinical__grade"]
    pids = pq.read_table(repo / "data" / "clinical.parquet").column("patient_id").to_pylist()[:5]
    pids.append("P_not_a_patient")
    packed = packed_online_reader(repo / PACKED_FILE)(pids, columns)
    feast = feast_online_reader(str(repo))(pids, columns)
    assert list(packed.columns) == list(feast.columns) == ["patient_id", *columns]
    scalars = [c for c in packed.columns if c != columns[1]]
    pd.testing.assert_frame_equal(packed[scalars].iloc[:-1], feast[scalars].iloc[:-1])
    for a, b in zip(packed[columns[1]].iloc[:-1], feast[columns[1]].iloc[:-1], strict=True):
        np.testing.assert_array_equal(a, np.asarray(b, dtype=np.float32))
    assert packed.iloc[-1][columns].isna().all() and feast.iloc[-1][columns].isna().all()


def test_feast_online_services_only(tmp_path: Path) -> None:
    from pipelines.register import RegisterError, register
    from radstore.config import load_settings
    from radstore.store.online import PACKED_FILE, packed_views
    from radstore.store.synthetic import write_synthetic_store

    store = write_synthetic_store(tmp_path / "store", cohorts={"h1": 3, "h2": 2, "h3": 2})
    settings = load_settings(store=store.root, progress=False)
    studies = tmp_path / "studies"
    studies.mkdir()
    write_spec(studies)
    with pytest.raises(RegisterError, match="feast_online"):
        register(settings, studies_dir=studies, feast_online="some")  # type: ignore[arg-type]
    report = register(settings, studies_dir=studies, feast_online="services")
    # t_os reads radiomics (both phases), deep venous and clinical: not deep arterial, not scans
    assert report.feast_materialized == ["clinical", "deep_resnet50__venous", "radiomics_original__arterial",
                                         "radiomics_original__venous"]
    assert packed_views(report.repo / PACKED_FILE) == sorted(set(report.views) - {"scans"})
    assert set(report.timings_s) >= {"feast_materialize_s", "packed_materialize_s"}
