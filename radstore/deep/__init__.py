"""Deep features: pluggable backbones (head removed), global pooling, aggregation, Grad-CAM."""

from radstore.deep.aggregate import aggregate, kmeans_largest_cluster_mean
from radstore.deep.backbones import (
    FeatureExtractor,
    WeightsNotFoundError,
    embed,
    hub_checkpoint_path,
    load_backbone,
)
from radstore.deep.config import BackboneConfig, DeepSettings

__all__ = ["BackboneConfig", "DeepSettings", "FeatureExtractor", "WeightsNotFoundError", "aggregate",
           "embed", "hub_checkpoint_path", "kmeans_largest_cluster_mean", "load_backbone"]
