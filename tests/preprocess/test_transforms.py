"""Preprocessing transforms against hand-computed small arrays."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from radstore.preprocess import PreprocessConfig, WindowConfig, prepare, slice_groups
from radstore.preprocess import transforms as T


def test_window_range_and_level_width() -> None:
    assert T.window_bounds(range_hu=(-115, 235)) == (-115.0, 235.0)
    assert T.window_bounds(level=130, width=310) == (-25.0, 285.0)
    assert T.window_bounds(level=120, width=320) == (-40.0, 280.0)
    x = np.array([[-1000, -115, 60, 235, 3000]], np.int16)
    np.testing.assert_allclose(T.window(x, -115, 235), [[0.0, 0.0, 175 / 350, 1.0, 1.0]], atol=1e-7)
    with pytest.raises(ValueError, match="exceed"):
        T.window_bounds(range_hu=(10, 10))
    with pytest.raises(ValidationError, match="either range_hu"):
        WindowConfig(range_hu=(-115, 235), level=40, width=400)
    assert WindowConfig(level=130, width=310).bounds == (-25.0, 285.0)


def test_crop_margin_in_mm_on_anisotropic_spacing() -> None:
    mask = np.zeros((20, 40, 40), np.uint8)
    mask[8:10, 15:20, 12:18] = 1
    spacing = (2.5, 0.7, 0.7)  # z, y, x in mm
    # 5 mm: ceil(5 / 2.5) = 2 slices in z, ceil(5 / 0.7) = ceil(7.14) = 8 voxels in-plane
    assert T.margin_voxels(5.0, spacing) == (2, 8, 8)
    assert T.crop_box(mask, spacing, 5.0) == (slice(6, 12), slice(7, 28), slice(4, 26))
    # in-plane only (2-D inputs), and clipping at the array border
    assert T.crop_box(mask, spacing, 5.0, axes=(1, 2)) == (slice(8, 10), slice(7, 28), slice(4, 26))
    assert T.crop_box(mask, spacing, 10.0)[2] == slice(0, 33)
    assert T.margin_voxels(2.0, (1.0, 1.0, 1.0)) == (2, 2, 2)  # exact multiples are not rounded up


def test_largest_slice_neighbours_and_all_slices() -> None:
    mask = np.zeros((6, 5, 5), np.uint8)
    mask[1, 1:3, 1:3] = 1  # area 4
    mask[2, 0:3, 0:3] = 1  # area 9  <- largest
    mask[3, 0:3, 0:3] = 1  # area 9 (tie: the first wins)
    mask[4, 2, 2] = 1      # area 1
    assert T.largest_slice(mask) == 2
    assert T.neighbour_indices(2, 1, 6) == [1, 2, 3]
    assert T.neighbour_indices(0, 2, 6) == [0, 0, 0, 1, 2]  # clamped at the border
    assert T.roi_slices(mask) == [1, 2, 3, 4]
    cfg = PreprocessConfig(slices="largest", neighbours=1, neighbours_as="channels")
    assert slice_groups(mask, cfg) == [[1, 2, 3]]
    cfg = PreprocessConfig(slices="largest", neighbours=1, neighbours_as="images")
    assert slice_groups(mask, cfg) == [[1], [2], [3]]
    assert slice_groups(mask, PreprocessConfig(slices="all")) == [[1], [2], [3], [4]]
    with pytest.raises(ValueError, match="empty mask"):
        T.largest_slice(np.zeros((2, 2, 2)))


def test_normalisation() -> None:
    x = np.array([0.0, 0.25, 1.0], np.float32).reshape(1, 1, 3).repeat(3, axis=0)
    np.testing.assert_allclose(T.normalise(x, "unit"), x)
    np.testing.assert_allclose(T.normalise(x, "symmetric")[0, 0], [-1.0, -0.5, 1.0])
    out = T.normalise(x, "imagenet")
    np.testing.assert_allclose(out[0, 0], (np.array([0.0, 0.25, 1.0]) - 0.485) / 0.229, rtol=1e-6)
    np.testing.assert_allclose(out[2, 0], (np.array([0.0, 0.25, 1.0]) - 0.406) / 0.225, rtol=1e-6)


def test_input_modes_pad_and_resize() -> None:
    img = np.array([[0.2, 0.4], [0.6, 0.8]], np.float32)
    m = np.array([[1, 0], [0, 1]], np.uint8)
    np.testing.assert_allclose(T.apply_input_mode(img, m, "lesion_mask"), [[0.2, 0], [0, 0.8]])
    np.testing.assert_allclose(T.apply_input_mode(img, m, "binary_mask"), [[1, 0], [0, 1]])
    np.testing.assert_allclose(T.apply_input_mode(img, m, "plain"), img)
    p = T.pad_square(np.ones((2, 5), np.float32))
    assert p.shape == (5, 5) and p[:1].sum() == 0 and p[1:3].sum() == 10 and p[3:].sum() == 0
    r = T.resize(np.arange(4, dtype=np.float32).reshape(2, 2), 4)
    # half-pixel bilinear: output row 0 = [0, 0.25, 0.75, 1]
    np.testing.assert_allclose(r[0], [0.0, 0.25, 0.75, 1.0])
    assert T.resize(np.ones((2, 3, 3, 3), np.float32), 5, spatial_dims=3).shape == (2, 5, 5, 5)


def test_resample_to_1mm_keeps_extent_and_labels() -> None:
    img = np.zeros((4, 10, 10), np.float32)
    img[:, 4:6, 4:6] = 100
    mask = (img > 0).astype(np.uint8)
    ri, rm = T.resample(img, mask, (2.0, 0.5, 0.5), (1.0, 1.0, 1.0))
    assert ri.shape == (8, 5, 5) and rm.shape == (8, 5, 5) and rm.dtype == np.uint8
    assert set(np.unique(rm)) <= {0, 1} and rm.sum() > 0


def test_prepare_shapes_and_input_modes() -> None:
    rng = np.random.default_rng(0)
    img = rng.normal(40, 10, (10, 30, 30)).astype(np.int16)
    mask = np.zeros(img.shape, np.uint8)
    mask[3:7, 10:20, 12:18] = 1
    img[mask == 1] = 200
    cfg = PreprocessConfig(spacing_mm=None, size=32, normalisation="unit", input_mode="lesion_mask",
                           margin_mm=2.0)
    x = prepare(img, mask, (1.0, 1.0, 1.0), cfg)
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, 0], x[0, 1])  # one slice replicated to 3 channels
    # lesion-mask input: inside (200 HU → (200+115)/350 = 0.9), outside 0
    assert x.max() == pytest.approx(0.9, abs=1e-5) and (x == 0).mean() > 0.3
    xb = prepare(img, mask, (1.0, 1.0, 1.0), cfg.model_copy(update={"input_mode": "binary_mask"}))
    assert set(np.unique(np.round(xb, 4))) >= {0.0, 1.0}
    xa = prepare(img, mask, (1.0, 1.0, 1.0), cfg.model_copy(update={"slices": "all"}))
    assert xa.shape == (4, 3, 32, 32)
    xv = prepare(img, mask, (1.0, 1.0, 1.0), cfg.model_copy(update={"slices": "volume"}))
    assert xv.shape == (1, 1, 32, 32, 32)
    organ = np.zeros(img.shape, np.uint8)
    organ[1:9, 2:28, 2:28] = 1
    xo = prepare(img, mask, (1.0, 1.0, 1.0),
                 cfg.model_copy(update={"region": "organ", "organ_segmentation_id": "liver"}), organ)
    assert xo.shape == (1, 3, 32, 32)
    assert (xo > 0).sum() > (x > 0).sum()  # whole-organ input shows more than the lesion


def test_config_rules_name_the_field() -> None:
    with pytest.raises(ValidationError, match="organ_segmentation_id"):
        PreprocessConfig(region="organ")
    with pytest.raises(ValidationError, match="neighbours = 1"):
        PreprocessConfig(neighbours=2, neighbours_as="channels")
    with pytest.raises(ValidationError, match="imagenet"):
        PreprocessConfig(slices="volume", normalisation="imagenet")


def test_resize_matches_torch_interpolate() -> None:
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(3)
    for shape, size, dims, mode in (((3, 17, 29), 32, 2, "bilinear"), ((2, 40, 40), 16, 2, "bilinear"),
                                    ((1, 5, 9, 7), 8, 3, "trilinear")):
        x = rng.random(shape).astype(np.float32)
        ref = F.interpolate(torch.from_numpy(x)[None], size=(size,) * dims, mode=mode,
                            align_corners=False)[0].numpy()
        np.testing.assert_allclose(T.resize(x, size, dims), ref, rtol=1e-5, atol=1e-6)


def test_resample_sub_box_equals_crop_of_full_resample() -> None:
    rng = np.random.default_rng(1)
    img = rng.normal(0, 100, (6, 20, 18)).astype(np.float32)
    full = T.resample_image(img, (2.5, 0.7, 0.7), (1.0, 1.0, 1.0))
    assert full.shape == T.resampled_shape(img.shape, (2.5, 0.7, 0.7), (1.0, 1.0, 1.0)) == (15, 14, 13)
    box = (slice(4, 9), slice(2, 11), slice(3, 13))
    np.testing.assert_allclose(T.resample_image(img, (2.5, 0.7, 0.7), (1.0, 1.0, 1.0), box), full[box],
                               rtol=1e-5, atol=1e-3)
