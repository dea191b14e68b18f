"""Feast objects generated from the store (contract: docs/architecture.md, "Feast").

- entities ``patient`` (join key ``patient_id``) and ``scan`` (``scan_id``);
- one FeatureView per feature set × phase, ``<feature_set>__<phase>``, keyed by ``patient``,
  over a derived Parquet file ``feast/data/<view>.parquet`` that holds only the scan-level
  ``lesion = 0`` rows of the registered version (Feast's FileSource cannot filter rows);
  radiomic features are Float64 (Float32 if stored so), deep embeddings ``Array(Float32)``;
- ``clinical`` (patient, index date) and ``scans`` (scan metadata, keyed by ``scan``);
- one FeatureService per study model, ``<study>__<model>``, with the study's views and, when the
  model (or a model it takes a score from) uses ``clinical``, the study's clinical columns.

Importing this module imports Feast (slow, ~10 s); the CLI imports it only inside commands.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Bool, FeastType, Float32, Float64, Int32, Int64, String, UnixTimestamp

from radstore.store.catalog import FeatureTable
from radstore.study import StudySpec

PATIENT = Entity(name="patient", join_keys=["patient_id"], value_type=ValueType.STRING,
                 description="pseudonymous patient (radstore.ids.patient_id)")
SCAN = Entity(name="scan", join_keys=["scan_id"], value_type=ValueType.STRING,
              description="one CT series (radstore.ids.scan_id)")
SOURCE_KEYS = ("cohort_id", "patient_id", "scan_id", "event_timestamp", "created_timestamp")


def feast_type(t: pa.DataType) -> FeastType | None:
    """Arrow → Feast type; None for types Feast cannot serve (they are left out of the view)."""
    if pa.types.is_float64(t):
        return Float64
    if pa.types.is_float32(t):
        return Float32
    if pa.types.is_int64(t):
        return Int64
    if pa.types.is_integer(t):
        return Int32 if t.bit_width <= 32 else Int64
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return String
    if pa.types.is_boolean(t):
        return Bool
    if pa.types.is_timestamp(t):
        return UnixTimestamp
    if (pa.types.is_list(t) or pa.types.is_fixed_size_list(t)) and pa.types.is_float32(t.value_type):
        return Array(Float32)
    return None


def _source(name: str, path: Path, created: bool = True) -> FileSource:
    return FileSource(name=f"{name}_source", path=str(path.resolve()), timestamp_field="event_timestamp",
                      created_timestamp_column="created_timestamp" if created else "")


def feature_view(table: FeatureTable, path: Path) -> FeatureView:
    """The view ``<feature_set>__<phase>`` over its derived lesion-0 Parquet file ``path``."""
    schema = [Field(name=f, dtype=ft) for f, t in zip(table.features, table.types, strict=True)
              if (ft := feast_type(t)) is not None]
    return FeatureView(
        name=table.name, entities=[PATIENT], ttl=timedelta(0), schema=schema,
        source=_source(table.name, path), online=True,
        description=f"{table.feature_set} {table.version}, {table.phase} phase, lesion 0",
        tags={"feature_set": table.feature_set, "version": table.version, "phase": table.phase,
              "kind": table.kind},
    )


def table_view(name: str, schema: pa.Schema, path: Path, entity: Entity, skip: Iterable[str]) -> FeatureView:
    """A view over a catalog-derived Parquet file (every servable column not in ``skip``)."""
    fields = [Field(name=f.name, dtype=ft) for f in schema
              if f.name not in set(skip) and (ft := feast_type(f.type)) is not None]
    return FeatureView(name=name, entities=[entity], ttl=timedelta(0), schema=fields,
                       source=_source(name, path, "created_timestamp" in schema.names), online=True)


def model_inputs(spec: StudySpec, model: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """``features`` / ``clinical`` needed by ``model``, following score inputs of other models."""
    by_name = {m.name: m for m in spec.models}
    out: set[str] = set()
    for i in by_name[model].inputs:
        if i in ("features", "clinical"):
            out.add(i)
        elif i not in seen:
            out |= model_inputs(spec, i, seen | {model})
    return out


def feature_services(spec: StudySpec, views: dict[str, FeatureView],
                     clinical: FeatureView | None) -> list[FeatureService]:
    """One service per model of ``spec``; raises KeyError naming a view the store lacks."""
    names = [f"{fi.feature_set}__{ph}" for fi in spec.features for ph in fi.phases]
    missing = [n for n in names if n not in views]
    if missing:
        raise KeyError(f"study {spec.name}: views {missing} are not registered")
    out = []
    for m in spec.models:
        need = model_inputs(spec, m.name)
        fvs: list = [views[n] for n in names] if "features" in need else []
        if "clinical" in need and spec.clinical and clinical is not None:
            fvs.append(clinical[list(spec.clinical)])
        if fvs:
            out.append(FeatureService(name=f"{spec.name}__{m.name}", features=fvs,
                                      tags={"study": spec.name, "model": m.name}))
    return out


@dataclass(frozen=True)
class FeastObjects:
    entities: list[Entity]
    views: list[FeatureView]
    services: list[FeatureService]

    def all(self) -> list:
        return [*self.entities, *self.views, *self.services]


def feature_refs(views: Iterable[FeatureTable], clinical: Iterable[str] = ()) -> list[str]:
    """``<view>:<feature>`` refs for :meth:`FeatureStore.get_historical_features` /
    ``get_online_features``; with ``full_feature_names=True`` the columns come back as
    ``<view>__<feature>`` (the training-set names)."""
    refs = [f"{v.name}:{f}" for v in sorted(views, key=lambda t: t.name) for f in sorted(v.features)]
    return refs + [f"clinical:{c}" for c in clinical]
