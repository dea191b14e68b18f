"""Our engine on another device against our engine on the CPU, over the randomized oracle's cases:
CUDA where a GPU is present (``gpu`` marker), else the torch kernels CUDA runs, on the CPU."""

from __future__ import annotations

import pytest
import torch

from tests.radiomics._random_cases import GENERATORS, compare_devices, main


def test_the_torch_kernels_on_cpu_agree_with_the_cpu_path_on_random_cases() -> None:
    problems = [f"seed {s}: {p}" for s in range(3)
                if (p := compare_devices(GENERATORS["settings"](s), "torch-cpu"))]
    assert not problems, problems


def test_the_device_comparison_reports_a_difference(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A first-order mean 1e-4 off on the torch path only is reported, by the function and by the
    sweep's exit code (so the GPU check cannot pass on a comparison that compares nothing)."""
    from radstore.radiomics import firstorder
    from radstore.radiomics._neighbours import numpy_path

    real = firstorder.compute

    def off_on_the_device_path(x: torch.Tensor, *a, **k):  # type: ignore[no-untyped-def]
        out = real(x, *a, **k)
        if not numpy_path(x):
            out = {**out, "Mean": out["Mean"] * (1 + 1e-4)}
        return out

    monkeypatch.setattr(firstorder, "compute", off_on_the_device_path)
    problem = compare_devices(GENERATORS["settings"](0), "torch-cpu")
    assert problem is not None and "original_firstorder_Mean" in problem
    assert main(["settings", "0", "1", "--device", "torch-cpu"]) == 1
    assert "1 differ" in capsys.readouterr().out


@pytest.mark.gpu
@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_random_cases_agree_on_cuda(kind: str) -> None:
    """40 random cases per generator (every setting, image type and degenerate ROI the oracle
    draws): CUDA within 1e-5 relative of the CPU, or the same refusal."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: CPU/CUDA agreement over random cases not checked here")
    problems = [f"seed {s}: {p}" for s in range(40) if (p := compare_devices(GENERATORS[kind](s), "cuda"))]
    assert not problems, f"{len(problems)}/40 differ: " + "\n".join(problems[:5])

