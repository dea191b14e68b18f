"""File writers of the synthetic cohort: DICOM CT series, DICOM RTSTRUCT, NIfTI/NRRD images and
label maps. Deterministic: every UID is ``generate_uid(entropy_srcs=[...])`` of the seed and the
object's identity, every date/time comes from the caller (never the wall clock).

DICOM geometry (axial, identity orientation, LPS): slice ``k`` of the ``[z, y, x]`` array has
``ImagePositionPatient = origin + k * (0, 0, dz)``; ``InstanceNumber`` counts from the highest slice
down (head first), so readers must sort by position. Stored value = ``(HU - intercept) / slope``.
"""

from __future__ import annotations

import datetime as dt
import heapq
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom import dcmwrite
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from skimage.measure import find_contours

from radstore.synth.phantom import Grid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
STUDY_COMPONENT_MANAGEMENT = "1.2.840.10008.3.1.2.3.2"
ROI_COLORS = ((255, 0, 0), (0, 200, 0), (0, 100, 255), (255, 200, 0), (200, 0, 200))


def uid(*parts: object) -> str:
    """A deterministic DICOM UID from ``parts`` (pydicom ``generate_uid`` with entropy sources)."""
    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


@dataclass(frozen=True)
class StudyTags:
    """Patient and study level attributes (including the PHI ingestion must remove)."""

    patient_name: str
    patient_id: str
    birth_date: dt.date
    sex: str
    age: int
    address: str
    other_patient_ids: str
    accession_number: str
    institution: str
    referring_physician: str
    study_uid: str
    frame_uid: str
    study_datetime: dt.datetime
    study_id: str
    study_description: str = "CT ABDOMEN MULTIPHASE"


@dataclass(frozen=True)
class SeriesTags:
    """Series level attributes of one CT acquisition."""

    series_uid: str
    series_number: int
    description: str
    acquisition_datetime: dt.datetime
    manufacturer: str
    model: str
    kvp: float
    kernel: str
    slice_thickness: float
    signed_pixels: bool
    contrast_agent: str | None
    uid_entropy: tuple[str, ...] = field(default_factory=tuple)


def _da(d: dt.date) -> str:
    return d.strftime("%Y%m%d")


def _tm(t: dt.datetime) -> str:
    return t.strftime("%H%M%S")


def _ds(v: float) -> str:
    """DICOM decimal string (<= 16 chars) of ``v``."""
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


