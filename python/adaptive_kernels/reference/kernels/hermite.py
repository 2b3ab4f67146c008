"""Hermite (Mehler) expansion of the bivariate Gaussian expectations (reference of
``rust/core/src/kernels/hermite.rs``, ``method="hermite"``).

With ``u = sqrt(a) x``, ``v = sqrt(b) y``, ``rho = c / sqrt(ab)``:

    E[phi(u) phi(v)] = sum_n c_n(a) c_n(b) rho^n,   c_n(s) = E[phi(sqrt(s) z) He_n(z)] / sqrt(n!)

(probabilists' Hermite polynomials), the coefficients from a 1-D rule: for the built-in
activations (``builtin=True``) the core's rule (:func:`builtin_rule`: 400-node Gauss-Hermite at
variances up to 1, the mesh rule :func:`mesh_rule` above), for callables a Gauss-Hermite rule.
The truncation error after order N is at most ``|rho|^{N+1} sqrt(T_a T_b)``,
``T_s = E[phi(sqrt(s) z)^2] - sum_{n<=N} c_n(s)^2`` (Cauchy-Schwarz, |rho| <= 1).
"""
import numpy as np
from scipy import special

from .lazy import ACTIVATIONS
from .quadrature import graded_polar_expectation, polar_expectation

__all__ = ["builtin_rule", "mesh_rule", "hermite_coefficients", "hermite_tails", "hermite_expectation", "gaussian_mean",
           "hermite_or_quadrature"]


def mesh_rule(s):
    """``(z, w)``: the core's 1-D rule for ``E[f(sqrt(s) z)]`` with a built-in activation f
    (``kernels/hermite/mesh.rs``): 20-point Gauss-Legendre on the panels ``[0, 2^-K], [2^-K,
    2^(1-K)], .., [1/2, 1]`` (``K = ceil(log2 sqrt(s))``, 0 for ``s <= 1``: the first panel is at
    most as wide as f's transition, ``1/sqrt(s)``) and ``[1, 2], .., [29, 30]``, mirrored to
    ``z < 0``; the weights include the density and sum to 1."""
    x, wx = np.polynomial.legendre.leggauss(20)
    sq = np.sqrt(max(float(s), 0.0))
    k = 0 if sq <= 1.0 else min(int(np.ceil(np.log2(sq))), 400)
    edges = np.array([0.0] + [2.0 ** -j for j in range(k, 0, -1)] + list(range(1, 31)), dtype=float)
    lo, hi = edges[:-1], edges[1:]
    z = ((hi + lo) / 2)[:, None] + ((hi - lo) / 2)[:, None] * x[None, :]
    w = ((hi - lo) / 2)[:, None] * wx[None, :] * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    z, w = z.ravel(), w.ravel()
    return np.concatenate([-z, z]), np.concatenate([w, w])


def builtin_rule(s):
    """``(z, w)``: the core's 1-D rule of the built-in activations at variance ``s``
    (``kernels/hermite/mesh.rs``, ``builtin_rule``): Gauss-Hermite of 400 nodes for ``s <= 1``,
    where it is exact to rounding, else :func:`mesh_rule`."""
    if s <= 1.0:
        z, w = special.roots_hermitenorm(400)
        return z, w / w.sum()
    return mesh_rule(s)


def _rules(s, builtin, n_nodes):
    """The 1-D rule ``(z, w)`` per variance: :func:`builtin_rule` or Gauss-Hermite."""
    if builtin:
        return [builtin_rule(si) for si in s]
    z, w = special.roots_hermitenorm(n_nodes)
    return [(z, w / w.sum())] * len(s)


def _normalized_hermite(z, n_max):
    h = np.empty((n_max + 1, z.size))
    h[0] = 1.0
    if n_max >= 1:
        h[1] = z
    for n in range(1, n_max):
        h[n + 1] = (z * h[n] - np.sqrt(n) * h[n - 1]) / np.sqrt(n + 1)
    return h


