"""Typed settings, validated once at the boundary.

Settings come from (highest priority first) explicit keyword arguments, environment variables
prefixed ``RADSTORE_`` (nested with ``__``, e.g. ``RADSTORE_RAY__ADDRESS``), a YAML file given
with ``--config`` / :func:`load_settings`, and the defaults below.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PHASES: tuple[str, ...] = ("non_contrast", "arterial", "venous", "portal", "delayed")
Phase = Literal["non_contrast", "arterial", "venous", "portal", "delayed"]


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RaySettings(StrictModel):
    address: str | None = Field(None, description="Ray cluster address; None starts a local Ray")
    num_cpus: int | None = None
    num_gpus: int | None = None
    gpus_per_actor: float = Field(1.0, gt=0, le=1, description="fractional GPU share per actor")


class DaskSettings(StrictModel):
    scheduler: str = Field("threads", description="'threads', 'processes', 'sync' or a scheduler address")
    num_workers: int | None = None


class MlflowSettings(StrictModel):
    tracking_uri: str | None = Field(None, description="None: SQLite under the store")
    registry_uri: str | None = None


class Settings(BaseSettings):
    """Process-wide settings. ``store`` is the root of every artefact (see :class:`StoreLayout`)."""

    model_config = SettingsConfigDict(
        env_prefix="RADSTORE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    store: Path = Field(Path("radstore-data"), description="root directory of the store")
    pseudonym_key_file: Path = Field(
        Path("~/.config/radstore/pseudonym.key"),
        description="secret key for patient pseudonyms; kept apart from the data",
    )
    pseudonym_key: str | None = Field(
        None, description="the key itself (overrides the file; for CI and containers)"
    )
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True
    ray: RaySettings = RaySettings()
    dask: DaskSettings = DaskSettings()
    mlflow: MlflowSettings = MlflowSettings()

    @field_validator("store", "pseudonym_key_file", mode="after")
    @classmethod
    def _expand(cls, p: Path) -> Path:
        return p.expanduser()

    @property
    def layout(self) -> StoreLayout:
        return StoreLayout(self.store)

    def secret_key(self) -> bytes:
        """The pseudonymisation key: from ``pseudonym_key``, else the key file (created 0600 once)."""
        if self.pseudonym_key:
            return self.pseudonym_key.encode()
        path = self.pseudonym_key_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return path.read_text().strip().encode()

    def resolved_device(self) -> str:
        """'cuda' when asked or when ``auto`` finds a GPU, else 'cpu'."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


class StoreLayout:
    """Every path inside the store, in one place (contracts in docs/architecture.md)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def volumes(self) -> Path:
        return self.root / "volumes.zarr"

    def scan_group(self, cohort_id: str, patient_id: str, scan_id: str) -> str:
        """Zarr group path of one scan, relative to :attr:`volumes`."""
        return f"{cohort_id}/{patient_id}/{scan_id}"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog"

    def catalog_table(self, name: str, cohort_id: str) -> Path:
        """``catalog/<name>/cohort=<id>/part-0.parquet`` for scans, rejections, clinical, outcomes."""
        return self.catalog / name / f"cohort={cohort_id}" / "part-0.parquet"

    @property
    def features(self) -> Path:
        return self.root / "features"

    def feature_dir(self, feature_set: str, version: str, phase: str, cohort_id: str) -> Path:
        return self.features / feature_set / version / f"phase={phase}" / f"cohort={cohort_id}"

    @property
    def feast_repo(self) -> Path:
        return self.root / "feast"

    @property
    def training_sets(self) -> Path:
        return self.root / "training_sets"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (if any), then env vars, then ``overrides``; validate once."""
    data: dict[str, Any] = {}
    if config is not None:
        if not Path(config).is_file():
            raise FileNotFoundError(f"config file not found: {config}")
        loaded = yaml.safe_load(Path(config).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config}: top level must be a mapping, got {type(loaded).__name__}")
        data.update(loaded)
    base = _SettingsFromInit(**data)
    explicit = {k: v for k, v in overrides.items() if v is not None}
    if not explicit:
        return Settings(**base.model_dump())
    return Settings(**{**base.model_dump(), **explicit})


class _SettingsFromInit(Settings):
    """Settings where init kwargs (the YAML file) rank below environment variables."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings, dotenv_settings, file_secret_settings
