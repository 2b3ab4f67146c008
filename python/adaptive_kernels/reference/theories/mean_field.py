"""Bayesian mean-field (muP) saddle point of deep *linear* networks: a NumPy/SciPy reference.

Conventions (those of ``ak.sample_posterior(..., parameterization="mean_field", gamma=...)``):
hidden layers ``h^1 = sigma_w W^0 x / sqrt(d) + sigma_b b^0``,
``h^{l+1} = sigma_w W^l phi(h^l) / sqrt(N) + sigma_b b^l`` (phi = identity here), readout
``f = w . phi(h^L) / (gamma N)``, posterior ``∝ exp(-(N gamma^2 / (2T)) sum (f - y)^2 - |theta|^2 / 2)``.

Feature kernels ``Phi^l = phi(h^l) phi(h^l)^T / N`` on the P training points; the prior covariance
of layer-l preactivations given layer l-1 is ``C^{l-1} = sigma_w^2 Phi^{l-1} + sigma_b^2`` with
``C^0 = K^0 = sigma_w^2 X X^T / d + sigma_b^2``. As N -> inf the posterior concentrates on the
minimiser of (Lauditi, Bordelon, Pehlevan 2025, digest §2.2, linear phi)

    F(Phi) = sum_l KL(N(0, Phi^l) || N(0, C^{l-1}))  +  (gamma^2 / 2) tr(Y^T (Phi^L + T I)^{-1} Y)
    KL(N(0, S) || N(0, C)) = 1/2 [tr(C^{-1} S) - ln det(C^{-1} S) - P]                       (eq. F)

with gradient (dF = sum_l tr(G_l dPhi^l))

    G_l = 1/2 (C_{l-1}^{-1} - Phi_l^{-1}) + 1/2 hatPhi_l^{next},
    hatPhi_L^{next} = -gamma^2 A A^T,  A = (Phi^L + T I)^{-1} Y,
    hatPhi_l^{next} = sigma_w^2 C_l^{-1} (C_l - Phi_{l+1}) C_l^{-1}          (l < L)           (eq. G)

so at the saddle ``Phi_l^{-1} = C_{l-1}^{-1} + hatPhi_l``: ``hatPhi_l`` (the "conjugates") are the
Lagrange multipliers of the min-max action, the tilt ``exp(-h^T hatPhi_l h / 2)`` of layer l.

Closed form (sigma_b = 0, rank(Y) <= 1; derived in the module docs of the Rust core): with
``K = K^0 = V diag(lam) V^T``, ``q_i = sum_c (V^T Y)_{ic}^2``, ``s = sigma_w^{2(L-1)}``,
``u = (1 - kappa)^{-L}``, every stationary point is

    alpha = (s u K + T I)^{-1} y,   v = K alpha,   k = alpha^T K alpha
    Phi^l = sigma_w^{2(l-1)} [K + ((1 - kappa)^{-l} - 1) v v^T / k]
    hatPhi_l = -gamma^2 (sigma_w^2 / (1 - kappa))^{L-l} alpha alpha^T
    f(x*) = K(x*, X) (K + T (1 - kappa)^L / s)^{-1} Y

for a root kappa in (0, 1) of dF1/dkappa, where F restricted to the family is

    F1(kappa) = (L/2) [kappa / (1 - kappa) + ln(1 - kappa)] + (gamma^2/2) sum_i q_i / (s u lam_i + T)

For L >= 2 it can have several stationary points (first-order transitions); the saddle point is
the global minimum of F1.
"""
import numpy as np
from scipy import linalg, optimize

from ..kernels.input import input_kernel as _input_kernel
# the sampled (nonlinear) solver is the tilted fixed point below the theories (``reference.tilted``);
# re-exported for the tests and benches that check it through this module
from ..mcmc import _factor, _phi_and_derivative, chain_radius, sample_tilted, tilted_potential  # noqa: F401
from ..tilted import _quad_forms, base_log_weights, newton_krylov, solve_tilted, tilted_map  # noqa: F401

__all__ = ["input_kernel", "nngp_kernels", "objective", "gradient", "conjugates", "closed_form",
           "closed_form_action", "solve", "test_kernels", "predict"]


