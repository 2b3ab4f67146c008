"""Kernel renormalization (Li & Sompolinsky 2021; Pacelli et al. 2023): a NumPy/SciPy reference.

Conventions (issue #4 spec; depth L >= 1 hidden layers, widths N_1..N_L, temperature T > 0,
targets Y of shape (P,) or (P, C)):

    K^0 = sigma_w^2 X X^T / d + sigma_b^2                                   (not renormalized)
    M^l = sigma_w^2 E_{(u,v)~N(0, K^{l-1})}[phi(u) phi(v)] + sigma_b^2,  K^l = Q_l M^l   (l = 1..L)
    A   = K^L + T I
    S(Q) = 1/2 sum_l N_l (Q_l - ln Q_l) + 1/2 [tr(Y^T A^{-1} Y) + C ln det A]      (eq. S)
    dS/dQ_l = 1/2 N_l (1 - 1/Q_l) + 1/2 tr(G_l M^l),
        G_L = C A^{-1} - A^{-1} Y Y^T A^{-1},  G_{l-1} = (d K^l / d K^{l-1})^T [Q_l G_l]  (eq. dS)

so that dS_data/dK^l = G_l / 2. Q* = argmin_{Q > 0} S. The predictor is the GP posterior of the
renormalized kernel run on the joint set [X; X_test] with noise T.

The reference favours clarity over speed: every layer map is evaluated entrywise.
"""
import numpy as np
from scipy import linalg, optimize, special

from ..kernels.input import input_kernel
from ..kernels.lazy import activation_functions, gaussian_expectations
from ..kernels.hermite import gaussian_mean, hermite_or_quadrature
from ..kernels.quadrature import polar_expectation

__all__ = ["renormalized_kernels", "action", "action_gradient", "solve", "li_sompolinsky",
           "li_sompolinsky_zero_temperature", "predict", "expectation_derivatives"]

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)

# phi'' for the named activations evaluated by quadrature (relu's is a delta: closed form only)
_SECOND_DERIVATIVES = {
    "linear": np.zeros_like,
    "erf": lambda x: -4.0 / np.sqrt(np.pi) * x * np.exp(-x * x),
    "tanh": lambda x: -2.0 * np.tanh(x) * (1.0 - np.tanh(x) ** 2),
    "gelu": lambda x: _INV_SQRT_2PI * np.exp(-0.5 * x * x) * (2.0 - x * x),
    "softplus": lambda x: special.expit(x) * (1.0 - special.expit(x)),
}


# ----------------------------------------------------------------------------------------------
# net attributes and argument handling

def _opts(net):
    method = getattr(net, "method", "auto")
    if not isinstance(net.activation, str):
        # the core's layer maps: the quadrature for callables (phi'' by differences)
        method = "quadrature"
    elif method == "auto" and net.activation not in ("linear", "relu", "erf"):
        # and, with "auto", the Hermite maps for the smooth named activations (as "hermite")
        method = "hermite"
    return dict(method=method, order=getattr(net, "quadrature_order", 32),
                derivative=getattr(net, "activation_derivative", None))


def _hermite(net):
    """Whether the layer maps use the Hermite expansion (smooth named activations, "auto" or "hermite")."""
    return isinstance(net.activation, str) and net.activation in _SECOND_DERIVATIVES \
        and net.activation not in ("linear", "erf") and _opts(net)["method"] == "hermite"


def _widths(widths, depth):
    N = np.broadcast_to(np.asarray(widths, dtype=float), (depth,)).copy()
    if np.any(N <= 0):
        raise ValueError(f"widths must be > 0, got {widths}")
    return N


def _targets(Y):
    Y = np.asarray(Y, dtype=float)
    return Y.reshape(Y.shape[0], -1)


def _closed_form(net):
    return (isinstance(net.activation, str)
            and (net.activation in ("linear", "relu")
                 or (net.activation == "erf" and _opts(net)["method"] == "auto")))


