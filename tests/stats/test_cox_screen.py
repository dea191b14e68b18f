"""Vectorised univariable Cox score statistics and LASSO-Cox prescreening."""

from __future__ import annotations

import numpy as np
import pytest

from radstore.stats.cox import _efron_terms, _sorted, cox_score_z


def test_score_z_equals_gradient_over_sqrt_information_at_zero() -> None:
    rng = np.random.default_rng(3)
    n, p = 200, 6
    x = rng.normal(size=(n, p))
    t = rng.exponential(np.exp(-x[:, 0]))  # continuous times: Efron = Breslow
    c = rng.exponential(2.0, n)
    time, event = np.minimum(t, c), t <= c
    z = cox_score_z(x, time, event)
    for j in range(p):
        xs, ts, es = _sorted(x[:, [j]], time, event)
        _, g, h = _efron_terms(np.zeros(1), xs, ts, es)
        assert z[j] == pytest.approx(g[0] / np.sqrt(-h[0, 0]), rel=1e-10)
    assert np.argmax(np.abs(z)) == 0


def test_prescreened_lasso_cox_keeps_signal_and_zeroes_the_rest() -> None:
    from radstore.models.estimators import LassoCox
    from radstore.stats.survival import surv_array

    rng = np.random.default_rng(1)
    n, p = 300, 60
    x = rng.normal(size=(n, p))
    t = rng.exponential(np.exp(-(x[:, 0] - 0.8 * x[:, 1])))
    c = rng.exponential(2.0, n)
    y = surv_array(np.minimum(t, c), t <= c)
    m = LassoCox(n_alphas=10, cv_folds=3, prescreen=5).fit(x, y)
    z = np.abs(cox_score_z(x, y["time"], y["event"]))
    outside = np.argsort(-z)[5:]
    assert np.all(m.coef_[outside] == 0)
    assert m.coef_[0] > 0 and m.coef_[1] < 0
