"""Texture kernels on the IBSI 1 digital phantom against the IBSI consensus reference values
(Zwanenburg et al., Radiology 2020), for the features with a PyRadiomics counterpart computed with
the same aggregation: GLCM/GLRLM per direction then averaged (``_3D_avg``), GLSZM/GLDM(NGLDM)/NGTDM
from one 3D matrix (``_3D``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from radstore.radiomics import glcm, gldm, glrlm, glszm, ngtdm
from radstore.radiomics.texture_params import TextureParams

IBSI = {
    glcm: (
        "cm_",
        "_3D_avg",
        {
            "MaximumProbability": "joint_max",
            "JointAverage": "joint_avg",
            "SumSquares": "joint_var",
            "JointEntropy": "joint_entr",
            "DifferenceAverage": "diff_avg",
            "DifferenceVariance": "diff_var",
            "DifferenceEntropy": "diff_entr",
            "SumAverage": "sum_avg",
            "SumEntropy": "sum_entr",
            "JointEnergy": "energy",
            "Contrast": "contrast",
            "Id": "inv_diff",
            "Idn": "inv_diff_norm",
            "Idm": "inv_diff_mom",
            "Idmn": "inv_diff_mom_norm",
            "InverseVariance": "inv_var",
            "Correlation": "corr",
            "Autocorrelation": "auto_corr",
            "ClusterTendency": "clust_tend",
            "ClusterShade": "clust_shade",
            "ClusterProminence": "clust_prom",
            "Imc1": "info_corr1",
            "Imc2": "info_corr2",
        },
    ),
    glrlm: (
        "rlm_",
        "_3D_avg",
        {
            "ShortRunEmphasis": "sre",
            "LongRunEmphasis": "lre",
            "LowGrayLevelRunEmphasis": "lgre",
            "HighGrayLevelRunEmphasis": "hgre",
            "ShortRunLowGrayLevelEmphasis": "srlge",
            "ShortRunHighGrayLevelEmphasis": "srhge",
            "LongRunLowGrayLevelEmphasis": "lrlge",
            "LongRunHighGrayLevelEmphasis": "lrhge",
            "GrayLevelNonUniformity": "glnu",
            "GrayLevelNonUniformityNormalized": "glnu_norm",
            "RunLengthNonUniformity": "rlnu",
            "RunLengthNonUniformityNormalized": "rlnu_norm",
            "RunPercentage": "r_perc",
            "GrayLevelVariance": "gl_var",
            "RunVariance": "rl_var",
            "RunEntropy": "rl_entr",
        },
    ),
    glszm: (
        "szm_",
        "_3D",
        {
            "SmallAreaEmphasis": "sze",
            "LargeAreaEmphasis": "lze",
            "LowGrayLevelZoneEmphasis": "lgze",
            "HighGrayLevelZoneEmphasis": "hgze",
            "SmallAreaLowGrayLevelEmphasis": "szlge",
            "SmallAreaHighGrayLevelEmphasis": "szhge",
            "LargeAreaLowGrayLevelEmphasis": "lzlge",
            "LargeAreaHighGrayLevelEmphasis": "lzhge",
            "GrayLevelNonUniformity": "glnu",
            "GrayLevelNonUniformityNormalized": "glnu_norm",
            "SizeZoneNonUniformity": "zsnu",
            "SizeZoneNonUniformityNormalized": "zsnu_norm",
            "ZonePercentage": "z_perc",
            "GrayLevelVariance": "gl_var",
            "ZoneVariance": "zs_var",
            "ZoneEntropy": "zs_entr",
        },
    ),
    gldm: (
        "ngl_",
        "_3D",
        {
            "SmallDependenceEmphasis": "lde",
            "LargeDependenceEmphasis": "hde",
            "LowGrayLevelEmphasis": "lgce",
            "HighGrayLevelEmphasis": "hgce",
            "SmallDependenceLowGrayLevelEmphasis": "ldlge",
            "SmallDependenceHighGrayLevelEmphasis": "ldhge",
            "LargeDependenceLowGrayLevelEmphasis": "hdlge",
            "LargeDependenceHighGrayLevelEmphasis": "hdhge",
            "GrayLevelNonUniformity": "glnu",
            "DependenceNonUniformity": "dcnu",
            "DependenceNonUniformityNormalized": "dcnu_norm",
            "GrayLevelVariance": "gl_var",
            "DependenceVariance": "dc_var",
            "DependenceEntropy": "dc_entr",
        },
    ),
    ngtdm: (
        "ngt_",
        "_3D",
        {
            "Coarseness": "coarseness",
            "Contrast": "contrast",
            "Busyness": "busyness",
            "Complexity": "complexity",
            "Strength": "strength",
        },
    ),
}


def reference(shared_data: Path) -> dict[str, tuple[float, float, str]]:
    path = shared_data / "ibsi1" / "reference_values" / "ibsi_1_dig_phantom.csv"
    with path.open() as fh:
        rows = list(csv.reader(fh, delimiter=";"))[1:]
    return {r[2]: (float(r[0]), float(r[1]), r[0]) for r in rows if len(r) >= 3 and r[0] and r[1]}


def matches(value: float, ref: float, tol: float, text: str) -> bool:
    """Within the IBSI tolerance, widened by half a unit of the last significant digit the reference
    gives (IBSI rounds to 3 significant digits: "1490" has a unit of 10, "0.503" of 0.001)."""
    digits = text.lstrip("-")
    if "." in digits:
        unit = 10.0 ** -len(digits.split(".")[1])
    else:
        unit = 10.0 ** (len(digits) - len(digits.rstrip("0")))
    return abs(value - ref) <= tol + 0.5 * unit * (1 + 1e-9)


def test_ibsi_digital_phantom_reference_values(shared_data: Path) -> None:
    import SimpleITK as sitk

    root = shared_data / "ibsi1" / "digital_phantom" / "nifti"
    img = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "image" / "phantom.nii.gz"))).astype(np.int64)
    m = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "mask" / "mask.nii.gz"))) > 0
    refs = reference(shared_data)
    attempted, failed = 0, []
    for mod, (prefix, suffix, names) in IBSI.items():
        out = mod.compute(torch.from_numpy(img)[None], torch.from_numpy(m)[None], 6, TextureParams())
        for ours_name, ibsi in names.items():
            tag = prefix + ibsi + suffix
            ref, tol, text = refs[tag]
            attempted += 1
            if not matches(float(out[ours_name][0]), ref, tol, text):
                failed.append(f"{tag}: ours {float(out[ours_name][0]):.6g} IBSI {text}")
    print(f"IBSI digital phantom texture: {attempted - len(failed)}/{attempted} matched")
    assert not failed, "\n".join(failed)
    assert attempted == 74
