"""One feature formula for NumPy arrays and torch tensors (CPU or CUDA).

The texture families evaluate their feature formulas in NumPy on CPU (small matrices: NumPy's
per-operation cost is a fraction of torch's) and in torch on other devices. The formulas are
written once: arithmetic, ``@``, indexing, ``.sum(axis, keepdims)`` and ``.reshape`` are spelled the
same in both libraries; the few operations that are not come from :func:`ops`, which returns the
NumPy or the torch spelling (:class:`ArrayOps`) for the array at hand. (``where`` needs at least
one array argument: torch gives a scalar-only ``where`` its default dtype, float32.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from radstore.radiomics._neighbours import numpy_path

Array = Any  # numpy.ndarray or torch.Tensor: the formulas take either and return the same kind


class ArrayOps(Protocol):
    """The operations NumPy and torch spell differently (elementwise unless said)."""

    @staticmethod
    def where(cond: Array, a: Array | float, b: Array | float) -> Array: ...
    @staticmethod
    def log2(x: Array) -> Array: ...
    @staticmethod
    def exp(x: Array) -> Array: ...
    @staticmethod
    def sqrt(x: Array) -> Array: ...
    @staticmethod
    def abs(x: Array) -> Array: ...
    @staticmethod
    def fmax(a: Array, b: Array) -> Array:
        """Elementwise maximum ignoring NaN."""
    @staticmethod
    def clamp_min0(x: Array) -> Array:
        """``max(x, 0)``."""
    @staticmethod
    def stack(xs: list[Array], axis: int = 0) -> Array:
        """Along a new axis (default: first)."""
    @staticmethod
    def concat(xs: list[Array], axis: int = -1) -> Array:
        """Along an existing axis (default: last)."""
    @staticmethod
    def zeros_like(x: Array) -> Array: ...
    @staticmethod
    def eigvalsh(x: Array) -> Array:
        """Ascending eigenvalues of the symmetric matrices ``x`` [..., N, N]."""
    @staticmethod
    def levels(like: Array, start: int, stop: int) -> Array:
        """``float64 [start, ..., stop - 1]`` beside ``like`` (same library and device)."""
    @staticmethod
    def as_float64(x: Array) -> Array: ...
    @staticmethod
    def float64_array(values: list[float], like: Array) -> Array:
        """``values`` as a float64 array beside ``like``."""
    @staticmethod
    def flatnonzero(x: Array) -> Array:
        """Indices (int64) of the non-zero entries of the flattened ``x``."""
    @staticmethod
    def amax(x: Array, axis: int) -> Array:
        """Maximum along ``axis`` (values only)."""
    @staticmethod
    def swap_last(x: Array) -> Array:
        """``x`` with its last two axes swapped (a batched transpose)."""
    @staticmethod
    def mean_over_valid(stacked: Array, valid: Array) -> Array:
        """Mean of ``stacked`` [..., A] over the last axis where ``valid`` [..., A] (broadcast) and
        the value is not NaN; NaN where no entry counts."""


class NumpyOps:
    """:class:`ArrayOps` in NumPy."""

    @staticmethod
    def where(cond: Array, a: Array | float, b: Array | float) -> Array:
        return np.where(cond, a, b)

    @staticmethod
    def log2(x: Array) -> Array:
        return np.log2(x)

    @staticmethod
    def exp(x: Array) -> Array:
        return np.exp(x)

    @staticmethod
    def sqrt(x: Array) -> Array:
        return np.sqrt(x)

    @staticmethod
    def abs(x: Array) -> Array:
        return np.abs(x)

    @staticmethod
    def fmax(a: Array, b: Array) -> Array:
        return np.fmax(a, b)

    @staticmethod
    def clamp_min0(x: Array) -> Array:
        return np.maximum(x, 0.0)

    @staticmethod
    def stack(xs: list[Array], axis: int = 0) -> Array:
        return np.stack(xs, axis=axis)

    @staticmethod
    def concat(xs: list[Array], axis: int = -1) -> Array:
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def zeros_like(x: Array) -> Array:
        return np.zeros_like(x)

    @staticmethod
    def eigvalsh(x: Array) -> Array:
        """NumPy's (torch's LAPACK call on the same memory is ~10-15 % faster in a tight loop, but
        ~15 % slower when its code is not in cache, as after reading an image or running other code:
        a single small ROI's GLCM then takes 0.16 ms longer)."""
        return np.linalg.eigvalsh(x)

    @staticmethod
    def levels(like: Array, start: int, stop: int) -> Array:
        return np.arange(start, stop, dtype=np.float64)

    @staticmethod
    def as_float64(x: Array) -> Array:
        return x.astype(np.float64)

    @staticmethod
    def float64_array(values: list[float], like: Array) -> Array:
        return np.asarray(values, dtype=np.float64)

    @staticmethod
    def flatnonzero(x: Array) -> Array:
        return np.flatnonzero(x)

    @staticmethod
    def amax(x: Array, axis: int) -> Array:
        return x.max(axis=axis)

    @staticmethod
    def swap_last(x: Array) -> Array:
        return np.swapaxes(x, -2, -1)

    @staticmethod
    def mean_over_valid(stacked: Array, valid: Array) -> Array:
        if valid.all():  # (the common case: the plain mean, the same sums, unless a NaN is among them)
            total = stacked.sum(-1)
            if not np.isnan(total).any():
                return total / stacked.shape[-1]
        keep = ~np.isnan(stacked)
        keep &= valid
        count = keep.sum(-1)
        total = np.where(keep, stacked, 0.0).sum(-1)
        return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