def _targets(Y):
    Y = np.asarray(Y, dtype=float)
    return Y.reshape(Y.shape[0], -1)


def input_kernel(X, sigma_w, sigma_b, X2=None):
    """``K^0(X, X2) = sigma_w^2 X X2^T / d + sigma_b^2`` (argument order of this module)."""
    return _input_kernel(X, X2, sigma_w=sigma_w, sigma_b=sigma_b)


def nngp_kernels(K0, depth, sigma_w, sigma_b):
    """gamma -> 0 solution: ``Phi^1 = K^0``, ``Phi^{l+1} = sigma_w^2 Phi^l + sigma_b^2``."""
    out = [np.array(K0, dtype=float)]
    for _ in range(depth - 1):
        out.append(sigma_w**2 * out[-1] + sigma_b**2)
    return out


def _priors(kernels, K0, sigma_w, sigma_b):
    """``[C^0, .., C^{L-1}]``."""
    return [np.asarray(K0, dtype=float)] + [sigma_w**2 * k + sigma_b**2 for k in kernels[:-1]]


def _kl(S, C):
    P = S.shape[0]
    return 0.5 * (np.trace(np.linalg.solve(C, S)) - np.linalg.slogdet(S)[1] + np.linalg.slogdet(C)[1] - P)


def objective(kernels, K0, Y, *, sigma_w, sigma_b, gamma, temperature):
    """``F(Phi)`` (eq. F); ``kernels`` = ``[Phi^1, .., Phi^L]`` on the training points."""
    Y = _targets(Y)
    P = Y.shape[0]
    Cs = _priors(kernels, K0, sigma_w, sigma_b)
    F = sum(_kl(S, C) for S, C in zip(kernels, Cs))
    A = kernels[-1] + temperature * np.eye(P)
    return F + 0.5 * gamma**2 * np.trace(Y.T @ np.linalg.solve(A, Y))


def _next_conjugates(kernels, K0, Y, sigma_w, sigma_b, gamma, temperature):
    """The second term of eq. G for every layer (``hatPhi^{next}``)."""
    Y = _targets(Y)
    P = Y.shape[0]
    Cs = _priors(kernels, K0, sigma_w, sigma_b)
    L = len(kernels)
    out = [None] * L
    A = np.linalg.solve(kernels[-1] + temperature * np.eye(P), Y)
    out[L - 1] = -gamma**2 * A @ A.T
    for l in range(L - 1):
        C = Cs[l + 1]
        Ci = np.linalg.inv(C)
        out[l] = sigma_w**2 * Ci @ (C - kernels[l + 1]) @ Ci
    return out


def gradient(kernels, K0, Y, *, sigma_w, sigma_b, gamma, temperature):
    """``[dF/dPhi^1, .., dF/dPhi^L]`` (symmetric; eq. G)."""
    Cs = _priors(kernels, K0, sigma_w, sigma_b)
    nxt = _next_conjugates(kernels, K0, Y, sigma_w, sigma_b, gamma, temperature)
    return [0.5 * (np.linalg.inv(C) - np.linalg.inv(S)) + 0.5 * H for S, C, H in zip(kernels, Cs, nxt)]


def conjugates(kernels, K0, Y, *, sigma_w, sigma_b, gamma, temperature):
    """The conjugate kernels ``hatPhi_l`` at a stationary point (eq. G, second term), equal there
    to ``Phi_l^{-1} - C_{l-1}^{-1}``."""
    return _next_conjugates(kernels, K0, Y, sigma_w, sigma_b, gamma, temperature)


# ----------------------------------------------------------------------------------------------
# closed form (sigma_b = 0)

def _spectral(K0, Y):
    lam, V = np.linalg.eigh(K0)
    lam = np.maximum(lam, 0.0)
    q = ((V.T @ _targets(Y)) ** 2).sum(axis=1)
    return lam, V, q


def closed_form_action(kappa, lam, q, *, depth, sigma_w, gamma, temperature):
    """``F1(kappa)`` (restriction of F to the stationary family) and ``dF1/dkappa``."""
    L, T = depth, temperature
    s = sigma_w ** (2 * (L - 1))
    w = 1.0 - kappa
    u = w ** (-L)
    den = s * u * lam + T
    F = 0.5 * L * (kappa / w + np.log(w)) + 0.5 * gamma**2 * np.sum(q / den)
    dF = 0.5 * L * kappa / w**2 - 0.5 * gamma**2 * s * L * w ** (-L - 1) * np.sum(lam * q / den**2)
    return F, dF


