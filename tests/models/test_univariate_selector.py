"""Univariate two-group selection: constant features are never selected, a feature constant within
each group but different between them is, and neither makes SciPy's precision-loss warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from radstore.models.preprocessing import UnivariateSelector


@pytest.mark.parametrize("test", ["ttest", "mannwhitney"])
def test_constant_features_get_p_one_without_warnings(test: str) -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(12), np.zeros(12)].astype(int)
    signal = rng.normal(size=24) + 2.0 * y
    noise = rng.normal(size=24)
    X = np.c_[np.full(24, 3.3),                          # constant
              np.full(24, 3.3) + 1e-15 * y,               # constant to rounding
              np.zeros(24),                               # zero
              np.where(y == 1, 3.3, 7.0),                 # constant within groups, separating
              signal, noise]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sel = UnivariateSelector(test=test, p_max=0.05, max_features=None).fit(X, y)
    p = sel.pvalues_
    assert p[:3].tolist() == [1.0, 1.0, 1.0]
    assert p[3] < 1e-4 and p[4] < 0.05
    want = (stats.ttest_ind(signal[y == 1], signal[y == 0], equal_var=False).pvalue if test == "ttest"
            else stats.mannwhitneyu(signal[y == 1], signal[y == 0], alternative="two-sided").pvalue)
    assert p[4] == pytest.approx(want)
    assert 3 in sel.keep_ and 4 in sel.keep_ and not {0, 1, 2} & set(sel.keep_.tolist())


def test_unknown_test_is_an_error() -> None:
    with pytest.raises(ValueError, match="ttest"):
        UnivariateSelector(test="chi2").fit(np.ones((4, 1)), np.array([0, 0, 1, 1]))
