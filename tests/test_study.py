"""Study spec validation: bad specs fail with the file and the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from radstore.study import StudySpecError, load_study

GOOD = """
name: demo_os
endpoint: {kind: survival, time: os_months, event: os_event}
features:
  - {feature_set: radiomics_original, phases: [arterial, venous]}
clinical: [age, grade]
split: {train_cohorts: [h1, h2], external_cohorts: [h3], stratify: os_event, seed: 1}
models:
  - {name: rad_score, kind: lasso_cox}
  - {name: combined, kind: cox, inputs: [rad_score, clinical]}
gates:
  - {metric: c_index, cohort: external, min: 0.6, vs_champion: true}
champion_model: combined
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def test_good_spec(tmp_path: Path) -> None:
    s = load_study(_write(tmp_path, GOOD))
    assert s.split.external_cohorts == ("h3",) and s.models[1].inputs == ("rad_score", "clinical")
    assert s.endpoint.landmarks == ()  # optional, backward compatible
    lm = load_study(_write(tmp_path, GOOD.replace("event: os_event}",
                                                  "event: os_event, landmarks: [6, 12]}")))
    assert lm.endpoint.landmarks == (6.0, 12.0)


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("external_cohorts: [h3]", "external_cohorts: [h2]", "both train_cohorts and external"),
        ("event: os_event}", "}", "needs 'time' and 'event'"),
        ("phases: [arterial, venous]", "phases: [late]", "phases"),
        ("inputs: [rad_score, clinical]", "inputs: [nope]", "unknown inputs"),
        ("champion_model: combined", "champion_model: other", "champion_model"),
        ("name: demo_os", "name: demo_os\nbogus: 1", "bogus"),
        ("event: os_event}", "event: os_event, landmarks: [0]}", "landmarks must be > 0"),
    ],
)
def test_bad_specs_fail_clearly(tmp_path: Path, old: str, new: str, needle: str) -> None:
    with pytest.raises(StudySpecError) as exc:
        load_study(_write(tmp_path, GOOD.replace(old, new)))
    assert needle in str(exc.value) and "s.yaml" in str(exc.value)


def test_missing_features_policy(tmp_path: Path) -> None:
    assert load_study(_write(tmp_path, GOOD)).missing_features == "drop"
    keep = load_study(_write(tmp_path, GOOD + "missing_features: keep\n"))
    assert keep.missing_features == "keep"
    with pytest.raises(StudySpecError, match="missing_features"):
        load_study(_write(tmp_path, GOOD + "missing_features: impute\n"))