def _base_dataset(study: StudyTags, sop_class: str, modality: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = _da(study.birth_date)
    ds.PatientSex = study.sex
    ds.PatientAge = f"{study.age:03d}Y"
    ds.PatientAddress = study.address
    ds.OtherPatientIDs = study.other_patient_ids
    ds.AccessionNumber = study.accession_number
    ds.InstitutionName = study.institution
    ds.ReferringPhysicianName = study.referring_physician
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = _da(study.study_datetime)
    ds.StudyTime = _tm(study.study_datetime)
    ds.StudyID = study.study_id
    ds.StudyDescription = study.study_description
    return ds


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _encode(ds: Dataset) -> list[tuple[int, bytes]]:
    """Explicit VR little endian encoding of each top-level element, ``(tag, bytes)`` in tag order."""
    encodings = convert_encodings(["ISO_IR 100"])
    out = []
    for elem in ds:
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = False, True
        write_data_element(fp, elem, encodings)
        out.append((int(elem.tag), fp.getvalue()))
    return out


_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"}


def _element(tag: int, vr: str, value: bytes) -> bytes:
    """One explicit VR little endian element (PS3.5 7.1.2); odd values padded (UI with NUL)."""
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB") else b" "
    group, elem = tag >> 16, tag & 0xFFFF
    if vr in _LONG_VRS:
        return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value


class _MetaEncoder:
    """File meta (group 0002) as pydicom's ``write_file_meta_info`` writes it, with only the
    MediaStorageSOPInstanceUID changing between files."""

    def __init__(self, sop_class: str) -> None:
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = False, True
        write_file_meta_info(fp, _file_meta(sop_class, "1.2"), enforce_standard=True)
        raw = fp.getvalue()
        self._head, self._tail = b"", b""
        pos = 12  # skip (0002,0000) group length element
        while pos < len(raw):
            tag = struct.unpack_from("<HH", raw, pos)
            vr = raw[pos + 4: pos + 6].decode()
            if vr in _LONG_VRS:
                size = 12 + struct.unpack_from("<I", raw, pos + 8)[0]
            else:
                size = 8 + struct.unpack_from("<H", raw, pos + 6)[0]
            chunk = raw[pos: pos + size]
            if tag == (0x0002, 0x0003):
                pass
            elif tag < (0x0002, 0x0003):
                self._head += chunk
            else:
                self._tail += chunk
            pos += size

    def __call__(self, sop_uid: str) -> bytes:
        body = self._head + _element(0x00020003, "UI", sop_uid.encode()) + self._tail
        return _element(0x00020000, "UL", struct.pack("<I", len(body))) + body


def write_ct_series(folder: Path, hu: np.ndarray, grid: Grid, study: StudyTags,
                    series: SeriesTags) -> list[str]:
    """Write ``hu`` (int16 ``[z, y, x]``) as a CT series into ``folder`` (one file per slice,
    ``IM00001.dcm`` = instance 1 = the highest slice). Returns the SOPInstanceUIDs in array order.

    Unsigned storage: ``uint16`` with ``RescaleIntercept = -1024``; signed: ``int16``, intercept 0.
    The constant attributes are encoded once (pydicom) and merged in tag order with the per-slice
    ones (UID, position, pixels): the same bytes ``dcmwrite`` gives, several times faster.
    """
    folder.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = hu.shape
    if series.signed_pixels:
        stored, intercept = hu.astype(np.int16), 0
    else:
        stored, intercept = (hu.astype(np.int32) + 1024).astype(np.uint16), -1024
    ds = _base_dataset(study, CT_IMAGE_STORAGE, "CT")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    acq = series.acquisition_datetime
    ds.SeriesInstanceUID = series.series_uid
    ds.SeriesNumber = series.series_number
    ds.SeriesDescription = series.description
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = _da(acq)
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = _tm(acq)
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = study.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = series.manufacturer
    ds.ManufacturerModelName = series.model
    ds.KVP = _ds(series.kvp)
    ds.ConvolutionKernel = series.kernel
    ds.BodyPartExamined = "ABDOMEN"
    ds.PatientPosition = "FFS"
    if series.contrast_agent:
        ds.ContrastBolusAgent = series.contrast_agent
    ds.SliceThickness = _ds(series.slice_thickness)
    ds.SpacingBetweenSlices = _ds(grid.spacing[2])
    ds.PixelSpacing = [_ds(grid.spacing[1]), _ds(grid.spacing[0])]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ny, nx
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if series.signed_pixels else 0
    ds.RescaleIntercept = str(intercept)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    uids = [uid(*series.uid_entropy, "sop", k) for k in range(nz)]
    const = _encode(ds)
    meta = _MetaEncoder(CT_IMAGE_STORAGE)
    xy = f"{_ds(grid.origin[0])}\\{_ds(grid.origin[1])}\\"
    for k in range(nz):
        inst = nz - k
        z = _ds(grid.origin[2] + k * grid.spacing[2])
        var = [
            (0x00080018, _element(0x00080018, "UI", uids[k].encode())),
            (0x00200013, _element(0x00200013, "IS", str(inst).encode())),
            (0x00200032, _element(0x00200032, "DS", (xy + z).encode())),
            (0x00201041, _element(0x00201041, "DS", z.encode())),
            (0x7FE00010, _element(0x7FE00010, "OW", np.ascontiguousarray(stored[k]).tobytes())),
        ]
        body = b"".join(b for _, b in heapq.merge(const, var))
        (folder / f"IM{inst:05d}.dcm").write_bytes(b"\x00" * 128 + b"DICM" + meta(uids[k]) + body)
    return uids


def mask_contours(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed contours (``[n, 2]`` row/col, pixel units) of a binary slice at level 0.5
    (``skimage.measure.find_contours`` on a zero-padded slice; holes are separate contours)."""
    padded = np.pad(mask2d.astype(np.float32), 1)
    out = []
    for c in find_contours(padded, 0.5):
        c = c - 1.0
        if len(c) >= 4 and np.allclose(c[0], c[-1]):
            c = c[:-1]
        if len(c) >= 3:
            out.append(c)
    return out


def write_rtstruct(path: Path, labels: np.ndarray, grid: Grid, study: StudyTags, series: SeriesTags,
                   ct_series_uid: str, ct_sop_uids: list[str], roi_prefix: str,
                   structure_set_label: str) -> None:
    """Write an RTSTRUCT with one ROI per label value ``k`` (ROI number k, name
    ``<roi_prefix>_<k>``): per axial slice, the mask's contours mapped to patient coordinates
    ``(x0 + col dx, y0 + row dy, z_k)``, each referencing the CT image of that slice."""
    sop_uid = uid(*series.uid_entropy, "rtstruct")
    ds = _base_dataset(study, RT_STRUCTURE_SET_STORAGE, "RTSTRUCT")
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = series.series_uid
    ds.SeriesNumber = series.series_number
    ds.SeriesDescription = series.description
    ds.Manufacturer = "radstore synth"
    ds.InstanceNumber = 1
    acq = series.acquisition_datetime
    ds.SeriesDate = ds.StructureSetDate = _da(acq)
    ds.SeriesTime = ds.StructureSetTime = _tm(acq)
    ds.StructureSetLabel = structure_set_label
    ds.FrameOfReferenceUID = study.frame_uid

    def image_ref(k: int) -> Dataset:
        r = Dataset()
        r.ReferencedSOPClassUID = CT_IMAGE_STORAGE
        r.ReferencedSOPInstanceUID = ct_sop_uids[k]
        return r

    rt_series = Dataset()
    rt_series.SeriesInstanceUID = ct_series_uid
    rt_series.ContourImageSequence = Sequence([image_ref(k) for k in range(len(ct_sop_uids))])
    rt_study = Dataset()
    rt_study.ReferencedSOPClassUID = STUDY_COMPONENT_MANAGEMENT
    rt_study.ReferencedSOPInstanceUID = study.study_uid
    rt_study.RTReferencedSeriesSequence = Sequence([rt_series])
    frame = Dataset()
    frame.FrameOfReferenceUID = study.frame_uid
    frame.RTReferencedStudySequence = Sequence([rt_study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])

    rois, contours, observations = [], [], []
    x0, y0 = grid.origin[0], grid.origin[1]
    dx, dy = grid.spacing[0], grid.spacing[1]
    for k in (int(v) for v in np.unique(labels) if v > 0):
        roi = Dataset()
        roi.ROINumber = k
        roi.ReferencedFrameOfReferenceUID = study.frame_uid
        roi.ROIName = f"{roi_prefix}_{k}"
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois.append(roi)
        seq = []
        m = labels == k
        for zi in np.flatnonzero(m.reshape(m.shape[0], -1).any(axis=1)):
            z = grid.origin[2] + zi * grid.spacing[2]
            for c in mask_contours(m[zi]):
                pts = np.column_stack([x0 + c[:, 1] * dx, y0 + c[:, 0] * dy, np.full(len(c), z)])
                cd = Dataset()
                cd.ContourImageSequence = Sequence([image_ref(int(zi))])
                cd.ContourGeometricType = "CLOSED_PLANAR"
                cd.NumberOfContourPoints = len(pts)
                cd.ContourData = [_ds(v) for v in pts.ravel()]
                seq.append(cd)
        rc = Dataset()
        rc.ROIDisplayColor = list(ROI_COLORS[(k - 1) % len(ROI_COLORS)])
        rc.ReferencedROINumber = k
        rc.ContourSequence = Sequence(seq)
        contours.append(rc)
        obs = Dataset()
        obs.ObservationNumber = k
        obs.ReferencedROINumber = k
        obs.RTROIInterpretedType = "GTV"
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours)
    ds.RTROIObservationsSequence = Sequence(observations)
    ds.file_meta = _file_meta(RT_STRUCTURE_SET_STORAGE, sop_uid)
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)


def write_volume(path: Path, array: np.ndarray, grid: Grid) -> None:
    """Write an image or label map as NIfTI (``.nii.gz``) or NRRD (``.nrrd``), compressed,
    with the grid's spacing and origin (SimpleITK; identity direction in LPS)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(tuple(float(s) for s in grid.spacing))
    img.SetOrigin(tuple(float(o) for o in grid.origin))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path), useCompression=True)
