"""Kernel predictors: GP posterior / kernel ridge regression and NTK gradient-flow mean."""
import numpy as np
from scipy import linalg

__all__ = ["gp_posterior", "kernel_ridge_mean", "ntk_flow_mean"]


def _regularized(K, ridge):
    K = np.asarray(K, dtype=float)
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    return K + ridge * np.eye(K.shape[0])


def gp_posterior(K_train, K_cross, k_test_diag, y, ridge):
    """GP posterior mean and variance at the test points.

    mean = K_cross^T (K_train + ridge I)^{-1} y                  shape (Q,) or (Q, C)
    var  = k_test_diag - diag(K_cross^T (K_train + ridge I)^{-1} K_cross)   shape (Q,)
    """
    factor = linalg.cho_factor(_regularized(K_train, ridge), lower=True)
    K_cross = np.asarray(K_cross, dtype=float)
    mean = K_cross.T @ linalg.cho_solve(factor, np.asarray(y, dtype=float))
    var = np.asarray(k_test_diag, dtype=float) - np.sum(
        K_cross * linalg.cho_solve(factor, K_cross), axis=0)
    return mean, var


def kernel_ridge_mean(K_train, K_cross, y, ridge):
    """Kernel ridge regression prediction K_cross^T (K_train + ridge I)^{-1} y."""
    factor = linalg.cho_factor(_regularized(K_train, ridge), lower=True)
    return np.asarray(K_cross, dtype=float).T @ linalg.cho_solve(factor, np.asarray(y, float))


def ntk_flow_mean(Th_train, Th_cross, y, time, lr=1.0, ridge=0.0):
    """Mean prediction after gradient flow for `time` on 1/2 sum (f - y)^2 from f_0 = 0.

    df/dt = -lr Th (f - y) on the training set gives
    f_t(x*) = Th_cross^T V diag(g(lambda)) V^T y,  Th_train + ridge I = V diag(lambda) V^T,
    g(lambda) = (1 - exp(-lr lambda t)) / lambda  (-> lr t when lr lambda t < 1e-12),
    and g(lambda) = 1 / lambda for t = inf (kernel regression).
    """
    if lr <= 0 or time < 0:
        raise ValueError(f"need lr > 0 and time >= 0, got lr={lr}, time={time}")
    lam, V = np.linalg.eigh(_regularized(Th_train, ridge))
    if np.isinf(time):
        g = 1.0 / lam
    else:
        x = lr * lam * time
        small = np.abs(x) < 1e-12
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(small, lr * time, -np.expm1(-x) / lam)
    coeff = V.T @ np.asarray(y, dtype=float)                 # V^T y
    coeff = (g[:, None] * coeff) if coeff.ndim == 2 else g * coeff
    return np.asarray(Th_cross, dtype=float).T @ (V @ coeff)
