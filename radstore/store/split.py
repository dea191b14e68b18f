"""Cohort split of a training set (pure: arrays in, labels out)."""

from __future__ import annotations

import numpy as np

from radstore.study import Split


class SplitError(ValueError):
    """The split cannot be made (too few patients, a stratum with one member, ...)."""


def assign_split(cohorts: np.ndarray, strata: np.ndarray | None, split: Split) -> tuple[np.ndarray, str]:
    """Label each row ``train``, ``internal`` or ``external``.

    Rows of ``split.external_cohorts`` are ``external``. Within ``split.train_cohorts`` a holdout
    split sends ``internal_fraction`` of the rows to ``internal`` with scikit-learn's
    ``train_test_split(random_state=seed)``, stratified by cohort × stratum so each hospital and
    each outcome class keep the 7:3 ratio; if a cohort × stratum cell has a single member it
    stratifies by the stratum alone. ``kind: cv`` keeps every training-cohort row as ``train``.
    Returns the labels and what the split was stratified by. Rows must arrive in a fixed order
    (the caller sorts them) for the split to be reproducible.
    """
    from sklearn.model_selection import train_test_split

    labels = np.full(len(cohorts), "", dtype=object)
    labels[np.isin(cohorts, split.external_cohorts)] = "external"
    pool = np.flatnonzero(np.isin(cohorts, split.train_cohorts))
    labels[pool] = "train"
    if split.kind == "cv" or split.internal_fraction == 0 or len(pool) == 0:
        return labels, "none"
    attempts: list[tuple[str, np.ndarray | None]] = []
    if strata is not None:
        s = np.asarray(strata, dtype=object)[pool].astype(str)
        attempts += [("cohort x stratum", np.char.add(np.char.add(cohorts[pool].astype(str), "|"), s)),
                     ("stratum", s)]
    else:
        attempts.append(("cohort", cohorts[pool].astype(str)))
    last: Exception | None = None
    for by, key in attempts:
        try:
            _, internal = train_test_split(pool, test_size=split.internal_fraction,
                                           random_state=split.seed, stratify=key)
        except ValueError as exc:
            last = exc
            continue
        labels[internal] = "internal"
        return labels, by
    raise SplitError(f"cannot split {len(pool)} training-cohort patients "
                     f"{split.internal_fraction:.0%} internal: {last}")
