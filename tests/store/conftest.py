"""Shared synthetic stores for the store tests (written per the catalog/feature contracts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from radstore.config import Settings, load_settings
from radstore.store.synthetic import SyntheticStore, write_synthetic_store

VISITS = (0, 12, 24, 36, 48, 60, 72)


def spec_dict(**overrides: Any) -> dict[str, Any]:
    """A valid survival study over the synthetic store; ``overrides`` replace top-level keys."""
    base: dict[str, Any] = {
        "name": "t_os",
        "population": "age >= 30",
        "endpoint": {"kind": "survival", "time": "os_months", "event": "os_event"},
        "features": [{"feature_set": "radiomics_original", "phases": ["arterial", "venous"]},
                     {"feature_set": "deep_resnet50", "phases": ["venous"]}],
        "clinical": ["age", "grade"],
        "split": {"train_cohorts": ["h1", "h2"], "external_cohorts": ["h3"], "seed": 3},
        "models": [{"name": "rad", "kind": "lasso_cox"},
                   {"name": "comb", "kind": "cox", "inputs": ["rad", "clinical"]}],
    }
    base.update(overrides)
    return base


def write_spec(directory: Path, **overrides: Any) -> Path:
    data = spec_dict(**overrides)
    path = directory / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def longitudinal(tmp_path_factory: pytest.TempPathFactory) -> SyntheticStore:
    """3 cohorts (24/16/12 patients), arterial + venous, visits at weeks 0 (pre-index) to 72."""
    return write_synthetic_store(tmp_path_factory.mktemp("store") / "store", visit_weeks=VISITS)


@pytest.fixture(scope="module")
def settings(longitudinal: SyntheticStore) -> Settings:
    return load_settings(store=longitudinal.root, progress=False)
