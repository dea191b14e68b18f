"""Typed settings of a deep feature set (the YAML ``settings:`` block of ``kind: deep``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from radstore.preprocess.config import PreprocessConfig

BACKBONES: dict[str, dict[str, object]] = {
    # name: source, spatial dims, feature channels of the last conv block, torch hub file for imagenet
    "resnet18": {"source": "torchvision", "dims": 2, "channels": 512, "hub_file": "resnet18-f37072fd.pth"},
    "resnet50": {"source": "torchvision", "dims": 2, "channels": 2048, "hub_file": "resnet50-11ad3fa6.pth"},
    "seresnet50": {"source": "monai", "dims": 2, "channels": 2048, "hub_file": "se_resnet50-ce0d4300.pth"},
    "resnet18_3d": {"source": "monai", "dims": 3, "channels": 512, "hub_file": None},
    "resnet50_3d": {"source": "monai", "dims": 3, "channels": 2048, "hub_file": None},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackboneConfig(_Strict):
    """``weights``: ``random`` (seeded with ``seed``; tests and demo), ``imagenet`` (from the torch hub
    cache, never downloaded) or a path to a ``state_dict`` file; ``weights_sha256`` pins the file's
    content (checked at load). ``pooling``: global ``max``, ``avg`` or ``both`` (concatenated)."""

    name: Literal["resnet18", "resnet50", "seresnet50", "resnet18_3d", "resnet50_3d"] = "resnet50"
    weights: str = "imagenet"
    weights_sha256: str | None = None
    pooling: Literal["max", "avg", "both"] = "max"
    precision: Literal["fp32", "bf16"] = "fp32"
    seed: int = 0

    @property
    def spatial_dims(self) -> int:
        return int(BACKBONES[self.name]["dims"])  # type: ignore[call-overload]

    @property
    def dim(self) -> int:
        """Embedding length: feature channels, doubled for ``both`` pooling."""
        c = int(BACKBONES[self.name]["channels"])  # type: ignore[call-overload]
        return 2 * c if self.pooling == "both" else c


class DeepSettings(_Strict):
    """Preprocessing + backbone + aggregation. ``slice_aggregation``: per lesion over its images
    (``mean``, ``max`` or ``kmeans``: seed 001, k-means with ``kmeans_clusters`` clusters, mean of
    the largest cluster); ``lesion_aggregation``: the ``lesion = 0`` row over lesions."""

    preprocess: PreprocessConfig = PreprocessConfig()
    backbone: BackboneConfig = BackboneConfig()
    slice_aggregation: Literal["mean", "max", "kmeans"] = "mean"
    lesion_aggregation: Literal["mean", "max"] = "mean"
    kmeans_clusters: Annotated[int, Field(ge=2, le=16)] = 2

    @model_validator(mode="after")
    def _dims_match(self) -> DeepSettings:
        if self.preprocess.spatial_dims != self.backbone.spatial_dims:
            raise ValueError(
                f"backbone {self.backbone.name!r} is {self.backbone.spatial_dims}-D but preprocess."
                f"slices={self.preprocess.slices!r} gives {self.preprocess.spatial_dims}-D inputs "
                "(use slices: volume for 3-D backbones)")
        return self
