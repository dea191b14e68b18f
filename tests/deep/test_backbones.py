"""Backbones: pooled features equal a direct torchvision/MONAI forward pass; weights loading."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from radstore.deep import (
    BackboneConfig,
    DeepSettings,
    WeightsNotFoundError,
    aggregate,
    embed,
    hub_checkpoint_path,
    load_backbone,
)
from radstore.deep.gradcam import gradcam, save_overlay


def _reference_resnet18(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).eval()


def test_pooled_features_equal_direct_torchvision_forward() -> None:
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ref = _reference_resnet18(7)
    ref.fc = nn.Identity()  # type: ignore[assignment]
    with torch.no_grad():
        expected_avg = ref(x)
        ref.avgpool = nn.AdaptiveMaxPool2d(1)  # type: ignore[assignment]
        expected_max = ref(x)
    model, src = load_backbone(BackboneConfig(name="resnet18", weights="random", seed=7, pooling="avg"))
    assert src == "random(seed=7)"
    got = embed(model, x, batch_size=2)
    assert got.shape == (3, 512)
    torch.testing.assert_close(got, expected_avg, rtol=1e-5, atol=1e-5)
    both, _ = load_backbone(BackboneConfig(name="resnet18", weights="random", seed=7, pooling="both"))
    got = embed(both, x, batch_size=len(x))  # the direct forward's shape
    assert got.shape == (3, 1024)
    torch.testing.assert_close(got[:, :512], expected_max, rtol=1e-5, atol=1e-5)  # max first
    torch.testing.assert_close(got[:, 512:], expected_avg, rtol=1e-5, atol=1e-5)


def test_embedding_of_an_image_does_not_depend_on_its_batch_companions() -> None:
    """With fixed-shape forward passes (the default) the last, partial chunk is zero-padded, so an
    image embedded alone, with a few or with a full batch of others gives the same bits."""
    model, _ = load_backbone(BackboneConfig(name="resnet18", weights="random", seed=0, pooling="max"))
    x = torch.randn(11, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        full = embed(model, x, batch_size=8)
        assert full.shape == (11, 512)
        for n in (1, 3, 8):
            torch.testing.assert_close(embed(model, x[:n], batch_size=8), full[:n], rtol=0, atol=0)
        torch.testing.assert_close(embed(model, x[8:], batch_size=8), full[8:], rtol=0, atol=0)
        unpadded = embed(model, x[:3], batch_size=8, fixed_shape=False)
        torch.testing.assert_close(unpadded, full[:3], rtol=1e-4, atol=1e-4)
    finally:
        torch.set_num_threads(threads)


def test_weights_from_local_file(tmp_path: Path) -> None:
    ref = _reference_resnet18(123)
    path = tmp_path / "my_resnet18.pth"
    torch.save(ref.state_dict(), path)
    ref.fc = nn.Identity()  # type: ignore[assignment]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = ref(x)
    model, src = load_backbone(BackboneConfig(name="resnet18", weights=str(path), seed=0, pooling="avg"))
    assert src == str(path)
    torch.testing.assert_close(embed(model, x, batch_size=len(x)), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="weights_sha256"):
        load_backbone(BackboneConfig(name="resnet18", weights=str(path), weights_sha256="00" * 32))
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError):
        load_backbone(BackboneConfig(name="resnet18", weights=str(tmp_path / "bad.pth")))


def test_missing_weights_error_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = tmp_path / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert hub_checkpoint_path("resnet50") == expected
    with pytest.raises(WeightsNotFoundError, match=re.escape(str(expected))):
        load_backbone(BackboneConfig(name="resnet50", weights="imagenet"))
    with pytest.raises(WeightsNotFoundError, match=r"nowhere\.pth"):
        load_backbone(BackboneConfig(name="resnet50", weights=str(tmp_path / "nowhere.pth")))
    # the hub-cache path is used when the file is there
    ref = _reference_resnet18(3)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(ref.state_dict(), hub_checkpoint_path("resnet18"))
    _, src = load_backbone(BackboneConfig(name="resnet18", weights="imagenet"))
    assert src == str(hub_checkpoint_path("resnet18"))


@pytest.mark.slow
def test_monai_seresnet50_equals_direct_forward() -> None:
    from monai.networks.nets import SEResNet50

    torch.manual_seed(5)
    ref = SEResNet50(spatial_dims=2, in_channels=3, num_classes=1000).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = ref.features(x).mean(dim=(2, 3))
    model, _ = load_backbone(BackboneConfig(name="seresnet50", weights="random", seed=5, pooling="avg"))
    torch.testing.assert_close(embed(model, x, batch_size=len(x)), expected, rtol=1e-4, atol=1e-5)


def test_monai_3d_resnet_equals_direct_forward() -> None:
    from monai.networks.nets import resnet18

    torch.manual_seed(2)
    ref3 = resnet18(spatial_dims=3, n_input_channels=1, num_classes=2).eval()
    ref3.fc = nn.Identity()  # type: ignore[assignment]
    v = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        expected3 = ref3(v)
    m3, _ = load_backbone(BackboneConfig(name="resnet18_3d", weights="random", seed=2, pooling="avg"))
    torch.testing.assert_close(embed(m3, v, batch_size=len(v)), expected3, rtol=1e-4, atol=1e-5)


def test_bf16_close_to_fp32() -> None:
    model, _ = load_backbone(BackboneConfig(name="resnet18", weights="random", pooling="avg"))
    x = torch.randn(2, 3, 64, 64)
    a, b = embed(model, x, "fp32"), embed(model, x, "bf16")
    assert b.dtype == torch.float32
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.99


def test_settings_dims_must_match() -> None:
    with pytest.raises(ValueError, match="slices: volume"):
        DeepSettings(backbone=BackboneConfig(name="resnet18_3d", weights="random"))
    assert BackboneConfig(name="resnet50", pooling="both").dim == 4096


def test_aggregation_mean_max_kmeans() -> None:
    x = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [10.0, 10.0]], np.float32)
    np.testing.assert_allclose(aggregate(x, "mean"), [2.525, 2.525])
    np.testing.assert_allclose(aggregate(x, "max"), [10.0, 10.0])
    # seed 001: k = 2, keep the largest cluster (the three near the origin), average it
    np.testing.assert_allclose(aggregate(x, "kmeans"), [0.1 / 3, 0.1 / 3], rtol=1e-5)
    np.testing.assert_allclose(aggregate(x[:1], "kmeans"), x[0])
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(x, "median")


def test_gradcam_localises_and_writes_png(tmp_path: Path) -> None:
    model, _ = load_backbone(BackboneConfig(name="resnet18", weights="random", pooling="avg"))
    x = torch.zeros(1, 3, 64, 64)
    x[:, :, 40:60, 40:60] = 3.0  # all signal in the lower right corner
    cam = gradcam(model, x)
    assert cam.shape == (1, 64, 64) and cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    assert cam[0, 32:, 32:].mean() > cam[0, :32, :32].mean()
    assert gradcam(model, x, target=3).shape == (1, 64, 64)
    p = save_overlay(x[0, 0].numpy(), cam[0], tmp_path / "cam.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
