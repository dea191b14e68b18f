"""radstore.sql: views over the offline store, the lesion-0 filter, deep unnesting, the CLI."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import radstore
from radstore.config import Settings
from radstore.store.synthetic import SyntheticStore
from tests.store.conftest import VISITS


def test_views_and_lesion_filter(settings: Settings, longitudinal: SyntheticStore) -> None:
    from radstore.sql import connect, view_names

    con = connect(settings=settings)
    names = set(view_names(con))
    assert {"radiomics_original__venous", "radiomics_original__arterial_lesions",
            "deep_resnet50__venous_long", "scans", "rejections", "clinical", "outcomes"} <= names
    assert "radiomics_original__venous_long" not in names
    n_patients = sum(len(p) for p in longitudinal.patients.values())
    per_scan = con.sql("SELECT count(*), count(DISTINCT scan_id), min(cohort_id) FROM "
                       "radiomics_original__venous").fetchall()[0]
    assert per_scan == (n_patients * len(VISITS), n_patients * len(VISITS), "h1")
    lesions = con.sql("SELECT DISTINCT lesion FROM radiomics_original__venous_lesions ORDER BY 1").fetchall()
    assert [r[0] for r in lesions] == [0, 1, 2]
    con.close()


def test_callable_module_long_view_and_pandas(settings: Settings) -> None:
    wide = radstore.sql("SELECT scan_id, embedding FROM deep_resnet50__venous ORDER BY scan_id LIMIT 1",
                        settings=settings)
    scan, emb = wide.column("scan_id")[0].as_py(), wide.column("embedding")[0].as_py()
    long = radstore.sql(f"SELECT idx, value FROM deep_resnet50__venous_long WHERE scan_id = '{scan}' "
                        "ORDER BY idx", settings=settings)
    assert long.column("idx").to_pylist() == list(range(len(emb)))
    assert long.column("value").to_pylist() == pytest.approx(emb)
    df = radstore.sql_df("SELECT cohort_id, count(*) AS n FROM clinical GROUP BY 1 ORDER BY 1",
                         settings=settings)
    assert df["n"].tolist() == [24, 16, 12]


def test_errors_name_the_views(settings: Settings) -> None:
    from radstore.sql import SqlError

    with pytest.raises(SqlError, match=r"views: .*radiomics_original__venous"):
        radstore.sql("SELECT * FROM radiomics_wavelet__venous", settings=settings)


def test_cli_formats(settings: Settings, tmp_path: Path) -> None:
    from pipelines.cli import app

    runner = CliRunner()
    base = ["--store", str(settings.store), "sql"]
    q = "SELECT patient_id, original_glcm_Contrast FROM radiomics_original__venous ORDER BY 1, 2 LIMIT 3"
    res = runner.invoke(app, [*base, q])
    assert res.exit_code == 0 and "original_glcm_Contrast" in res.output
    res = runner.invoke(app, [*base, q, "--format", "csv"])
    assert res.exit_code == 0 and res.output.splitlines()[0] == '"patient_id","original_glcm_Contrast"'
    out = tmp_path / "x.parquet"
    res = runner.invoke(app, [*base, q, "-f", "parquet", "-o", str(out)])
    assert res.exit_code == 0 and pq.read_table(out).num_rows == 3
    res = runner.invoke(app, [*base, "SELEC 1"])
    assert res.exit_code == 2 and "syntax error" in res.output.lower()
