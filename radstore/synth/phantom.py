"""Pure kernels of the abdomen CT phantom: tissue map, lesions, texture, contrast phases, noise.

Arrays are ``[z, y, x]``; physical coordinates are LPS millimetres (x → patient left, y →
posterior, z → head), ``Grid.spacing``/``Grid.origin`` in ``(x, y, z)`` order as everywhere in
radstore. Nothing here touches files; every random draw comes from the ``numpy.random.Generator``
passed in, so a seeded generator gives identical arrays.

Image model for one phase (HU)::

    clean  = LUT_phase[tissue] + parenchyma_texture            (organs, fat ~-100, muscle ~50, gas)
    clean[lesion k] = L_phase + A_phase * T_k   (viable part)  /  15 + 0.3 * A * T_k  (necrotic core)
    image  = round(G_pv * clean + n_kernel * sigma_noise + hu_offset),   clipped to [-1024, 3071]

``T_k`` is white noise smoothed by a Gaussian of ``texture_scale_mm`` (physical, so the same texture
on every scanner's grid), standardised to unit SD: the lesion's heterogeneity amplitude ``A`` (HU) is
what first-order SD/entropy and GLCM contrast measure at ~1 mm scale. ``G_pv`` is a small Gaussian
(partial volume), ``n_kernel`` white noise blurred in-plane by the reconstruction kernel and
re-standardised.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

# Tissue classes of the tissue map.
AIR, FAT, VFAT, MUSCLE, LIVER, SPLEEN, KIDNEY, PANCREAS, STOMACH_WALL, FLUID, GAS, AORTA, IVC, \
    PORTAL, BONE, CORTEX, CANAL = range(17)

# HU per tissue class and phase column: non_contrast, arterial, venous/portal, delayed.
_HU = np.array([
    [-1000, -1000, -1000, -1000],   # air
    [-105, -105, -103, -104],       # subcutaneous fat
    [-92, -90, -88, -89],           # visceral fat
    [50, 56, 62, 60],               # muscle
    [58, 76, 112, 92],              # liver
    [47, 122, 116, 96],             # spleen
    [33, 165, 185, 150],            # kidney
    [42, 118, 96, 76],              # pancreas
    [40, 78, 96, 82],               # stomach wall
    [8, 8, 9, 10],                  # fluid
    [-950, -950, -950, -950],       # bowel / stomach gas
    [42, 325, 168, 122],            # aorta
    [40, 92, 152, 122],             # inferior vena cava
    [40, 112, 188, 132],            # portal vein
    [255, 258, 262, 260],           # cancellous bone
    [680, 680, 685, 682],           # cortical bone
    [22, 22, 24, 23],               # spinal canal
], dtype=np.float32)

PHASE_COLUMN: dict[str, int] = {"non_contrast": 0, "arterial": 1, "venous": 2, "portal": 2, "delayed": 3}
HU_MIN, HU_MAX = -1024, 3071
NECROSIS_HU = 15.0


@dataclass(frozen=True)
class Grid:
    """A CT sampling grid: ``shape`` ``(z, y, x)``; ``spacing``/``origin`` ``(x, y, z)`` mm; axial,
    identity direction (LPS)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Physical coordinates (mm) of voxel centres along z, y, x (1-D float32 arrays)."""
        nz, ny, nx = self.shape
        return (
            (self.origin[2] + self.spacing[2] * np.arange(nz)).astype(np.float32),
            (self.origin[1] + self.spacing[1] * np.arange(ny)).astype(np.float32),
            (self.origin[0] + self.spacing[0] * np.arange(nx)).astype(np.float32),
        )

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return (self.spacing[2], self.spacing[1], self.spacing[0])


@dataclass(frozen=True)
class Anatomy:
    """One patient's body: semi-axes of the body ellipse (mm), z scale (mm), per-organ jitter."""

    body_ax: float
    body_ay: float
    z_scale: float
    center_z: float
    fat_frac: float
    contrast_gain: float
    jitter: tuple[float, ...]
    gas_pockets: tuple[tuple[float, float, float, float], ...]
    body_phase: float

    def liver_ellipsoid_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre and semi-axes (x, y, z mm) of the liver ellipsoid."""
        j = self.jitter
        cu, cv, au, av = -0.36 + 0.03 * j[0], -0.04 + 0.03 * j[1], 0.42 + 0.03 * j[2], 0.52 + 0.03 * j[3]
        return (np.array([cu * self.body_ax, cv * self.body_ay, self.center_z + 0.2 * self.z_scale]),
                np.array([au * self.body_ax, av * self.body_ay, 1.7 * self.z_scale]))


def draw_anatomy(rng: np.random.Generator, scale: float, center_z: float) -> Anatomy:
    """Random body habitus; ``scale`` = 1 is an adult (body width ~320 mm), 0.28 the small phantom."""
    ax = rng.uniform(145.0, 170.0) * scale
    return Anatomy(
        body_ax=float(ax),
        body_ay=float(ax * rng.uniform(0.70, 0.80)),
        z_scale=150.0 * scale,
        center_z=float(center_z),
        fat_frac=float(rng.uniform(0.06, 0.16)),
        contrast_gain=float(rng.uniform(0.85, 1.15)),
        jitter=tuple(float(v) for v in rng.uniform(-1.0, 1.0, size=8)),
        gas_pockets=tuple(
            (float(rng.uniform(-0.05, 0.45)), float(rng.uniform(-0.55, 0.05)),
             float(rng.uniform(-1.2, 1.2)), float(rng.uniform(0.05, 0.09)))
            for _ in range(int(rng.integers(2, 5)))
        ),
        body_phase=float(rng.uniform(0, 2 * np.pi)),
    )


def tissue_map(anat: Anatomy, grid: Grid) -> np.ndarray:
    """Label map (uint8, tissue classes above) of the abdomen on ``grid``."""
    z, y, x = grid.axes()
    u = (x / anat.body_ax)[None, None, :]
    v = (y / anat.body_ay)[None, :, None]
    w = ((z - anat.center_z) / anat.z_scale)[:, None, None]
    j = anat.jitter

    def ell(cu: float, cv: float, au: float, av: float, cw: float = 0.0, aw: float = 0.0) -> np.ndarray:
        r = ((u - cu) / au) ** 2 + ((v - cv) / av) ** 2
        if aw > 0:
            r = r + ((w - cw) / aw) ** 2
        return r <= 1.0

    lab = np.zeros(grid.shape, dtype=np.uint8)
    s = 1.0 + 0.04 * np.sin(1.1 * w + anat.body_phase)
    body = (u / s) ** 2 + (v / s) ** 2 <= 1.0
    lab[np.broadcast_to(body, grid.shape)] = FAT
    f = anat.fat_frac
    muscle = (u / (s - f)) ** 2 + (v / (s - f * anat.body_ax / anat.body_ay)) ** 2 <= 1.0
    lab[np.broadcast_to(muscle, grid.shape)] = MUSCLE
    fc = f + 0.06
    cavity = np.broadcast_to(
        (u / (s - fc)) ** 2 + (v / (s - fc * anat.body_ax / anat.body_ay)) ** 2 <= 1.0, grid.shape)
    lab[cavity] = VFAT

    def paint(mask: np.ndarray, cls: int, within: np.ndarray | None = cavity) -> None:
        m = np.broadcast_to(mask, grid.shape)
        lab[m & within if within is not None else m] = cls

    paint(ell(-0.42, 0.58, 0.14, 0.17, -0.5, 1.3), KIDNEY)
    paint(ell(0.44, 0.60, 0.14, 0.17, -0.3, 1.3), KIDNEY)
    c, a = anat.liver_ellipsoid_mm()
    paint(ell(c[0] / anat.body_ax, c[1] / anat.body_ay, a[0] / anat.body_ax, a[1] / anat.body_ay,
              (c[2] - anat.center_z) / anat.z_scale, a[2] / anat.z_scale), LIVER)
    paint(ell(0.55 + 0.02 * j[4], 0.28, 0.16, 0.24, 0.4, 1.1), SPLEEN)
    paint(ell(0.12, 0.24 + 0.02 * j[5], 0.30, 0.075, -0.2, 0.9), PANCREAS)
    stomach = ell(0.30 + 0.03 * j[6], -0.34, 0.22, 0.21, 0.6, 1.2)
    paint(stomach, STOMACH_WALL)
    lumen = ell(0.30 + 0.03 * j[6], -0.34, 0.18, 0.17, 0.6, 1.1)
    paint(lumen & (v >= -0.40), FLUID)
    paint(lumen & (v < -0.40), GAS)
    for gu, gv, gw, gr in anat.gas_pockets:
        paint(ell(gu, gv, gr, gr * anat.body_ax / anat.body_ay, gw, 0.25), GAS)
    paint(ell(-0.16, 0.08, 0.05, 0.065), PORTAL)
    paint(ell(0.04, 0.47, 0.065, 0.085), AORTA)
    paint(ell(-0.14, 0.43, 0.075, 0.085), IVC)
    paint(ell(-0.20, 0.82, 0.15, 0.13) | ell(0.20, 0.82, 0.15, 0.13), MUSCLE, within=body)
    paint(ell(0.0, 0.66, 0.14, 0.16), CORTEX, within=None)
    paint(ell(0.0, 0.66, 0.11, 0.13), BONE, within=None)
    paint(ell(0.0, 0.86, 0.05, 0.06), CANAL, within=None)
    return lab


def phase_lut(phase: str, contrast_gain: float) -> np.ndarray:
    """HU per tissue class: ``NC + gain * (phase - NC)`` (patient-specific contrast uptake)."""
    nc = _HU[:, 0]
    return (nc + contrast_gain * (_HU[:, PHASE_COLUMN[phase]] - nc)).astype(np.float32)


def correlated_noise(rng: np.random.Generator, shape: tuple[int, ...],
                     sigma_vox: tuple[float, ...]) -> np.ndarray:
    """White noise smoothed by a Gaussian of ``sigma_vox`` (per axis) and standardised to SD 1."""
    field = rng.standard_normal(shape, dtype=np.float32)
    if any(s > 0 for s in sigma_vox):
        field = ndimage.gaussian_filter(field, sigma=sigma_vox, mode="reflect", truncate=3.0)
    sd = float(field.std())
    return field / sd if sd > 0 else field


@dataclass(frozen=True)
class LesionShape:
    """A perturbed ellipsoid: ``rho(p) = |Q (p - c) / (r * axes)| / (1 + f(dir)) <= 1`` with
    ``f(d) = sum_k a_k cos(n_k * angle(d, v_k) + phi_k)`` (low-order bumps, irregular margins)."""

    center: tuple[float, float, float]
    radius: float
    axes: tuple[float, float, float]
    rotation: tuple[float, ...]
    bump_dirs: tuple[tuple[float, float, float], ...]
    bump_orders: tuple[int, ...]
    bump_amps: tuple[float, ...]
    bump_phases: tuple[float, ...]

    def scaled(self, factor: float) -> LesionShape:
        return replace(self, radius=self.radius * factor)

    @property
    def extent_mm(self) -> float:
        return self.radius * max(self.axes) * (1.0 + sum(abs(a) for a in self.bump_amps))


def vec3(v: np.ndarray | tuple[float, ...]) -> tuple[float, float, float]:
    """A length-3 vector as a plain ``(float, float, float)`` tuple."""
    a, b, c = (float(x) for x in v)
    return (a, b, c)


def draw_lesion_shape(rng: np.random.Generator, center: np.ndarray, radius: float,
                      irregularity: float) -> LesionShape:
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    dirs = rng.standard_normal((3, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return LesionShape(
        center=vec3(center),
        radius=float(radius),
        axes=(1.0, float(rng.uniform(0.75, 1.0)), float(rng.uniform(0.7, 1.0))),
        rotation=tuple(float(v) for v in q.ravel()),
        bump_dirs=tuple(vec3(d) for d in dirs),
        bump_orders=tuple(int(n) for n in rng.integers(2, 5, size=3)),
        bump_amps=tuple(float(a) for a in irregularity * rng.uniform(0.3, 1.0, size=3)),
        bump_phases=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, size=3)),
    )


def lesion_rho(shape: LesionShape, grid: Grid) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
    """Normalised radius ``rho`` on the lesion's bounding box (inside where ``rho <= 1``), or None
    when the lesion lies outside the grid."""
    ext = shape.extent_mm
    c = np.asarray(shape.center)
    sp = np.asarray(grid.spacing)
    org = np.asarray(grid.origin)
    lo = np.floor((c - ext - org) / sp).astype(int) - 1
    hi = np.ceil((c + ext - org) / sp).astype(int) + 2
    size_xyz = np.array(grid.shape[::-1])
    lo = np.clip(lo, 0, size_xyz)
    hi = np.clip(hi, 0, size_xyz)
    if np.any(hi <= lo):
        return None
    bbox = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    z, y, x = grid.axes()
    dz = (z[bbox[0]] - c[2])[:, None, None]
    dy = (y[bbox[1]] - c[1])[None, :, None]
    dx = (x[bbox[2]] - c[0])[None, None, :]
    rot = np.asarray(shape.rotation, dtype=np.float32).reshape(3, 3)
    scale = shape.radius * np.asarray(shape.axes, dtype=np.float32)
    q = [(rot[0, i] * dx + rot[1, i] * dy + rot[2, i] * dz) / scale[i] for i in range(3)]
    rr = np.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2) + np.float32(1e-6)
    f = np.zeros_like(rr)
    for d, n, a, ph in zip(shape.bump_dirs, shape.bump_orders, shape.bump_amps, shape.bump_phases,
                           strict=True):
        cosang = np.clip((q[0] * d[0] + q[1] * d[1] + q[2] * d[2]) / rr, -1.0, 1.0)
        f += np.float32(a) * np.cos(n * np.arccos(cosang) + np.float32(ph))
    return bbox, (rr / (1.0 + f)).astype(np.float32)


@dataclass(frozen=True)
class LesionAppearance:
    """Intensity model of one patient's lesions: base HU per phase column, heterogeneity amplitude
    ``A`` (HU), texture correlation scale (mm), necrotic core radius (fraction of rho)."""

    base_hu: tuple[float, float, float, float]
    amplitude_hu: float
    texture_scale_mm: float
    necrosis_frac: float


NC_AMPLITUDE_FACTOR = 0.6
"""Texture amplitude in the non-contrast phase relative to the contrast phases."""


def render_lesions(rng: np.random.Generator, grid: Grid, tissue: np.ndarray,
                   shapes: list[LesionShape], texture_scale_mm: float) -> tuple[np.ndarray, list[tuple]]:
    """Rasterise lesions (label k = k-th shape; earlier lesions keep overlapping voxels; voxels in
    air are excluded) and draw one texture field per lesion (Gaussian-correlated noise of
    ``texture_scale_mm``, SD 1), shared by all phases of the visit.

    Returns the label map (uint8) and, per rendered lesion, ``(bbox, inside, rho, texture)``.
    """
    labels = np.zeros(grid.shape, dtype=np.uint8)
    fields: list[tuple] = []
    sig = tuple(texture_scale_mm / s for s in grid.spacing_zyx)
    for k, shape in enumerate(shapes, start=1):
        res = lesion_rho(shape, grid)
        if res is None:
            continue
        bbox, rho = res
        inside = (rho <= 1.0) & (labels[bbox] == 0) & (tissue[bbox] != AIR)
        if not inside.any():
            continue
        labels[bbox][inside] = k
        fields.append((bbox, inside, rho, correlated_noise(rng, rho.shape, sig)))
    return labels, fields


def render_phase(tissue: np.ndarray, lesions: list[tuple], grid: Grid, phase: str,
                 anat: Anatomy, appearance: LesionAppearance, parenchyma: np.ndarray,
                 noise: np.ndarray, noise_hu: float, hu_offset: float) -> np.ndarray:
    """One contrast phase (int16 HU). ``lesions``: ``(bbox, inside, rho, texture)`` per lesion;
    ``parenchyma`` (HU) and ``noise`` (unit SD) are full-grid float32 fields."""
    col = PHASE_COLUMN[phase]
    img = phase_lut(phase, anat.contrast_gain)[tissue]
    soft = (tissue != AIR) & (tissue != GAS)
    img += parenchyma * soft
    nc = appearance.base_hu[0]
    base = nc + anat.contrast_gain * (appearance.base_hu[col] - nc)
    amp = appearance.amplitude_hu * (NC_AMPLITUDE_FACTOR if col == 0 else 1.0)
    for bbox, inside, rho, tex in lesions:
        vals = base + amp * tex
        core = rho < appearance.necrosis_frac
        vals = np.where(core, NECROSIS_HU + 0.3 * amp * tex, vals)
        sub = img[bbox]
        sub[inside] = vals[inside]
    img = ndimage.gaussian_filter(img, sigma=(0.35, 0.5, 0.5), mode="nearest", truncate=3.0)
    img += noise * np.float32(noise_hu) + np.float32(hu_offset)
    return np.clip(np.rint(img), HU_MIN, HU_MAX).astype(np.int16)


def kernel_noise(rng: np.random.Generator, shape: tuple[int, int, int], blur_px: float) -> np.ndarray:
    """Scanner noise: white noise blurred in-plane by the reconstruction kernel, SD 1."""
    return correlated_noise(rng, shape, (0.0, blur_px, blur_px))


def second_reader(labels: np.ndarray, rng: np.random.Generator, threshold: float = 0.4) -> np.ndarray:
    """A second reader's label map: each lesion's boundary moved by ±1 voxel in-plane where a
    smooth random field is above ``threshold`` (dilate) or below ``-threshold`` (erode)."""
    out = np.zeros_like(labels)
    cross = np.zeros((1, 3, 3), dtype=bool)
    cross[0, 1, :] = cross[0, :, 1] = True
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        pad = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(sl, labels.shape,
                                                                                   strict=True))
        m = labels[pad] == k
        field = correlated_noise(rng, m.shape, (0.5, 2.0, 2.0))
        dil = ndimage.binary_dilation(m, structure=cross) & ((labels[pad] == 0) | m)
        ero = ndimage.binary_erosion(m, structure=cross)
        r2 = np.where(field > threshold, dil, np.where(field < -threshold, ero, m))
        if not r2.any():
            r2 = m
        sub = out[pad]
        sub[r2 & (sub == 0)] = k
    return out


def longest_axial_diameter_mm(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """RECIST-style longest in-plane diameter (mm) of a binary mask ``[z, y, x]``: the largest
    distance between outer corners of the mask's pixels on any axial slice (convex hull + pdist)."""
    sx, sy = spacing[0], spacing[1]
    offs = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    best = 0.0
    for sl in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1)):
        rc = np.argwhere(mask[sl])
        pts = ((rc[:, None, :] + offs[None]).reshape(-1, 2) * np.array([sy, sx]))
        if len(rc) >= 3:
            with contextlib.suppress(QhullError):
                pts = pts[ConvexHull(pts).vertices]
        best = max(best, float(pdist(pts).max()))
    return best
