"""Typed preprocessing config; stored with the features (its hash is part of the feature version)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from radstore.preprocess.transforms import window_bounds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowConfig(_Strict):
    """HU window: ``range_hu: [lo, hi]`` (e.g. [-115, 235]) or ``level``/``width`` (e.g. 130/310)."""

    range_hu: tuple[float, float] | None = None
    level: float | None = None
    width: Annotated[float | None, Field(gt=0)] = None

    @model_validator(mode="after")
    def _one_form(self) -> WindowConfig:
        if (self.range_hu is None) == (self.level is None or self.width is None):
            raise ValueError("window: give either range_hu, or level and width (not both, not neither)")
        window_bounds(self.range_hu, self.level, self.width)
        return self

    @property
    def bounds(self) -> tuple[float, float]:
        return window_bounds(self.range_hu, self.level, self.width)


class PreprocessConfig(_Strict):
    """From a HU ROI crop to network inputs (see :func:`radstore.preprocess.pipeline.prepare`).

    - ``spacing_mm``: target ``[z, y, x]`` spacing (B-spline image, nearest mask); null keeps native.
    - ``region``: ``lesion`` crops the lesion's box; ``organ`` crops the organ mask's box
      (``organ_segmentation_id``), slices still chosen on the lesion (seed 004 whole-liver input).
    - ``margin_mm``: box margin in millimetres on every cropped axis.
    - ``slices``: ``largest`` (largest-area axial slice), ``all`` (every lesion slice) or ``volume``
      (one 3-D input for 3-D backbones); ``neighbours`` = k adds slices ``z±1..k`` as extra
      ``channels`` (k = 1 → 3 channels, seed 003) or as separate ``images``.
    - ``input_mode``: ``plain`` crop, ``lesion_mask`` (outside the region zeroed), ``binary_mask``.
    - ``normalisation``: ``unit`` [0,1], ``symmetric`` [-1,1], ``imagenet`` mean/std.
    """

    spacing_mm: tuple[float, float, float] | None = (1.0, 1.0, 1.0)
    window: WindowConfig = WindowConfig(range_hu=(-115.0, 235.0))
    region: Literal["lesion", "organ"] = "lesion"
    organ_segmentation_id: str | None = None
    margin_mm: Annotated[float, Field(ge=0)] = 5.0
    size: Annotated[int, Field(ge=8, le=1024)] = 224
    slices: Literal["largest", "all", "volume"] = "largest"
    neighbours: Annotated[int, Field(ge=0, le=8)] = 0
    neighbours_as: Literal["channels", "images"] = "images"
    input_mode: Literal["plain", "lesion_mask", "binary_mask"] = "plain"
    normalisation: Literal["unit", "symmetric", "imagenet"] = "imagenet"

    @model_validator(mode="after")
    def _consistent(self) -> PreprocessConfig:
        if self.spacing_mm is not None and any(s <= 0 for s in self.spacing_mm):
            raise ValueError(f"spacing_mm must be positive, got {self.spacing_mm}")
        if self.region == "organ" and not self.organ_segmentation_id:
            raise ValueError("region 'organ' needs organ_segmentation_id (the organ mask's segmentation id)")
        if self.neighbours_as == "channels" and self.neighbours not in (0, 1):
            raise ValueError("neighbours_as 'channels' needs neighbours = 1 (3 channels for a 2-D backbone)")
        if self.slices == "volume" and self.normalisation == "imagenet":
            raise ValueError("slices 'volume' (1 channel) cannot use imagenet normalisation; "
                             "use unit or symmetric")
        return self

    @property
    def spatial_dims(self) -> int:
        return 3 if self.slices == "volume" else 2

    @property
    def channels(self) -> int:
        return 1 if self.slices == "volume" else 3
