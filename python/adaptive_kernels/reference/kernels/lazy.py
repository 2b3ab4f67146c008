"""Infinite-width (lazy) NNGP and NTK kernels of fully connected networks.

Conventions (depth L >= 0 hidden layers, input dimension d):

    K^0(x, x')  = sigma_w^2 x.x' / d + sigma_b^2
    K^l         = sigma_w^2 E[phi(u) phi(v)] + sigma_b^2                 (NNGP recursion)
    Kdot^l      = E[phi'(u) phi'(v)]
    Th^0 = K^0,  Th^l = K^l + sigma_w^2 Th^{l-1} * Kdot^l                (NTK recursion)

where (u, v) ~ N(0, [[K^{l-1}(x, x), K^{l-1}(x, x')], [., K^{l-1}(x', x')]]).
"""
import numpy as np
from scipy import special

from .input import _check_inputs, _check_scales, _linear_diag, input_kernel

from .quadrature import polar_expectation

__all__ = ["activation_functions", "gaussian_expectations", "nngp_kernel", "ntk_kernel",
           "input_kernel", "empirical_nngp", "ACTIVATIONS"]

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)

# name -> (phi, phi')
ACTIVATIONS = {
    "linear": (lambda x: x, np.ones_like),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "erf": (special.erf, lambda x: 2.0 / np.sqrt(np.pi) * np.exp(-x * x)),
    "tanh": (np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    # gelu(x) = x Phi(x), gelu'(x) = Phi(x) + x pdf(x)
    "gelu": (lambda x: x * special.ndtr(x),
             lambda x: special.ndtr(x) + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)),
    # softplus(x) = log(1 + e^x), softplus'(x) = logistic sigmoid(x), both stable
    "softplus": (lambda x: np.logaddexp(0.0, x), special.expit),
}
_CLOSED_FORM = ("linear", "relu", "erf")


def _central_difference(phi):
    """phi'(x) ~ (phi(x + h) - phi(x - h)) / (2h), h = 1e-5 max(1, |x|)."""
    def dphi(x):
        h = 1e-5 * np.maximum(1.0, np.abs(x))
        return (phi(x + h) - phi(x - h)) / (2.0 * h)
    return dphi


def activation_functions(activation, derivative=None):
    """Return (phi, dphi) for a named activation or a vectorized callable.

    For a callable without `derivative`, dphi is a central difference.
    """
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; "
                             f"expected one of {sorted(ACTIVATIONS)} or a callable")
        if derivative is not None:
            raise ValueError("derivative is only used with a callable activation")
        return ACTIVATIONS[activation]
    if not callable(activation):
        raise TypeError("activation must be a string or a callable")
    if derivative is not None and not callable(derivative):
        raise TypeError("derivative must be callable or None")
    return activation, (derivative if derivative is not None else _central_difference(activation))


def _closed_form(activation, a, b, c, need_derivative):
    if activation == "linear":
        return c.copy(), (np.ones_like(c) if need_derivative else None)
    if activation == "relu":
        # arc-cosine kernel of degree 1 and 0 (Cho & Saul); a * b == 0 uses rho = 0
        ab = a * b
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(ab > 0, np.clip(c / np.sqrt(ab), -1.0, 1.0), 0.0)
        theta = np.arccos(rho)
        e = np.sqrt(ab) / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
        return e, ((np.pi - theta) / (2 * np.pi) if need_derivative else None)
    # erf (Williams 1997): E = 2/pi arcsin(2c / sqrt((1+2a)(1+2b)))
    q = (1 + 2 * a) * (1 + 2 * b)
    e = 2 / np.pi * np.arcsin(np.clip(2 * c / np.sqrt(q), -1.0, 1.0))
    # E[phi' phi'] = 4/pi / sqrt(det(I + 2 Sigma))
    return e, ((4 / np.pi) / np.sqrt(q - 4 * c * c) if need_derivative else None)


def gaussian_expectations(activation, a, b, c, *, method="auto", order=32, derivative=None,
                          need_derivative=False):
    """Elementwise (E[phi(u) phi(v)], E[phi'(u) phi'(v)] or None), (u, v) ~ N(0, [[a, c], [c, b]]).

    method "auto" uses closed forms for linear/relu/erf and the Hermite expansion otherwise
    ("hermite" also for linear/relu/erf; hermite.py, polar quadrature where its error bound
    misses 1e-12); "quadrature" forces the polar Gauss rule (see quadrature.py) for every
    activation.

    Degenerate variances (a * b == 0) use rho = 0: the relu closed form then gives
    E[relu relu] = 0 and E[step step] = 1/4 (the limit used by the Rust core), whereas the
    quadrature evaluates the integrand as is (step(0) = 0, so it gives 0 when a or b is 0).
    """
    if method not in ("auto", "quadrature", "hermite"):
        raise ValueError(f"method must be 'auto', 'quadrature' or 'hermite', got {method!r}")
    a, b, c = (np.asarray(z, dtype=float) for z in (a, b, c))
    if not a.shape == b.shape == c.shape:
        raise ValueError("a, b, c must have the same shape")
    phi, dphi = activation_functions(activation, derivative)
    if method == "auto" and isinstance(activation, str) and activation in _CLOSED_FORM:
        return _closed_form(activation, a, b, c, need_derivative)
    if method != "quadrature":   # the Hermite expansion (hermite.py), quadrature where it misses the bound
        from .hermite import hermite_or_quadrature
        if isinstance(activation, str):   # the core's fallback order for the named activations
            order = max(order, 128)
        builtin = isinstance(activation, str)   # the core's mesh rule, else Gauss-Hermite
        e = hermite_or_quadrature(phi, a, b, c, order, builtin=builtin)
        return e, (hermite_or_quadrature(dphi, a, b, c, order, builtin=builtin) if need_derivative else None)
    e = np.empty_like(c)
    ed = np.empty_like(c) if need_derivative else None
    for idx in np.ndindex(c.shape):
        e[idx] = polar_expectation(phi, phi, a[idx], b[idx], c[idx], order)
        if need_derivative:
            ed[idx] = polar_expectation(dphi, dphi, a[idx], b[idx], c[idx], order)
    return e, ed