def _second_derivative(net):
    """phi'' : analytic for named activations, a central difference for callables."""
    if isinstance(net.activation, str):
        return _SECOND_DERIVATIVES[net.activation]
    phi, dphi = activation_functions(net.activation, _opts(net)["derivative"])
    if getattr(net, "activation_derivative", None) is not None:     # d/dx phi'
        def ddphi(x):
            h = 1e-5 * np.maximum(1.0, np.abs(x))
            return (dphi(x + h) - dphi(x - h)) / (2.0 * h)
    else:                                                           # second difference of phi
        def ddphi(x):
            h = 1e-4 * np.maximum(1.0, np.abs(x))
            return (phi(x + h) - 2.0 * phi(x) + phi(x - h)) / (h * h)
    return ddphi


# ----------------------------------------------------------------------------------------------
# derivatives of E(a, b, c) = E_{(u,v)~N(0,[[a,c],[c,b]])}[phi(u) phi(v)]

def expectation_derivatives(net, a, b, c):
    """Elementwise (dE/dc, dE/da) at (a, b, c), without the sigma_w^2 factor.

    dE/dc = E[phi'(u) phi'(v)]          (Price's theorem)
    dE/da = 1/2 E[phi''(u) phi(v)]      (d/d Sigma_11 of a Gaussian expectation = 1/2 E[d^2/du^2])
    Closed forms: linear (1, 0); relu ((pi - theta)/(2 pi), sin(theta) sqrt(b/a)/(4 pi));
    erf (4/pi / sqrt((1+2a)(1+2b) - 4c^2), -(2/pi) s / ((1+2a) sqrt(1-s^2)), s = 2c/sqrt(...)).
    """
    a, b, c = (np.asarray(z, dtype=float) for z in (a, b, c))
    o = _opts(net)
    _, Ec = gaussian_expectations(net.activation, a, b, c, need_derivative=True, **o)
    if _closed_form(net):
        if net.activation == "linear":
            return Ec, np.zeros_like(c)
        if net.activation == "relu":
            ab = a * b
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = np.where(ab > 0, np.clip(c / np.sqrt(ab), -1.0, 1.0), 0.0)
                Ea = np.where(ab > 0, np.sqrt(1.0 - rho ** 2) * np.sqrt(b / a) / (4 * np.pi), 0.0)
            return Ec, Ea
        q = (1 + 2 * a) * (1 + 2 * b)                                    # erf
        s = np.clip(2 * c / np.sqrt(q), -1.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            Ea = -(2 / np.pi) * s / ((1 + 2 * a) * np.sqrt(1 - s * s))
        return Ec, Ea
    phi, _ = activation_functions(net.activation, o["derivative"])
    ddphi = _second_derivative(net)
    if _hermite(net):    # Mehler's formula for the pair (phi'', phi)
        return Ec, 0.5 * hermite_or_quadrature(ddphi, a, b, c, max(o["order"], 128), psi=phi, builtin=True)
    Ea = np.empty_like(c)
    for idx in np.ndindex(c.shape):
        Ea[idx] = 0.5 * polar_expectation(ddphi, phi, a[idx], b[idx], c[idx], o["order"])
    return Ec, Ea


def _diagonal_derivative(net, k):
    """d/dk E_{u~N(0,k)}[phi(u)^2] = E[phi'(u)^2 + phi(u) phi''(u)]  (= dE/dc + dE/da + dE/db at a=b=c=k).
    Closed forms: linear 1, relu 1/2, erf 4 / (pi (1+2k) sqrt(1+4k))."""
    k = np.asarray(k, dtype=float)
    if _closed_form(net):
        if net.activation == "linear":
            return np.ones_like(k)
        if net.activation == "relu":
            return np.full_like(k, 0.5)
        return 4.0 / (np.pi * (1 + 2 * k) * np.sqrt(1 + 4 * k))
    o = _opts(net)
    phi, dphi = activation_functions(net.activation, o["derivative"])
    ddphi = _second_derivative(net)
    if _hermite(net):
        return gaussian_mean(lambda x: dphi(x) ** 2 + phi(x) * ddphi(x), k, builtin=True)
    return np.array([polar_expectation(dphi, dphi, x, x, x, o["order"])
                     + polar_expectation(phi, ddphi, x, x, x, o["order"]) for x in k])


# ----------------------------------------------------------------------------------------------
# forward recursion

def _layer_map(net, K, derivatives=False):
    """M = sigma_w^2 E[phi phi] + sigma_b^2 entrywise from (K_ii, K_jj, K_ij); the diagonal uses the
    1-D expectation E(k, k, k) (as the NNGP reference does). With derivatives also returns
    (sw2 dE/dc, sw2 dE/da, sw2 de/dk) for the backward pass."""
    sw2, sb2 = net.sigma_w ** 2, net.sigma_b ** 2
    k = np.diag(K).copy()
    a, b = np.broadcast_arrays(k[:, None], k[None, :])
    E, _ = gaussian_expectations(net.activation, a, b, K, **_opts(net))
    e, _ = gaussian_expectations(net.activation, k, k, k, **_opts(net))
    E = E.copy()
    np.fill_diagonal(E, e)
    M = sw2 * E + sb2
    if not derivatives:
        return M
    Ec, Ea = expectation_derivatives(net, a, b, K)
    return M, sw2 * Ec, sw2 * Ea, sw2 * _diagonal_derivative(net, k)


def renormalized_kernels(net, X, Q, X2=None):
    """[K^0, ..., K^L] with K^l = Q_l M^l(K^{l-1}); for X2 given, of the joint set [X; X2]."""
    Q = np.broadcast_to(np.asarray(Q, dtype=float), (net.depth,))
    Z = np.asarray(X, dtype=float) if X2 is None else np.vstack([X, X2])
    Ks = [input_kernel(Z, sigma_w=net.sigma_w, sigma_b=net.sigma_b)]
    for l in range(net.depth):
        Ks.append(Q[l] * _layer_map(net, Ks[-1]))
    return Ks


# ----------------------------------------------------------------------------------------------
# action and its gradient

def _data_term(K_L, Y, T):
    """1/2 [tr(Y^T A^{-1} Y) + C ln det A] and G = C A^{-1} - A^{-1} Y Y^T A^{-1}, A = K^L + T I."""
    P, C = Y.shape
    factor = linalg.cho_factor(K_L + T * np.eye(P), lower=True)
    AiY = linalg.cho_solve(factor, Y)
    logdet = 2.0 * np.sum(np.log(np.diag(factor[0])))
    G = C * linalg.cho_solve(factor, np.eye(P)) - AiY @ AiY.T
    return 0.5 * (np.sum(Y * AiY) + C * logdet), 0.5 * (G + G.T)


def action(net, X, Y, Q, widths, T):
    """S(Q) = 1/2 sum_l N_l (Q_l - ln Q_l) + 1/2 [tr(Y^T A^{-1} Y) + C ln det A]   (eq. S)."""
    Q = np.asarray(Q, dtype=float)
    N = _widths(widths, net.depth)
    data, _ = _data_term(renormalized_kernels(net, X, Q)[-1], _targets(Y), T)
    return 0.5 * float(np.sum(N * (Q - np.log(Q)))) + data


def _data_and_gradient(net, X, Y, Q, T):
    """(S_data, dS_data/dQ) by reverse mode through the layers (eq. dS)."""
    L = net.depth
    Ks, Ms, derivs = [input_kernel(X, sigma_w=net.sigma_w, sigma_b=net.sigma_b)], [], []
    for l in range(L):                                   # forward, keeping what the backward needs
        M, *d = _layer_map(net, Ks[-1], derivatives=True)
        Ms.append(M)
        derivs.append(d)
        Ks.append(Q[l] * M)
    data, G = _data_term(Ks[-1], _targets(Y), T)          # G = G_L, dS_data/dK^L = G/2
    grad = np.zeros(L)
    for l in reversed(range(L)):
        grad[l] = 0.5 * np.sum(G * Ms[l])                 # dK^l/dQ_l = M^l
        if l == 0:
            break                                         # K^0 does not depend on Q
        H = Q[l] * G                                      # G with respect to M^l
        Ec, Ea, ek = derivs[l]
        # off-diagonal M_ij depends on K_ij (Ec), K_ii (Ea(i,j)) and K_jj (Ea(j,i)); M_ii on K_ii (ek)
        off = H.copy()
        np.fill_diagonal(off, 0.0)
        G = off * Ec
        G[np.diag_indices_from(G)] = 2.0 * np.sum(off * Ea, axis=1) + np.diag(H) * ek
    return data, grad


def action_gradient(net, X, Y, Q, widths, T):
    """dS/dQ_l = 1/2 N_l (1 - 1/Q_l) + 1/2 tr(G_l M^l)   (eq. dS), shape (L,)."""
    Q = np.asarray(Q, dtype=float)
    N = _widths(widths, net.depth)
    _, g = _data_and_gradient(net, X, Y, Q, T)
    return 0.5 * N * (1.0 - 1.0 / Q) + g


# ----------------------------------------------------------------------------------------------
# saddle point

def solve(net, X, Y, widths, T, Q0=None, tol=1e-12):
    """Q* = argmin_{Q > 0} S(Q): BFGS on z_l = ln(Q_l) sqrt(N_l / 2) (the prior term's Hessian is then
    ~1), then Newton steps on the analytic gradient (finite-difference Hessian, L x L) until the
    residual max_l |Q_l (2/N_l) dS/dQ_l| <= tol. Uses the shifted prior N/2 (Q - 1 - ln Q), which
    differs from eq. S by a constant and keeps the objective well scaled for huge widths."""
    L = net.depth
    N = _widths(widths, L)
    scale = np.sqrt(N / 2.0)
    t0 = np.zeros(L) if Q0 is None else np.log(np.broadcast_to(np.asarray(Q0, float), (L,)))

    def grad_t(t):                                       # dS/d ln Q
        data, g = _data_and_gradient(net, X, Y, np.exp(t), T)
        return data, 0.5 * N * np.expm1(t) + np.exp(t) * g

    def fun(z):
        t = z / scale
        data, g = grad_t(t)
        return 0.5 * np.sum(N * (np.expm1(t) - t)) + data, g / scale

    res = optimize.minimize(fun, t0 * scale, jac=True, method="BFGS",
                            options=dict(gtol=1e-10 * np.sqrt(N.max()), maxiter=2000))
    t = res.x / scale
    for _ in range(20):                                  # Newton polish on the gradient
        g = grad_t(t)[1]
        if np.max(np.abs(2.0 * g / N)) <= tol:
            break
        h = 1e-6
        H = np.column_stack([(grad_t(t + h * e)[1] - grad_t(t - h * e)[1]) / (2 * h) for e in np.eye(L)])
        t = t - np.linalg.solve(0.5 * (H + H.T), g)
    return np.exp(t)


def li_sompolinsky(net, X, Y, widths, T):
    """Deep linear net, sigma_b = 0: K^L = U K_lin, U = prod Q_l, K_lin = sigma_w^{2(L+1)} X X^T / d.
    Stationarity N_l (Q_l - 1) = R(U) with, in the eigenbasis of K_lin,
        R(U) = sum_k [U lam_k yhat_k^2 / (U lam_k + T)^2 - C U lam_k / (U lam_k + T)],
    so U = prod_l (1 + R(U)/N_l): a scalar root in ln U. Returns Q_l = 1 + R(U)/N_l."""
    if net.activation != "linear" or net.sigma_b != 0:
        raise ValueError("li_sompolinsky needs a linear network with sigma_b = 0")
    X = np.asarray(X, dtype=float)
    Y = _targets(Y)
    C = Y.shape[1]
    N = _widths(widths, net.depth)
    lam, V = np.linalg.eigh(net.sigma_w ** (2 * (net.depth + 1)) * X @ X.T / X.shape[1])
    lam = np.clip(lam, 0.0, None)
    y2 = np.sum((V.T @ Y) ** 2, axis=1)

    def R(U):
        s = U * lam + T
        return np.sum(U * lam * y2 / s ** 2 - C * U * lam / s)

    def h(t):                      # ln U - sum ln(1 + R/N_l); +inf where some 1 + R/N_l <= 0
        f = 1.0 + R(np.exp(t)) / N
        return t - np.sum(np.log(f)) if np.all(f > 0) else np.inf

    grid = np.linspace(-40.0, 40.0, 1601)            # h -> -inf as U -> 0; first sign change
    vals = np.array([h(t) for t in grid])
    j = int(np.argmax(vals >= 0))
    if vals[j] < 0 or j == 0:
        raise RuntimeError("no root of the Li-Sompolinsky equation in U in [e^-40, e^40]")
    hi = grid[j]
    if not np.isfinite(vals[j]):                      # cap the invalid region by a large value
        t_root = optimize.brentq(lambda t: min(h(t), 1e300), grid[j - 1], hi, xtol=1e-15, rtol=1e-15)
    else:
        t_root = optimize.brentq(h, grid[j - 1], hi, xtol=1e-15, rtol=1e-15)
    return 1.0 + R(np.exp(t_root)) / N


def li_sompolinsky_zero_temperature(X, y, width, sigma_w=1.0):
    """One hidden linear layer, T -> 0, C = 1, invertible K_lin = sigma_w^4 X X^T / d (P <= d):
    Q = [(1 - alpha) + sqrt((1 - alpha)^2 + 4 r)] / 2,  alpha = P / N,  r = y^T K_lin^{-1} y / N."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    K = sigma_w ** 4 * X @ X.T / X.shape[1]
    alpha = X.shape[0] / width
    r = y @ linalg.solve(K, y, assume_a="pos") / width
    return 0.5 * ((1 - alpha) + np.sqrt((1 - alpha) ** 2 + 4 * r))


# ----------------------------------------------------------------------------------------------
# predictor

class _LazyNet:
    """``net`` with method "hermite" (the lazy kernels' "auto" for activations without a closed form)."""

    def __init__(self, net):
        self._net = net
        self.method = "hermite"

    def __getattr__(self, name):
        return getattr(self._net, name)


def predict(net, X, Y, Q, T, X_test):
    """GP posterior of the renormalized kernel on the joint set [X; X_test]:
    mean = k_*^T A^{-1} Y,  var = diag K^L(X_test, X_test) - diag(k_*^T A^{-1} k_*) (latent f)."""
    P = np.asarray(X).shape[0]
    # the predictor's kernels are the lazy kernels with layer scales (the core calls lazy_kernels):
    # with "auto" the Hermite expansion for the smooth named activations, as in the lazy reference
    lazy = net
    if getattr(net, "method", "auto") == "auto" and isinstance(net.activation, str) \
            and net.activation not in ("linear", "relu", "erf"):
        lazy = _LazyNet(net)
    K = renormalized_kernels(lazy, X, Q, X_test)[-1]
    factor = linalg.cho_factor(K[:P, :P] + T * np.eye(P), lower=True)
    k_star = K[:P, P:]
    mean = k_star.T @ linalg.cho_solve(factor, np.asarray(Y, dtype=float))
    var = np.diag(K[P:, P:]) - np.sum(k_star * linalg.cho_solve(factor, k_star), axis=0)
    return mean, var
