"""Hermite (Mehler) expansion of the bivariate Gaussian expectations (reference of
``rust/core/src/kernels/hermite.rs``, ``method="hermite"``).

With ``u = sqrt(a) x``, ``v = sqrt(b) y``, ``rho = c / sqrt(ab)``:

    E[phi(u) phi(v)] = sum_n c_n(a) c_n(b) rho^n,   c_n(s) = E[phi(sqrt(s) z) He_n(z)] / sqrt(n!)

(probabilists' Hermite polynomials), the coefficients from a 1-D Gauss-Hermite rule. The
truncation error after order N is at most ``|rho|^{N+1} sqrt(T_a T_b)``,
``T_s = E[phi(sqrt(s) z)^2] - sum_{n<=N} c_n(s)^2`` (Cauchy-Schwarz, |rho| <= 1).
"""
import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from .lazy import ACTIVATIONS

__all__ = ["hermite_coefficients", "hermite_expectation"]


def _normalized_hermite(z, n_max):
    h = np.empty((n_max + 1, z.size))
    h[0] = 1.0
    if n_max >= 1:
        h[1] = z
    for n in range(1, n_max):
        h[n + 1] = (z * h[n] - np.sqrt(n) * h[n - 1]) / np.sqrt(n + 1)
    return h


def hermite_coefficients(phi, s, n_max=128, n_nodes=200):
    """``(c, m0)``: coefficients ``c[i, n] = c_n(s_i)`` (n = 0..n_max) and ``E[phi^2]`` per variance."""
    if isinstance(phi, str):
        phi = ACTIVATIONS[phi][0]
    z, w = hermegauss(n_nodes)
    w = w / w.sum()
    s = np.atleast_1d(np.asarray(s, dtype=float))
    vals = phi(np.sqrt(np.maximum(s, 0.0))[:, None] * z[None, :])
    return (vals * w) @ _normalized_hermite(z, n_max).T, (vals ** 2) @ w


def hermite_expectation(phi, a, b, c, n_max=128, n_nodes=200):
    """``(E, bound)``: the expansion of ``E[phi(u) phi(v)]`` truncated at ``n_max`` for arrays
    ``a, b, c`` of covariances, and its truncation error bound."""
    a, b, c = np.broadcast_arrays(*(np.asarray(t, dtype=float) for t in (a, b, c)))
    ca, ma = hermite_coefficients(phi, a.ravel(), n_max, n_nodes)
    cb, mb = hermite_coefficients(phi, b.ravel(), n_max, n_nodes)
    ab = a.ravel() * b.ravel()
    rho = np.where(ab > 0, np.clip(c.ravel() / np.sqrt(np.where(ab > 0, ab, 1.0)), -1.0, 1.0), 0.0)
    powers = rho[:, None] ** np.arange(n_max + 1)[None, :]
    e = np.sum(ca * cb * powers, axis=1)
    ta = np.maximum(ma - np.sum(ca ** 2, axis=1), 0.0)
    tb = np.maximum(mb - np.sum(cb ** 2, axis=1), 0.0)
    bound = np.abs(rho) ** (n_max + 1) * np.sqrt(ta * tb)
    return e.reshape(a.shape), bound.reshape(a.shape)