def _recursion(X1, X2, depth, activation, sigma_w, sigma_b, method, order, derivative, ntk):
    _check_scales(sigma_w, sigma_b, depth)
    symmetric = X2 is None
    X1, X2 = _check_inputs(X1, X2)
    opts = dict(method=method, order=order, derivative=derivative)
    K = input_kernel(X1, None if symmetric else X2, sigma_w, sigma_b)
    k1 = _linear_diag(X1, sigma_w, sigma_b)            # K^{l-1}(x_i, x_i)
    k2 = k1 if symmetric else _linear_diag(X2, sigma_w, sigma_b)
    Th = K
    sw2, sb2 = sigma_w ** 2, sigma_b ** 2
    for _ in range(int(depth)):
        A, B = np.broadcast_arrays(k1[:, None], k2[None, :])
        E, Ed = gaussian_expectations(activation, A, B, K, need_derivative=ntk, **opts)
        # 1-D diagonal recursions (c = a = b) for the rows of X1 and of X2
        e1, _ = gaussian_expectations(activation, k1, k1, k1, **opts)
        e2 = e1 if symmetric else gaussian_expectations(activation, k2, k2, k2, **opts)[0]
        K_new = sw2 * E + sb2
        if ntk:
            Th = K_new + sw2 * Th * Ed
        K, k1, k2 = K_new, sw2 * e1 + sb2, sw2 * e2 + sb2
    return Th if ntk else K


def nngp_kernel(X1, X2=None, *, depth, activation="relu", sigma_w=1.0, sigma_b=0.0,
                method="auto", order=32, derivative=None):
    """NNGP kernel K^L(X1, X2) of a depth-L MLP, shape (P1, P2); X2=None means X2 = X1."""
    return _recursion(X1, X2, depth, activation, sigma_w, sigma_b, method, order, derivative,
                      ntk=False)


def ntk_kernel(X1, X2=None, *, depth, activation="relu", sigma_w=1.0, sigma_b=0.0,
               method="auto", order=32, derivative=None):
    """Neural tangent kernel Th^L(X1, X2) (NTK parameterization), shape (P1, P2)."""
    return _recursion(X1, X2, depth, activation, sigma_w, sigma_b, method, order, derivative,
                      ntk=True)


def empirical_nngp(X1, X2=None, *, depth, activation="relu", sigma_w=1.0, sigma_b=0.0,
                   width=512, n_networks=10, seed=0):
    """Readout kernels of `n_networks` random finite-width MLPs, shape (n_networks, P1, P2).

    W^0 ~ N(0, sigma_w^2 / d) (width x d), W^l ~ N(0, sigma_w^2 / width), b^l ~ N(0, sigma_b^2);
    h^1 = W^0 x + b^0, h^{l+1} = W^l phi(h^l) + b^l; each network gives
    sigma_w^2 phi(h^L) . phi(h^L)' / width + sigma_b^2, whose mean tends to nngp_kernel as
    width -> inf. For depth 0 the exact K^0 is repeated.
    """
    _check_scales(sigma_w, sigma_b, depth)
    if width < 1 or n_networks < 1:
        raise ValueError("width and n_networks must be >= 1")
    symmetric = X2 is None
    X1, X2 = _check_inputs(X1, X2)
    if depth == 0:
        K0 = input_kernel(X1, None if symmetric else X2, sigma_w, sigma_b)
        return np.repeat(K0[None], n_networks, axis=0)
    phi, _ = activation_functions(activation)
    X = X1 if symmetric else np.vstack([X1, X2])
    P1, d = X1.shape
    rng = np.random.default_rng(seed)
    out = np.empty((n_networks, P1, X2.shape[0]))
    for n in range(n_networks):
        W = rng.standard_normal((width, d)) * (sigma_w / np.sqrt(d))
        h = X @ W.T + sigma_b * rng.standard_normal(width)          # rows are h^1(x)
        for _ in range(int(depth) - 1):
            W = rng.standard_normal((width, width)) * (sigma_w / np.sqrt(width))
            h = phi(h) @ W.T + sigma_b * rng.standard_normal(width)
        feats = phi(h)
        F1, F2 = (feats, feats) if symmetric else (feats[:P1], feats[P1:])
        out[n] = sigma_w ** 2 * (F1 @ F2.T) / width + sigma_b ** 2
    return out
