"""Survival and classification statistics, usable from a notebook (arrays in, numbers/tables out).

Survival (:mod:`radstore.stats.survival`, :mod:`radstore.stats.cox`):
``concordance_ci(time, event, risk, n_boot=1000, seed=0, method='harrell'|'uno')``,
``harrell_c``, ``uno_c``, ``concordance_counts`` (batched exact kernel), ``bootstrap_counts``,
``risk_group_hr(time, event, risk, cutoff)``, ``logrank``,
``median_cutoff``, ``maxstat_cutoff``, ``time_dependent_auc``, ``integrated_brier``,
``calibration_at``, ``survival_decision_curve``, ``landmark``, ``mean_se``;
``fit_cox(x, time, event)`` (Efron, Newton–Raphson), ``univariable_screen``, ``backward_aic``
(``groups`` = categorical factors as whole terms), ``cox_score_z``,
``schoenfeld_test(cox_result, time_transform='km')``, ``breslow_baseline``, ``survival_at``.

Classification (:mod:`radstore.stats.classification`): ``auc_ci``, ``delong_test(y, score_a,
score_b)``, ``delong_components``, ``youden_cutoff``, ``confusion``, ``hosmer_lemeshow``,
``calibration_table``, ``decision_curve``.

Reliability (:mod:`radstore.stats.reliability`): ``icc(ratings, kind)``, ``feature_icc``,
``reproducible_features(reader1, reader2, threshold=0.8)``.

Figures (:mod:`radstore.stats.plots`): ``km_plot``, ``roc_plot``, ``calibration_plot``,
``decision_curve_plot``, ``nomogram``.

Model kinds for ``studies/*.yaml`` (``models[].kind``) and their params are in
:mod:`radstore.models.registry` (``lasso_cox``, ``cox``, ``svm``, ``lasso_logistic``,
``logistic``).
"""

from radstore.stats.classification import (
    auc_ci,
    calibration_table,
    confusion,
    decision_curve,
    delong_components,
    delong_test,
    hosmer_lemeshow,
    youden_cutoff,
)
from radstore.stats.cox import (
    backward_aic,
    breslow_baseline,
    cox_score_z,
    fit_cox,
    schoenfeld_test,
    survival_at,
    univariable_screen,
)
from radstore.stats.reliability import feature_icc, icc, reproducible_features
from radstore.stats.survival import (
    bootstrap_counts,
    calibration_at,
    concordance_ci,
    concordance_counts,
    harrell_c,
    integrated_brier,
    landmark,
    logrank,
    maxstat_cutoff,
    mean_se,
    median_cutoff,
    risk_group_hr,
    survival_decision_curve,
    time_dependent_auc,
    uno_c,
)

__all__ = [
    "auc_ci",
    "backward_aic",
    "bootstrap_counts",
    "breslow_baseline",
    "calibration_at",
    "calibration_table",
    "concordance_ci",
    "concordance_counts",
    "confusion",
    "cox_score_z",
    "decision_curve",
    "delong_components",
    "delong_test",
    "feature_icc",
    "fit_cox",
    "harrell_c",
    "hosmer_lemeshow",
    "icc",
    "integrated_brier",
    "landmark",
    "logrank",
    "maxstat_cutoff",
    "mean_se",
    "median_cutoff",
    "reproducible_features",
    "risk_group_hr",
    "schoenfeld_test",
    "survival_at",
    "survival_decision_curve",
    "time_dependent_auc",
    "univariable_screen",
    "uno_c",
    "youden_cutoff",
]
