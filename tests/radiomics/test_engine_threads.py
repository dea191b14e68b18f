"""``extract`` runs its feature maths on one torch and one BLAS thread and restores both after."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import ThreadpoolController

from radstore.radiomics import RadiomicsSettings, extract
from radstore.radiomics import engine as engine_module


def _blas_threads() -> list[int]:
    return [lib.num_threads for lib in ThreadpoolController().select(user_api="blas").lib_controllers]


def test_feature_maths_on_one_thread_and_callers_threads_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    controller = ThreadpoolController()
    if not _blas_threads():
        pytest.skip("no BLAS library loaded: nothing to limit")
    rng = np.random.default_rng(0)
    image = rng.normal(40, 30, (8, 12, 12)).round().astype(np.int16)
    mask = np.zeros(image.shape, np.uint8)
    mask[2:6, 3:9, 3:9] = 1
    seen: list[tuple[int, list[int]]] = []
    glcm = engine_module._texture_module("glcm")
    compute = glcm.compute

    def recording(*a: object, **k: object) -> object:
        seen.append((torch.get_num_threads(), _blas_threads()))
        return compute(*a, **k)

    monkeypatch.setattr(glcm, "compute", recording)
    before_torch = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with controller.limit(limits=2, user_api="blas"):
            extract(image, mask, (2.0, 1.0, 1.0), RadiomicsSettings.from_params(None))
            assert seen and all(t == 1 and set(b) == {1} for t, b in seen)
            assert torch.get_num_threads() == 2 and set(_blas_threads()) == {2}
    finally:
        torch.set_num_threads(before_torch)
