"""The file edge of the radiomics stage: a label-map file must lie on the image's grid, as PyRadiomics
checks it (``geometryTolerance``), or be resampled onto it (``correctMask``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radstore.radiomics import RadiomicsSettings, feature_names
from radstore.radiomics.files import extract_files, read_image, read_mask

SPACING = (0.8, 0.8, 2.0)  # x, y, z
ORIGIN = (-12.0, 30.0, 4.0)


def _image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(4)
    zz, _, xx = np.indices((20, 32, 32))
    arr = (rng.normal(20, 40, zz.shape) + 60 * np.sin(xx / 4.0)).round().astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(SPACING)
    img.SetOrigin(ORIGIN)
    path = tmp_path / "image.nii.gz"
    sitk.WriteImage(img, str(path))
    return path


def _mask(tmp_path: Path, name: str, shape: tuple[int, int, int], spacing: tuple[float, float, float],
          origin: tuple[float, float, float], centre_mm: tuple[float, float, float],
          radius_mm: float) -> Path:
    """A ball of label 1 (and a small block of label 2) on the given grid, placed in millimetres."""
    zz, yy, xx = np.indices(shape)
    x = origin[0] + xx * spacing[0]
    y = origin[1] + yy * spacing[1]
    z = origin[2] + zz * spacing[2]
    d2 = (x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (z - centre_mm[2]) ** 2
    arr = (d2 < radius_mm**2).astype(np.uint8)
    arr[1:3, 1:3, 1:3] = 2
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    path = tmp_path / name
    sitk.WriteImage(img, str(path))
    return path


CENTRE = (ORIGIN[0] + 16 * 0.8, ORIGIN[1] + 15 * 0.8, ORIGIN[2] + 10 * 2.0)


def _settings(**setting: object) -> RadiomicsSettings:
    return RadiomicsSettings.from_params({"setting": setting} if setting else None)


def test_mask_off_the_image_grid_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    image = _image(tmp_path)
    shifted = _mask(tmp_path, "shifted.nii.gz", (20, 32, 32), SPACING,
                    (ORIGIN[0] + 0.5, ORIGIN[1], ORIGIN[2]), CENTRE, 6.0)
    with pytest.raises(ValueError, match=r"origin differs from the image's by 0.5 mm.*correctMask"):
        extract_files(image, shifted, _settings())
    finer = _mask(tmp_path, "finer.nii.gz", (40, 64, 64), (0.4, 0.4, 1.0), ORIGIN, CENTRE, 6.0)
    with pytest.raises(ValueError, match=r"size \(x, y, z\) \(64, 64, 40\) differs"):
        read_mask(finer, read_image(image))


def test_geometry_tolerance_accepts_small_differences(tmp_path: Path) -> None:
    """An origin 1e-4 mm off fails ITK's default tolerance (1e-6 x 0.8 mm) and passes with
    ``geometryTolerance: 1e-3``, with the features of the exactly aligned mask."""
    image = _image(tmp_path)
    aligned = _mask(tmp_path, "aligned.nii.gz", (20, 32, 32), SPACING, ORIGIN, CENTRE, 6.0)
    nudged_img = sitk.ReadImage(str(aligned))  # the same voxels, the origin 1e-4 mm off
    nudged_img.SetOrigin((ORIGIN[0] + 1e-4, ORIGIN[1], ORIGIN[2]))
    nudged = tmp_path / "nudged.nii.gz"
    sitk.WriteImage(nudged_img, str(nudged))
    with pytest.raises(ValueError, match="geometryTolerance"):
        extract_files(image, nudged, _settings())
    want = extract_files(image, aligned, _settings())
    got = extract_files(image, nudged, _settings(geometryTolerance=1e-3))
    assert got == want


def test_correct_mask_resamples_like_pyradiomics(tmp_path: Path) -> None:
    """``correctMask`` on a mask of a finer, shifted grid: the mask is resampled onto the image grid
    by nearest neighbour, and the features equal PyRadiomics' own ``correctMask`` run on the same
    files (all 107 within 1e-4 relative, 1e-6 absolute near zero); the other label is kept."""
    pytest.importorskip("radiomics")
    from radiomics import featureextractor

    image = _image(tmp_path)
    finer = _mask(tmp_path, "finer.nii.gz", (40, 64, 66), (0.4, 0.4, 1.0),
                  (ORIGIN[0] - 0.3, ORIGIN[1] + 0.1, ORIGIN[2] - 0.5), CENTRE, 6.0)
    settings = _settings(correctMask=True)
    m = read_mask(finer, read_image(image), settings.setting)
    assert m.shape == (20, 32, 32) and set(np.unique(m)) == {0, 1, 2}
    got = extract_files(image, finer, settings)
    ext = featureextractor.RadiomicsFeatureExtractor(correctMask=True)
    ref = ext.execute(str(image), str(finer))
    names = feature_names(settings)
    assert len(names) == 107
    for n in names:
        assert got[n] == pytest.approx(float(ref[n]), rel=1e-4, abs=1e-6), n


def test_correct_mask_rejects_a_roi_outside_the_image(tmp_path: Path) -> None:
    image = _image(tmp_path)
    edge = (ORIGIN[0] + 31 * 0.8, CENTRE[1], CENTRE[2])  # the ball's centre on the image's last column
    outside = _mask(tmp_path, "outside.nii.gz", (20, 32, 40), SPACING, ORIGIN, edge, 4.0)
    with pytest.raises(ValueError, match="extends outside the image"):
        extract_files(image, outside, _settings(correctMask=True))
    with pytest.raises(ValueError, match="label 3 not present"):
        extract_files(image, outside, _settings(correctMask=True), label=3)


@pytest.mark.parametrize("direction", ["flip_x_z", "oblique_in_plane"])
@pytest.mark.parametrize("params", [None, {"setting": {"resampledPixelSpacing": [1, 1, 1]}}])
def test_non_identity_directions_equal_pyradiomics_on_the_files(tmp_path: Path, direction: str,
                                                                params: dict | None) -> None:
    """Images whose direction cosines are not the identity (axes flipped, rotated in-plane): our
    file path equals PyRadiomics' own extractor run on the same files (it resamples in the image's
    physical frame; the features only see the index grid and spacing)."""
    featureextractor = pytest.importorskip("radiomics.featureextractor")
    c, s = np.cos(0.3), np.sin(0.3)
    cosines = {"flip_x_z": (-1, 0, 0, 0, 1, 0, 0, 0, -1), "oblique_in_plane": (c, -s, 0, s, c, 0, 0, 0, 1)}
    rng = np.random.default_rng(0)
    arr = rng.normal(40, 100, (14, 30, 28)).round().astype(np.int16)
    zz, yy, xx = np.indices(arr.shape)
    roi = ((((zz - 7) / 4) ** 2 + ((yy - 14) / 9) ** 2 + ((xx - 13) / 8) ** 2) < 1).astype(np.uint8)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.7, 2.5))
    img.SetOrigin(ORIGIN)
    img.SetDirection(cosines[direction])
    msk = sitk.GetImageFromArray(roi)
    msk.CopyInformation(img)
    sitk.WriteImage(img, str(tmp_path / "image.nrrd"))
    sitk.WriteImage(msk, str(tmp_path / "mask.nrrd"))
    settings = RadiomicsSettings.from_params(params)
    ours = extract_files(tmp_path / "image.nrrd", tmp_path / "mask.nrrd", settings, backend="torch")
    extractor = featureextractor.RadiomicsFeatureExtractor(settings.pyradiomics_params())
    ref = {k: float(v) for k, v in extractor.execute(str(tmp_path / "image.nrrd"),
                                                     str(tmp_path / "mask.nrrd")).items()
           if not k.startswith("diagnostics_")}
    assert sorted(ours) == sorted(ref)
    bad = [(k, ours[k], ref[k]) for k in ref if not np.isclose(ours[k], ref[k], rtol=1e-4, atol=1e-6)]
    assert not bad, bad[:5]


def _fresh_python(code: str, *args: str) -> str:
    """stdout of ``code`` in a new interpreter (its threads are only those ``code`` starts)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RADSTORE_PROGRESS": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads are counted in Linux's procfs")
