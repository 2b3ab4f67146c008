"""Reference of :mod:`adaptive_kernels.mcmc`: the tilted single-site density
``N(h; 0, C) exp(-phi(h)^T hat_phi phi(h) / 2)``, its potential in whitened coordinates, exact
moments by quadrature (P = 2), a plain MALA sampler, the chain-radius diagnostic, and the
rank-normalized R-hat, bulk and tail ESS of Vehtari et al. (2021)."""
import numpy as np

__all__ = ["tilted_potential", "tilted_moments_quadrature", "sample_tilted", "chain_radius", "relu_pattern_witness", "relu_tilt_ratio",
           "radial_potential", "radial_moments_circle", "radial_estimate",
           "smc_kish_fraction", "smc_next_beta", "smc_resample", "smc_move", "relu_ray_sup",
           "rank_rhat", "ess_bulk", "ess_tail", "chain_diagnostics"]


def _phi_and_derivative(activation):
    """phi and phi' of the built-in activations (the same formulas as the Rust core)."""
    from scipy.special import erf
    from scipy.stats import norm
    table = {
        "linear": (lambda x: x, lambda x: np.ones_like(x)),
        "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
        "erf": (erf, lambda x: 2 / np.sqrt(np.pi) * np.exp(-x * x)),
        "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
        "gelu": (lambda x: x * norm.cdf(x), lambda x: norm.cdf(x) + x * norm.pdf(x)),
        "softplus": (lambda x: np.logaddexp(0.0, x), lambda x: 1 / (1 + np.exp(-x))),
    }
    return table[activation]


def _factor(C):
    """``F`` with ``C = F F^T``: Cholesky, or ``U sqrt(lambda)`` on the support of a singular C."""
    try:
        Lc = np.linalg.cholesky(C)
        if np.all(np.diag(Lc) ** 2 > 1e-10 * np.diag(C).max()):
            return Lc
    except np.linalg.LinAlgError:
        pass
    lam, U = np.linalg.eigh(C)
    keep = lam > 1e-10 * lam.max()
    return U[:, keep] * np.sqrt(lam[keep])


def tilted_potential(z, C, hat_phi, activation):
    """``U(z) = |z|^2/2 + phi(Lz)^T hatPhi phi(Lz)/2`` and its gradient ``z + L^T (phi'(h) * hatPhi phi(h))``,
    with ``h = L z``, ``C = L L^T``: the tilted density ``N(h; 0, C) exp(-phi^T hatPhi phi / 2)`` in
    whitened coordinates."""
    phi, dphi = _phi_and_derivative(activation)
    L = np.linalg.cholesky(C)
    h = L @ z
    v = hat_phi @ phi(h)
    u = 0.5 * z @ z + 0.5 * phi(h) @ v
    return u, z + L.T @ (dphi(h) * v)


def tilted_moments_quadrature(C, hat_phi, activation, order=80):
    """Exact (tensor Gauss-Hermite) moments ``<phi phi^T>``, ``<h h^T>`` of the tilted density for
    P = 1 or 2, in whitened coordinates; for checking the sampler. Needs a bounded tilt factor
    over the quadrature range (bounded phi, or a tilt that does not raise the density)."""
    P = C.shape[0]
    if P > 2:
        raise ValueError("tilted_moments_quadrature: P must be 1 or 2")
    phi, _ = _phi_and_derivative(activation)
    x, w = np.polynomial.hermite_e.hermegauss(order)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * P), indexing="ij")
    Z = np.stack([g.ravel() for g in grids], axis=1)              # (n, P) standard normal nodes
    W = np.prod(np.meshgrid(*([w] * P), indexing="ij"), axis=0).ravel()
    H = Z @ np.linalg.cholesky(C).T
    F = phi(H)
    logt = -0.5 * np.einsum("ni,ij,nj->n", F, hat_phi, F)
    t = W * np.exp(logt - logt.max())
    t /= t.sum()
    return (F * t[:, None]).T @ F, (H * t[:, None]).T @ H


# ----------------------------------------------------------------------------------------------
# nonlinear networks: tilted densities sampled once, reweighted (common random numbers),
# Newton-Krylov on the conjugate fixed point

