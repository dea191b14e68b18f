"""DICOM series / RTSTRUCT / SEG reading against SimpleITK and the IBSI/STS reference data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from radstore.io.dicom import (
    mask_rois,
    rasterise_rtstruct,
    read_seg,
    read_series,
    scan_tree,
    split_mask_ref,
    split_series_ref,
    write_ct_series,
    write_rtstruct,
)
from radstore.io.volumes import read_volume
from radstore.validation import ValidationFailure
from radstore.volume import Volume
from tests.ingest.factory import phantom, write_seg

PHANTOM = "ibsi1/ct_phantom"
STS = ("STS_001", "STS_002")


def _sitk_series(folder: Path) -> sitk.Image:
    r = sitk.ImageSeriesReader()
    r.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return r.Execute()


def _assert_same_geometry(v: Volume, img: sitk.Image) -> None:
    assert v.shape == tuple(reversed(img.GetSize()))
    np.testing.assert_allclose(v.spacing, img.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(v.origin, img.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(v.direction, img.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(v.array, sitk.GetArrayFromImage(img).astype(np.float64))


@pytest.mark.parametrize("case", [f"{PHANTOM}/dicom/image", *(f"sts/{s}/CT/dicom/image" for s in STS)])
def test_series_geometry_equals_simpleitk(shared_data: Path, case: str) -> None:
    folder = shared_data / case
    _assert_same_geometry(read_series(folder), _sitk_series(folder))


def test_phantom_rtstruct_matches_shipped_nifti_mask(shared_data: Path) -> None:
    img = read_series(shared_data / PHANTOM / "dicom/image")
    mask, names = rasterise_rtstruct(shared_data / PHANTOM / "dicom/mask/DCM_RS_00060.dcm", img)
    assert names == {1: "GTV-1"}
    ref = read_volume(shared_data / PHANTOM / "nifti/mask/mask.nii.gz")
    assert img.same_grid(ref, tol_mm=1e-3)
    a, b = mask > 0, ref.array > 0
    dice = 2 * np.sum(a & b) / (a.sum() + b.sum())
    assert dice >= 0.97
    assert abs(int(a.sum()) - int(b.sum())) <= 0.01 * b.sum()


@pytest.mark.parametrize("case", STS)
def test_sts_rtstruct_by_position(shared_data: Path, case: str) -> None:
    base = shared_data / "sts" / case / "CT/dicom"
    img = read_series(base / "image")
    mask, names = rasterise_rtstruct(base / "mask/RS.dcm", img)
    assert names == {1: "GTV_Mass_CT"}
    assert mask.shape == img.shape and mask.sum() > 1000
    # contour planes sit on slice positions: every contour becomes a filled slice
    rs = pydicom.dcmread(base / "mask/RS.dcm")
    n_planes = len({round(float(c.ContourData[2]), 2) for c in rs.ROIContourSequence[0].ContourSequence})
    assert int(np.sum(mask.reshape(mask.shape[0], -1).any(axis=1))) == n_planes


def test_rtstruct_and_seg_round_trip(tmp_path: Path) -> None:
    arr, mask = phantom(3, lesions=2)
    vol = Volume(arr, (0.7, 0.7, 2.0), (5.0, -3.0, 100.0))
    ds = write_ct_series(vol, tmp_path / "ct", technical={"Manufacturer": "X", "KVP": "100"})
    got = read_series(tmp_path / "ct")
    assert got.same_grid(vol)
    assert got.meta["manufacturer"] == "X" and got.meta["kvp"] == 100.0
    write_rtstruct(ds, vol, mask, tmp_path / "rs.dcm", {1: "a", 2: "b"})
    rs, names = rasterise_rtstruct(tmp_path / "rs.dcm", got)
    assert names == {1: "a", 2: "b"}
    np.testing.assert_array_equal(rs, mask)
    write_seg(ds, mask, tmp_path / "seg.dcm")
    np.testing.assert_array_equal(read_seg(tmp_path / "seg.dcm", got), mask)
    groups = scan_tree(tmp_path)
    assert sorted(g.modality for g in groups) == ["CT", "RTSTRUCT", "SEG"]
    ct = next(g for g in groups if g.modality == "CT")
    assert all(ct.series_uid in g.referenced_series_uids for g in groups if g.modality != "CT")


def test_rtstruct_outside_and_wrong_frame_of_reference(tmp_path: Path) -> None:
    arr, mask = phantom(4)
    vol = Volume(arr, (0.7, 0.7, 2.0))
    ds = write_ct_series(vol, tmp_path / "ct")
    got = read_series(tmp_path / "ct")
    write_rtstruct(ds, vol, mask, tmp_path / "rs.dcm", z_offset_mm=50.0)
    with pytest.raises(ValidationFailure, match="outside the image") as exc:
        rasterise_rtstruct(tmp_path / "rs.dcm", got)
    assert exc.value.rule == "mask_outside_image"
    write_rtstruct(ds, vol, mask, tmp_path / "rs_half.dcm", z_offset_mm=1.0)  # half a 2 mm slice
    with pytest.raises(ValidationFailure, match=r"lies between two image slices") as exc:
        rasterise_rtstruct(tmp_path / "rs_half.dcm", got)
    assert exc.value.rule == "mask_outside_image"
    ds2 = write_ct_series(vol, tmp_path / "other")
    write_rtstruct(ds2, vol, mask, tmp_path / "rs2.dcm")
    with pytest.raises(ValidationFailure) as exc:
        rasterise_rtstruct(tmp_path / "rs2.dcm", got)
    assert exc.value.rule == "mask_frame_of_reference"


def test_split_mask_ref(tmp_path: Path) -> None:
    assert split_mask_ref("rs.dcm") == ("rs.dcm", ())
    assert split_mask_ref("a/rs.dcm#GTV") == ("a/rs.dcm", ("GTV",))
    assert split_mask_ref("rs.dcm# GTV 1 , CTV") == ("rs.dcm", ("GTV 1", "CTV"))
    (tmp_path / "odd#1.nii.gz").write_bytes(b"")  # an existing file whose name holds '#'
    assert split_mask_ref("odd#1.nii.gz", tmp_path) == ("odd#1.nii.gz", ())
    for bad in ("rs.dcm#", "rs.dcm#GTV,", "#GTV", "rs.dcm#GTV,GTV"):
        with pytest.raises(ValueError, match="mask reference"):
            split_mask_ref(bad)


def _body_and_gtv(tmp_path: Path) -> tuple[Volume, np.ndarray, np.ndarray, list]:
    """A CT series whose RTSTRUCT has ROI 1 'BODY' holding ROI 2 'GTV' (they overlap)."""
    arr, mask = phantom(5)
    vol = Volume(arr, (0.7, 0.7, 2.0), (5.0, -3.0, 100.0))
    ds = write_ct_series(vol, tmp_path / "ct")
    body, gtv = (arr > -500) | (mask > 0), mask == 1
    write_rtstruct(ds, vol, np.stack([body, gtv]), tmp_path / "rs.dcm", {1: "BODY", 2: "GTV"})
    return read_series(tmp_path / "ct"), body, gtv, ds


def test_rtstruct_overlapping_rois_are_refused_unless_selected(tmp_path: Path) -> None:
    img, body, gtv, _ = _body_and_gtv(tmp_path)
    rs = tmp_path / "rs.dcm"
    assert mask_rois(rs) == {1: "BODY", 2: "GTV"}
    with pytest.raises(ValidationFailure) as exc:
        rasterise_rtstruct(rs, img)
    assert exc.value.rule == "mask_overlap"
    assert f"ROIs 1 and 2 in {int(gtv.sum())} voxels" in exc.value.message
    assert "BODY" not in exc.value.message  # header values stay out of messages
    only_gtv, names = rasterise_rtstruct(rs, img, rois=["GTV"])
    assert names == {1: "GTV"}
    np.testing.assert_array_equal(only_gtv, gtv.astype(np.uint8))
    whole_body, _ = rasterise_rtstruct(rs, img, rois=[" body "])  # case and space forgiven
    np.testing.assert_array_equal(whole_body, body.astype(np.uint8))  # no hole where the GTV is
    by_label, names = rasterise_rtstruct(rs, img, rois=[2])
    assert names == {1: "GTV"} and np.array_equal(by_label, only_gtv)
    for bad, words in ((["PTV"], "no ROI with name 'PTV' (2 ROIs, numbers 1, 2)"),
                       ([3], "no ROI with label 3"), (["GTV", 2], "selected twice")):
        with pytest.raises(ValidationFailure, match=re.escape(words)) as exc:
            rasterise_rtstruct(rs, img, rois=bad)
        assert exc.value.rule == "unknown_roi"


def test_rtstruct_duplicate_roi_names_are_ambiguous(tmp_path: Path) -> None:
    img, _, _, _ = _body_and_gtv(tmp_path)
    r = pydicom.dcmread(tmp_path / "rs.dcm")
    r.StructureSetROISequence[0].ROIName = "GTV"
    r.save_as(tmp_path / "rs.dcm")
    with pytest.raises(ValidationFailure, match=r"name 'GTV' is ambiguous \(ROI numbers 1, 2\)"):
        rasterise_rtstruct(tmp_path / "rs.dcm", img, rois=["GTV"])


def test_seg_overlapping_segments_are_refused_unless_selected(tmp_path: Path) -> None:
    img, body, gtv, ds = _body_and_gtv(tmp_path)
    write_seg(ds, np.stack([body, gtv], axis=-1), tmp_path / "seg.dcm")
    seg = tmp_path / "seg.dcm"
    assert mask_rois(seg) == {1: "lesion 1", 2: "lesion 2"}
    with pytest.raises(ValidationFailure) as exc:
        read_seg(seg, img)
    assert exc.value.rule == "mask_overlap"
    assert f"segments 1 and 2 in {int(gtv.sum())} voxels" in exc.value.message
    np.testing.assert_array_equal(read_seg(seg, img, segments=["lesion 2"]), gtv.astype(np.uint8))
    np.testing.assert_array_equal(read_seg(seg, img, segments=[1]), body.astype(np.uint8))
    with pytest.raises(ValidationFailure, match="segments 1 and 2 in"):  # both selected: still one map
        read_seg(seg, img, segments=[2, 1])
    with pytest.raises(ValidationFailure, match="no segment with label 3"):
        read_seg(seg, img, segments=[3])


def _jpeg_lossless_sv1(pixels: np.ndarray, tmp: Path) -> bytes:
    """Encapsulated JPEG Lossless SV1 pixel data (GDCM's encoder, through SimpleITK): the transfer
    syntax PACS exports use most, which pydicom decodes but cannot encode."""
    w = sitk.ImageFileWriter()
    w.SetFileName(str(tmp))
    w.SetUseCompression(True)
    w.SetCompressor("JPEG")
    w.Execute(sitk.GetImageFromArray(pixels[None]))
    ds = pydicom.dcmread(tmp)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGLosslessSV1
    return ds.PixelData


@pytest.mark.parametrize("syntax", ["JPEGLosslessSV1", "JPEG2000Lossless", "RLELossless"])
def test_compressed_series_read_as_uncompressed(tmp_path: Path, syntax: str) -> None:
    """Hospital exports are often compressed; the decoders are dependencies (pylibjpeg)."""
    arr, _ = phantom(6)
    vol = Volume(arr, (0.7, 0.7, 2.0), (5.0, -3.0, 100.0))
    write_ct_series(vol, tmp_path / "plain")
    plain = read_series(tmp_path / "plain")
    uid = getattr(pydicom.uid, syntax)
    (tmp_path / "packed").mkdir()
    for f in sorted((tmp_path / "plain").iterdir()):
        ds = pydicom.dcmread(f)
        if syntax == "JPEGLosslessSV1":
            ds.PixelData = _jpeg_lossless_sv1(ds.pixel_array, tmp_path / "one.dcm")
            ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
            ds.file_meta.TransferSyntaxUID = uid
        else:
            ds.compress(uid)
        ds.save_as(tmp_path / "packed" / f.name)
    assert pydicom.dcmread(tmp_path / "packed" / f.name).file_meta.TransferSyntaxUID == uid
    packed = read_series(tmp_path / "packed")
    assert packed.same_grid(plain)
    np.testing.assert_array_equal(packed.array, plain.array)


def test_multiframe_enhanced_ct_reads_as_its_single_frame_series(tmp_path: Path) -> None:
    """A Legacy Converted Enhanced CT (one file, a frame per slice, geometry and rescale in the
    functional groups) gives the volume and technical tags of the series it was built from."""
    import highdicom as hd

    arr, _ = phantom(8)
    vol = Volume(arr, (0.7, 0.7, 2.0), (5.0, -3.0, 100.0))
    write_ct_series(vol, tmp_path / "plain", technical={"Manufacturer": "X", "KVP": "100"})
    plain = read_series(tmp_path / "plain")
    datasets = [pydicom.dcmread(f) for f in sorted((tmp_path / "plain").iterdir())]
    rng = np.random.default_rng(0)
    for k in rng.permutation(len(datasets))[:3]:  # per-slice rescale: per-frame groups
        ds = datasets[k]
        ds.RescaleIntercept = -1048
        ds.PixelData = (ds.pixel_array + 24).astype(np.uint16).tobytes()
    multi = hd.legacy.LegacyConvertedEnhancedCTImage(
        [datasets[k] for k in rng.permutation(len(datasets))], series_instance_uid=hd.UID(),
        series_number=3, sop_instance_uid=hd.UID(), instance_number=1)
    (tmp_path / "multi").mkdir()
    multi.save_as(tmp_path / "multi" / "ct.dcm")
    ds = pydicom.dcmread(tmp_path / "multi" / "ct.dcm")
    assert int(ds.NumberOfFrames) == len(datasets) and "ImagePositionPatient" not in ds
    got = read_series(tmp_path / "multi")
    assert got.same_grid(plain)
    np.testing.assert_array_equal(got.array, plain.array)
    assert {k: got.meta[k] for k in ("manufacturer", "kvp", "slice_thickness")} == {
        "manufacturer": "X", "kvp": 100.0, "slice_thickness": 2.0}


def test_gantry_tilt_is_refused_and_rounding_is_not(tmp_path: Path) -> None:
    """Slices shifted in-plane along the stack (a tilted gantry) do not fit a volume grid: refused
    by name, where ITK would silently stack them; positions rounded to 0.1 mm still read."""
    arr, _ = phantom(9)
    vol = Volume(arr, (0.7, 0.7, 2.0), (5.0, -3.0, 100.0))
    for name, shift in (("tilted", lambda k: (0.0, 2.0 * k * np.tan(np.radians(5)))),
                        ("rounded", lambda k: (0.04 * (-1) ** k, -0.05 * (k % 3 == 0)))):
        write_ct_series(vol, tmp_path / name)
        for k, f in enumerate(sorted((tmp_path / name).iterdir())):
            ds = pydicom.dcmread(f)
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            dx, dy = shift(k)
            ds.ImagePositionPatient = [f"{x + dx:.2f}", f"{y + dy:.2f}", f"{z:.2f}"]
            ds.save_as(f)
    with pytest.raises(ValidationFailure, match=r"displaced in-plane by up to 1\.5\d mm") as exc:
        read_series(tmp_path / "tilted")
    assert exc.value.rule == "sheared_slices"
    got = read_series(tmp_path / "rounded")
    np.testing.assert_allclose(got.origin, vol.origin, atol=0.06)


def test_side_files_of_an_export_are_not_slices(tmp_path: Path) -> None:
    """Exports and file browsers leave Thumbs.db, README.TXT, DICOMDIR or a report beside the
    slices: they are not read (nor hashed at ingest); any other non-DICOM file is an error."""
    arr, _ = phantom(10)
    vol = Volume(arr, (0.7, 0.7, 2.0))
    write_ct_series(vol, tmp_path / "ct")
    want = read_series(tmp_path / "ct")
    for name in ("Thumbs.db", "README.TXT", "report.pdf", "DICOMDIR", ".DS_Store"):
        (tmp_path / "ct" / name).write_bytes(b"not dicom")
    got = read_series(tmp_path / "ct")
    np.testing.assert_array_equal(got.array, want.array)
    assert len(got.meta["_files"]) == vol.shape[0]
    (tmp_path / "ct" / "IM99999").write_bytes(b"not dicom either")
    with pytest.raises(ValidationFailure, match="IM99999: not a readable DICOM file") as exc:
        read_series(tmp_path / "ct")
    assert exc.value.rule == "unreadable"


def _flat_study(folder: Path) -> tuple[Volume, Volume, list]:
    """Two CT series (Series Numbers 2 and 3) written into one folder, as a flat study export."""
    out = []
    for number, seed in ((2, 11), (3, 12)):
        arr, _ = phantom(seed)
        vol = Volume(arr, (0.7, 0.7, 2.0), (5.0, -3.0, 100.0))
        ds = write_ct_series(vol, folder / f"s{number}")
        for d in ds:
            d.SeriesNumber = number
            d.save_as(folder / f"S{number}_{Path(d.filename).name}")
        out.append((read_series(folder / f"s{number}"), ds))
        for f in (folder / f"s{number}").iterdir():
            f.unlink()
        (folder / f"s{number}").rmdir()
    return out[0][0], out[1][0], out[1][1]


def test_a_folder_of_several_series_reads_one_by_its_number(tmp_path: Path) -> None:
    two, three, _ = _flat_study(tmp_path / "flat")
    with pytest.raises(ValidationFailure, match=r"2 series in one folder \(series numbers 2, 3\): name one "
                       r"as 'flat#<series number>'") as exc:
        read_series(tmp_path / "flat")
    assert exc.value.rule == "multiple_series"
    np.testing.assert_array_equal(read_series(tmp_path / "flat", 3).array, three.array)
    np.testing.assert_array_equal(read_series(tmp_path / "flat", 2).array, two.array)
    with pytest.raises(ValidationFailure, match=r"no series numbered 7 in the folder \(its series numbers"):
        read_series(tmp_path / "flat", 7)
    assert split_series_ref("flat#3") == ("flat", 3) and split_series_ref("flat") == ("flat", None)
    with pytest.raises(ValueError, match="folder#<series number>"):
        split_series_ref("flat#three")
