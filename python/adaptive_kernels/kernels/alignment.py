"""Kernel alignment metrics: kernel-target alignment and centered kernel alignment (CKA)."""
from __future__ import annotations


from .. import _core
from .._validation import as_matrix, as_square, check_n_threads


def kernel_alignment(K, y, *, n_threads: int | None = None) -> float:
    """Kernel-target alignment ``<K, Y Y^T>_F / (||K||_F ||Y Y^T||_F)`` (Cristianini et al. 2002).

    ``y`` may be (P,) or (P, C). Equals 1 for ``K = y y^T``; in [-1, 1] in general, in [0, 1]
    for PSD ``K``.
    """
    K = as_square("K", K)
    Y = as_matrix("y", y, allow_1d=True)
    if Y.shape[0] != K.shape[0]:
        raise ValueError(f"y: has {Y.shape[0]} rows, K is {K.shape[0]} x {K.shape[0]}")
    return _core.kernels.kernel_alignment(K, Y, n_threads=check_n_threads(n_threads))


def cka(K1, K2, *, n_threads: int | None = None) -> float:
    """Centered kernel alignment of two (P, P) kernels (Cortes et al. 2012; Kornblith et al. 2019).

    ``<H K1 H, H K2 H>_F / (||H K1 H||_F ||H K2 H||_F)`` with ``H = I - 11^T / P``.
    Invariant to scaling either kernel and to adding constants.
    """
    K1 = as_square("K1", K1)
    K2 = as_square("K2", K2)
    if K1.shape != K2.shape:
        raise ValueError(f"K2: shape {K2.shape} does not match K1 {K1.shape}")
    return _core.kernels.cka(K1, K2, n_threads=check_n_threads(n_threads))