def sample_tilted(C, hat_phi, activation, *, n_chains=8, n_samples=500, burn_in=300, thin=2, step_size=0.2,
                  rng=None):
    """Draws ``(n_chains * n_samples, P)`` preactivations from ``N(h; 0, C) exp(-phi^T hatPhi phi / 2)``:
    MALA chains in whitened coordinates, vectorised over chains, step adapted during burn-in
    towards acceptance 0.574 (the algorithm of the Rust sampler; not its random stream)."""
    rng = np.random.default_rng(rng)
    phi, dphi = _phi_and_derivative(activation)
    Lc = _factor(C)                                      # (P, r): r < P on the support of a singular C
    P = Lc.shape[1]

    def pot(Z):                                          # Z (chains, r)
        H = Z @ Lc.T
        F = phi(H)
        V = F @ hat_phi
        U = 0.5 * np.sum(Z * Z, 1) + 0.5 * np.sum(F * V, 1)
        return U, Z + (dphi(H) * V) @ Lc, H

    Z = rng.standard_normal((n_chains, P))
    U, G, H = pot(Z)
    log_eta = np.full(n_chains, np.log(step_size))
    out = []
    for step in range(burn_in + n_samples * thin):
        eta = np.exp(log_eta)[:, None]
        prop = Z - eta * G + np.sqrt(2 * eta) * rng.standard_normal(Z.shape)
        U2, G2, H2 = pot(prop)
        fwd = np.sum((prop - Z + eta * G) ** 2, 1)
        bwd = np.sum((Z - prop + eta * G2) ** 2, 1)
        logr = U - U2 - (bwd - fwd) / (4 * eta[:, 0])
        acc = np.where(np.isfinite(U2), np.exp(np.minimum(logr, 0.0)), 0.0)
        take = rng.uniform(size=n_chains) < acc
        if step < burn_in:
            log_eta += (acc - 0.574) / (step + 10) ** 0.6
        Z = np.where(take[:, None], prop, Z)
        U = np.where(take, U2, U)
        G = np.where(take[:, None], G2, G)
        H = np.where(take[:, None], H2, H)
        if step >= burn_in and (step - burn_in) % thin == 0:
            out.append(H.copy())
    return np.concatenate(np.swapaxes(np.array(out), 0, 1), axis=0)     # chain-major


