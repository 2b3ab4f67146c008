"""Adaptive tangent features on an explicit feature matrix (NumPy reference of
``adaptive_kernels.theories.tangent_features``).

``irls`` solves ``min sum_k w(|theta_k|) s.t. Phi theta = r`` with explicit parameter vectors
(groups: lists of column indices of ``Phi``), ``w`` the one-sided penalty found by a scalar
root of its stationarity condition; ``adapted_kernel`` builds the transforms ``M_k = I + (z_k - 1) u_k u_k^T`` as dense
matrices; ``joint_objective`` is the original problem over the transforms with ``beta``
eliminated: ``min_beta |beta|^2 s.t. Phi M beta = r`` is ``r^T (Phi M M^T Phi^T)^{-1} r``.
"""
import numpy as np
from scipy.optimize import brentq

__all__ = ["penalty", "two_sided_penalty", "irls", "adapted_kernel", "joint_objective", "augmented_blocks",
           "layerwise_solve", "layerwise_joint_objective"]


def penalty(v, lam):
    """(w(v), z*) with w(v) = min_{z>0} lam (z-1)^2 + v^2/z^2: root of lam z^3 (z-1) = v^2 on
    [1, 1 + v/sqrt(lam)] by Brent's method."""
    hi = 1.0 + v / np.sqrt(lam)
    if v == 0 or lam * hi**3 * (hi - 1) <= v * v:     # v so small that the bracket rounds to 1
        return float(v * v), 1.0
    z = brentq(lambda z: lam * z**3 * (z - 1) - v * v, 1.0, hi, xtol=1e-15, rtol=1e-15)
    return float(lam * (z - 1) ** 2 + v * v / z**2), float(z)


def two_sided_penalty(s, lam):
    """(w(s), z*) with w(s) = min_{z>0} 2 lam (z-1)^2 + s^2/z^4: root of lam z^5 (z-1) = s^2."""
    hi = 1.0 + np.sqrt(s / np.sqrt(lam))
    if s == 0 or lam * hi**5 * (hi - 1) <= s * s:     # s so small that the bracket rounds to 1
        return float(s * s), 1.0
    z = brentq(lambda z: lam * z**5 * (z - 1) - s * s, 1.0, hi, xtol=1e-15, rtol=1e-15)
    return float(2 * lam * (z - 1) ** 2 + s * s / z**4), float(z)


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


# -- layerwise (two-sided, Kronecker) transforms ----------------------------------------------
def augmented_blocks(inputs, backprop, bias_scales, has_bias):
    """Per layer (A' = [A, s_b 1] when the layer has a bias, G)."""
    return [(np.hstack([A, np.full((A.shape[0], 1), s)]) if hb else A, G)
            for A, G, s, hb in zip(inputs, backprop, bias_scales, has_bias)]


def _kernel(blocks, Ps, Qs):
    K = 0
    for (A, G), P, Q in zip(blocks, Ps, Qs):
        C = G.shape[0] // A.shape[0]
        K = K + np.kron(A @ P @ A.T, np.ones((C, C))) * (G @ Q @ G.T)
    return K


def layerwise_solve(blocks, r, lam, *, tol=1e-12, max_iter=5000):
    """Exact alternating minimisation with dense P = M1 M1^T, Q = M2 M2^T: per-layer updates
    Theta_l (fan_out, fan_in'), objective history."""
    Ps = [np.eye(A.shape[1]) for A, _ in blocks]
    Qs = [np.eye(G.shape[1]) for _, G in blocks]
    hist = []
    while True:
        alpha = np.linalg.solve(_kernel(blocks, Ps, Qs), r)
        thetas, obj, newP, newQ = [], 0.0, [], []
        for (A, G), P, Q in zip(blocks, Ps, Qs):
            C = G.shape[0] // A.shape[0]
            T = Q @ G.T @ (alpha[:, None] * np.repeat(A, C, axis=0)) @ P
            U, sv, Vt = np.linalg.svd(T, full_matrices=False)
            z = np.array([two_sided_penalty(x, lam)[1] for x in sv])
            obj += sum(two_sided_penalty(x, lam)[0] for x in sv)
            newQ.append(np.eye(G.shape[1]) + (U * (z**2 - 1)) @ U.T)
            newP.append(np.eye(A.shape[1]) + (Vt.T * (z**2 - 1)) @ Vt)
            thetas.append(T)
        done = bool(hist) and (hist[-1] - obj) <= tol * hist[-1]
        hist.append(obj)
        if done or len(hist) > max_iter:
            return thetas, np.array(hist)
        Ps, Qs = newP, newQ


def layerwise_joint_objective(Ms, blocks, r, lam):
    """Joint objective at transforms ``Ms = [(M1, M2), ...]`` with B eliminated:
    ``r^T K^{-1} r + lam sum (|M1 - I|^2 + |M2 - I|^2)``, ``K`` the kernel of features
    ``A M1``, ``G M2``."""
    Ps = [M1 @ M1.T for M1, _ in Ms]
    Qs = [M2 @ M2.T for _, M2 in Ms]
    pen = sum(np.sum((M1 - np.eye(len(M1))) ** 2) + np.sum((M2 - np.eye(len(M2))) ** 2) for M1, M2 in Ms)
    return float(r @ np.linalg.solve(_kernel(blocks, Ps, Qs), r)) + lam * pen
