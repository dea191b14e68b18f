"""Pluggable backbones with the classification head removed, and their weights.

A :class:`FeatureExtractor` is ``trunk`` (the network up to its last convolutional block) followed
by global pooling: ``max``: ``f_c = max_{ij} A_cij``; ``avg``: ``f_c = mean_{ij} A_cij``; ``both``:
``[max, avg]`` (2 × channels). Weights are never downloaded: ``imagenet`` reads the file torchvision
/ MONAI would cache (``torch.hub.get_dir()/checkpoints/<file>``), a path reads that file, ``random``
initialises with a fixed seed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from radstore.deep.config import BACKBONES, BackboneConfig

log = logging.getLogger(__name__)


class WeightsNotFoundError(FileNotFoundError):
    """The weights file is missing; the message names the exact path to put it in."""


def hub_checkpoint_path(name: str) -> Path:
    """Where the ImageNet weights of ``name`` must be: ``torch.hub.get_dir()/checkpoints/<file>``."""
    fname = BACKBONES[name]["hub_file"]
    if fname is None:
        raise ValueError(f"backbone {name!r} has no ImageNet weights; give a weights file path")
    return Path(torch.hub.get_dir()) / "checkpoints" / str(fname)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _build(name: str) -> nn.Module:
    """The full (headed) network, randomly initialised."""
    if name in ("resnet18", "resnet50"):
        import torchvision

        return getattr(torchvision.models, name)(weights=None)
    if name == "seresnet50":
        from monai.networks.nets import SEResNet50

        return SEResNet50(spatial_dims=2, in_channels=3, num_classes=1000, pretrained=False)
    if name in ("resnet18_3d", "resnet50_3d"):
        from monai.networks import nets

        return getattr(nets, name.removesuffix("_3d"))(spatial_dims=3, n_input_channels=1, num_classes=2)
    raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")


def _trunk(name: str, model: nn.Module) -> nn.Sequential:
    """The network up to (and including) its last conv block."""
    if name == "seresnet50":
        names = ["layer0", "layer1", "layer2", "layer3", "layer4"]
    else:
        act = "relu" if hasattr(model, "relu") else "act"
        names = ["conv1", "bn1", act, "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return nn.Sequential(*(model.get_submodule(n) for n in names))


def _load_state(name: str, model: nn.Module, cfg: BackboneConfig) -> str:
    """Load ``cfg.weights`` into ``model``; returns a description for logs and provenance."""
    if cfg.weights == "random":
        log.warning("RANDOM WEIGHTS: backbone %s initialised with seed %d (not pretrained; for tests "
                    "and demos only)", name, cfg.seed)
        return f"random(seed={cfg.seed})"
    if cfg.weights == "imagenet":
        path = hub_checkpoint_path(name)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"ImageNet weights for {name!r} not found: put the file at {path} (radstore never "
                f"downloads weights at run time), or set backbone.weights to a local file path")
    else:
        path = Path(cfg.weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"weights file for {name!r} not found: {path}")
    if cfg.weights_sha256 is not None and _sha256(path) != cfg.weights_sha256.lower():
        raise ValueError(f"weights file {path} does not match weights_sha256 {cfg.weights_sha256}")
    if name == "seresnet50" and cfg.weights == "imagenet":
        from monai.networks.nets.senet import _load_state_dict

        _load_state_dict(model, "se_resnet50", progress=False)  # reads the file from the hub cache
    else:
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        missing, unexpected = model.load_state_dict(state, strict=False)
        head = ("fc.", "last_linear.")
        bad = [k for k in [*missing, *unexpected] if not k.startswith(head)]
        if bad:
            raise ValueError(f"weights file {path} does not fit backbone {name!r}: keys {bad[:5]} ...")
    return str(path)


class FeatureExtractor(nn.Module):
    """``trunk`` + global pooling → ``(N, dim)`` embeddings (formula in the module docstring)."""

    def __init__(self, trunk: nn.Sequential, pooling: str, spatial_dims: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.pooling = pooling
        self.spatial_dims = spatial_dims

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        flat = fmap.flatten(start_dim=2)
        mx, av = flat.amax(dim=2), flat.mean(dim=2)
        if self.pooling == "max":
            return mx
        if self.pooling == "avg":
            return av
        return torch.cat([mx, av], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk(x))


def load_backbone(cfg: BackboneConfig, device: str = "cpu") -> tuple[FeatureExtractor, str]:
    """Build ``cfg.name``, load its weights, drop the head; eval mode on ``device``.

    Returns the extractor and a description of where the weights came from. Raises
    :class:`WeightsNotFoundError` naming the exact path when a weights file is missing.
    """
    torch.manual_seed(cfg.seed)
    model = _build(cfg.name)
    source = _load_state(cfg.name, model, cfg)
    fx = FeatureExtractor(_trunk(cfg.name, model), cfg.pooling, cfg.spatial_dims)
    return fx.eval().to(device), source


@torch.inference_mode()
def embed(model: FeatureExtractor, batch: torch.Tensor, precision: str = "fp32",
          batch_size: int = 32, fixed_shape: bool = True) -> torch.Tensor:
    """Embeddings of ``batch`` (float32, on CPU) in chunks of ``batch_size``; ``bf16`` runs under
    ``torch.autocast`` and returns float32.

    ``fixed_shape``: the last chunk is zero-padded to ``batch_size`` rows, so every forward pass
    has the same shape. oneDNN and cuDNN pick their convolution algorithm by batch size, and the
    float32 result of an image changes (~1e-6 relative) with it; with fixed shapes an image's
    embedding depends only on the image, not on how many others came with it."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, batch.shape[0], batch_size):
        x = batch[i:i + batch_size]
        n = x.shape[0]
        if fixed_shape and n < batch_size:
            x = torch.cat([x, x.new_zeros((batch_size - n, *x.shape[1:]))])
        x = x.to(device, non_blocking=True)
        if precision == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                y = model(x)
        else:
            y = model(x)
        out.append(y[:n].float().cpu())
    if not out:
        return torch.empty((0, 0))
    return torch.cat(out)
