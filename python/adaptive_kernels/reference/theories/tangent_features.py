"""Adaptive tangent features on an explicit feature matrix (NumPy reference of
``adaptive_kernels.theories.tangent_features``).

``irls`` solves ``min sum_k w(|theta_k|) s.t. Phi theta = r`` with explicit parameter vectors
(groups: lists of column indices of ``Phi``), ``w`` the one-sided penalty found by a scalar
minimiser; ``adapted_kernel`` builds the transforms ``M_k = I + (z_k - 1) u_k u_k^T`` as dense
matrices; ``joint_objective`` is the original problem over the transforms with ``beta``
eliminated: ``min_beta |beta|^2 s.t. Phi M beta = r`` is ``r^T (Phi M M^T Phi^T)^{-1} r``.
"""
import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["penalty", "two_sided_penalty", "irls", "adapted_kernel", "joint_objective"]


def penalty(v, lam):
    """(w(v), z*) with w(v) = min_{z>0} lam (z-1)^2 + v^2/z^2."""
    if v == 0:
        return 0.0, 1.0
    res = minimize_scalar(lambda z: lam * (z - 1) ** 2 + v * v / z ** 2, bounds=(1.0, 1.0 + v / np.sqrt(lam)),
                          method="bounded", options=dict(xatol=1e-13))
    return float(res.fun), float(res.x)


def two_sided_penalty(s, lam):
    """(w(s), z*) with w(s) = min_{z>0} 2 lam (z-1)^2 + s^2/z^4."""
    if s == 0:
        return 0.0, 1.0
    res = minimize_scalar(lambda z: 2 * lam * (z - 1) ** 2 + s * s / z ** 4,
                          bounds=(1.0, 1.0 + np.sqrt(s / np.sqrt(lam))), method="bounded", options=dict(xatol=1e-13))
    return float(res.fun), float(res.x)


def irls(Phi, groups, r, lam, *, tol=1e-12, max_iter=5000):
    """theta (P,), z (per group), objective history."""
    z = np.ones(len(groups))
    hist = []
    while True:
        scale = np.ones(Phi.shape[1])
        for g, zk in zip(groups, z):
            scale[g] = zk ** 2
        Kz = (Phi * scale) @ Phi.T
        theta = scale * (Phi.T @ np.linalg.solve(Kz, r))
        v = [np.linalg.norm(theta[g]) for g in groups]
        obj = sum(penalty(vk, lam)[0] for vk in v)
        done = bool(hist) and (hist[-1] - obj) <= tol * hist[-1]
        hist.append(obj)
        if done or len(hist) > max_iter:
            return theta, z, np.array(hist)
        z = np.array([penalty(vk, lam)[1] for vk in v])


def transforms(theta, groups, lam, n_params):
    """The block-diagonal transform M (dense) of the optimum for ``theta``."""
    M = np.eye(n_params)
    for g in groups:
        v = np.linalg.norm(theta[g])
        if v > 0:
            z = penalty(v, lam)[1]
            u = theta[g] / v
            M[np.ix_(g, g)] += (z - 1) * np.outer(u, u)
    return M


def adapted_kernel(Phi, theta, groups, lam):
    """Phi M M^T Phi^T."""
    M = transforms(theta, groups, lam, Phi.shape[1])
    return Phi @ M @ M.T @ Phi.T


def joint_objective(Ms, Phi, groups, r, lam):
    """Objective of the joint problem at transforms ``Ms`` (one square matrix per group) with the
    coefficients eliminated."""
    M = np.zeros((Phi.shape[1], Phi.shape[1]))
    for g, Mk in zip(groups, Ms):
        M[np.ix_(g, g)] = Mk
    A = Phi @ M
    return float(r @ np.linalg.solve(A @ A.T, r)) + lam * sum(np.sum((Mk - np.eye(len(g))) ** 2)
                                                                for g, Mk in zip(groups, Ms))