def closed_form(K0, Y, *, depth, sigma_w, gamma, temperature, n_grid=4000):
    """Every stationary point of F for sigma_b = 0 and rank(Y) <= 1, and the global minimum.

    Returns a dict: ``kappa`` (global minimiser of F1), ``kernels``, ``conjugates``, ``action``,
    ``stationary`` (list of ``(kappa, F1)`` at every root of dF1/dkappa, found by a scan of
    ``n_grid`` points in ``t = logit(kappa)`` and brentq), ``ridge`` (the effective ridge of the
    mean predictor ``T (1 - kappa)^L / s``).
    """
    Y = _targets(Y)
    if np.linalg.matrix_rank(Y, tol=1e-12 * max(np.abs(Y).max(), 1e-300)) > 1:
        raise ValueError("closed form needs rank(Y) <= 1 (one output, or parallel outputs)")
    L, T = depth, temperature
    lam, V, q = _spectral(K0, Y)
    args = dict(depth=L, sigma_w=sigma_w, gamma=gamma, temperature=T)

    s = sigma_w ** (2 * (L - 1))

    def dF(t):  # dF1/dkappa * (1 - kappa)^2 / (L/2), in t = logit(kappa): same sign, no overflow
        kap, w = 1.0 / (1.0 + np.exp(-t)), 1.0 / (1.0 + np.exp(t))
        return kap - gamma**2 * s * np.sum(lam * q * w ** (L + 1) / (s * lam + T * w**L) ** 2)

    ts = np.linspace(-40.0, 40.0, n_grid)
    vals = np.array([dF(t) for t in ts])
    roots = []
    if np.sum(lam * q) <= 0:
        roots = [0.0]
    else:
        for i in np.flatnonzero(np.sign(vals[:-1]) != np.sign(vals[1:])):
            t = optimize.brentq(dF, ts[i], ts[i + 1], xtol=1e-14, rtol=1e-15)
            roots.append(1.0 / (1.0 + np.exp(-t)))
    stationary = [(k, closed_form_action(k, lam, q, **args)[0]) for k in roots]
    kappa = min(stationary, key=lambda r: r[1])[0]
    kernels, conj = closed_form_kernels(K0, Y, kappa, **args)
    return dict(kappa=kappa, kernels=kernels, conjugates=conj, stationary=stationary,
                action=closed_form_action(kappa, lam, q, **args)[0], ridge=T * (1 - kappa) ** L / s)


def closed_form_kernels(K0, Y, kappa, *, depth, sigma_w, gamma, temperature):
    """Kernels and conjugates of the stationary family at ``kappa``."""
    Y = _targets(Y)
    L, T = depth, temperature
    P = Y.shape[0]
    s = sigma_w ** (2 * (L - 1))
    A = np.linalg.solve(s * (1 - kappa) ** (-L) * K0 + T * np.eye(P), Y)  # (Phi^L + T I)^{-1} Y
    j = np.argmax((A**2).sum(axis=0))
    v = K0 @ A[:, j]
    k = A[:, j] @ v
    if k <= 0:
        kernels = nngp_kernels(K0, L, sigma_w, 0.0)
    else:
        kernels = [sigma_w ** (2 * (l - 1)) * (K0 + ((1 - kappa) ** (-l) - 1) * np.outer(v, v) / k)
                   for l in range(1, L + 1)]
    conj = [-gamma**2 * (sigma_w**2 / (1 - kappa)) ** (L - l) * A @ A.T for l in range(1, L + 1)]
    return kernels, conj


# ----------------------------------------------------------------------------------------------
# general solver (any sigma_b, any number of outputs): L-BFGS over whitened Cholesky factors

