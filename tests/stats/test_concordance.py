"""The Fenwick-tree concordance kernel equals scikit-survival exactly (ties, censoring, IPCW,
bootstrap multiplicities)."""

from __future__ import annotations

import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw

from radstore.stats.survival import (
    bootstrap_counts,
    concordance_ci,
    concordance_counts,
    harrell_c,
    surv_array,
    uno_c,
)


def _data(rng: np.random.Generator, n: int, tie_digits: int = 1):
    """Rounded times and risks (many tied times, tied risks, events tied with censorings)."""
    lp = rng.normal(size=n)
    t = np.round(rng.exponential(np.exp(-lp)), tie_digits)
    c = np.round(rng.exponential(1.5, n), tie_digits)
    time, event = np.minimum(t, c), t <= c
    risk = np.round(lp + rng.normal(scale=0.5, size=n), 1)
    return time, event, risk


@pytest.mark.parametrize("seed,n", [(0, 7), (1, 40), (2, 300), (3, 1000)])
def test_harrell_equals_sksurv_with_ties(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    time, event, risk = _data(rng, n)
    assert len(np.unique(time)) < n and len(np.unique(risk)) < n
    ref = concordance_index_censored(event, time, risk)[0]
    assert harrell_c(time, event, risk) == pytest.approx(ref, abs=1e-12)
    # risk ties within the tolerance (1e-8) count ½, as in sksurv
    jitter = risk + rng.uniform(-1e-9, 1e-9, n)
    assert harrell_c(time, event, jitter) == pytest.approx(
        concordance_index_censored(event, time, jitter)[0], abs=1e-12)


def test_uno_equals_sksurv_ipcw() -> None:
    rng = np.random.default_rng(5)
    tr_t, tr_e, _ = _data(rng, 400)
    time, event, risk = _data(rng, 250)
    keep = time < tr_t.max()
    for tau in (None, float(np.quantile(time, 0.7))):
        ref = concordance_index_ipcw(surv_array(tr_t, tr_e), surv_array(time[keep], event[keep]),
                                     risk[keep], tau=tau if tau is not None else tr_t.max())[0]
        assert uno_c(time, event, risk, tr_t, tr_e, tau) == pytest.approx(ref, abs=1e-12)


def test_bootstrap_multiplicities_equal_resampled_sksurv() -> None:
    rng = np.random.default_rng(9)
    n, n_boot = 120, 25
    time, event, risk = _data(rng, n)
    counts = bootstrap_counts(n, n_boot, seed=4)
    num, den = concordance_counts(time, event, risk, counts)
    draw = np.random.default_rng(4)
    for b in range(n_boot):
        idx = draw.integers(0, n, n)
        np.testing.assert_array_equal(np.bincount(idx, minlength=n), counts[b])
        ref = concordance_index_censored(event[idx], time[idx], risk[idx])[0]
        assert num[b] / den[b] == pytest.approx(ref, abs=1e-12)
    ci = concordance_ci(time, event, risk, n_boot=n_boot, seed=4)
    assert ci.n_boot == n_boot and ci.lo <= ci.estimate <= ci.hi
    assert ci.se == pytest.approx(np.std(num / den, ddof=1), rel=1e-12)


def test_degenerate_inputs_raise() -> None:
    t = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="censored"):
        harrell_c(t, np.zeros(3, bool), t)
    with pytest.raises(ValueError, match="comparable"):  # all events at the same time
        harrell_c(np.ones(3), np.ones(3, bool), t)
    with pytest.raises(ValueError, match="finite"):
        harrell_c(t, np.ones(3, bool), np.array([1.0, np.nan, 0.0]))
