"""Exact posterior of a one-hidden-layer linear network at finite width (NumPy/SciPy reference).

A readable, independent re-implementation of ``adaptive_kernels.exact_linear_posterior``:
a dense trapezoid grid in t = log u, without the Rust core's Newton search.

Given the readout v, f ~ GP(0, u K0) with K0 = sigma_w^2 X X^T / d and u = c |v|^2 / N, so
u ~ Gamma(shape N/2, scale 2c/N); c = sigma_w^2, kappa = T (standard) or
c = 1/(gamma^2 N), kappa = T/(N gamma^2) (mean field). Then
    p(u | y) ∝ Gamma(u) prod_c N(y_c; 0, u K0 + kappa I)
    mean(x*) = E_u[u k*^T (u K0 + kappa)^{-1} y]
    var(x*)  = E_u[u k** - u^2 k*^T (u K0 + kappa)^{-1} k*] + Var_u[mean_u(x*)]
"""
import numpy as np
from scipy import optimize, special

__all__ = ["exact_linear_posterior"]


def exact_linear_posterior(X, y, X_test=None, *, sigma_w, width, temperature, parameterization="standard",
                           gamma=1.0, n_grid=20001):
    """Return a dict: ``train_mean``, ``train_var`` (P, C), ``test_mean``, ``test_var`` (Q, C)
    or None, ``kernel_scale_mean``, ``kernel_scale_std``, ``log_evidence``."""
    X = np.asarray(X, dtype=float)
    Y = np.asarray(y, dtype=float).reshape(X.shape[0], -1)
    P, d = X.shape
    C = Y.shape[1]
    N = float(width)
    if parameterization == "standard":
        c, kappa = sigma_w**2, temperature
    elif parameterization == "mean_field":
        c, kappa = 1.0 / (gamma**2 * N), temperature / (N * gamma**2)
    else:
        raise ValueError(f"parameterization: unknown {parameterization!r}")
    shape, scale = N / 2, 2 * c / N

    K0 = sigma_w**2 * X @ X.T / d
    lam, V = np.linalg.eigh(K0)
    lam = np.where(lam > P * np.finfo(float).eps * max(lam.max(), 0.0), lam, 0.0)   # null directions
    Yk = V.T @ Y                                  # y in the eigenbasis, (P, C)
    Ysq = np.sum(Yk**2, axis=1)

    def log_integrand(t):
        """log[u p(u) p(y|u)] at t = log u (the u-integral in t has Jacobian u)."""
        t = np.atleast_1d(t)
        u = np.exp(t)
        s = u[:, None] * lam[None, :] + kappa     # eigenvalues of u K0 + kappa I
        log_prior = shape * (t - np.log(scale)) - u / scale - special.gammaln(shape)
        log_lik = -0.5 * np.sum(C * np.log(2 * np.pi * s) + Ysq[None, :] / s, axis=1)
        return log_prior + log_lik

    def log_integrand_rel(t, ta):
        """log_integrand(t) - log_integrand(ta), as a sum of per-eigenvalue differences:
        with du = u - u_a, x_k = lam_k du / s_k(u_a), log s_k - log s_k(u_a) = log1p(x_k) and
        1/s_k - 1/s_k(u_a) = -x_k / s_k. (Summing absolute terms loses ~1e-9 of the weights when
        kappa is small: the u-independent terms of null eigenvalues are then huge.)"""
        t = np.atleast_1d(t)
        ua = np.exp(ta)
        du = ua * np.expm1(t - ta)
        sa = ua * lam + kappa
        x = lam[None, :] * du[:, None] / sa[None, :]
        s = sa[None, :] * (1.0 + x)
        d_prior = shape * (t - ta) - du / scale
        d_lik = -0.5 * np.sum(C * np.log1p(x) - Ysq[None, :] * x / s, axis=1)
        return d_prior + d_lik

    # Locate the bulk on a coarse grid, refine the peak, then the points where the log integrand
    # is 50 below its maximum (relative weight 2e-22) bound the dense grid.
    t0 = np.log(c)
    coarse = t0 + np.linspace(-200.0, 40.0, 24001)
    gc = log_integrand(coarse)
    j = int(np.argmax(gc))
    ta = coarse[j]
    lo_b, hi_b = coarse[max(j - 1, 0)], coarse[min(j + 1, len(coarse) - 1)]
    peak = optimize.minimize_scalar(lambda t: -log_integrand_rel(t, ta)[0], bounds=(lo_b, hi_b), method="bounded",
                                    options={"xatol": 1e-12})
    gpeak = -peak.fun
    below = gc - gc[j] < gpeak - 50.0
    left = np.nonzero(below[:j])[0]
    right = np.nonzero(below[j:])[0]
    if len(left) == 0 or len(right) == 0:
        raise RuntimeError("reference grid too narrow")
    f = lambda t: log_integrand_rel(t, ta)[0] - (gpeak - 50.0)
    t_lo = optimize.brentq(f, coarse[left[-1]], peak.x)
    t_hi = optimize.brentq(f, peak.x, coarse[j + right[0]])
    t = np.linspace(t_lo, t_hi, n_grid)
    g = log_integrand_rel(t, ta)
    m = g.max()
    e = np.exp(g - m)
    h = t[1] - t[0]
    trap = np.full(n_grid, h)
    trap[[0, -1]] *= 0.5
    Z = np.sum(trap * e)
    w = trap * e / Z                              # posterior weights of the nodes
    log_evidence = log_integrand(ta)[0] + m + np.log(Z)
    u = np.exp(t)
    Eu = np.sum(w * u)
    Su = np.sqrt(np.sum(w * (u - Eu) ** 2))

    rho = u[:, None] / (u[:, None] * lam[None, :] + kappa)      # (G, P): u / s_k

    def mixture(A, cond):
        """A: (n, P) projections k*.e_k; cond: (G, n) conditional variances."""
        M = np.einsum("nk,gk,kc->gnc", A, rho, Yk)              # mean at each u, (G, n, C)
        mean = np.einsum("g,gnc->nc", w, M)
        var = np.einsum("g,gn->n", w, cond)[:, None] + np.einsum("g,gnc->nc", w, (M - mean) ** 2)
        return mean, var

    # train points: k*.e_k = lam_k V_mu,k; conditional variance sum_k V^2 u lam kappa / s_k
    train_mean, train_var = mixture(V * lam[None, :], kappa * (rho * lam[None, :]) @ (V**2).T)
    out = dict(train_mean=train_mean, train_var=train_var, test_mean=None, test_var=None,
               kernel_scale_mean=Eu, kernel_scale_std=Su, log_evidence=log_evidence)
    if X_test is not None:
        Xt = np.asarray(X_test, dtype=float)
        A = (sigma_w**2 * Xt @ X.T / d) @ V                     # (Q, P)
        A[:, lam == 0] = 0.0                                    # k*.e_k = 0 on null directions
        kss = sigma_w**2 * np.sum(Xt**2, axis=1) / d
        cond = u[:, None] * kss[None, :] - (u[:, None] * rho) @ (A**2).T
        out["test_mean"], out["test_var"] = mixture(A, cond)
    return out