def hermite_coefficients(phi, s, n_max=128, n_nodes=400, builtin=False):
    """``(c, m0)``: coefficients ``c[i, n] = c_n(s_i)`` (n = 0..n_max) and ``E[phi^2]`` per variance."""
    if isinstance(phi, str):
        phi, builtin = ACTIVATIONS[phi][0], True
    s, inv = np.unique(np.atleast_1d(np.asarray(s, dtype=float)), return_inverse=True)   # once per variance
    c, m0 = np.empty((s.size, n_max + 1)), np.empty(s.size)
    for i, (z, w) in enumerate(_rules(s, builtin, n_nodes)):   # 200 GH nodes alias c_n at n ~ 128
        v = phi(np.sqrt(max(s[i], 0.0)) * z)
        c[i], m0[i] = _normalized_hermite(z, n_max) @ (w * v), w @ v ** 2
    return c[inv.ravel()], m0[inv.ravel()]


def hermite_tails(phi, s, n_max=128, n_nodes=400, builtin=False):
    """Tails ``T(n_max) = E[phi^2] - sum_{n<=n_max} c_n^2`` per variance, as the rule's mean square of
    the residual ``phi - sum c_n h_n`` at its nodes (no cancellation: the difference itself cannot
    resolve tails below ~1e-16 E[phi^2]). With the Gauss-Hermite rule (callables) floored at the
    two rules' (400, 320 nodes) disagreement on ``E[phi^2]`` beyond 1e-13 relative (where the
    rule itself is unresolved)."""
    if isinstance(phi, str):
        phi, builtin = ACTIVATIONS[phi][0], True
    s, inv = np.unique(np.atleast_1d(np.asarray(s, dtype=float)), return_inverse=True)   # once per variance
    inv = inv.ravel()
    t, m0 = np.empty(s.size), np.empty(s.size)
    for i, (z, w) in enumerate(_rules(s, builtin, n_nodes)):
        v = phi(np.sqrt(max(s[i], 0.0)) * z)
        h = _normalized_hermite(z, n_max)
        t[i], m0[i] = w @ (v - (h @ (w * v)) @ h) ** 2, w @ v ** 2
    if builtin:
        return t[inv]
    m_check = gaussian_mean(lambda x: phi(x) ** 2, s, 320)
    return np.maximum(t, np.maximum(np.abs(m0 - m_check) - 1e-13 * m0, 0.0))[inv]


def gaussian_mean(f, s, n_nodes=200, builtin=False):
    """``E[f(sqrt(s) z)]``, ``z ~ N(0, 1)``, per variance (the mesh rule with ``builtin``, else the
    1-D Gauss-Hermite rule)."""
    s = np.atleast_1d(np.asarray(s, dtype=float))
    if builtin:   # once per distinct variance
        u, inv = np.unique(s, return_inverse=True)
        return np.array([w @ f(np.sqrt(max(si, 0.0)) * z) for si, (z, w) in zip(u, _rules(u, True, n_nodes))])[inv.ravel()]
    z, w = special.roots_hermitenorm(n_nodes)
    return f(np.sqrt(np.maximum(s, 0.0))[:, None] * z[None, :]) @ (w / w.sum())


def hermite_expectation(phi, a, b, c, n_max=128, n_nodes=400, psi=None, builtin=False):
    """``(E, bound)``: the expansion of ``E[phi(u) phi(v)]`` (``E[phi(u) psi(v)]`` with ``psi``)
    truncated at ``n_max`` for arrays ``a, b, c`` of covariances, and its truncation error bound
    (tails from :func:`hermite_tails`)."""
    a, b, c = np.broadcast_arrays(*(np.asarray(t, dtype=float) for t in (a, b, c)))
    psi = phi if psi is None else psi
    ca, _ = hermite_coefficients(phi, a.ravel(), n_max, n_nodes, builtin)
    cb, _ = hermite_coefficients(psi, b.ravel(), n_max, n_nodes, builtin)
    ab = a.ravel() * b.ravel()
    rho = np.where(ab > 0, np.clip(c.ravel() / np.sqrt(np.where(ab > 0, ab, 1.0)), -1.0, 1.0), 0.0)
    powers = rho[:, None] ** np.arange(n_max + 1)[None, :]
    e = np.sum(ca * cb * powers, axis=1)
    ta = hermite_tails(phi, a.ravel(), n_max, n_nodes, builtin)
    tb = hermite_tails(psi, b.ravel(), n_max, n_nodes, builtin)
    bound = np.abs(rho) ** (n_max + 1) * np.sqrt(ta * tb)
    return e.reshape(a.shape), bound.reshape(a.shape)


