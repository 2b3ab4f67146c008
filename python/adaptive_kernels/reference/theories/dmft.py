"""Weight-decay fixed point of mean-field gradient flow, two-layer networks: a NumPy reference.

Conventions (``ak.train_gd(parameterization="mean_field")``, width M, digest §1.3, §3.1, §3.3):
neuron i has input weights ``theta_i = (W_i, b_i)`` and readout ``z_i`` (C outputs); with the
input features ``F = [sigma_w X / sqrt(d), sigma_b]`` (so ``K^0 = F F^T``) its preactivations on
the P training points are ``h_i = F theta_i`` and

    f = (1 / (gamma M)) sum_i z_i phi(h_i),   Delta = Y - f,   g_i = phi'(h_i) * (Delta z_i)
    J = M gamma^2 / 2 |Delta|^2 + lambda / 2 sum_i (|theta_i|^2 + |z_i|^2)
    grad_{theta_i} J = lambda theta_i - gamma F^T g_i,   grad_{z_i} J = lambda z_i - gamma phi(h_i)^T Delta

Gradient flow ``d theta / dt = -grad J`` written on the preactivations is the authors' particle
DMFT: one Euler step is

    h_i <- h_i + dt [gamma K^0 g_i - lambda h_i],    z_i <- z_i + dt [gamma phi(h_i)^T Delta - lambda z_i].

Fixed point of linear two-layer nets (derived by hand from the stationarity conditions): a live
neuron has ``h_i = (gamma z_i / lambda) K^0 Delta`` and ``(gamma / lambda)^2 Delta^T K^0 Delta = 1``;
with ``s = <z^2>`` and ``c = s / lambda``, ``f = c K^0 Delta``, so ``Delta = (I + c K^0)^{-1} y`` and c
is the root of ``y^T (I + c K^0)^{-1} K^0 (I + c K^0)^{-1} y = (lambda / gamma)^2`` (decreasing in c
from ``y^T K^0 y``): a live fixed point exists iff ``lambda / gamma < sqrt(y^T K^0 y)``, else every
neuron decays (the dead state). There ``Phi = (gamma^2 c / lambda) K^0 Delta Delta^T K^0``,
``G = c lambda 1 1^T`` and the NTK is ``Phi + c lambda K^0``; ``f(x*) = c K^0(x*, X) Delta``.
"""
import numpy as np
from scipy import optimize

from ..kernels.lazy import activation_functions

__all__ = ["features", "particles", "particle_step", "objective", "linear_threshold", "linear_fixed_point",
           "readout_predict", "ntk_predict"]


def features(X, sigma_w, sigma_b):
    """``F`` (P, d [+1]) with ``F F^T = K^0`` (the bias column only when sigma_b > 0)."""
    F = sigma_w * np.asarray(X, float) / np.sqrt(X.shape[1])
    return np.hstack([F, np.full((len(F), 1), sigma_b)]) if sigma_b > 0 else F


def particles(theta, d, M, n_out, sigma_b):
    """``(Theta (M, d [+1]), Z (M, C))`` from the flat parameter vector of the width-M network
    (blocks W^0 (M x d, column-major), [b^0], w_out (C x M, column-major))."""
    off = M * d
    W = theta[:off].reshape((M, d), order="F")
    if sigma_b > 0:
        W = np.hstack([W, theta[off:off + M, None]])
        off += M
    Z = theta[off:off + n_out * M].reshape((n_out, M), order="F").T
    return W, Z


def _state(H, Z, Y, gamma, activation):
    phi, dphi = activation_functions(activation)
    M = H.shape[1]
    A = phi(H)                                   # (P, M)
    delta = Y - A @ Z / (gamma * M)              # (P, C)
    G = dphi(H) * (delta @ Z.T)                  # (P, M): g_i as columns
    return A, delta, G


def particle_step(H, Z, K0, Y, *, gamma, weight_decay, dt, activation):
    """One Euler step of the particle system: ``(H, Z)`` after the step (H: (P, M) columns h_i)."""
    A, delta, G = _state(H, Z, Y, gamma, activation)
    H1 = H + dt * (gamma * K0 @ G - weight_decay * H)
    Z1 = Z + dt * (gamma * A.T @ delta - weight_decay * Z)
    return H1, Z1


def objective(Theta, Z, F, Y, *, gamma, weight_decay, activation):
    """``(J, grad_Theta, grad_Z, rms)``: the Lyapunov function, its gradient and the stationarity
    residual ``rms(grad J)`` over all parameters."""
    M = Theta.shape[0]
    H = F @ Theta.T
    A, delta, G = _state(H, Z, Y, gamma, activation)
    J = 0.5 * M * gamma**2 * np.sum(delta**2) + 0.5 * weight_decay * (np.sum(Theta**2) + np.sum(Z**2))
    gT = weight_decay * Theta - gamma * G.T @ F
    gZ = weight_decay * Z - gamma * A.T @ delta
    rms = np.sqrt((np.sum(gT**2) + np.sum(gZ**2)) / (gT.size + gZ.size))
    return J, gT, gZ, rms


def linear_threshold(K0, y):
    """``sqrt(y^T K^0 y)``: the dead state is stable for ``weight_decay / gamma`` above it."""
    y = np.asarray(y, float).ravel()
    return float(np.sqrt(y @ K0 @ y))


def linear_fixed_point(K0, y, *, gamma, weight_decay, K0_test=None):
    """The exact fixed point of a linear two-layer net (module docs), or None in the dead state:
    dict with ``c``, ``delta``, ``f_train``, ``f_test`` (if ``K0_test`` (Q, P) is given), ``Phi``, ``ntk``."""
    y = np.asarray(y, float).ravel()
    P = len(y)
    target = (weight_decay / gamma) ** 2
    if linear_threshold(K0, y) ** 2 <= target:
        return None

    def gap(c):
        dlt = np.linalg.solve(np.eye(P) + c * K0, y)
        return dlt @ K0 @ dlt - target

    hi = 1.0
    while gap(hi) > 0:
        hi *= 2.0
    c = optimize.brentq(gap, 0.0, hi, xtol=1e-15, rtol=1e-15)
    dlt = np.linalg.solve(np.eye(P) + c * K0, y)
    v = K0 @ dlt
    out = dict(c=c, delta=dlt, f_train=c * v, Phi=gamma**2 * c / weight_decay * np.outer(v, v),
               ntk=gamma**2 * c / weight_decay * np.outer(v, v) + c * weight_decay * K0)
    if K0_test is not None:
        out["f_test"] = c * K0_test @ dlt
    return out


def readout_predict(Phi_test, Phi, Y, weight_decay):
    """``Phi^L(x*, X) (Phi^L + lambda I)^{-1} Y``."""
    return Phi_test @ np.linalg.solve(Phi + weight_decay * np.eye(len(Phi)), Y)


def ntk_predict(K_test, K, Y, weight_decay, depth):
    """``K(x*, X) (K + (L + 1) lambda I)^{-1} Y`` (positively homogeneous nets of depth L)."""
    return K_test @ np.linalg.solve(K + (depth + 1) * weight_decay * np.eye(len(K)), Y)