def chain_radius(q, n_chains, r):
    """Mean whitened squared radius ``|z|^2 / r`` over the first and the last third of every chain
    (``q = |z|^2`` chain-major, ``r`` whitened coordinates): equal for chains in equilibrium, growing
    for chains still drifting along a soft direction (or running away from a non-normalizable tilt)."""
    q = np.asarray(q, float).reshape(n_chains, -1) / r
    third = max(q.shape[1] // 3, 1)
    return np.array([q[:, :third].mean(), q[:, -third:].mean()])


# ----------------------------------------------------------------------------------------------
# rank-normalized chain diagnostics (Vehtari, Gelman, Simpson, Carpenter, Bürkner 2021), on
# draws x of shape (chains, draws); the formulas are in the module docs of rust/core/src/mcmc/rank.rs

def _split(x):
    """(m, n) -> (2m, n // 2): first halves of all chains, then second halves (odd: middle dropped)."""
    h = x.shape[1] // 2
    return np.concatenate([x[:, :h], x[:, x.shape[1] - h:]])


def _normal_scores(x):
    """``Phi^-1((r - 3/8) / (S + 1/4))`` of the average ranks ``r`` among all ``S`` draws."""
    from scipy.stats import norm, rankdata
    return norm.ppf((rankdata(x, method="average").reshape(x.shape) - 0.375) / (x.size + 0.25))


def _rhat(x):
    n = x.shape[1]
    B = n * np.var(x.mean(axis=1), ddof=1)
    W = np.mean(np.var(x, axis=1, ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):     # W = 0: inf or NaN, as ArviZ
        return np.sqrt((B / W + n - 1) / n)


def _ess(x):
    """ESS of (m, n) chains: Geyer's initial positive, then monotone, sequence of pairs."""
    m, n = x.shape
    if np.max(x) - np.min(x) < 1e-15:
        return float(x.size)
    c = x - x.mean(axis=1, keepdims=True)
    acov = np.array([np.correlate(ci, ci, "full")[n - 1:] / n for ci in c])   # direct sums
    W = acov[:, 0].mean() * n / (n - 1)
    var_plus = W * (n - 1) / n + (np.var(x.mean(axis=1), ddof=1) if m > 1 else 0.0)
    rho = 1 - (W - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    keep = np.zeros(n)
    keep[:2] = rho[:2]
    t = 1                      # pairs (rho_{t+1}, rho_{t+2}) while the previous pair is positive
    while t < n - 3 and rho[t - 1] + rho[t] > 0:
        if rho[t + 1] + rho[t + 2] >= 0:
            keep[t + 1:t + 3] = rho[t + 1:t + 3]
        t += 2
    K = t - 1                  # whole pairs below lag K; lag K (the last even lag) on its own
    if rho[K] > 0:
        keep[K] = rho[K]
    for t in range(1, K - 2, 2):            # each pair at most the previous pair
        if keep[t + 1] + keep[t + 2] > keep[t - 1] + keep[t]:
            keep[t + 1] = keep[t + 2] = (keep[t - 1] + keep[t]) / 2
    if not np.all(np.isfinite(keep)):
        return np.nan
    tau = -1 + 2 * keep[:K].sum() + keep[K]
    return x.size / max(tau, 1 / np.log10(x.size))


def _usable(x, min_chains):
    return x.shape[0] >= min_chains and x.shape[1] >= 4 and np.all(np.isfinite(x))


def rank_rhat(x):
    """Rank-normalized split R-hat: the larger of the bulk and the folded (tail) R-hat."""
    x = np.atleast_2d(np.asarray(x, float))
    if not _usable(x, 2):
        return np.nan
    s = _split(x)
    return max(_rhat(_normal_scores(s)), _rhat(_normal_scores(np.abs(s - np.median(s)))))


def ess_bulk(x):
    """Bulk ESS: ESS of the normal scores of the split chains."""
    x = np.atleast_2d(np.asarray(x, float))
    return _ess(_normal_scores(_split(x))) if _usable(x, 1) else np.nan


def ess_tail(x):
    """Tail ESS: the smaller ESS of the split indicators of the 5% and 95% quantiles (type 7,
    with scipy's ``mquantiles`` arithmetic, as ArviZ)."""
    from scipy.stats.mstats import mquantiles
    x = np.atleast_2d(np.asarray(x, float))
    if not _usable(x, 1):
        return np.nan
    lo, hi = (_ess(_split((x <= mquantiles(x, p, alphap=1, betap=1)[0]).astype(float))) for p in (0.05, 0.95))
    return min(lo, hi)


def chain_diagnostics(chains):
    """``(rhat, ess_bulk, ess_tail)`` per parameter of draws ``(chains, draws, params)``."""
    chains = np.asarray(chains, float)
    return tuple(np.array([f(chains[:, :, k]) for k in range(chains.shape[2])])
                 for f in (rank_rhat, ess_bulk, ess_tail))


def relu_pattern_witness(k0, b):
    """Best evaluated ``(b.relu(h))_+^2 / h^T K0^+ h`` over directions ``h = K0 v`` and that
    ``h`` (core ``mcmc::tilted::homogeneous::pattern_witness``): iterate the stationarity
    condition ``v <- b * [K0 v > 0]`` from ``b``, ``b_+`` and the unit vector of the largest
    ``|b_i|``; then maximise ``b_S.h`` with ``h_j <= 0`` on an active set ``Z`` of ``b_j < 0``
    (``h = K0 (b_S - E_Z lambda)``, ``lambda = K0_ZZ^-1 (K0 b_S)_Z``), the suprema on faces."""
    k0, b = np.asarray(k0, float), np.asarray(b, float)
    i = int(np.argmax(np.abs(b)))
    e = np.zeros_like(b)
    e[i] = np.sign(b[i])
    best, best_h = 0.0, np.zeros_like(b)
    for v in (b.copy(), np.maximum(b, 0.0), e):
        last = None
        for _ in range(60):
            h = k0 @ v
            q, n = v @ h, b[h > 0] @ h[h > 0]
            r = n * n / q if q > 1e-9 * np.diag(k0).max() * (v @ v) and n > 0 else 0.0
            if r > best:
                best, best_h = r, h
            pat = h > 0
            if last is not None and np.array_equal(pat, last):
                break
            v, last = np.where(pat, b, 0.0), pat
    # faces h_Z = 0 (b_Z < 0): active-set iteration from the same starts
    for v0 in (b.copy(), np.maximum(b, 0.0), e):
        h = k0 @ v0
        Z, S = [], (b > 0) & (h > 0)
        for _ in range(60):
            c = np.where(S, b, 0.0)
            kc = k0 @ c
            if Z:
                kzz = k0[np.ix_(Z, Z)]
                try:
                    Lz = np.linalg.cholesky(kzz)
                except np.linalg.LinAlgError:
                    break
                if np.diag(Lz).min() ** 2 <= 1e-9 * np.diag(kzz).max():
                    break
                lam = np.linalg.solve(kzz, kc[Z])
            else:
                lam = np.zeros(0)
            v = c.copy()
            v[Z] -= lam
            h = k0 @ v
            q, n = v @ h, b[h > 0] @ h[h > 0]
            r = n * n / q if q > 1e-9 * np.diag(k0).max() * (v @ v) and n > 0 else 0.0
            if r > best:
                best, best_h = r, h
            Zn = sorted([j for t, j in enumerate(Z) if lam[t] > 0]
                        + [j for j in range(len(b)) if b[j] < 0 and h[j] > 0 and j not in Z])
            Sn = (b > 0) & (h > 0)
            if Zn == Z and np.array_equal(Sn, S):
                break
            Z, S = Zn, Sn
    return best, best_h


def relu_tilt_ratio(k0, a, gamma):
    """Lower bound on ``rho = gamma^2 sup_h (a.relu(h))^2 / h^T K0^+ h`` (the relu tilt
    ``N(h; 0, K0) exp(gamma^2 (a.relu(h))^2 / 2)`` is normalizable iff ``rho < 1``; core
    ``mcmc::tilted::rank_one_ratio``): the better of the pattern witnesses of ``b = +-a``."""
    a = np.asarray(a, float)
    return gamma ** 2 * max(relu_pattern_witness(k0, a)[0], relu_pattern_witness(k0, -a)[0])


def radial_potential(z, F, a, gamma, activation="relu"):
    """``U(z) = |z|^2/2 + (r/2) ln(1 - c(z))``, ``c = gamma^2 (a.phi(F z))^2 / |z|^2`` (r = len z), and
    its gradient: the direction sampler of the rank-one tilt (core ``mcmc::tilted::radial``);
    ``U = inf`` where ``c >= 1``."""
    phi, dphi = _phi_and_derivative(activation)
    z = np.asarray(z, float)
    r, n2 = len(z), z @ z
    h = F @ z
    s = a @ phi(h)
    c = gamma ** 2 * s * s / n2
    if not c < 1:
        return np.inf, np.full(r, np.nan)
    ds = F.T @ (a * dphi(h))
    gc = 2 * gamma ** 2 * s * (ds - s * z / n2) / n2
    return 0.5 * n2 + 0.5 * r * np.log1p(-c), z - 0.5 * r * gc / (1 - c)


def radial_moments_circle(k0, a, gamma, activation="relu", n=200_000):
    """``<phi phi^T>``, ``<h h^T>`` of ``N(h; 0, k0) exp(gamma^2 (a.phi(h))^2 / 2)`` for a rank-2
    ``k0`` by the radius-integrated formula: directions on the circle weighted by
    ``(1 - c(u))^{-1}`` (``-r/2`` with r = 2), moments ``E[r / (1 - c) psi psi^T]``."""
    phi, _ = _phi_and_derivative(activation)
    F = _factor(np.asarray(k0, float))
    assert F.shape[1] == 2
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    U = np.vstack([np.cos(t), np.sin(t)])
    psi, hu = phi(F @ U), F @ U
    c = gamma ** 2 * (a @ psi) ** 2
    assert c.max() < 1, "not normalizable"
    w = (1 - c) ** -1.0
    m = w * 2 / (1 - c)
    return (psi * m) @ psi.T / w.sum(), (hu * m) @ hu.T / w.sum()


def radial_estimate(F, a, gamma, Z, activation="relu"):
    """The Rao-Blackwellised moments from direction draws ``Z`` (n x r, any radius):
    ``mean_i r / (1 - c_i) psi_i psi_i^T`` with ``psi_i = phi(F z_i / |z_i|)``."""
    phi, _ = _phi_and_derivative(activation)
    Uz = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    psi = phi(Uz @ F.T)
    c = gamma ** 2 * (psi @ a) ** 2
    m = F.shape[1] / (1 - c)
    return (psi * m[:, None]).T @ psi / len(Z)


def smc_kish_fraction(log_w):
    """``(sum w)^2 / (N sum w^2)`` of the weights ``exp(log_w)`` (core ``mcmc::tilted::smc``)."""
    w = np.exp(np.asarray(log_w, float) - np.max(log_w))
    return w.sum() ** 2 / (len(w) * (w * w).sum())


def smc_next_beta(energy, beta, kish):
    """The next rung of the SMC ladder: the largest ``beta'`` in ``(beta, 1]`` whose incremental
    weights ``exp(-(beta' - beta) E / 2)`` keep a Kish fraction ``>= kish`` (60 bisections)."""
    energy = np.asarray(energy, float)
    frac = lambda b: smc_kish_fraction(-0.5 * (b - beta) * energy)
    if frac(1.0) >= kish:
        return 1.0
    lo, hi = beta, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if frac(mid) >= kish else (lo, mid)
    return lo


def smc_resample(log_w, u0):
    """Systematic resampling: for each i the index j with ``W_{j-1} <= (i + u0)/N < W_j``."""
    w = np.exp(np.asarray(log_w, float) - np.max(log_w))
    cw = np.cumsum(w)
    n = len(w)
    t = (np.arange(n) + u0) / n * cw[-1]
    return np.minimum(np.searchsorted(cw, t, side="right"), n - 1)


def smc_move(F, hat_phi, Z, Xi, unif, L, eta, beta, activation):
    """One preconditioned MALA sweep of the SMC sampler at ``beta`` (columns of ``Z`` are the
    particles, ``Sigma = L L^T``): ``z' = z - eta Sigma g(z) + sqrt(2 eta) L xi``,
    ``g = (1 - beta) z + beta grad U_1``, ``U_beta = |z|^2/2 + beta phi^T hatPhi phi / 2``; accepted
    when ``unif < exp(U_beta(z) - U_beta(z') - (z - z' + eta Sigma g(z'))^T Sigma^-1 (...) / (4 eta)
    + |xi|^2 / 2)``. Returns the new particles and the acceptance probabilities."""
    phi, dphi = _phi_and_derivative(activation)
    S = L @ L.T

    def pot(z):
        h = F @ z
        v = hat_phi @ phi(h)
        return 0.5 * z @ z + 0.5 * beta * phi(h) @ v, (1 - beta) * z + beta * (z + F.T @ (dphi(h) * v))

    Z = np.array(Z, float)
    acc = np.zeros(Z.shape[1])
    for j in range(Z.shape[1]):
        z = Z[:, j]
        u0, g0 = pot(z)
        zp = z - eta * S @ g0 + np.sqrt(2 * eta) * L @ Xi[:, j]
        u1, g1 = pot(zp)
        d = z - zp + eta * S @ g1
        y = np.linalg.solve(L, d)
        lr = u0 - u1 - y @ y / (4 * eta) + 0.5 * Xi[:, j] @ Xi[:, j]
        acc[j] = np.exp(min(lr, 0.0))
        if unif[j] < acc[j]:
            Z[:, j] = zp
    return Z, acc


def relu_ray_sup(k0, a, gamma, n_starts=64, seed=0):
    """A lower bound on ``rho(a) = gamma^2 sup_z (a.relu(F z))^2 / |z|^2`` (``k0 = F F^T``) by
    L-BFGS ascent of the ratio from random starts, for either sign of ``a``: every value it
    returns is attained at an evaluated direction, so ``>= 1`` proves the tilt
    ``exp(gamma^2 (a.relu(h))^2 / 2) N(h; 0, k0)`` non-normalizable."""
    from scipy.optimize import minimize
    F = _factor(np.asarray(k0, float))
    a = np.asarray(a, float)

    def negc(z, b):
        n2, h = z @ z, F @ z
        s = b @ np.maximum(h, 0)
        ds = F.T @ (b * (h > 0))
        return -s * s / n2, -2 * s * (ds - s * z / n2) / n2

    rng, best = np.random.default_rng(seed), 0.0
    for t in range(n_starts):
        b = a if t % 2 else -a
        res = minimize(negc, rng.standard_normal(F.shape[1]), args=(b,), jac=True, method="L-BFGS-B")
        best = max(best, -negc(res.x, b)[0])
    return gamma ** 2 * best
