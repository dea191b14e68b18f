"""Grad-CAM heat maps (Selvaraju et al., ICCV 2017) on the last conv block of a backbone.

For a scalar score ``S`` and the last block's activations ``A`` (``C × h × w``):
``alpha_c = mean_{ij} dS/dA_cij``, ``cam = ReLU(sum_c alpha_c A_c)``, upsampled (bilinear) to the
input size and scaled to ``[0, 1]``. Without a classifier head the score is ``w · f`` for a weight
vector ``w`` over the pooled embedding ``f`` (e.g. a model's coefficients), one feature ``f_i``,
or by default ``sum_i f_i``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from radstore.deep.backbones import FeatureExtractor


def gradcam(model: FeatureExtractor, x: torch.Tensor, target: int | np.ndarray | None = None
            ) -> np.ndarray:
    """Heat maps ``(N, H, W)`` in ``[0, 1]`` for 2-D inputs ``x`` ``(N, C, H, W)`` (formula above)."""
    if x.ndim != 4:
        raise ValueError(f"Grad-CAM needs 2-D inputs (N, C, H, W), got shape {tuple(x.shape)}")
    layer = model.trunk[-1]
    store: dict[str, torch.Tensor] = {}

    def fwd_hook(_m: torch.nn.Module, _i: tuple, out: torch.Tensor) -> None:
        out.retain_grad()
        store["act"] = out

    handle = layer.register_forward_hook(fwd_hook)
    try:
        device = next(model.parameters()).device
        xin = x.detach().to(device).float().requires_grad_(True)
        with torch.enable_grad():
            f = model(xin)
            if target is None:
                score = f.sum(dim=1)
            elif isinstance(target, int):
                score = f[:, target]
            else:
                w = torch.as_tensor(np.asarray(target), dtype=f.dtype, device=f.device)
                score = f @ w
            score.sum().backward()
    finally:
        handle.remove()
    act, grad = store["act"], store["act"].grad
    assert grad is not None
    alpha = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lo = cam.flatten(1).amin(1)[:, None, None]
    hi = cam.flatten(1).amax(1)[:, None, None]
    return ((cam - lo) / (hi - lo).clamp_min(1e-12)).detach().cpu().numpy()


def save_overlay(image: np.ndarray, cam: np.ndarray, path: Path | str, alpha: float = 0.4,
                 title: str | None = None) -> Path:
    """Write a PNG: the grey image (``H × W``, any range) with the ``jet`` heat map blended on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.imshow(image, cmap="gray")
    ax.imshow(cam, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
