"""Kernel decomposition ``K = c0 K0 + c1 Ky + K_rest`` (NumPy reference): least squares on the
vectorised kernels."""
import numpy as np

__all__ = ["kernel_decomposition"]


def kernel_decomposition(K, K0, Ky):
    """(c0, c1, K_rest) by ``lstsq`` of vec K on [vec K0, vec Ky]."""
    A = np.stack([K0.ravel(), Ky.ravel()], axis=1)
    c, *_ = np.linalg.lstsq(A, K.ravel(), rcond=None)
    return float(c[0]), float(c[1]), K - c[0] * K0 - c[1] * Ky