class TorchOps:
    """:class:`ArrayOps` in torch (any device)."""

    @staticmethod
    def where(cond: Array, a: Array | float, b: Array | float) -> Array:
        return torch.where(cond, a, b)

    @staticmethod
    def log2(x: Array) -> Array:
        return torch.log2(x)

    @staticmethod
    def exp(x: Array) -> Array:
        return torch.exp(x)

    @staticmethod
    def sqrt(x: Array) -> Array:
        return torch.sqrt(x)

    @staticmethod
    def abs(x: Array) -> Array:
        return torch.abs(x)

    @staticmethod
    def fmax(a: Array, b: Array) -> Array:
        return torch.fmax(a, b)

    @staticmethod
    def clamp_min0(x: Array) -> Array:
        return x.clamp(min=0)

    @staticmethod
    def stack(xs: list[Array], axis: int = 0) -> Array:
        return torch.stack(xs, dim=axis)

    @staticmethod
    def concat(xs: list[Array], axis: int = -1) -> Array:
        return torch.cat(xs, dim=axis)

    @staticmethod
    def zeros_like(x: Array) -> Array:
        return torch.zeros_like(x)

    @staticmethod
    def eigvalsh(x: Array) -> Array:
        return torch.linalg.eigvalsh(x)

    @staticmethod
    def levels(like: Array, start: int, stop: int) -> Array:
        return torch.arange(start, stop, dtype=torch.float64, device=like.device)

    @staticmethod
    def as_float64(x: Array) -> Array:
        return x.to(torch.float64)

    @staticmethod
    def float64_array(values: list[float], like: Array) -> Array:
        return torch.tensor(values, dtype=torch.float64, device=like.device)

    @staticmethod
    def flatnonzero(x: Array) -> Array:
        return torch.flatten(x).nonzero().flatten()

    @staticmethod
    def amax(x: Array, axis: int) -> Array:
        return x.amax(dim=axis)

    @staticmethod
    def swap_last(x: Array) -> Array:
        return x.transpose(-2, -1)

    @staticmethod
    def mean_over_valid(stacked: Array, valid: Array) -> Array:
        return torch.where(valid, stacked, torch.full_like(stacked, float("nan"))).nanmean(dim=-1)


def ops(x: Array) -> ArrayOps:
    """The operations for ``x``'s library: :class:`TorchOps` for a tensor, else :class:`NumpyOps`."""
    return TorchOps if isinstance(x, torch.Tensor) else NumpyOps


def evaluate(formulas: Callable[..., dict[str, Array]], *tensors: torch.Tensor, **options: Any
             ) -> dict[str, torch.Tensor]:
    """``formulas(*tensors, **options)``, evaluated in NumPy when the tensors take the NumPy path
    (CPU, outside ``torch_kernels()``: the arrays are small and NumPy's per-operation cost is a
    fraction of torch's), in torch otherwise; the result as tensors either way."""
    if numpy_path(tensors[0]):
        out = formulas(*(t.numpy() for t in tensors), **options)
        return {k: torch.from_numpy(v) for k, v in out.items()}
    return formulas(*tensors, **options)
