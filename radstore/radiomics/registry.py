"""Every radiomics feature, defined once: name, family, IBSI code and tag, dtype.

Names and the default-enabled sets are PyRadiomics 3.1's (107 "original" features: 18 first-order,
14 shape, 24 GLCM, 16 GLRLM, 16 GLSZM, 14 GLDM, 5 NGTDM; plus 9 shape2D for ``force2D``). The
features PyRadiomics marks redundant but still computes when a params file names them
(first-order StandardDeviation; shape Compactness1, Compactness2, SphericalDisproportion; shape2D
SphericalDisproportion) are registered with ``default=False``: enabled only by name. Those it names
but no longer computes (``DEPRECATED_EQUIVALENTS``) have no column. Output
columns are named ``<imageType>_<family>_<Feature>`` exactly as PyRadiomics names them
(``original_glcm_Contrast``, ``log-sigma-1-0-mm-3D_firstorder_Mean``, ``wavelet-LLH_glszm_ZoneEntropy``).

IBSI codes/tags follow the IBSI 1 reference manual (Zwanenburg et al., Radiology 2020); ``ibsi_tag``
is the short name used in the IBSI reference-value tables (without the aggregation suffix, which
``IBSI_AGGREGATION`` gives per family for PyRadiomics' way of aggregating directions).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from radstore.radiomics.settings import RadiomicsSettings

FAMILIES: tuple[str, ...] = ("shape", "shape2D", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
TEXTURE_FAMILIES: tuple[str, ...] = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")
SHAPE_FAMILIES: tuple[str, ...] = ("shape", "shape2D")
# how PyRadiomics aggregates texture over directions, as IBSI tag suffix (3D, no force2D)
IBSI_AGGREGATION: dict[str, str] = {"glcm": "3D_avg", "glrlm": "3D_avg", "glszm": "3D", "gldm": "3D",
                                    "ngtdm": "3D"}


@dataclass(frozen=True)
class FeatureDef:
    family: str
    name: str
    ibsi_code: str | None
    ibsi_tag: str | None
    dtype: str = "float64"
    default: bool = True  # False: enabled only when a featureClass list names it (PyRadiomics' redundant)

    @property
    def qualified(self) -> str:
        return f"{self.family}_{self.name}"


def _defs(family: str, rows: list[tuple[str, str | None, str | None]],
          optional: tuple[str, ...] = ()) -> tuple[FeatureDef, ...]:
    return tuple(FeatureDef(family, n, code, tag, default=n not in optional) for n, code, tag in rows)


_FIRSTORDER = _defs("firstorder", [
    ("10Percentile", "QG58", "stat_p10"), ("90Percentile", "8DWT", "stat_p90"),
    ("Energy", "N8CA", "stat_energy"), ("Entropy", "TLU2", "ih_entropy"),
    ("InterquartileRange", "SALO", "stat_iqr"), ("Kurtosis", "IPH6", "stat_kurt"),
    ("Maximum", "84IY", "stat_max"), ("Mean", "Q4LE", "stat_mean"),
    ("MeanAbsoluteDeviation", "4FUA", "stat_mad"), ("Median", "Y12H", "stat_median"),
    ("Minimum", "1GSF", "stat_min"), ("Range", "2OJQ", "stat_range"),
    ("RobustMeanAbsoluteDeviation", "1128", "stat_rmad"), ("RootMeanSquared", "5ZWQ", "stat_rms"),
    ("Skewness", "KE2A", "stat_skew"), ("StandardDeviation", None, None), ("TotalEnergy", None, None),
    ("Uniformity", "BJ5W", "ih_uniformity"), ("Variance", "ECT3", "stat_var"),
], optional=("StandardDeviation",))
_SHAPE = _defs("shape", [
    ("Compactness1", "SKGU", "morph_comp_1"), ("Compactness2", "BQWJ", "morph_comp_2"),
    ("Elongation", "Q3CK", "morph_pca_elongation"), ("Flatness", "N17B", "morph_pca_flatness"),
    ("LeastAxisLength", "7J51", "morph_pca_least_axis"), ("MajorAxisLength", "TDIC", "morph_pca_maj_axis"),
    ("Maximum2DDiameterColumn", None, None), ("Maximum2DDiameterRow", None, None),
    ("Maximum2DDiameterSlice", None, None), ("Maximum3DDiameter", "L0JK", "morph_diam"),
    ("MeshVolume", "RNU0", "morph_volume"), ("MinorAxisLength", "P9VJ", "morph_pca_min_axis"),
    ("SphericalDisproportion", "KRCK", "morph_sph_dispr"),
    ("Sphericity", "QCFX", "morph_sphericity"), ("SurfaceArea", "C0JK", "morph_area_mesh"),
    ("SurfaceVolumeRatio", "2PR5", "morph_av"), ("VoxelVolume", "YEKZ", "morph_vol_approx"),
], optional=("Compactness1", "Compactness2", "SphericalDisproportion"))
_SHAPE2D = _defs("shape2D", [
    ("Elongation", None, None), ("MajorAxisLength", None, None), ("MaximumDiameter", None, None),
    ("MeshSurface", None, None), ("MinorAxisLength", None, None), ("Perimeter", None, None),
    ("PerimeterSurfaceRatio", None, None), ("PixelSurface", None, None),
    ("SphericalDisproportion", None, None), ("Sphericity", None, None),
], optional=("SphericalDisproportion",))
_GLCM = _defs("glcm", [
    ("Autocorrelation", "QWB0", "cm_auto_corr"), ("ClusterProminence", "AE86", "cm_clust_prom"),
    ("ClusterShade", "7NFM", "cm_clust_shade"), ("ClusterTendency", "DG8W", "cm_clust_tend"),
    ("Contrast", "ACUI", "cm_contrast"), ("Correlation", "NI2N", "cm_corr"),
    ("DifferenceAverage", "TF7R", "cm_diff_avg"), ("DifferenceEntropy", "NTRS", "cm_diff_entr"),
    ("DifferenceVariance", "D3YU", "cm_diff_var"), ("Id", "IB1Z", "cm_inv_diff"),
    ("Idm", "WF0Z", "cm_inv_diff_mom"), ("Idmn", "1QCO", "cm_inv_diff_mom_norm"),
    ("Idn", "NDRX", "cm_inv_diff_norm"), ("Imc1", "R8DG", "cm_info_corr1"),
    ("Imc2", "JN9H", "cm_info_corr2"), ("InverseVariance", "E8JP", "cm_inv_var"),
    ("JointAverage", "60VM", "cm_joint_avg"), ("JointEnergy", "8ZQL", "cm_energy"),
    ("JointEntropy", "TU9B", "cm_joint_entr"), ("MCC", None, None),
    ("MaximumProbability", "GYBY", "cm_joint_max"), ("SumAverage", "ZGXS", "cm_sum_avg"),
    ("SumEntropy", "P6QZ", "cm_sum_entr"), ("SumSquares", "UR99", "cm_joint_var"),
])
_GLRLM = _defs("glrlm", [
    ("GrayLevelNonUniformity", "R5YN", "rlm_glnu"),
    ("GrayLevelNonUniformityNormalized", "OVBL", "rlm_glnu_norm"),
    ("GrayLevelVariance", "8CE5", "rlm_gl_var"), ("HighGrayLevelRunEmphasis", "G3QZ", "rlm_hgre"),
    ("LongRunEmphasis", "W4KF", "rlm_lre"), ("LongRunHighGrayLevelEmphasis", "3KUM", "rlm_lrhge"),
    ("LongRunLowGrayLevelEmphasis", "IVPO", "rlm_lrlge"), ("LowGrayLevelRunEmphasis", "V3SW", "rlm_lgre"),
    ("RunEntropy", "HJ9O", "rlm_rl_entr"), ("RunLengthNonUniformity", "W92Y", "rlm_rlnu"),
    ("RunLengthNonUniformityNormalized", "IC23", "rlm_rlnu_norm"), ("RunPercentage", "9ZK5", "rlm_r_perc"),
    ("RunVariance", "SXLW", "rlm_rl_var"), ("ShortRunEmphasis", "22OV", "rlm_sre"),
    ("ShortRunHighGrayLevelEmphasis", "GD3A", "rlm_srhge"),
    ("ShortRunLowGrayLevelEmphasis", "HTZT", "rlm_srlge"),
])
_GLSZM = _defs("glszm", [
    ("GrayLevelNonUniformity", "JNSA", "szm_glnu"),
    ("GrayLevelNonUniformityNormalized", "Y1RO", "szm_glnu_norm"),
    ("GrayLevelVariance", "BYLV", "szm_gl_var"), ("HighGrayLevelZoneEmphasis", "5GN9", "szm_hgze"),
    ("LargeAreaEmphasis", "48P8", "szm_lze"), ("LargeAreaHighGrayLevelEmphasis", "J17V", "szm_lzhge"),
    ("LargeAreaLowGrayLevelEmphasis", "YH51", "szm_lzlge"), ("LowGrayLevelZoneEmphasis", "XMSY", "szm_lgze"),
    ("SizeZoneNonUniformity", "4JP3", "szm_zsnu"),
    ("SizeZoneNonUniformityNormalized", "VB3A", "szm_zsnu_norm"),
    ("SmallAreaEmphasis", "P001", "szm_sze"), ("SmallAreaHighGrayLevelEmphasis", "HW1V", "szm_szhge"),
    ("SmallAreaLowGrayLevelEmphasis", "5RAI", "szm_szlge"), ("ZoneEntropy", "GU8N", "szm_zs_entr"),
    ("ZonePercentage", "P30P", "szm_z_perc"), ("ZoneVariance", "3NSA", "szm_zs_var"),
])
# GLDM = IBSI's neighbouring grey level dependence matrix (NGLDM) with alpha = gldm_a, distance 1
_GLDM = _defs("gldm", [
    ("DependenceEntropy", "FCBV", "ngl_dc_entr"), ("DependenceNonUniformity", "Z87G", "ngl_dcnu"),
    ("DependenceNonUniformityNormalized", "OKJI", "ngl_dcnu_norm"),
    ("DependenceVariance", "DNX2", "ngl_dc_var"),
    ("GrayLevelNonUniformity", "FP8K", "ngl_glnu"), ("GrayLevelVariance", "1PFV", "ngl_gl_var"),
    ("HighGrayLevelEmphasis", "OAE7", "ngl_hgce"), ("LargeDependenceEmphasis", "IMOQ", "ngl_hde"),
    ("LargeDependenceHighGrayLevelEmphasis", None, "ngl_hdhge"),
    ("LargeDependenceLowGrayLevelEmphasis", None, "ngl_hdlge"),
    ("LowGrayLevelEmphasis", "TL9H", "ngl_lgce"), ("SmallDependenceEmphasis", "SODN", "ngl_lde"),
    ("SmallDependenceHighGrayLevelEmphasis", "JA6D", "ngl_ldhge"),
    ("SmallDependenceLowGrayLevelEmphasis", "EQ3F", "ngl_ldlge"),
])
_NGTDM = _defs("ngtdm", [
    ("Busyness", "NQ30", "ngt_busyness"), ("Coarseness", "QCDE", "ngt_coarseness"),
    ("Complexity", "HDEZ", "ngt_complexity"), ("Contrast", "65HE", "ngt_contrast"),
    ("Strength", "1X9X", "ngt_strength"),
])

FEATURES: dict[str, tuple[FeatureDef, ...]] = {
    "shape": _SHAPE, "shape2D": _SHAPE2D, "firstorder": _FIRSTORDER, "glcm": _GLCM, "glrlm": _GLRLM,
    "glszm": _GLSZM, "gldm": _GLDM, "ngtdm": _NGTDM,
}


# features PyRadiomics 3.1 still accepts by name but computes no value for (a DeprecationWarning in
# its log): what each equals, for the warning that says so
DEPRECATED_EQUIVALENTS: dict[str, dict[str, str]] = {
    "glcm": {"Dissimilarity": "glcm DifferenceAverage", "Homogeneity1": "glcm Id",
             "Homogeneity2": "glcm Idm", "SumVariance": "glcm ClusterTendency"},
    "gldm": {"GrayLevelNonUniformityNormalized": "firstorder Uniformity",
             "DependencePercentage": "1 for every ROI"},
}


def family_features(family: str, include_optional: bool = False) -> tuple[str, ...]:
    """PyRadiomics' default-enabled feature names of ``family`` (alphabetical, as PyRadiomics orders
    them); with ``include_optional`` also those enabled only by name."""
    if family not in FEATURES:
        raise KeyError(f"unknown feature family {family!r}; known: {', '.join(FAMILIES)}")
    return _family_names(family, include_optional)


@functools.cache
def _family_names(family: str, include_optional: bool) -> tuple[str, ...]:
    return tuple(f.name for f in FEATURES[family] if f.default or include_optional)


def feature_def(family: str, name: str) -> FeatureDef:
    for f in FEATURES[family]:
        if f.name == name:
            return f
    raise KeyError(f"unknown feature {family}_{name}")


def ibsi_table(force2d: bool = False) -> list[tuple[str, str, str]]:
    """(IBSI tag with PyRadiomics' aggregation suffix, family, feature) for every mapped feature.
    With ``force2d`` the texture matrices are in-plane and summed over the slices (one per direction
    for GLCM/GLRLM, one for the others), which IBSI names 2.5D (``_2_5D_avg``, ``_2_5D``)."""
    out = []
    for fam, defs in FEATURES.items():
        if fam == "shape2D":
            continue
        for f in defs:
            if f.ibsi_tag:
                suffix = IBSI_AGGREGATION.get(fam)
                if suffix and force2d:
                    suffix = suffix.replace("3D", "2_5D")
                out.append((f"{f.ibsi_tag}_{suffix}" if suffix else f.ibsi_tag, fam, f.name))
    return out


def feature_names(settings: RadiomicsSettings) -> list[str]:
    """The columns ``extract(..., settings)`` returns, in order.

    Shape (computed on the original image only) first, then for each enabled image type in order
    (original, LoG sigmas, wavelet sub-bands) the enabled intensity/texture families.
    """
    enabled = settings.enabled_features()
    names: list[str] = []
    for fam in SHAPE_FAMILIES:
        if fam in enabled:
            names += [f"original_{fam}_{n}" for n in enabled[fam]]
    for image_name in settings.image_type_names():
        for fam in ("firstorder", *TEXTURE_FAMILIES):
            if fam in enabled:
                names += [f"{image_name}_{fam}_{n}" for n in enabled[fam]]
    return names