def test_workers_fork_only_beside_openblas_pools() -> None:
    """Imported, the engine runs no thread but NumPy's and SciPy's OpenBLAS pools: workers fork. A
    Python thread, or torch's OpenMP pool once an op ran, makes them spawn."""
    code = """
import threading
import torch
import radstore.radiomics.engine
from radstore.radiomics.files import worker_start_method
methods = [worker_start_method()]
thread = threading.Thread(target=threading.Event().wait, args=(2,))
thread.start()
methods.append(worker_start_method())
thread.join()
methods.append(worker_start_method())
torch.set_num_threads(2)
torch.ones(10**7).sum()
methods.append(worker_start_method())
print(methods)
"""
    assert _fresh_python(code) == "['fork', 'spawn', 'fork', 'spawn']"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="threads are counted in Linux's procfs")
def test_forked_workers_give_each_case_the_values_of_one_process(tmp_path: Path) -> None:
    image = _image(tmp_path)
    lines = ["Image,Mask,Label"]
    for k, radius in enumerate((5.0, 6.5, 8.0)):
        mask = _mask(tmp_path, f"mask{k}.nii.gz", (20, 32, 32), SPACING, ORIGIN, CENTRE, radius)
        lines += [f"{image.name},{mask.name},1", f"{image.name},{mask.name},2"]
    batch = tmp_path / "cases.csv"
    batch.write_text("\n".join(lines) + "\n")
    code = """
import json, sys
from radstore.radiomics import RadiomicsSettings
from radstore.radiomics.files import extract_cases, read_batch_csv, worker_start_method
_, cases = read_batch_csv(sys.argv[1])
settings = RadiomicsSettings.from_params(None)
method = worker_start_method()
forked = [r for group in extract_cases(cases, settings, jobs=2, group=2) for r in group]
alone = [r for group in extract_cases(cases, settings, jobs=1, group=1) for r in group]
print(json.dumps({"method": method, "cases": len(forked), "equal": forked == alone,
                  "failed": [r for _, r in forked if not isinstance(r, dict)]}))
"""
    got = json.loads(_fresh_python(code, str(batch)))
    assert got == {"method": "fork", "cases": 6, "equal": True, "failed": []}


def test_a_4d_file_of_one_volume_reads_as_3d_and_vector_masks_are_refused(tmp_path: Path) -> None:
    """As ingest reads them: a trailing singleton 4th axis is dropped; a vector mask (PyRadiomics'
    label_channel) is a clear error."""
    image = _image(tmp_path)
    mask = _mask(tmp_path, "mask.nii.gz", (20, 32, 32), SPACING, ORIGIN, CENTRE, 5.0)
    four = sitk.JoinSeries([sitk.ReadImage(str(mask))])  # x, y, z, 1
    assert four.GetDimension() == 4
    sitk.WriteImage(four, str(tmp_path / "mask4d.nii.gz"))
    settings = _settings()
    assert extract_files(image, tmp_path / "mask4d.nii.gz", settings) == extract_files(image, mask, settings)
    vector = sitk.Compose([sitk.ReadImage(str(mask))] * 2)
    sitk.WriteImage(vector, str(tmp_path / "vector.nrrd"))
    with pytest.raises(ValueError, match="2 components per voxel"):
        read_mask(tmp_path / "vector.nrrd", read_image(image))
