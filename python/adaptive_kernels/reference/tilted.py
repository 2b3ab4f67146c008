"""The tilted fixed point below the theories (``adaptive_kernels.tilted``, core ``ak_core::tilted``):
a NumPy reference of the sampled saddle point of nonlinear networks.

Conventions of ``reference.theories.mean_field`` (readout ``f = w . phi(h^L) / (gamma N)``,
``C^{l-1} = sigma_w^2 Phi^{l-1} + sigma_b^2``, ``C^0 = K^0``). Layer l's single-site density over
the P training preactivations is ``p_l(h) ∝ N(h; 0, C^{l-1}) exp(-phi(h)^T hatPhi_l phi(h) / 2)``;
forward ``Phi^l = <phi phi^T>``, ``H^l = <h h^T>``; backward ``hatPhi_L = -gamma^2 A A^T``,
``A = (Phi^L + T I)^{-1} Y`` and ``hatPhi_l = sigma_w^2 C_l^{-1} (C_l - H^{l+1}) C_l^{-1}``.
The moments are self-normalised importance averages of MCMC samples (reweighted between
redraws), the fixed point is found by Newton-Krylov (:func:`newton_krylov`), and
:func:`solve_tilted` reaches gamma by continuation. Shared by the Bayesian mean-field theory
(any depth) and the multi-scale theory's nonlinear tree level (one hidden layer at
``gamma = sqrt(chi / N) / sigma_w``, temperature ``T / sigma_w^2``).
"""
import numpy as np
from scipy import linalg

from .mcmc import _factor, _phi_and_derivative, sample_tilted

__all__ = ["base_log_weights", "tilted_map", "newton_krylov", "solve_tilted"]


def _targets(Y):
    Y = np.asarray(Y, dtype=float)
    return Y.reshape(Y.shape[0], -1)


def _quad_forms(C, h):
    """``h_s^T C^{-1} h_s`` per row of ``h``; with a singular ``C`` (``K^0`` of P > d + 1 points)
    the pseudo-inverse on its support (eigenvalues above 1e-10 of the largest)."""
    F = _factor(C)
    if F.shape[1] == F.shape[0]:
        z = linalg.solve_triangular(F, h.T, lower=True)
    else:
        z = np.linalg.lstsq(F, h.T, rcond=None)[0]      # F^+ h: |z|^2 = h^T C^+ h on the support
    return np.sum(z * z, 0)


def base_log_weights(h, C_ref, hat_ref, activation):
    """``+h^T C_ref^{-1} h / 2 + phi^T hatPhi_ref phi / 2``: minus the log density (up to a constant)
    that the samples ``h`` were drawn from; with it the samples reweight to any other tilt."""
    phi, _ = _phi_and_derivative(activation)
    F = phi(h)
    return 0.5 * _quad_forms(C_ref, h) + 0.5 * np.einsum("sp,pq,sq->s", F, hat_ref, F)


def tilted_map(hidden, A, samples, K0, Y, *, activation, sigma_w, sigma_b, gamma, temperature):
    """One outer iteration with a fixed sample set: the conjugate fixed-point map.

    ``hidden`` = ``[hatPhi_1 .. hatPhi_{L-1}]`` (P, P), ``A`` (P, C) the last layer's dual
    coefficients (``hatPhi_L = -gamma^2 A A^T``), ``samples`` = L pairs ``(h (S, P), base (S,))``.
    Forward: layer l's moments are self-normalised importance averages of its samples with log
    weights ``base - h^T C_{l-1}^{-1} h / 2 - phi^T hatPhi_l phi / 2``, ``C_{l-1} = sigma_w^2 Phi^{l-1} + sigma_b^2``.
    Backward: ``A' = (Phi^L + T I)^{-1} Y``, and
    ``hatPhi_l' = sigma_w^2 C_l^{-1} (C_l - <h h^T>_{l+1}) C_l^{-1} = sigma_w^2 sym(C_l^{-1} <h grad V^T>_{l+1})``
    with ``V = phi^T hatPhi_{l+1} phi / 2``, ``grad V = phi'(h) * (hatPhi_{l+1} phi(h))``: the first-order Stein
    identity ``<h grad U^T> = I`` for ``p ∝ exp(-U)``, ``U = h^T C^{-1} h / 2 + V``. Both sides are equal in
    expectation; the right one's Monte-Carlo error is proportional to the tilt, so it vanishes as gamma -> 0
    (the left one's does not, and ``C^{-1}`` amplifies it).

    Returns ``(hidden', A', kernels, second moments <h h^T>, Kish effective sample fraction per layer)``.
    """
    phi, dphi = _phi_and_derivative(activation)
    Y = _targets(Y)
    L, P = len(samples), Y.shape[0]
    C = np.asarray(K0, float)
    kernels, H2, kish, hidden_new = [], [], [], []
    for l, (h, base) in enumerate(samples):
        F = phi(h)
        hat = -gamma**2 * A @ A.T if l == L - 1 else hidden[l]
        tilt = np.einsum("sp,pq,sq->s", F, hat, F)
        logw = base - 0.5 * _quad_forms(C, h) - 0.5 * tilt
        w = np.exp(logw - logw.max())
        w /= w.sum()
        kernels.append(F.T @ (w[:, None] * F))
        H2.append(h.T @ (w[:, None] * h))
        kish.append(1.0 / (len(w) * np.sum(w * w)))
        if l > 0:
            gradV = dphi(h) * (F @ hat)
            m = sigma_w**2 * np.linalg.solve(C, h.T @ (w[:, None] * gradV))
            hidden_new.append(0.5 * (m + m.T))
        C = sigma_w**2 * kernels[-1] + sigma_b**2
    A_new = np.linalg.solve(kernels[-1] + temperature * np.eye(P), Y)
    return hidden_new, A_new, kernels, H2, np.array(kish)


