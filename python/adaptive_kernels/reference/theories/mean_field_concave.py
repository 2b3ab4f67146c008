"""NumPy reference of the concave one-hidden-layer mean-field objective (core
``theories::mean_field::concave``): on fixed draws ``phi`` (S x P) with log prior/proposal ratios
``log_r``, ``s = phi a``, ``w ∝ exp(log_r + gamma^2 s^2 / 2)``,

    g(a)    = a.y - T|a|^2/2 - gamma^-2 ln((1/S) sum exp(log_r + gamma^2 s^2 / 2))
    grad g  = y - T a - Phi a,          Phi = sum_i w_i phi_i phi_i^T
    -Hess g = T I + sum_i w_i (1 + gamma^2 s_i^2) phi_i phi_i^T - gamma^2 m m^T,  m = Phi a.
"""
import numpy as np

from ..mcmc import relu_tilt_ratio


def objective(phi, log_r, a, y, temperature, gamma):
    """``(g, grad g, Phi, -Hess g)``."""
    g2 = gamma ** 2
    s = phi @ a
    lw = log_r + 0.5 * g2 * s ** 2
    mx = lw.max()
    lse = mx + np.log(np.exp(lw - mx).sum())
    w = np.exp(lw - lse)
    g = a @ y - 0.5 * temperature * a @ a - (lse - np.log(len(s))) / g2
    K = (phi * w[:, None]).T @ phi
    m = K @ a
    H = temperature * np.eye(len(a)) + (phi * (w * (1 + g2 * s ** 2))[:, None]).T @ phi - g2 * np.outer(m, m)
    return g, y - temperature * a - m, K, H


def domain_ratio(k0, a, gamma):
    """The relu domain witness of the concave objective: :func:`..mcmc.relu_tilt_ratio`."""
    return relu_tilt_ratio(k0, a, gamma)