def solve(K0, Y, *, depth, sigma_w, sigma_b, gamma, temperature, init=None, gtol=1e-11, maxiter=20000):
    """Minimise F over ``Phi^l = R_l A_l A_l^T R_l^T`` (``R_l`` = Cholesky factor of the NNGP
    kernel of layer l, ``A_l`` lower triangular, starting at ``I`` = NNGP or at ``init``) with
    SciPy's L-BFGS-B. Needs ``K0`` positive definite. Returns ``(kernels, scipy result)``."""
    Y = _targets(Y)
    P, L = Y.shape[0], depth
    nn = nngp_kernels(K0, L, sigma_w, sigma_b)
    R = [np.linalg.cholesky(k) for k in nn]
    il = np.tril_indices(P)
    if init is None:
        A0 = [np.eye(P)] * L
    else:
        A0 = [linalg.solve_triangular(r, np.linalg.cholesky(k), lower=True) for r, k in zip(R, init)]
    x0 = np.concatenate([a[il] for a in A0])
    n = len(il[0])
    args = dict(sigma_w=sigma_w, sigma_b=sigma_b, gamma=gamma, temperature=temperature)

    def unpack(x):
        As = []
        for l in range(L):
            a = np.zeros((P, P))
            a[il] = x[l * n:(l + 1) * n]
            As.append(a)
        return As

    def fg(x):
        As = unpack(x)
        kernels = [r @ a @ a.T @ r.T for r, a in zip(R, As)]
        try:
            F = objective(kernels, K0, Y, **args)
            G = gradient(kernels, K0, Y, **args)
        except np.linalg.LinAlgError:
            return np.inf, np.zeros_like(x)
        # d/dA tr(G R A A^T R^T) = 2 R^T G R A, lower triangle
        g = np.concatenate([(2 * r.T @ Gl @ r @ a)[il] for r, a, Gl in zip(R, As, G)])
        return F, g

    res = optimize.minimize(fg, x0, jac=True, method="L-BFGS-B",
                            options=dict(maxiter=maxiter, maxcor=30, gtol=gtol, ftol=1e-16))
    As = unpack(res.x)
    return [r @ a @ a.T @ r.T for r, a in zip(R, As)], res


# ----------------------------------------------------------------------------------------------
# predictor

def test_kernels(kernels, K0, K0_cross, K0_test, *, sigma_w, sigma_b):
    """Readout kernels ``Phi^L(te, tr)`` (Q, P) and ``Phi^L(te, te)`` (Q, Q) of the augmented
    problem in which test rows carry no tilt: layer by layer (C = C^{l-1} on the training points)

        Phi^l(te, tr) = C(te, tr) C^{-1} Phi^l
        Phi^l(te, te) = C(te, te) - C(te, tr) C^{-1} C(tr, te) + C(te, tr) C^{-1} Phi^l C^{-1} C(tr, te)

    (the conditional law of test preactivations given training ones is the prior's).
    ``K0_cross`` = K^0(te, tr), ``K0_test`` = K^0(te, te)."""
    C, Cx, Ct = np.asarray(K0, float), np.asarray(K0_cross, float), np.asarray(K0_test, float)
    for S in kernels:
        B = np.linalg.lstsq(C, Cx.T, rcond=1e-12)[0].T  # C(te, tr) C^{-1} (pseudo-inverse if singular)
        cross = B @ S
        test = Ct - B @ Cx.T + B @ S @ B.T
        C, Cx, Ct = sigma_w**2 * S + sigma_b**2, sigma_w**2 * cross + sigma_b**2, sigma_w**2 * test + sigma_b**2
    return cross, test


def predict(kernels, K0, K0_cross, K0_test, Y, *, sigma_w, sigma_b, temperature):
    """Mean ``Phi^L(te, tr) (Phi^L + T I)^{-1} Y`` (Q, C) and the GP variance of the adapted
    kernel ``Phi^L(te, te) - Phi^L(te, tr) (Phi^L + T I)^{-1} Phi^L(tr, te)`` (Q,) (multiply by
    1 / (gamma^2 N) for the readout part of the width-N posterior variance)."""
    Y = _targets(Y)
    cross, test = test_kernels(kernels, K0, K0_cross, K0_test, sigma_w=sigma_w, sigma_b=sigma_b)
    A = kernels[-1] + temperature * np.eye(Y.shape[0])
    mean = cross @ np.linalg.solve(A, Y)
    var = np.diag(test) - np.einsum("ij,ji->i", cross, np.linalg.solve(A, cross.T))
    return mean, var
