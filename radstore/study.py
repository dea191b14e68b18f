"""Study specs (``studies/<study>.yaml``): the seeds' analyses as validated configs.

A study names its population, endpoint, input features, cohort split, models and promotion gates.
``assemble`` uses population/endpoint/features/clinical/split to build the training set; ``train``
uses models; ``promote`` uses gates. Everything is validated on load, before any work starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from radstore.config import PHASES

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoint(_Strict):
    """Survival (``time`` + ``event`` columns of the outcomes table) or binary (``label``)."""

    kind: Literal["survival", "binary"]
    time: str | None = None
    event: str | None = None
    label: str | None = None
    horizons: tuple[float, ...] = Field(
        (12.0, 24.0, 36.0), description="time points for td-AUC, calibration, DCA (time units)"
    )
    landmark_weeks: float | None = Field(
        None, ge=0, description="longitudinal: use the latest scan at or before index + landmark"
    )
    landmarks: tuple[float, ...] = Field(
        (), description="landmark times (time units) at which train re-evaluates each model on "
        "the patients still at risk, time measured from the landmark (van Houwelingen 2007)"
    )

    @model_validator(mode="after")
    def _columns(self) -> Endpoint:
        if self.kind == "survival" and not (self.time and self.event):
            raise ValueError("survival endpoint needs 'time' and 'event' columns")
        if self.kind == "binary" and not self.label:
            raise ValueError("binary endpoint needs a 'label' column")
        if self.landmarks and self.kind != "survival":
            raise ValueError("landmarks need a survival endpoint")
        if any(t <= 0 for t in self.landmarks):
            raise ValueError(f"landmarks must be > 0, got {list(self.landmarks)}")
        return self

    def survival_columns(self) -> tuple[str, str]:
        """The ``(time, event)`` column names of a survival endpoint (``ValueError`` otherwise)."""
        if self.kind != "survival" or self.time is None or self.event is None:
            raise ValueError("not a survival endpoint with 'time' and 'event' columns")
        return self.time, self.event


class FeatureInput(_Strict):
    """One feature set at one or more phases; ``version`` None = the only/latest version."""

    feature_set: str
    phases: tuple[str, ...]
    version: str | None = None

    @field_validator("phases")
    @classmethod
    def _phases(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in v if p not in PHASES]
        if bad or not v:
            raise ValueError(f"phases must be a non-empty subset of {PHASES}, got {list(v)}")
        return v


class Split(_Strict):
    """Seeded stratified train/internal split within ``train_cohorts``; external = other cohorts.

    ``kind: cv`` keeps all ``train_cohorts`` rows as train (models use k-fold / Monte-Carlo CV).
    """

    kind: Literal["holdout", "cv"] = "holdout"
    train_cohorts: tuple[str, ...]
    external_cohorts: tuple[str, ...] = ()
    internal_fraction: float = Field(0.3, ge=0.0, lt=1.0)
    stratify: str | None = Field(None, description="column to stratify on; None: the endpoint's "
                                 "event (survival) or label (binary)")
    seed: int = 0

    @model_validator(mode="after")
    def _disjoint(self) -> Split:
        both = set(self.train_cohorts) & set(self.external_cohorts)
        if both:
            raise ValueError(f"cohorts {sorted(both)} are in both train_cohorts and external_cohorts")
        if not self.train_cohorts:
            raise ValueError("split.train_cohorts is empty")
        return self


class ModelSpec(_Strict):
    """One model of the study; ``kind`` names a builder in ``radstore.stats`` (checked by train)."""

    name: str
    kind: str
    inputs: tuple[str, ...] = Field(
        ("features",), description="'features' (all feature columns), 'clinical', or model names "
        "whose score is an input (fusion / combined models)"
    )
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"model name {v!r} must match {_NAME.pattern}")
        return v


class Gate(_Strict):
    """Promotion gate: ``metric`` on ``cohort`` must be ≥ ``min`` (or ≤ ``max``); with
    ``vs_champion`` it must also be at least the current champion's on the same data."""

    metric: str
    cohort: Literal["train", "internal", "external", "cv"] = "external"
    min: float | None = None
    max: float | None = None
    vs_champion: bool = False


class StudySpec(_Strict):
    name: str
    description: str = ""
    population: str | None = Field(
        None, description="SQL boolean expression over the clinical table's columns"
    )
    endpoint: Endpoint
    features: tuple[FeatureInput, ...] = ()
    clinical: tuple[str, ...] = Field((), description="clinical columns carried into the set")
    missing_features: Literal["drop", "keep"] = Field(
        "drop", description="patients without a scan at or before the index date (+ landmark) in "
        "some feature view: dropped before the split (counted in the manifest), or kept with nulls"
    )
    split: Split
    models: tuple[ModelSpec, ...] = ()
    gates: tuple[Gate, ...] = ()
    champion_model: str | None = Field(None, description="the model that promote registers")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"study name {v!r} must match {_NAME.pattern}")
        return v

    @model_validator(mode="after")
    def _refs(self) -> StudySpec:
        if not self.features and not self.clinical:
            raise ValueError("a study needs at least one feature input or clinical column")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate model names in {names}")
        known = {"features", "clinical", *names}
        for m in self.models:
            bad = [i for i in m.inputs if i not in known]
            if bad:
                raise ValueError(f"model {m.name!r}: unknown inputs {bad} (known: {sorted(known)})")
        if self.champion_model is not None and self.champion_model not in names:
            raise ValueError(f"champion_model {self.champion_model!r} is not one of {names}")
        return self


class StudySpecError(ValueError):
    """A study file that cannot be used; the message names the file and the problem."""


def load_study(path: Path | str) -> StudySpec:
    path = Path(path)
    if not path.is_file():
        raise StudySpecError(f"study spec not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise StudySpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise StudySpecError(f"{path}: top level must be a mapping")
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        msgs = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise StudySpecError(f"{path}: {msgs}") from exc


def find_study(name_or_path: str, studies_dir: Path | str = "studies") -> Path:
    """``studies/<name>.yaml`` or an explicit path."""
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"}:
        return p
    return Path(studies_dir) / f"{name_or_path}.yaml"
