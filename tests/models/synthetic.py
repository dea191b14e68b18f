"""Training sets in the ``assemble`` shape with planted signal (test helpers)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _frame(rng: np.random.Generator, n: int, p: int, splits: dict[str, int]) -> pd.DataFrame:
    split = np.concatenate([[s] * k for s, k in splits.items()])
    assert len(split) == n
    df = pd.DataFrame({
        "cohort_id": np.where(split == "external", "h3", "h1"),
        "patient_id": [f"P{i:015x}" for i in range(n)],
        "split": split,
    })
    x = rng.normal(size=(n, p))
    feats = pd.DataFrame(x, columns=[f"radiomics_original__arterial__f{j:03d}" for j in range(p)])
    df = pd.concat([df, feats], axis=1)
    df["clinical__age"] = rng.normal(60, 10, n).round(1)
    df["clinical__sex"] = rng.choice(["M", "F"], n)
    df["clinical__grade"] = rng.choice(["G1", "G2", "G3"], n)
    return df


def survival_set(n: int = 600, p: int = 30, seed: int = 0, beta: float = 1.0,
                 splits: dict[str, int] | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Exponential survival times with hazard exp(lp), lp = beta·(f000 − 0.8 f001 + 0.5 f002)
    + 0.03 (age − 60); uniform censoring. Returns (frame, true lp)."""
    rng = np.random.default_rng(seed)
    splits = splits or {"train": n // 2, "internal": n // 4, "external": n - n // 2 - n // 4}
    df = _frame(rng, n, p, splits)
    f = df[[f"radiomics_original__arterial__f{j:03d}" for j in range(3)]].to_numpy()
    lp = beta * (f[:, 0] - 0.8 * f[:, 1] + 0.5 * f[:, 2]) + 0.03 * (df["clinical__age"] - 60)
    t = rng.exponential(12.0 * np.exp(-lp.to_numpy()))
    c = rng.uniform(6, 60, n)
    df["os_months"] = np.minimum(t, c)
    df["os_event"] = (t <= c).astype(int)
    return df, lp.to_numpy()


def binary_set(n: int = 300, p: int = 200, seed: int = 0, signal: float = 0.0,
               splits: dict[str, int] | None = None) -> pd.DataFrame:
    """Labels from a logistic model on f000..f002 with strength ``signal`` (0 = random labels),
    plus a 16-d deep embedding list column."""
    rng = np.random.default_rng(seed)
    splits = splits or {"train": n // 2, "internal": n // 4, "external": n - n // 2 - n // 4}
    df = _frame(rng, n, p, splits)
    f = df[[f"radiomics_original__arterial__f{j:03d}" for j in range(3)]].to_numpy()
    lp = signal * (f[:, 0] + f[:, 1] - f[:, 2])
    df["response"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-lp))).astype(int)
    emb = rng.normal(size=(n, 16)).astype(np.float32)
    df["resnet50__arterial__embedding"] = list(emb)
    return df
