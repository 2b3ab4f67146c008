"""Decomposition of a kernel into initial-kernel, target and remaining parts (the analysis of
trained and path-averaged tangent kernels in LeJeune & Alemohammad, CPAL 2024)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._validation import as_matrix, as_square

__all__ = ["KernelDecomposition", "kernel_decomposition"]


@dataclass(frozen=True)
class KernelDecomposition:
    """``K = c0 K0 + c1 Ky + rest``; ``rest_fraction = |rest|_F / |K|_F``."""

    c0: float
    c1: float
    rest: np.ndarray
    rest_fraction: float


def kernel_decomposition(K, K0, Ky) -> KernelDecomposition:
    """Least-squares projection of ``K`` onto ``span{K0, Ky}`` in the Frobenius inner product,
    ``K = c0 K0 + c1 Ky + K_rest`` with ``K_rest`` orthogonal to both. ``Ky`` is a target kernel
    ((P, P)), or targets / output changes ``y`` ((P,) or (P, C)), for which ``Ky = y y^T``."""
    K = as_square("K", K)
    K0 = as_square("K0", K0)
    Y = as_matrix("Ky", Ky, allow_1d=True)   # a kernel, or targets y (1-D or non-square 2-D)
    Ky = Y if (np.ndim(Ky) == 2 and Y.shape[0] == Y.shape[1]) else np.ascontiguousarray(Y @ Y.T)
    c0, c1, rest = _core.kernels.kernel_decomposition(K, K0, Ky)
    return KernelDecomposition(c0=float(c0), c1=float(c1), rest=rest,
                               rest_fraction=float(np.linalg.norm(rest) / max(np.linalg.norm(K), np.finfo(float).tiny)))