def _pack(hidden, A):
    return np.concatenate([m.ravel() for m in hidden] + [A.ravel()])


def _unpack(x, L, P, C):
    hidden = [x[l * P * P:(l + 1) * P * P].reshape(P, P) for l in range(L - 1)]
    return [0.5 * (m + m.T) for m in hidden], x[(L - 1) * P * P:].reshape(P, C)


def _gmres(matvec, b, tol, m):
    """Unrestarted GMRES(m) from 0 (Arnoldi with modified Gram-Schmidt, Givens-free least squares)."""
    beta = np.linalg.norm(b)
    if beta == 0:
        return np.zeros_like(b)
    V = [b / beta]
    Hm = np.zeros((m + 1, m))
    for j in range(m):
        w = matvec(V[j])
        for i in range(j + 1):
            Hm[i, j] = w @ V[i]
            w = w - Hm[i, j] * V[i]
        Hm[j + 1, j] = np.linalg.norm(w)
        e = np.zeros(j + 2)
        e[0] = beta
        y, *_ = np.linalg.lstsq(Hm[:j + 2, :j + 1], e, rcond=None)
        if np.linalg.norm(Hm[:j + 2, :j + 1] @ y - e) <= tol * beta or Hm[j + 1, j] <= 1e-14 * beta:
            break
        V.append(w / Hm[j + 1, j])
    return np.array(V[:len(y)]).T @ y


def newton_krylov(residual, x0, *, tol=1e-9, max_iter=50, krylov=30, forcing=1e-2):
    """Inexact Newton on ``r(x) = 0`` with finite-difference Jacobian-vector products, GMRES(krylov)
    to relative tolerance ``forcing``, and backtracking on ``|r|``. ``residual(x)`` returns
    ``(r, measure)``, with ``r = None`` where x is inadmissible (then the step is halved); stops
    when ``measure < tol`` or no step decreases ``|r|``. Returns ``(x, n_iter, measure history)``."""
    x = x0.copy()
    r, meas = residual(x)
    if r is None:
        raise ValueError("newton_krylov: the starting point is inadmissible")
    hist = [meas]
    for it in range(max_iter):
        if meas < tol:
            return x, it, hist
        nx = max(np.linalg.norm(x), 1.0)

        def jv(v):
            eps = 1e-7 * nx / max(np.linalg.norm(v), 1e-300)
            rv = residual(x + eps * v)[0]
            return np.zeros_like(r) if rv is None else (rv - r) / eps

        d = _gmres(jv, -r, forcing, krylov)
        t, nr = 1.0, np.linalg.norm(r)
        for _ in range(30):
            xn = x + t * d
            rn, mn = residual(xn)
            if rn is not None and np.linalg.norm(rn) <= (1 - 1e-4 * t) * nr:
                break
            t *= 0.5
        else:
            return x, it, hist
        x, r, meas = xn, rn, mn
        hist.append(meas)
    return x, max_iter, hist


def _measure(hidden, A, hidden_new, A_new, Cs):
    """Dimensionless residual: ``max |L^T (hatPhi' - hatPhi) L|`` (``C = L L^T`` the layer's prior,
    i.e. the change of the whitened tilt) over hidden layers, and ``max |A' - A| / max |A'|``."""
    m = np.abs(A_new - A).max() / max(np.abs(A_new).max(), 1e-300)
    for l, (a, b) in enumerate(zip(hidden, hidden_new)):
        Lc = np.linalg.cholesky(Cs[l + 1])
        m = max(m, np.abs(Lc.T @ (b - a) @ Lc).max())
    return m


