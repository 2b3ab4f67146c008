"""Hermite (Mehler) expansion of the bivariate Gaussian expectations (reference of
``rust/core/src/kernels/hermite.rs``, ``method="hermite"``).

With ``u = sqrt(a) x``, ``v = sqrt(b) y``, ``rho = c / sqrt(ab)``:

    E[phi(u) phi(v)] = sum_n c_n(a) c_n(b) rho^n,   c_n(s) = E[phi(sqrt(s) z) He_n(z)] / sqrt(n!)

(probabilists' Hermite polynomials), the coefficients from a 1-D Gauss-Hermite rule. The
truncation error after order N is at most ``|rho|^{N+1} sqrt(T_a T_b)``,
``T_s = E[phi(sqrt(s) z)^2] - sum_{n<=N} c_n(s)^2`` (Cauchy-Schwarz, |rho| <= 1).
"""
import numpy as np
from scipy import special

from .lazy import ACTIVATIONS
from .quadrature import polar_expectation

__all__ = ["hermite_coefficients", "hermite_tails", "hermite_expectation", "gaussian_mean",
           "hermite_or_quadrature"]


def _normalized_hermite(z, n_max):
    h = np.empty((n_max + 1, z.size))
    h[0] = 1.0
    if n_max >= 1:
        h[1] = z
    for n in range(1, n_max):
        h[n + 1] = (z * h[n] - np.sqrt(n) * h[n - 1]) / np.sqrt(n + 1)
    return h


def hermite_coefficients(phi, s, n_max=128, n_nodes=400):
    """``(c, m0)``: coefficients ``c[i, n] = c_n(s_i)`` (n = 0..n_max) and ``E[phi^2]`` per variance."""
    if isinstance(phi, str):
        phi = ACTIVATIONS[phi][0]
    z, w = special.roots_hermitenorm(n_nodes)   # as the core: 200 nodes alias c_n at n ~ 128
    w = w / w.sum()
    s = np.atleast_1d(np.asarray(s, dtype=float))
    vals = phi(np.sqrt(np.maximum(s, 0.0))[:, None] * z[None, :])
    return (vals * w) @ _normalized_hermite(z, n_max).T, (vals ** 2) @ w


def hermite_tails(phi, s, n_max=128, n_nodes=400):
    """Tails ``T(n_max) = E[phi^2] - sum_{n<=n_max} c_n^2`` per variance, as the rule's mean square of
    the residual ``phi - sum c_n h_n`` at its nodes (no cancellation: the difference itself cannot
    resolve tails below ~1e-16 E[phi^2]), floored at the two rules' (400, 320 nodes) disagreement
    on ``E[phi^2]`` beyond 1e-13 relative (where the rule itself is unresolved)."""
    if isinstance(phi, str):
        phi = ACTIVATIONS[phi][0]
    z, w = special.roots_hermitenorm(n_nodes)
    w = w / w.sum()
    s = np.atleast_1d(np.asarray(s, dtype=float))
    vals = phi(np.sqrt(np.maximum(s, 0.0))[:, None] * z[None, :])
    h = _normalized_hermite(z, n_max)
    c = (vals * w) @ h.T
    t = ((vals - c @ h) ** 2) @ w
    m0 = (vals ** 2) @ w
    m_check = gaussian_mean(lambda x: phi(x) ** 2, s, 320)
    return np.maximum(t, np.maximum(np.abs(m0 - m_check) - 1e-13 * m0, 0.0))


def gaussian_mean(f, s, n_nodes=200):
    """``E[f(sqrt(s) z)]``, ``z ~ N(0, 1)``, per variance (the 1-D Gauss-Hermite rule)."""
    z, w = special.roots_hermitenorm(n_nodes)
    w = w / w.sum()
    s = np.atleast_1d(np.asarray(s, dtype=float))
    return f(np.sqrt(np.maximum(s, 0.0))[:, None] * z[None, :]) @ w


