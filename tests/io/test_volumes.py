"""NIfTI / NRRD reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radstore.io.volumes import is_volume_file, read_volume, write_volume
from radstore.validation import ValidationFailure
from radstore.volume import Volume


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_round_trip_keeps_geometry(tmp_path: Path, suffix: str) -> None:
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    d = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    v = Volume(arr, (0.5, 0.75, 2.0), (1.0, 2.0, 3.0), d)
    got = read_volume(write_volume(v, tmp_path / f"x{suffix}"))
    assert is_volume_file(tmp_path / f"x{suffix}")
    assert got.same_grid(v)
    np.testing.assert_array_equal(got.array, arr)


def test_real_nifti_phantom(shared_data: Path) -> None:
    v = read_volume(shared_data / "ibsi1/ct_phantom/nifti/image/phantom.nii.gz")
    assert v.shape == (60, 201, 204)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailure) as exc:
        read_volume(tmp_path / "nope.nii.gz")
    assert exc.value.rule == "missing_file"
    (tmp_path / "junk.nrrd").write_text("not nrrd")
    with pytest.raises(ValidationFailure) as exc:
        read_volume(tmp_path / "junk.nrrd")
    assert exc.value.rule == "unreadable"