def solve_tilted(K0, Y, *, activation, depth, sigma_w, sigma_b, gamma, temperature, n_chains=8, n_samples=500,
                 burn_in=300, thin=2, seed=0, tol=1e-8, max_iter=50, min_kish=0.5, min_trial_kish=0.1, max_refresh=8,
                 max_stages=40):
    """Saddle point of a nonlinear network: gamma continuation from the NNGP (Phi-hat = 0); at each
    stage the tilted densities are sampled at the current iterate, the fixed point of
    :func:`tilted_map` on those samples is found by :func:`newton_krylov`, and the samples are
    redrawn at the new iterate until their Kish fraction is >= ``min_kish`` in every layer.
    Returns a dict (kernels, hidden, A, samples, converged, n_iter, residual, kish, stages)."""
    Y = _targets(Y)
    P, C, L = Y.shape[0], Y.shape[1], depth
    rng = np.random.default_rng(seed)
    kw = dict(activation=activation, sigma_w=sigma_w, sigma_b=sigma_b, temperature=temperature)

    def draw(hidden, A, g):
        Cl, samples = np.asarray(K0, float), []
        for l in range(L):
            hat = -g**2 * A @ A.T if l == L - 1 else hidden[l]
            h = sample_tilted(Cl, hat, activation, n_chains=n_chains, n_samples=n_samples, burn_in=burn_in,
                              thin=thin, rng=rng)
            samples.append((h, base_log_weights(h, Cl, hat, activation)))
            f = _phi_and_derivative(activation)[0](h)
            Cl = sigma_w**2 * f.T @ f / len(h) + sigma_b**2
        return samples

    def residual_fn(samples, g):
        def res(x):  # None outside the samples' trust region (Kish fraction < min_trial_kish) or if C is singular
            hidden, A = _unpack(x, L, P, C)
            try:
                hn, An, ks, _, kish = tilted_map(hidden, A, samples, K0, Y, gamma=g, **kw)
                Cs = [K0] + [sigma_w**2 * k + sigma_b**2 for k in ks]
                meas = _measure(hidden, A, hn, An, Cs)
            except np.linalg.LinAlgError:
                return None, np.inf
            if kish.min() < min_trial_kish or not np.isfinite(meas):
                return None, np.inf
            return _pack(hn, An) - x, meas
        return res

    x = np.zeros((L - 1) * P * P + P * C)
    g_done, g_try, n_iter, stages, hist, n_draws = 0.0, gamma, 0, [], [], 0
    converged = False
    while len(stages) < max_stages:
        x_start, ok, prev_res = x.copy(), False, np.inf
        if g_done > 0:                                  # predictor: gamma^2 A A^T (the last tilt) unchanged
            x[(L - 1) * P * P:] *= g_done / g_try
        for _ in range(max_refresh):
            samples = draw(*_unpack(x, L, P, C), g_try)
            n_draws += 1
            x_before = x.copy()
            x, it, h = newton_krylov(residual_fn(samples, g_try), x, tol=tol, max_iter=max_iter)
            n_iter += it
            hist += h
            kish = tilted_map(*_unpack(x, L, P, C), samples, K0, Y, gamma=g_try, **kw)[4]
            if h[-1] < tol and kish.min() >= min_kish:
                ok = True
                break
            if np.array_equal(x, x_before) or (h[-1] >= tol and h[-1] >= prev_res):
                break                                   # no progress on fresh samples: the stage fails
            prev_res = h[-1]
        if ok:
            good = samples                              # the final kernels come from a stage's own samples
            stages.append(g_try)
            g_done = g_try
            if g_done == gamma:
                converged = True
                break
            g_try = gamma
        else:
            x = x_start
            stages.append(-g_try)                       # failed stage (negative entry)
            g_try = 0.5 * (g_done + g_try)
    hidden, A = _unpack(x, L, P, C)
    if g_done == 0:
        raise ValueError(f"gamma: the continuation from the NNGP made no progress towards gamma = {gamma}")
    hn, An, ks, H2, kish = tilted_map(hidden, A, good, K0, Y, gamma=g_done, **kw)
    return dict(kernels=ks, hidden=hidden, A=A, samples=good, converged=converged, n_iter=n_iter,
                residual=hist[-1], residual_history=np.array(hist), kish=kish, stages=stages, n_draws=n_draws)
