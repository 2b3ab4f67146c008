"""Reference of :mod:`adaptive_kernels.mcmc`: the tilted single-site density
``N(h; 0, C) exp(-phi(h)^T hat_phi phi(h) / 2)``, its potential in whitened coordinates, exact
moments by quadrature (P = 2), a plain MALA sampler, and the chain-radius diagnostic."""
import numpy as np

__all__ = ["tilted_potential", "tilted_moments_quadrature", "sample_tilted", "chain_radius"]


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
