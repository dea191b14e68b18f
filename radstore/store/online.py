"""Direct online reads of one patient's full feature vector.

``FeatureStore.get_online_features`` plans every request (registry lookups, feature-ref parsing,
response assembly, type conversion per value). For the scoring service's hot path, this reader
resolves the views once and then calls the configured online store's ``online_read`` (SQLite
here, Redis in production) for each view with a pre-serialised entity key. It reads the same
rows that ``get_online_features`` reads (tested equal); embeddings come back as float32 arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from feast import FeatureStore
from feast.infra.online_stores.helpers import get_online_store_from_config
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import feast_value_type_to_python_type


class OnlineVectors:
    """``reader(patient_id) -> {"<view>__<feature>": value or None}`` over ``views``."""

    def __init__(self, fs: FeatureStore, views: list[str]) -> None:
        self._config = fs.config
        self._store = get_online_store_from_config(fs.config.online_store)
        self._views = [fs.get_feature_view(v) for v in views]
        self._names = {v.name: [f.name for f in v.features] for v in self._views}

    def __call__(self, patient_id: str) -> dict[str, Any]:
        key = EntityKey(join_keys=["patient_id"], entity_values=[Value(string_val=patient_id)])
        out: dict[str, Any] = {}
        for view in self._views:
            _, values = self._store.online_read(self._config, view, [key], self._names[view.name])[0]
            for name in self._names[view.name]:
                v = None if values is None else values.get(name)
                if v is None:
                    out[f"{view.name}__{name}"] = None
                elif v.WhichOneof("val") == "float_list_val":
                    out[f"{view.name}__{name}"] = np.asarray(v.float_list_val.val, dtype=np.float32)
                else:
                    out[f"{view.name}__{name}"] = feast_value_type_to_python_type(v)
        return out
