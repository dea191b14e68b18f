"""What a benchmark records about the machine it ran on (the ratios depend on the CPU model)."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU model (``model name`` of ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_details() -> dict[str, object]:
    """CPU vendor, family/model (e.g. AMD family 25 model 17 = Zen 4) and the SIMD sets that decide
    NumPy's kernels (AVX2, AVX-512F), read from ``/proc/cpuinfo`` (empty off Linux)."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("vendor_id", "cpu family", "model", "flags") and key not in info:
                info[key] = value.strip()
            if line.strip() == "":
                break
    except OSError:
        return {}
    flags = set(info.get("flags", "").split())
    return {"vendor": info.get("vendor_id"), "family": info.get("cpu family"), "model": info.get("model"),
            "avx2": "avx2" in flags, "avx512f": "avx512f" in flags}
