"""The shortcuts of the fast CPU paths equal the brute-force definitions they replace."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from radstore.radiomics import shape


def _blob(seed: int, shape_: tuple[int, int, int] = (9, 14, 12)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.random(shape_) < 0.45
    m[shape_[0] // 2, shape_[1] // 2, :] = True  # never empty, spans x
    return m


def _brute_grouped(points: np.ndarray, verts2: np.ndarray, axis: int) -> float:
    """Largest distance within each plane, all pairs (``points`` [3, N])."""
    best = 0.0
    for k in np.unique(verts2[axis]):
        g = points[:, verts2[axis] == k].T
        d = np.sqrt(((g[:, None, :] - g[None, :, :]) ** 2).sum(-1)).max()
        best = max(best, float(d))
    return best


def _brute_max(points: np.ndarray) -> float:
    """Largest pairwise distance, all pairs (``points`` [D, N])."""
    g = points.T
    return float(np.sqrt(((g[:, None, :] - g[None, :, :]) ** 2).sum(-1)).max())


def _mesh_points(mask: np.ndarray, sp: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(vertices in mm [3, V], doubled index coordinates [3, V]) of the mask's mesh."""
    _, _, verts2 = shape.mesh_3d(mask, sp)
    return verts2 / 2 * np.asarray(sp)[:, None], verts2


