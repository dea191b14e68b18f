"""The cohort split kernel: seeded, stratified, external cohorts untouched."""

from __future__ import annotations

import numpy as np
import pytest

from radstore.store.split import SplitError, assign_split
from radstore.study import Split


def _data(n1: int = 60, n2: int = 40, n3: int = 30) -> tuple[np.ndarray, np.ndarray]:
    cohorts = np.array(["h1"] * n1 + ["h2"] * n2 + ["h3"] * n3, dtype=object)
    strata = np.array([str(i % 3 == 0) for i in range(n1 + n2 + n3)], dtype=object)
    return cohorts, strata


def test_holdout_is_stratified_seeded_and_keeps_external() -> None:
    cohorts, strata = _data()
    split = Split(train_cohorts=("h1", "h2"), external_cohorts=("h3",), seed=5)
    labels, by = assign_split(cohorts, strata, split)
    again, _ = assign_split(cohorts, strata, split)
    other, _ = assign_split(cohorts, strata,
                            Split(train_cohorts=("h1", "h2"), external_cohorts=("h3",), seed=6))
    assert by == "cohort x stratum"
    assert (labels == again).all() and not (labels == other).all()
    assert (labels[cohorts == "h3"] == "external").all()
    assert (labels == "internal").sum() == 30  # 30% of 100
    for c, n in (("h1", 60), ("h2", 40)):
        assert (labels[cohorts == c] == "internal").sum() == round(0.3 * n)
    pos = (strata == "True") & (cohorts != "h3")
    assert abs((labels[pos] == "internal").mean() - 0.3) < 0.05


def test_cv_keeps_all_train_and_tiny_strata_fail_clearly() -> None:
    cohorts, strata = _data()
    labels, by = assign_split(cohorts, strata, Split(kind="cv", train_cohorts=("h1", "h2", "h3")))
    assert (labels == "train").all() and by == "none"
    with pytest.raises(SplitError, match="cannot split 2"):
        assign_split(np.array(["h1", "h1"], dtype=object), np.array(["a", "b"], dtype=object),
                     Split(train_cohorts=("h1",)))
