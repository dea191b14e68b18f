"""GPU checks (skipped without CUDA): GPU and CPU features agree; extraction actors hold a GPU each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radstore.deep import BackboneConfig, embed, load_backbone

pytestmark = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@needs_cuda
def test_gpu_and_cpu_features_agree_fp32() -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    cfg = BackboneConfig(name="resnet50", weights="random", seed=0, pooling="both")
    x = torch.randn(4, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    cpu, _ = load_backbone(cfg, "cpu")
    gpu, _ = load_backbone(cfg, "cuda")
    a, b = embed(cpu, x, batch_size=len(x)), embed(gpu, x, batch_size=len(x))
    rel = (a - b).abs().max() / a.abs().max()
    assert rel < 1e-3, f"max relative difference {rel:.2e}"


@needs_cuda
def test_extraction_actors_hold_a_gpu_each(tmp_path: Path) -> None:
    import ray

    from pipelines.extract import extract
    from radstore.config import Settings
    from radstore.feature_sets import spec_from_dict
    from tests.deep.synthetic_store import make_store

    make_store(tmp_path, [("a", "P1", 1, "venous"), ("a", "P2", 2, "venous")])
    n = torch.cuda.device_count()
    spec = spec_from_dict({"name": "g", "kind": "deep", "settings": {
        "preprocess": {"size": 64}, "backbone": {"name": "resnet18", "weights": "random"}}})
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_gpus=n, include_dashboard=False)
    try:
        settings = Settings(store=tmp_path, progress=False, device="cuda")
        (s,) = extract(settings, [spec], num_actors=n)
        assert s.done == 2
        assert all(a["device"] == "cuda" and len(a["gpu_ids"]) == 1 for a in s.actors)
        assert len({a["gpu_ids"][0] for a in s.actors}) == n
        assert ray.cluster_resources().get("GPU") == n
    finally:
        ray.shutdown()