@pytest.mark.parametrize("seed", range(9))
def test_diameters_equal_brute_force(seed: int) -> None:
    zz, yy, xx = np.indices((14, 26, 24))
    if seed < 6:
        mask = _blob(seed)
    elif seed == 6:  # a solid ellipsoid
        mask = ((zz - 6.5) / 6) ** 2 + ((yy - 12.5) / 11.3) ** 2 + ((xx - 11.5) / 10.1) ** 2 < 1
    elif seed == 7:  # a ball in mm
        mask = ((zz - 6.5) * 1.7) ** 2 + ((yy - 12.5) * 0.6) ** 2 + ((xx - 11.5) * 0.9) ** 2 < 10.2**2
    else:  # a thin oblique rod
        mask = (np.abs(yy - xx) <= 1) & (np.abs(zz - yy // 2) <= 1)
    sp = (1.7, 0.6, 0.9)
    phys, verts2 = _mesh_points(mask, sp)
    ext = shape._line_extremes(verts2)
    brute3 = _brute_max(phys)
    assert shape._max_distance(phys, ext[0] & ext[1] & ext[2]) == pytest.approx(brute3, rel=1e-14)
    assert shape._max_diameter_3d(phys, verts2, ext) == pytest.approx(brute3, rel=1e-14)
    for axis in range(3):
        got = shape._grouped_max_distance(phys, verts2, axis, ext)
        assert got == pytest.approx(_brute_grouped(phys, verts2, axis), rel=1e-14)


@pytest.mark.parametrize("wobble", [False, True])
def test_planes_of_equal_sections_are_searched_once(wobble: bool, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    """A cylinder along z: every slice holds the same disc, so one exact search serves them all;
    with ``wobble`` one slice's disc grows a voxel: that slice holds the diameter, found first, and
    bounds the others out."""
    _, yy, xx = np.indices((9, 21, 19))
    mask = ((yy - 10.2) / 8.3) ** 2 + ((xx - 9.1) / 7.4) ** 2 < 1
    if wobble:
        mask[5, 10, 0] = True
    sp = (2.0, 0.7, 0.9)
    phys, verts2 = _mesh_points(mask, sp)
    ext = shape._line_extremes(verts2)
    searched: list[int] = []
    real = shape._max_distance

    def spy(points: np.ndarray, candidates: np.ndarray | None = None) -> float:
        searched.append(points.shape[1])
        return real(points, candidates)

    monkeypatch.setattr(shape, "_max_distance", spy)
    got = shape._grouped_max_distance(phys, verts2, 0, ext)
    assert got == pytest.approx(_brute_grouped(phys, verts2, 0), rel=1e-14)
    assert len(searched) == 1


def test_face_diagonal_filter_keeps_the_diameter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The path for > 200 diameter candidates (a near-perfect sphere), forced on an ellipsoid."""
    monkeypatch.setattr(shape, "_diameter_candidates", lambda p: np.arange(p.shape[1]))
    zz, yy, xx = np.indices((14, 26, 24))
    mask = ((zz - 6.5) / 6) ** 2 + ((yy - 12.5) / 11.3) ** 2 + ((xx - 11.5) / 10.1) ** 2 < 1
    sp = (1.7, 0.6, 0.9)
    phys, verts2 = _mesh_points(mask, sp)
    ext = shape._line_extremes(verts2)
    assert (ext[0] & ext[1] & ext[2]).sum() > 200
    assert shape._max_diameter_3d(phys, verts2, ext) == pytest.approx(_brute_max(phys), rel=1e-14)


@pytest.mark.parametrize("dim", [2, 3])
def test_diameter_candidates_keep_every_diametral_pair(dim: int) -> None:
    rng = np.random.default_rng(dim)
    for trial in range(20):
        p = rng.normal(0, 1, (300, dim)) * rng.uniform(0.2, 5.0, dim)
        if trial % 2:  # ties: points on a grid, several pairs at the maximum
            p = np.rint(p * 2) / 2
        d = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
        keep = np.zeros(len(p), dtype=bool)
        keep[shape._diameter_candidates(np.ascontiguousarray(p.T))] = True
        ia, ib = np.nonzero(d == d.max())
        assert keep[ia].all() and keep[ib].all()
        assert keep.sum() < len(p)


def test_pairwise_max_exact_blocks() -> None:
    rng = np.random.default_rng(3)
    p = rng.normal(0, 50, (700, 3)) + 1000.0
    brute = float(np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)).max())
    assert shape._pairwise_max_exact(np.ascontiguousarray(p.T), block=64) == brute


@pytest.mark.parametrize("seed", range(3))
def test_mesh_numpy_equals_torch(seed: int) -> None:
    mask = _blob(seed + 10)
    sp = np.array([2.0, 0.7, 0.8])
    mp = np.pad(mask, 1)
    a_np, v_np = shape._mesh_area_volume_numpy(mp, sp)
    a_t, v_t = shape._mesh_area_volume_torch(mp, sp, "cpu")
    assert a_np == pytest.approx(a_t, rel=1e-12)
    assert v_np == pytest.approx(v_t, rel=1e-12)


@pytest.mark.parametrize("excess", [False, True])
def test_firstorder_numpy_equals_torch(excess: bool) -> None:
    import torch

    from radstore.radiomics import firstorder
    from radstore.radiomics.imageops import discretise
    from radstore.radiomics.settings import Setting

    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.normal(30, 40, (3, 6, 9, 8)).round())
    m = torch.from_numpy(rng.random((3, 6, 9, 8)) < 0.6)
    m[2] = False
    m[2, 1, 2, 3] = m[2, 1, 2, 4] = True  # two voxels: percentile ranks at the ends
    x[1] = 7.0  # flat ROI: zero variance branch
    q, nl = discretise(x, m, Setting())
    vv = torch.tensor([1.0, 2.5, 0.5], dtype=torch.float64)
    a = firstorder.compute(x, m, q, nl, vv, 3.0, excess, method="numpy")
    b = firstorder.compute(x, m, q, nl, vv, 3.0, excess, method="torch")
    for k in firstorder.FEATURES:
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), rtol=1e-12, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("excess", [False, True])
def test_firstorder_moments_of_one_value_rois_equal_on_both_paths(excess: bool) -> None:
    """ROIs whose voxels all hold one value (a filtered constant image: all ~1e-14): skewness and
    kurtosis are 0 in exact arithmetic, but the mean, a sum / n, may miss the value by rounding and
    then every deviation equals that miss (skewness +-1, kurtosis 1). The torch path gives the NumPy
    path's (PyRadiomics') values, whatever its own reduction order."""
    import torch

    from radstore.radiomics import firstorder
    from radstore.radiomics.imageops import discretise
    from radstore.radiomics.settings import Setting

    values = [0.1, 1.758503553725828e-14, -3.3, 7.0, 1e-300, 0.7]
    x = torch.zeros((len(values), 3, 5, 7), dtype=torch.float64)
    m = torch.zeros(x.shape, dtype=torch.bool)
    for b, v in enumerate(values):
        x[b] = v
        m[b].view(-1)[: 7 + 13 * b] = True
    q, nl = discretise(x, m, Setting(binCount=4))
    a = firstorder.compute(x, m, q, nl, 1.0, 0.0, excess, method="numpy")
    b = firstorder.compute(x, m, q, nl, 1.0, 0.0, excess, method="torch")
    for k in ("Mean", "Variance", "Skewness", "Kurtosis"):
        assert a[k].tolist() == b[k].tolist(), k
    base = -3.0 if excess else 0.0
    kurt = [k - base for k in a["Kurtosis"].tolist()]
    assert any(k == 0 for k in kurt) and any(k == pytest.approx(1.0) for k in kurt)


def test_thread_pool_batch_equals_sequential_and_restores_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from radstore.radiomics import RadiomicsSettings, engine, extract, extract_batch

    # these small ROIs and batches would run without the pool: force it, on the same batches
    monkeypatch.setattr(engine, "POOL_IMAGE_VOXELS", 0)
    monkeypatch.setattr(engine, "_chunk_workers", lambda chunks, workers: workers)
    pooled: list[int] = []
    run_map = engine._map

    def recording_map(fn, items, workers):  # type: ignore[no-untyped-def]
        pooled.append(workers)
        return run_map(fn, items, workers)

    monkeypatch.setattr(engine, "_map", recording_map)

    settings = RadiomicsSettings.from_params({"imageType": {"Original": {}, "LoG": {"sigma": [1.0]}}})
    rng = np.random.default_rng(11)
    rois = []
    for k in range(3):
        img = rng.normal(40, 30, (10, 16, 15)).round()
        m = np.zeros(img.shape, dtype=np.uint8)
        m[2:8, 3:12 - k, 4:11] = 1
        rois.append((img, m, (2.0, 0.8, 0.8 + 0.1 * (k == 2))))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        seq = extract_batch(rois, settings)
        assert pooled == [1, 1]
        one = [extract(*r, settings) for r in rois]
        pooled.clear()
        torch.set_num_threads(2)
        par = extract_batch(rois, settings)
        assert torch.get_num_threads() == 2
        assert pooled == [2, 2]  # ROIs and kernel batches on the pool
    finally:
        torch.set_num_threads(before)
    assert par == seq
    for a, b in zip(par, one, strict=True):
        assert a.keys() == b.keys()
        np.testing.assert_allclose(list(a.values()), list(b.values()), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n_rois", [1, 2])
def test_lbp3d_of_one_roi_on_the_callers_threads_equals_one_thread(n_rois: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With the ROI pool idle (one ROI, or small images run one by one) the caller's threads go to
    LBP3D's voxel blocks; the features are those of one thread, bit for bit."""
    import torch

    from radstore.radiomics import RadiomicsSettings, extract_batch, filters

    given: list[int] = []
    lbp3d = filters.lbp3d_crops

    def recording(*a: Any, **k: Any) -> Any:
        given.append(a[6] if len(a) > 6 else k.get("threads", 1))
        return lbp3d(*a, **k)

    monkeypatch.setattr(filters, "lbp3d_crops", recording)
    settings = RadiomicsSettings.from_params({"imageType": {"LBP3D": {"lbp3DLevels": 2}},
                                              "setting": {"binCount": 16}})
    rng = np.random.default_rng(4)
    rois = []
    for k in range(n_rois):
        img = rng.normal(40, 30, (14, 22, 20)).round().astype(np.int16)
        m = np.zeros(img.shape, dtype=np.uint8)
        m[3:11, 4:18 - k, 5:16] = 1
        rois.append((img, m, (2.0, 0.8, 0.8)))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = extract_batch(rois, settings)
        torch.set_num_threads(2)
        two = extract_batch(rois, settings)
    finally:
        torch.set_num_threads(before)
    assert given == [1] * n_rois + [2] * n_rois
    assert two == one


@pytest.mark.parametrize("reseg", [False, True])
def test_prepare_without_simpleitk_equals_round_trip(reseg: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without normalisation/resampling/pre-crop the image skips SimpleITK; with the fast path
    switched off it takes the round trip: same arrays (the derived images are computed from them)."""
    from radstore.radiomics import imageops
    from radstore.radiomics.imageops import prepare
    from radstore.radiomics.settings import RadiomicsSettings

    rng = np.random.default_rng(3)
    image = rng.normal(40, 30, (10, 16, 14)).round().astype(np.int16)
    mask = _blob(4, image.shape).astype(np.uint8) * 2
    params = {"imageType": {"Original": {}, "LoG": {"sigma": [1.0]}, "Wavelet": {}},
              "setting": {"label": 2, **({"resegmentRange": [0, 80]} if reseg else {})}}
    settings = RadiomicsSettings.from_params(params)
    s = settings.setting
    fast = prepare(image, mask, (2.0, 0.7, 0.8), s, 2)
    monkeypatch.setattr(imageops, "_SITK_NATIVE", frozenset())
    slow = prepare(image, mask, (2.0, 0.7, 0.8), s, 2)
    assert fast.itk is None and slow.itk is not None
    for a, b in ((fast.array, slow.array), (fast.mask, slow.mask), (fast.shape_mask, slow.shape_mask)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert fast.bbox == slow.bbox and fast.spacing_zyx == slow.spacing_zyx


@pytest.mark.parametrize("n_rois", [1, 3])
@pytest.mark.parametrize("budget", [0, 1 << 20])
def test_glrlm_grouped_directions_equal_torch(
    n_rois: int, budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run-length counts with all directions encoded in one pass, or one direction per pass
    (``budget`` 0), equal the torch kernel's, for one ROI and for a batch."""
    import torch

    from radstore.radiomics import glrlm
    from radstore.radiomics.texture_params import TextureParams

    groups = glrlm._direction_groups
    monkeypatch.setattr(glrlm, "_direction_groups", lambda lengths: groups(lengths, budget))
    rng = np.random.default_rng(8)
    q = rng.integers(1, 5, size=(n_rois, 7, 9, 8))
    q = np.where(rng.random(q.shape) < 0.6, np.roll(q, 1, axis=2), q)
    m = np.stack([_blob(20 + r, (7, 9, 8)) for r in range(n_rois)])
    qt, mt = torch.from_numpy(q), torch.from_numpy(m)
    a, va = glrlm.matrices(qt, mt, 4, TextureParams(), method="numpy")
    b, vb = glrlm.matrices(qt, mt, 4, TextureParams(), method="torch")
    assert torch.equal(va, vb)
    assert a.shape == b.shape and torch.equal(a, b)


def test_glrlm_direction_validity_in_a_batch_equals_torch() -> None:
    """Per ROI of a batch, a direction is valid by a long run, by two touching runs of different
    levels (ROI 1: two neighbours along x) or by two voxels on one line with a gap (ROI 2: along y);
    a one-voxel ROI (3) has none. The NumPy kernel finds the ROI of each run from its value."""
    import warnings

    import torch

    from radstore.radiomics import glrlm
    from radstore.radiomics.texture_params import TextureParams

    rng = np.random.default_rng(12)
    q = rng.integers(1, 4, size=(4, 3, 4, 5))
    m = np.zeros(q.shape, dtype=bool)
    m[0] = True
    q[1, 1, 1, 1], q[1, 1, 1, 2] = 1, 2
    m[1, 1, 1, 1:3] = True
    m[2, 1, 0, 2] = m[2, 1, 2, 2] = True
    m[3, 2, 3, 4] = True
    qt, mt = torch.from_numpy(q), torch.from_numpy(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a, va = glrlm.matrices(qt, mt, 3, TextureParams(), method="numpy")
        b, vb = glrlm.matrices(qt, mt, 3, TextureParams(), method="torch")
    assert torch.equal(va, vb)
    assert va.sum(1).tolist() == [13, 1, 1, 0]
    assert torch.equal(a, b)


def test_diagonal_extremes_keep_hull_vertices() -> None:
    """Points strictly inside a diagonal segment are dropped, every convex-hull vertex is kept."""
    from scipy.spatial import ConvexHull

    rng = np.random.default_rng(4)
    verts2 = np.unique(rng.integers(0, 24, (400, 3)), axis=0)  # doubled coordinates [N, 3]
    idx = shape._diagonal_extremes(verts2.T, np.arange(len(verts2)), shape._FACE_DIAGONALS)
    assert len(idx) < len(verts2)
    assert set(ConvexHull(verts2).vertices.tolist()) <= set(idx.tolist())
    line = np.array([[0, 0, 0], [0, 1, 1], [0, 2, 2], [6, 0, 0]]).T
    assert shape._diagonal_extremes(line, np.arange(4), shape._FACE_DIAGONALS).tolist() == [0, 2, 3]


def test_image_types_batched_together_equal_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The crops of all image types (and ROIs) share kernel calls when spacing, setting and bin count
    allow; the features equal those of one crop per call, and of one ROI per call."""
    from radstore.radiomics import RadiomicsSettings, engine, extract, extract_batch

    settings = RadiomicsSettings.from_params({"imageType": {
        "Original": {}, "LoG": {"sigma": [1.0, 2.0]}, "Wavelet": {"binWidth": 5}}})
    rng = np.random.default_rng(12)
    rois = []
    for k in range(2):
        img = rng.normal(40, 30, (14, 24, 22)).round()
        m = np.zeros(img.shape, dtype=np.uint8)
        m[3:10, 5:18 - k, 6:16] = 1
        rois.append((img, m, (2.0, 0.8, 0.8)))
    calls: list[int] = []
    features = engine._intensity_features

    def counted(chunk, *args):  # type: ignore[no-untyped-def]
        calls.append(len(chunk))
        return features(chunk, *args)

    monkeypatch.setattr(engine, "_intensity_features", counted)
    batched = extract_batch(rois, settings)
    assert len(calls) < 2 * 11 and max(calls) > 2  # image types shared calls
    calls.clear()
    monkeypatch.setattr(engine, "CPU_BATCH_VOXELS", 0)
    alone = extract_batch(rois, settings)
    assert calls == [1] * (2 * 11)
    for a, b, c in zip(batched, alone, [extract(*r, settings) for r in rois], strict=True):
        assert a.keys() == b.keys() == c.keys()
        np.testing.assert_allclose(list(a.values()), list(b.values()), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(list(a.values()), list(c.values()), rtol=1e-9, atol=1e-9)


def test_chunks_group_by_setting_and_bin_count() -> None:
    from radstore.radiomics.engine import _chunks, _Crop
    from radstore.radiomics.settings import Setting

    def crop(roi: int, levels: int, setting: Setting, size: int = 50) -> _Crop:
        m = np.ones((size, size, size), dtype=bool)
        return _Crop(roi, f"t{levels}", setting, m.astype(float), m, (1.0, 1.0, 1.0), None,
                     np.dtype(np.float64), levels)

    s25, s5 = Setting(binWidth=25), Setting(binWidth=5)
    crops = [crop(0, 12, s25), crop(0, 14, s25), crop(0, 170, s25), crop(0, 13, s5), crop(1, 12, s25)]
    groups = [sorted((c.roi, c.levels) for c in g) for g in _chunks(crops)]
    assert sorted(groups) == [[(0, 12), (0, 14), (1, 12)], [(0, 13)], [(0, 170)]]
    assert len(_chunks(crops, workers=2)) == 4  # the group of three: batches of ceil(3 / 2)
    assert len(_chunks(crops, workers=5)) == 5
    assert all(len(g) == 1 for g in _chunks(crops, max_voxels=200_000))  # two 125k-voxel crops exceed it
    small = [crop(r, 12, s25, size=10) for r in range(6)]  # 1000 voxels each: a split would be GIL-bound
    assert len(_chunks(small, workers=2)) == 1
    # small crops of several bin-count classes share one batch (a kernel call costs more than the
    # larger matrices) until a batch holds MIN_SPLIT_VOXELS; then the next class starts a new one
    mixed = [crop(0, 3, s25, size=16), crop(0, 12, s25, size=16), crop(0, 40, s25, size=16)]
    assert [len(g) for g in _chunks(mixed)] == [3]
    big = [crop(0, 3, s25, size=41), crop(0, 12, s25, size=16), crop(0, 40, s25, size=16)]
    assert sorted(sorted(c.levels for c in g) for g in _chunks(big)) == [[3], [12, 40]]


def test_small_batches_run_without_a_thread_pool() -> None:
    """Batches run on the workers only when two of them are large enough to gain (NumPy releasing the
    GIL); one ROI's small crops in several bin-count classes run in the calling thread."""
    from radstore.radiomics.engine import MIN_SPLIT_VOXELS, _chunk_workers, _chunks, _Crop
    from radstore.radiomics.settings import Setting

    def crop(levels: int, size: int) -> _Crop:
        m = np.ones((size, size, size), dtype=bool)
        return _Crop(0, f"t{levels}", Setting(binWidth=25), m.astype(float), m, (1.0, 1.0, 1.0), None,
                     np.dtype(np.float64), levels)

    small = _chunks([crop(levels, 16) for levels in (3, 12, 40)], workers=2)
    assert len(small) == 1 and _chunk_workers(small, 2) == 1
    small = small + _chunks([crop(levels, 16) for levels in (5, 18)], workers=2)
    side = round(MIN_SPLIT_VOXELS ** (1 / 3)) + 1
    big = _chunks([crop(levels, side) for levels in (3, 12, 40)], workers=2)
    assert _chunk_workers(big, 2) == 2 and _chunk_workers(big[:1] + small, 2) == 1


def test_small_rois_are_prepared_without_a_thread_pool() -> None:
    from radstore.radiomics.engine import POOL_IMAGE_VOXELS, _roi_workers

    def roi(n: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
        return np.zeros((n, 64, 64), np.int16), np.zeros((n, 64, 64), np.uint8), (1.0, 1.0, 1.0)

    side = POOL_IMAGE_VOXELS // (64 * 64)
    assert _roi_workers([roi(10)] * 16, 2) == 1
    assert _roi_workers([roi(side)] * 2, 2) == 2
    assert _roi_workers([roi(side)] * 2, 1) == 1 and _roi_workers([], 4) == 1


@pytest.mark.parametrize("params", [{}, {"binCount": 16}, {"binWidth": 0.7}])
def test_discretise_numpy_equals_torch(params: dict[str, float]) -> None:
    import torch

    from radstore.radiomics.imageops import discretise
    from radstore.radiomics.settings import Setting

    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.normal(30, 40, (3, 6, 9, 8)))
    x[0, :3] = torch.from_numpy(rng.normal(30, 40, (3, 9, 8)).round())  # values on bin edges too
    m = torch.from_numpy(rng.random((3, 6, 9, 8)) < 0.6)
    x[1] = 7.0  # flat ROI: one bin
    s = Setting(**params)
    anchors = [None, None, -500.0]  # IBSI: an edge at or below the ROI minimum
    x[2] = x[2].float().double()  # a float32 image: its edges in float32
    dtypes = [np.dtype(np.float64), np.dtype(np.float64), np.dtype(np.float32)]
    qa, na = discretise(x, m, s, anchors, method="numpy", dtypes=dtypes)
    qb, nb = discretise(x, m, s, anchors, method="torch", dtypes=dtypes)
    assert na == nb > 1 and torch.equal(qa, qb)
    assert int(qa[~m].abs().sum()) == 0 and int(qa[m].min()) >= 1


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4])
def test_digitize_evenly_spaced_equals_searchsorted(scale: float) -> None:
    """The arithmetic bin index equals ``searchsorted(side="right")`` for both edge rules, with
    values on the edges, below the first edge and at or above the last, at several magnitudes."""
    from radstore.radiomics.imageops import _digitize_evenly_spaced, bin_edges
    from radstore.radiomics.settings import Setting

    rng = np.random.default_rng(9)
    vals = rng.normal(0, 300, 20_000) * scale
    for s in (Setting(binWidth=25 * scale), Setting(binWidth=3.7 * scale), Setting(binCount=32),
              Setting(binCount=7)):
        edges = bin_edges(float(vals.min()), float(vals.max()), s)
        probe = np.concatenate([vals, edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf),
                                [edges[0] - scale, edges[-1] + scale]])
        np.testing.assert_array_equal(_digitize_evenly_spaced(probe, edges),
                                      np.searchsorted(edges, probe, side="right"))
    uneven = np.array([0.0, 1.0, 10.0, 11.0, 40.0])  # off by more than two steps: the search decides
    probe = np.linspace(-1, 41, 500)
    np.testing.assert_array_equal(_digitize_evenly_spaced(probe, uneven),
                                  np.searchsorted(uneven, probe, side="right"))


@pytest.mark.parametrize("order_method", ["sort", "partition", "histogram"])
@pytest.mark.parametrize("n", [1, 2, 7, 5300])
def test_firstorder_numpy_order_statistics_equal_numpy(n: int, order_method: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU path's percentiles (from one sort, one partition at their ranks or a histogram
    pre-selection: whichever is fastest on the CPU) equal ``numpy.percentile`` bit for bit, and the
    robust MAD uses exactly the voxels in [P10, P90] (ties at both ends)."""
    import torch

    from radstore.radiomics import firstorder
    from radstore.radiomics.firstorder import compute

    monkeypatch.setattr(firstorder, "fastest_order_method",  # every ROI size takes this method
                        lambda n=0, exact_only=False: "sort" if exact_only else order_method)
    rng = np.random.default_rng(n)
    v = np.concatenate([rng.normal(0, 80, n), np.full(n // 10, 12.0)]).round(1)
    x = torch.from_numpy(v).view(1, 1, 1, -1)
    m = torch.ones_like(x, dtype=torch.bool)
    q = torch.ones_like(x, dtype=torch.int64)
    got = compute(x, m, q, 1, 1.0, method="numpy")
    for name, p in (("10Percentile", 10), ("Median", 50), ("90Percentile", 90)):
        assert float(got[name][0]) == float(np.percentile(v, p)), name
    assert float(got["InterquartileRange"][0]) == float(np.percentile(v, 75) - np.percentile(v, 25))
    assert (float(got["Minimum"][0]), float(got["Maximum"][0])) == (v.min(), v.max())
    inner = v[(v >= np.percentile(v, 10)) & (v <= np.percentile(v, 90))]
    want = np.abs(inner - inner.mean()).mean() if inner.size else np.nan  # (two voxels: none inside)
    assert float(got["RobustMeanAbsoluteDeviation"][0]) == pytest.approx(want, rel=1e-12, nan_ok=True)


def test_firstorder_order_methods_give_identical_features() -> None:
    """The three order-statistics methods give every first-order feature bit for bit (the choice
    between them is a per-CPU speed choice only), over a padded batch of ROIs of several sizes."""
    from radstore.radiomics.firstorder import _compute_numpy, order_statistics

    rng = np.random.default_rng(5)
    x = rng.normal(40, 40, (3, 20, 30, 30)).round(2)
    m = np.zeros(x.shape, dtype=bool)
    m[0, 2:18, 3:27, 3:27] = True
    m[1, 5:6, 5:9, 5:7] = True
    m[2] = rng.random(x.shape[1:]) < 0.4
    q = np.clip(((x - x.min()) // 25).astype(np.int64) + 1, 1, None)
    args = (x, m, q, np.ones(3), 0.0, False)
    by_sort = _compute_numpy(*args, order_method="sort")
    for method in ("partition", "histogram"):
        other = _compute_numpy(*args, order_method=method)
        for k in by_sort:
            np.testing.assert_array_equal(by_sort[k], other[k], err_msg=f"{method} {k}")
    with pytest.raises(ValueError, match="method must be"):
        order_statistics(x[m], [0], "median-of-medians")


@pytest.mark.parametrize("case", ["normal", "ties", "gaps", "constant", "few_values", "peaked", "non_finite",
                                  "denormal_range", "huge_range"])
def test_histogram_select_equals_sort(case: str) -> None:
    """The histogram pre-selection gives the exact order statistics (ties across rank boundaries,
    empty bins between clusters), and declines (None) a histogram too peaked to gain or values
    that are not finite."""
    from radstore.radiomics.firstorder import histogram_select

    rng = np.random.default_rng(11)
    n = 20_000
    v = {
        "normal": rng.normal(0, 30, n),
        "ties": rng.integers(-500, 501, n).astype(np.float64),
        "gaps": np.concatenate([rng.normal(-1e4, 300, n // 2), rng.normal(1e4, 300, n // 2), [0.0]]),
        "few_values": rng.integers(-5, 6, n).astype(np.float64),
        "peaked": np.concatenate([rng.normal(0, 1e-6, n), [-1e6, 1e6]]),
        "constant": np.full(n, 3.5),
        "non_finite": np.concatenate([rng.normal(0, 1, n), [np.inf]]),
        "denormal_range": np.concatenate([np.zeros(n), [5e-324]]),
        "huge_range": np.concatenate([rng.normal(0, 1, n), [-1.5e308, 1.5e308]]),
    }[case]
    ranks = [0, v.size - 1, *(int(f * (v.size - 1)) + d for f in (0.1, 0.25, 0.5, 0.75, 0.9) for d in (0, 1))]
    got = histogram_select(v, ranks)
    if case in ("few_values", "peaked", "non_finite", "denormal_range", "huge_range"):
        assert got is None
    else:
        assert got is not None
        np.testing.assert_array_equal(got, np.sort(v)[ranks])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("params", [{}, {"binCount": 16}, {"binCount": 7}, {"binWidth": 0.7},
                                    {"binWidth": 3}])
def test_bin_edges_equal_pyradiomics_in_the_pixel_type(dtype: type, params: dict[str, float]) -> None:
    """``bin_edges`` gives PyRadiomics' ``getBinEdges`` edges bit for bit, whose arithmetic runs in
    the ROI's pixel type (float32 images: float32 edges; a flat float32 ROI's one voxel value lies on
    an edge only in exact arithmetic), for spread and flat ROIs."""
    imageoperations = pytest.importorskip("radiomics.imageoperations")
    from radstore.radiomics.imageops import bin_edges
    from radstore.radiomics.settings import Setting

    rng = np.random.default_rng(4)
    s = Setting(**params)
    kwargs = {"binCount": s.binCount} if s.binCount is not None else {"binWidth": s.bin_width}
    arrays = [rng.normal(30, 40, 50), rng.normal(30, 40, 50).round(), np.full(9, 3.590328),
              np.full(9, -75.0), rng.normal(0.3, 0.2, 50)]
    for values in (a.astype(dtype) for a in arrays):
        ref = np.asarray(imageoperations.getBinEdges(values, **kwargs), dtype=np.float64)
        edge_type = np.float32 if dtype == np.float32 else np.float64
        ours = bin_edges(float(values.min()), float(values.max()), s, None, edge_type)
        assert np.array_equal(ours, ref), (values[:3], ours, ref)


@pytest.mark.parametrize("method", ["numpy", "torch"])
@pytest.mark.parametrize("weighting", [None, "manhattan"])
def test_glcm_on_present_levels_equals_dense_matrices(method: str, weighting: str | None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Many bins of which few occur (levels 1, 8, 15, ... up to 295): the GLCM on the present levels
    only (``compact_levels``: K x K matrices, features through the level values) equals the dense
    Ng x Ng one, every feature, both paths; the renumbering keeps order and values."""
    import torch

    from radstore.radiomics import glcm
    from radstore.radiomics.engine import _texture_params
    from radstore.radiomics.settings import Setting

    q, m, n = _sparse_levels(0)
    qc, k, values = glcm.compact_levels(q, m, n)
    assert values is not None and k == len(values) < n and torch.equal(values[qc[m] - 1].long(), q[m])
    assert glcm.compact_levels(q.clamp_max(60), m, 60)[2] is None  # few bins: dense
    params = _texture_params(Setting(weightingNorm=weighting), (2.0, 0.8, 0.8))
    _assert_compact_equals_dense(glcm, q, m, n, params, method, monkeypatch)


