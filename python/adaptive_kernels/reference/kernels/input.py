"""The input kernel ``K^0`` of every theory (one definition for the whole reference)."""
from __future__ import annotations

import numpy as np


def _check_inputs(X1, X2):
    X1 = np.atleast_2d(np.asarray(X1, dtype=float))
    X2 = X1 if X2 is None else np.atleast_2d(np.asarray(X2, dtype=float))
    if X1.ndim != 2 or X2.ndim != 2 or X1.shape[1] != X2.shape[1]:
        raise ValueError(f"X1 and X2 must be 2-D with the same number of columns, "
                         f"got shapes {X1.shape} and {X2.shape}")
    return X1, X2


def _check_scales(sigma_w, sigma_b, depth=0):
    if sigma_w < 0 or sigma_b < 0:
        raise ValueError(f"sigma_w and sigma_b must be >= 0, got {sigma_w}, {sigma_b}")
    if int(depth) != depth or depth < 0:
        raise ValueError(f"depth must be an integer >= 0, got {depth}")


def input_kernel(X1, X2=None, sigma_w=1.0, sigma_b=0.0):
    """The input kernel ``K^0(x, x') = sigma_w^2 x.x' / d + sigma_b^2``, shape (P1, P2); exactly
    symmetric with an exact diagonal when ``X2`` is None."""
    _check_scales(sigma_w, sigma_b)
    symmetric = X2 is None
    X1, X2 = _check_inputs(X1, X2)
    K = sigma_w ** 2 * (X1 @ X2.T) / X1.shape[1] + sigma_b ** 2
    if symmetric:  # exact symmetry and a diagonal equal to _linear_diag (rho = 1 exactly)
        K = 0.5 * (K + K.T)
        np.fill_diagonal(K, _linear_diag(X1, sigma_w, sigma_b))
    return K


def _linear_diag(X, sigma_w, sigma_b):
    return sigma_w ** 2 * np.einsum("ij,ij->i", X, X) / X.shape[1] + sigma_b ** 2
