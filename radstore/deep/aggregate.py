"""Aggregation of image-level embeddings to lesion and patient level (arrays in, arrays out)."""

from __future__ import annotations

import numpy as np


def kmeans_largest_cluster_mean(x: np.ndarray, k: int = 2, seed: int = 0) -> np.ndarray:
    """Seed 001 (Song et al., DLR features extraction): cluster the ``n × d`` slice features with
    k-means (k = 2), keep the largest cluster, return its mean (``1 × d``). Ties between cluster
    sizes go to the cluster holding the earliest slice; fewer than ``k`` distinct rows → the mean."""
    if x.shape[0] == 0:
        raise ValueError("no embeddings to aggregate")
    if len(np.unique(x, axis=0)) < k:
        return x.mean(axis=0)
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x.astype(np.float64))
    sizes = np.bincount(labels, minlength=k)
    best = max(range(k), key=lambda c: (sizes[c], -int(np.argmax(labels == c))))
    return x[labels == best].mean(axis=0)


def aggregate(x: np.ndarray, method: str, k: int = 2, seed: int = 0) -> np.ndarray:
    """``mean`` (average pooling, seed 004), ``max`` (element-wise), or ``kmeans`` (seed 001) over
    the rows of ``x`` (``n × d``) → ``d`` float32."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty n × d array, got shape {x.shape}")
    if method == "mean":
        out = x.mean(axis=0)
    elif method == "max":
        out = x.max(axis=0)
    elif method == "kmeans":
        out = kmeans_largest_cluster_mean(x, k, seed)
    else:
        raise ValueError(f"unknown aggregation {method!r} (mean, max, kmeans)")
    return np.asarray(out, dtype=np.float32)
