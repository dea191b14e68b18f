"""DICOM RTSTRUCT and SEG masks at the radiomics file edge: the ROI of the label is taken alone
(other ROIs may overlap it), by position or by name (``path#NAME``), with errors that list the
file's ROIs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from radstore.io.dicom import read_series, write_ct_series, write_rtstruct
from radstore.radiomics import RadiomicsSettings
from radstore.radiomics.engine import extract
from radstore.radiomics.files import extract_files, read_mask
from radstore.volume import Volume
from tests.ingest.factory import phantom, write_seg

SETTINGS = RadiomicsSettings.from_params(None)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Volume, np.ndarray, np.ndarray]:
    """A CT series with an RTSTRUCT (ROI 1 'BODY' holding ROI 2 'GTV') and a SEG of the same two."""
    root = tmp_path_factory.mktemp("dicom_masks")
    arr, mask = phantom(7, lesions=1)
    vol = Volume(arr, (0.8, 0.8, 2.5), (-12.0, -14.0, 30.0))
    ds = write_ct_series(vol, root / "ct")
    body, gtv = (arr > -500) | (mask > 0), mask == 1
    write_rtstruct(ds, vol, np.stack([body, gtv]), root / "rs" / "rs.dcm", {1: "BODY", 2: "GTV"})
    write_seg(ds, np.stack([body, gtv], axis=-1), root / "seg.dcm")
    return root, read_series(root / "ct"), body, gtv


def _features_of(image: Volume, roi: np.ndarray) -> dict[str, float]:
    return extract(image.array, roi.astype(np.uint8), image.spacing_zyx, SETTINGS)


def test_the_label_takes_its_roi_alone_by_position_or_name(case) -> None:
    root, image, body, gtv = case
    ct = root / "ct"
    want_gtv, want_body = _features_of(image, gtv), _features_of(image, body)
    for mask, label in ((root / "rs" / "rs.dcm", 2), (root / "rs", 2), (f"{root}/rs/rs.dcm#GTV", None),
                        (f"{root}/rs/rs.dcm#body,gtv", 2), (root / "seg.dcm", 2),
                        (f"{root}/seg.dcm#lesion 2", None)):
        assert extract_files(ct, mask, SETTINGS, label) == want_gtv, (mask, label)
    # the BODY, which holds the GTV, keeps every voxel (one label map of both would have a hole)
    assert extract_files(ct, root / "rs" / "rs.dcm", SETTINGS, 1) == want_body
    m = read_mask(f"{root}/rs/rs.dcm#GTV,BODY", image, SETTINGS.setting, 2)
    np.testing.assert_array_equal(m, 2 * body.astype(np.uint8))


def test_errors_name_the_rois(case, tmp_path: Path) -> None:
    root, image, _, gtv = case
    rs = root / "rs" / "rs.dcm"
    listing = "the file's ROIs (label name): 1 'BODY', 2 'GTV'"
    with pytest.raises(ValueError, match=r"no ROI with label 3 \(2 ROIs, numbers 1, 2\) \[unknown") as exc:
        read_mask(rs, image, SETTINGS.setting, 3)
    assert listing in str(exc.value)
    with pytest.raises(ValueError, match="no ROI with name 'PTV'") as exc:
        read_mask(f"{rs}#PTV", image, SETTINGS.setting)
    assert listing in str(exc.value)
    with pytest.raises(ValueError, match="label 2 selects none of the 1 ROI names after '#'") as exc:
        read_mask(f"{rs}#GTV", image, SETTINGS.setting, 2)
    assert listing in str(exc.value)
    with pytest.raises(ValueError, match="1 'lesion 1', 2 'lesion 2'"):
        read_mask(f"{root}/seg.dcm#GTV", image, SETTINGS.setting)
    nifti = tmp_path / "mask.nii.gz"
    from radstore.io.volumes import write_volume

    write_volume(image.with_array(gtv.astype(np.uint8)), nifti)
    with pytest.raises(ValueError, match="names ROIs of a DICOM RTSTRUCT or SEG"):
        read_mask(f"{nifti}#GTV", image, SETTINGS.setting)
    with pytest.raises(FileNotFoundError, match="mask not found"):
        read_mask(f"{root}/none.dcm#GTV", image, SETTINGS.setting)


def test_cli_one_case_and_batch_csv_take_roi_names(case, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    root, image, _, gtv = case
    want = _features_of(image, gtv)
    one = CliRunner().invoke(app, ["radiomics", str(root / "ct"), f"{root}/rs/rs.dcm#GTV",
                                   "-o", str(tmp_path / "one.json")])
    assert one.exit_code == 0, one.output
    got = json.loads((tmp_path / "one.json").read_text())
    assert got == pytest.approx(want, rel=1e-12)
    bad = CliRunner().invoke(app, ["radiomics", str(root / "ct"), f"{root}/rs/rs.dcm#PTV"])
    assert bad.exit_code != 0 and "1 'BODY', 2 'GTV'" in bad.output and "Traceback" not in bad.output
    batch = tmp_path / "batch.csv"
    with open(batch, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerows([["Image", "Mask", "Label"], [str(root / "ct"), f"{root}/rs/rs.dcm#GTV", ""],
                     [str(root / "ct"), str(root / "seg.dcm"), "2"],
                     [str(root / "ct"), f"{root}/rs/rs.dcm#PTV", ""]])
    res = CliRunner().invoke(app, ["radiomics", str(batch), "-o", str(tmp_path / "out.csv")])
    assert res.exit_code == 1 and "no ROI with name 'PTV'" in res.output
    rows = list(csv.DictReader((tmp_path / "out.csv").read_text().splitlines()))
    key = "original_firstorder_Mean"
    assert [float(r[key]) for r in rows[:2]] == pytest.approx([want[key]] * 2, rel=1e-12)