def hermite_or_quadrature(phi, a, b, c, order, psi=None, tol=1e-12, builtin=False):
    """``E[phi(u) psi(v)]`` (psi = phi by default) as the package's ``method="auto"`` computes it
    for activations without a closed form: the expansion where its bound is at most ``tol``
    ``sqrt(E[phi(u)^2] E[psi(v)^2])``, ``E[phi(u) psi(u)]`` from the 1-D rule where ``c = a = b``;
    elsewhere the 1-D rule where ``1 - |rho| <= 1e-12`` (collinear) and a polar quadrature
    otherwise: the graded rule for built-in activations, the rule of ``order`` for callables. ``builtin``: phi and psi are built-in activations (or their derivatives),
    whose 1-D rule is the mesh rule (trusted); for callables the 400-node Gauss-Hermite rule,
    trusted where a 320-node rule agrees."""
    psi = phi if psi is None else psi
    a, b, c = np.broadcast_arrays(*(np.asarray(t, dtype=float) for t in (a, b, c)))
    e, bound = hermite_expectation(phi, a, b, c, psi=psi, builtin=builtin)
    mean = lambda f, s: gaussian_mean(f, s, 400, builtin)
    scale = np.sqrt(mean(lambda x: phi(x) ** 2, a.ravel()) * mean(lambda x: psi(x) ** 2, b.ravel()))
    e = e.ravel().copy()
    diag = (c.ravel() == a.ravel()) & (a.ravel() == b.ravel())

    def reliable(f, s):   # E[f^2], c_0 and c_1 agree between the two rules
        if builtin:
            return np.ones(s.size, dtype=bool)
        m, m_check = gaussian_mean(lambda x: f(x) ** 2, s, 400), gaussian_mean(lambda x: f(x) ** 2, s, 320)
        ok = np.abs(m - m_check) <= 1e-8 * m
        q = np.sqrt(np.maximum(s, 0.0))
        for g in (f, lambda x: f(x) * np.divide(x, q[:, None], out=np.zeros_like(x), where=q[:, None] > 0)):
            ok &= np.abs(gaussian_mean(g, s, 400) - gaussian_mean(g, s, 320)) <= 1e-8 * np.sqrt(m)
        return ok
    ok = reliable(phi, a.ravel()) & reliable(psi, b.ravel()) & reliable(phi, b.ravel()) & reliable(psi, a.ravel())
    e[diag] = mean(lambda x: phi(x) * psi(x), a.ravel()[diag])
    ab = a.ravel() * b.ravel()
    rho = np.where(ab > 0, np.clip(c.ravel() / np.sqrt(np.where(ab > 0, ab, 1.0)), -1.0, 1.0), 0.0)
    for k in np.flatnonzero(~diag & ((bound.ravel() > tol * scale) | ~ok)):
        ak, bk, ck = a.ravel()[k], b.ravel()[k], c.ravel()[k]
        if ok[k] and 1.0 - abs(rho[k]) <= 1e-12:   # collinear: a 1-D integral
            if builtin:   # the rule of the larger scale
                z, w = builtin_rule(max(ak, bk))
            else:
                z, w = special.roots_hermitenorm(400)
                w = w / w.sum()
            e[k] = w @ (phi(np.sqrt(ak) * z) * psi(np.sign(rho[k]) * np.sqrt(bk) * z))
        elif builtin:   # the graded polar rule (the core's fallback of the built-in activations)
            e[k] = graded_polar_expectation(phi, psi, ak, bk, ck)
        else:
            e[k] = polar_expectation(phi, psi, ak, bk, ck, order)
    return e.reshape(a.shape)
