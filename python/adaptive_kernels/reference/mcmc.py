"""Reference of :mod:`adaptive_kernels.mcmc`: the tilted single-site density
``N(h; 0, C) exp(-phi(h)^T hat_phi phi(h) / 2)``, its potential in whitened coordinates, exact
moments by quadrature (P = 2), a plain MALA sampler, the chain-radius diagnostic, and the
rank-normalized R-hat, bulk and tail ESS of Vehtari et al. (2021)."""
import numpy as np

__all__ = ["tilted_potential", "tilted_moments_quadrature", "sample_tilted", "chain_radius",
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
