"""glibc allocator tuning (radstore.radiomics._heap): when it applies, and that it stops the page
faults of repeated small extractions (fault counts, not times)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from radstore.radiomics import _heap

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_wanted_respects_the_users_choice() -> None:
    assert _heap.wanted({}) is GLIBC
    assert _heap.wanted({"RADSTORE_MALLOC_TUNING": "1"}) is GLIBC
    for off in ("0", "off", "False", " no "):
        assert not _heap.wanted({"RADSTORE_MALLOC_TUNING": off})
    assert not _heap.wanted({"MALLOC_TRIM_THRESHOLD_": "0"})
    assert not _heap.wanted({"MALLOC_ARENA_MAX_": "2"})
    assert not _heap.wanted({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"})
    assert _heap.wanted({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"}) is GLIBC


# a fresh process: extract small ROIs with LoG + wavelet images (a few MB of temporaries each) and
# count the minor page faults of the repeated calls
_FAULTS = """
import resource, sys
import numpy as np
from radstore.radiomics import RadiomicsSettings, extract_batch, _heap
rng = np.random.default_rng(0)
z, y, x = np.indices((16, 32, 32))
mask = (((z - 8) / 5) ** 2 + ((y - 16) / 9) ** 2 + ((x - 16) / 8) ** 2 < 1).astype(np.uint8)
rois = [(rng.normal(40, 40, mask.shape).round().astype(np.int16), mask, (1.5, 0.8, 0.8)) for _ in range(4)]
s = RadiomicsSettings.from_params({"imageType": {"LoG": {"sigma": [1.0, 3.0]}, "Wavelet": {}}})
extract_batch(rois, s)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    extract_batch(rois, s)
print(_heap.keep_freed_heap(), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 12)
"""


def _faults_per_roi(env: dict[str, str]) -> tuple[bool, float]:
    out = subprocess.run([sys.executable, "-c", _FAULTS], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] == "True", float(out[1])


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_tuned_heap_stops_the_page_faults_of_repeated_extractions() -> None:
    """Measured without numba in the process (``RADSTORE_COMPILED_KERNELS=0``): importing it (LLVM)
    leaves glibc's dynamic mmap threshold raised, which by itself keeps the untuned heap mapped
    (~30 faults per ROI, tuned or not); a process without it, e.g. where numba is missing, shows
    what the tuning does (~800 faults per ROI untuned)."""
    no_numba = {"RADSTORE_COMPILED_KERNELS": "0"}
    tuned, faults_tuned = _faults_per_roi({**no_numba, "RADSTORE_MALLOC_TUNING": "1"})
    untuned, faults_default = _faults_per_roi({**no_numba, "RADSTORE_MALLOC_TUNING": "0"})
    assert tuned and not untuned
    assert faults_default > 200, faults_default  # glibc's defaults: the heap mapped again per ROI
    assert faults_tuned < 50, faults_tuned
    assert _faults_per_roi({"RADSTORE_MALLOC_TUNING": "1"})[1] < 60  # with the compiled kernels
