"""Keep freed heap memory in the process (glibc ``mallopt``) so that repeated extractions reuse it.

A small-ROI extraction allocates and frees a few MB of NumPy temporaries per ROI. glibc's dynamic
thresholds start low (mmap at 128 KiB, trim at twice the largest freed mmapped block), so in a process
that has only seen small arrays each extraction maps or grows the heap again, the kernel zeroes the
pages and the process takes a page fault per 4 KiB: ~1,400 faults per ROI of a LoG + wavelet setup,
~25 % of its time on one core and more when worker processes fault side by side on a VM. With
glibc's own upper values set from the start (mmap threshold 32 MiB, the dynamic maximum on 64-bit;
trim threshold 128 MiB) the heap is reused: a few faults per ROI. The cost: the process may keep up to
``TRIM_THRESHOLD`` bytes of freed memory instead of returning it to the OS.

Applied once per process by :func:`radstore.radiomics.extract_batch`; a no-op off glibc, and when the
environment sets ``RADSTORE_MALLOC_TUNING=0`` (or a ``MALLOC_*_`` variable or a
``glibc.malloc`` tunable: the user's choice wins).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # bytes: glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
TRIM_THRESHOLD = 128 << 20  # bytes of free memory at the heap top kept before it is returned


def wanted(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether to tune: glibc, not switched off, and no ``MALLOC_*_`` tunable set by the user."""
    if environ.get("RADSTORE_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if any(k.startswith("MALLOC_") and k.endswith("_") for k in environ):
        return False
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        return False
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@functools.cache
def keep_freed_heap() -> bool:
    """Set glibc's mmap and trim thresholds to the values above, once per process. Returns whether
    they are set (False: not glibc, switched off, or ``mallopt`` refused)."""
    if not wanted():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