def _sparse_levels(seed: int) -> tuple[Any, Any, int]:
    """(q, mask, Ng) of 2 ROIs whose levels are 1, 8, 15, ... up to 295 (ROI 1: two levels)."""
    import torch

    rng = np.random.default_rng(seed)
    m = torch.from_numpy(rng.random((2, 9, 11, 10)) < 0.7)
    q = torch.where(m, torch.from_numpy(rng.choice(np.arange(1, 300, 7), size=(2, 9, 11, 10))), 0)
    q[1][m[1]] = torch.where(q[1][m[1]] > 150, 204, 99)
    return q, m, int(q.max())


def _assert_compact_equals_dense(mod: Any, q: Any, m: Any, n: int, params: Any, method: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``mod.compute`` on the present levels only equals it on all ``n`` (compaction disabled)."""
    from radstore.radiomics import _neighbours

    compact = mod.compute(q, m, n, params, method=method)
    monkeypatch.setattr(_neighbours, "COMPACT_MIN_LEVELS", 10**9)
    dense = mod.compute(q, m, n, params, method=method)
    for name in mod.FEATURES:
        np.testing.assert_allclose(compact[name].numpy(), dense[name].numpy(), rtol=1e-12, atol=1e-14,
                                   err_msg=name)


def test_pyradiomics_mcc_and_imc2_of_rank_one_matrices_are_zero_or_rounding() -> None:
    """Rank-1 co-occurrences (``u v^T``): the second eigenvalue and the mutual information
    ``HXY2 - HXY`` are 0 in exact arithmetic. Following PyRadiomics' arithmetic, its rounding gives a
    tiny positive value (MCC, Imc2 ~1e-8) or a negative one (NaN, dropped; with every direction
    dropped PyRadiomics returns NaN, we the exact 0)."""
    from radstore.radiomics import glcm
    from radstore.radiomics.texture_params import TextureParams

    params = TextureParams(symmetrical_glcm=False, weighting_norm="no_weighting")  # one merged direction
    mcc, imc2 = [], []
    for seed in range(50):
        rng = np.random.default_rng(seed)
        u, v = rng.integers(1, 9, 3), rng.integers(1, 9, 3)
        counts = np.repeat((u[:, None] * v[None, :]).astype(float)[None], 13, 0)
        p = glcm._pyradiomics_matrix(counts, np.arange(3), params, (3, 3, 3))
        tied = glcm._pyradiomics_tie_features(p, np.arange(1.0, 4.0))
        mcc.append(tied["MCC"])
        imc2.append(tied["Imc2"])
    for values in (mcc, imc2):
        assert all(0.0 <= m < 1e-7 for m in values)
        assert 0.0 in values and any(m > 0 for m in values)


@pytest.mark.parametrize("method", ["numpy", "torch"])
def test_ngtdm_on_present_levels_equals_all_levels(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many bins of which few occur: NGTDM formulas over the present levels only (with their
    values) equal those over all ``Ng`` levels, both paths."""
    import torch

    from radstore.radiomics import _neighbours, ngtdm
    from radstore.radiomics.engine import _texture_params
    from radstore.radiomics.settings import Setting

    rng = np.random.default_rng(1)
    m = torch.from_numpy(rng.random((2, 9, 11, 10)) < 0.7)
    q = torch.where(m, torch.from_numpy(rng.choice(np.arange(1, 300, 7), size=(2, 9, 11, 10))), 0)
    params = _texture_params(Setting(), (2.0, 0.8, 0.8))
    compact = ngtdm.compute(q, m, int(q.max()), params, method=method)
    monkeypatch.setattr(_neighbours, "COMPACT_MIN_LEVELS", 10**9)
    dense = ngtdm.compute(q, m, int(q.max()), params, method=method)
    for name in ngtdm.FEATURES:
        np.testing.assert_allclose(compact[name].numpy(), dense[name].numpy(), rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("method", ["numpy", "torch"])
@pytest.mark.parametrize("family", ["glrlm", "glszm", "gldm"])
def test_size_matrices_on_present_levels_equal_dense_matrices(family: str, method: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Many bins of which few occur (levels 1, 8, 15, ... up to 295): GLRLM, GLSZM and GLDM with
    rows for the present levels only (features through the level values) equal the dense ``Ng``-row
    matrices, every feature, both paths. (binWidth 0.001 on HU made a 29 GB GLRLM.) GLDM with
    ``gldm_a > 0`` compares level differences and stays dense."""
    import importlib

    from radstore.radiomics.engine import _texture_params
    from radstore.radiomics.settings import Setting

    mod = importlib.import_module(f"radstore.radiomics.{family}")
    q, m, n = _sparse_levels(2)
    params = _texture_params(Setting(), (2.0, 0.8, 0.8))
    _assert_compact_equals_dense(mod, q, m, n, params, method, monkeypatch)
