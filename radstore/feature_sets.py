"""Feature set specs: ``feature_sets/<name>.yaml`` → a validated :class:`FeatureSetSpec`.

YAML fields: ``name``, ``kind`` (``radiomics`` | ``deep``), ``segmentation_id`` (default ``gtv``),
``phases`` (default all), ``settings``. For ``deep`` the settings are a
:class:`radstore.deep.config.DeepSettings` mapping (validated, defaults filled in); for
``radiomics`` a PyRadiomics params mapping or a path to a params YAML (relative paths are resolved
against the feature set file's folder, e.g. ``params/original.yaml``), whose content is inlined.
``version = radstore.ids.settings_version(settings)`` of the resolved settings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from radstore.config import PHASES, Phase
from radstore.ids import settings_version

FEATURE_SET_DIR = Path(__file__).resolve().parents[1] / "feature_sets"
_NAME = re.compile(r"^[a-z0-9_]+$")


class FeatureSetError(ValueError):
    """A feature set file is missing or invalid; the message names the file, field and rule."""


class FeatureSetSpec(BaseModel):
    """One feature set (see module docstring). ``settings`` is already resolved (no paths)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["radiomics", "deep"]
    segmentation_id: str = "gtv"
    phases: tuple[Phase, ...] = cast(tuple[Phase, ...], PHASES)
    settings: dict[str, Any]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"name {v!r} must match [a-z0-9_]+ (it becomes a Feast view name)")
        return v

    @property
    def version(self) -> str:
        return settings_version(self.settings)

    def deep_settings(self) -> Any:
        """The typed :class:`DeepSettings` (``kind: deep`` only)."""
        from radstore.deep.config import DeepSettings

        if self.kind != "deep":
            raise ValueError(f"feature set {self.name!r} is {self.kind}, not deep")
        return DeepSettings.model_validate(self.settings)

    def settings_document(self) -> dict[str, Any]:
        """What ``_settings.json`` holds: the spec, with ``settings`` the hashed object."""
        return {"name": self.name, "kind": self.kind, "version": self.version,
                "segmentation_id": self.segmentation_id, "phases": list(self.phases),
                "settings": self.settings}


def _resolve_settings(kind: str, settings: Any, base: Path, where: str) -> dict[str, Any]:
    if kind == "deep":
        from radstore.deep.config import DeepSettings

        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise FeatureSetError(f"{where}: field 'settings' must be a mapping for kind deep")
        try:
            return DeepSettings.model_validate(settings).model_dump(mode="json")
        except ValidationError as exc:
            raise FeatureSetError(f"{where}: invalid deep settings: {_fmt(exc, 'settings')}") from exc
    if isinstance(settings, str):
        p = Path(settings)
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise FeatureSetError(f"{where}: field 'settings' names a params file that does not exist: {p}")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise FeatureSetError(f"{p}: a PyRadiomics params file must be a mapping")
        return loaded
    if isinstance(settings, dict):
        return settings
    raise FeatureSetError(f"{where}: field 'settings' must be a PyRadiomics params mapping or a path to one")


def _fmt(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in (prefix, *e["loc"]) if x != "")
        parts.append(f"field '{loc}': {e['msg']}")
    return "; ".join(parts)


def spec_from_dict(data: dict[str, Any], base: Path = FEATURE_SET_DIR, where: str = "<dict>"
                   ) -> FeatureSetSpec:
    """Validate a feature set mapping (``where`` names its source in errors)."""
    if not isinstance(data, dict):
        raise FeatureSetError(f"{where}: top level must be a mapping")
    kind = data.get("kind")
    if kind not in ("radiomics", "deep"):
        raise FeatureSetError(f"{where}: field 'kind' must be 'radiomics' or 'deep', got {kind!r}")
    resolved = {**data, "settings": _resolve_settings(kind, data.get("settings"), base, where)}
    try:
        return FeatureSetSpec.model_validate(resolved)
    except ValidationError as exc:
        raise FeatureSetError(f"{where}: {_fmt(exc)}") from exc


def load_feature_set(name_or_path: str | Path, directory: Path = FEATURE_SET_DIR) -> FeatureSetSpec:
    """A feature set by name (``<directory>/<name>.yaml``) or by YAML path."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = directory / f"{name_or_path}.yaml"
    if not p.is_file():
        known = sorted(x.stem for x in directory.glob("*.yaml")) if directory.is_dir() else []
        raise FeatureSetError(f"feature set not found: {p} (known in {directory}: {known})")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise FeatureSetError(f"{p}: not valid YAML: {exc}") from exc
    return spec_from_dict(data, base=p.parent, where=str(p))


def list_feature_sets(directory: Path = FEATURE_SET_DIR) -> list[str]:
    return sorted(x.stem for x in directory.glob("*.yaml"))
