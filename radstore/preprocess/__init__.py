"""Pure preprocessing: resample, HU window, crop + margin (mm), slice selection, input mode, resize,
normalise. Arrays in, arrays out; composed by :func:`radstore.preprocess.pipeline.prepare`."""

from radstore.preprocess.config import PreprocessConfig, WindowConfig
from radstore.preprocess.pipeline import prepare, read_margin_mm, slice_groups

__all__ = ["PreprocessConfig", "WindowConfig", "prepare", "read_margin_mm", "slice_groups"]