def hermite_expectation(phi, a, b, c, n_max=128, n_nodes=400, psi=None):
    """``(E, bound)``: the expansion of ``E[phi(u) phi(v)]`` (``E[phi(u) psi(v)]`` with ``psi``)
    truncated at ``n_max`` for arrays ``a, b, c`` of covariances, and its truncation error bound
    (tails from :func:`hermite_tails`)."""
    a, b, c = np.broadcast_arrays(*(np.asarray(t, dtype=float) for t in (a, b, c)))
    ca, ma = hermite_coefficients(phi, a.ravel(), n_max, n_nodes)
    cb, mb = hermite_coefficients(phi if psi is None else psi, b.ravel(), n_max, n_nodes)
    ab = a.ravel() * b.ravel()
    rho = np.where(ab > 0, np.clip(c.ravel() / np.sqrt(np.where(ab > 0, ab, 1.0)), -1.0, 1.0), 0.0)
    powers = rho[:, None] ** np.arange(n_max + 1)[None, :]
    e = np.sum(ca * cb * powers, axis=1)
    ta = hermite_tails(phi, a.ravel(), n_max, n_nodes)
    tb = hermite_tails(phi if psi is None else psi, b.ravel(), n_max, n_nodes)
    bound = np.abs(rho) ** (n_max + 1) * np.sqrt(ta * tb)
    return e.reshape(a.shape), bound.reshape(a.shape)


def hermite_or_quadrature(phi, a, b, c, order, psi=None, tol=1e-12):
    """``E[phi(u) psi(v)]`` (psi = phi by default) as the package's ``method="auto"`` computes it
    for activations without a closed form: the expansion where its bound is at most ``tol``
    ``sqrt(E[phi(u)^2] E[psi(v)^2])``, ``E[phi(u) psi(u)]`` from the 1-D rule where ``c = a = b``;
    elsewhere the 1-D rule where ``1 - |rho| <= 1e-12`` (collinear) and the polar quadrature of
    ``order`` otherwise."""
    psi = phi if psi is None else psi
    a, b, c = np.broadcast_arrays(*(np.asarray(t, dtype=float) for t in (a, b, c)))
    e, bound = hermite_expectation(phi, a, b, c, psi=psi)
    scale = np.sqrt(gaussian_mean(lambda x: phi(x) ** 2, a.ravel()) * gaussian_mean(lambda x: psi(x) ** 2, b.ravel()))
    e = e.ravel().copy()
    diag = (c.ravel() == a.ravel()) & (a.ravel() == b.ravel())
    # the core's 1-D rule (400 nodes), trusted where a 320-node rule gives the same E[f^2]
    def reliable(f, s):   # E[f^2], c_0 and c_1 agree between the two rules
        m, m_check = gaussian_mean(lambda x: f(x) ** 2, s, 400), gaussian_mean(lambda x: f(x) ** 2, s, 320)
        ok = np.abs(m - m_check) <= 1e-8 * m
        q = np.sqrt(np.maximum(s, 0.0))
        for g in (f, lambda x: f(x) * np.divide(x, q[:, None], out=np.zeros_like(x), where=q[:, None] > 0)):
            ok &= np.abs(gaussian_mean(g, s, 400) - gaussian_mean(g, s, 320)) <= 1e-8 * np.sqrt(m)
        return ok
    ok = reliable(phi, a.ravel()) & reliable(psi, b.ravel()) & reliable(phi, b.ravel()) & reliable(psi, a.ravel())
    e[diag] = gaussian_mean(lambda x: phi(x) * psi(x), a.ravel()[diag], 400)
    ab = a.ravel() * b.ravel()
    rho = np.where(ab > 0, np.clip(c.ravel() / np.sqrt(np.where(ab > 0, ab, 1.0)), -1.0, 1.0), 0.0)
    z, w = special.roots_hermitenorm(400)
    w = w / w.sum()
    for k in np.flatnonzero(~diag & ((bound.ravel() > tol * scale) | ~ok)):
        ak, bk, ck = a.ravel()[k], b.ravel()[k], c.ravel()[k]
        if ok[k] and 1.0 - abs(rho[k]) <= 1e-12:   # collinear: a 1-D integral
            e[k] = w @ (phi(np.sqrt(ak) * z) * psi(np.sign(rho[k]) * np.sqrt(bk) * z))
        else:
            e[k] = polar_expectation(phi, psi, ak, bk, ck, order)
    return e.reshape(a.shape)
