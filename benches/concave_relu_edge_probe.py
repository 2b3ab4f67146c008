"""Probe (issue #21): where the concave one-hidden-layer solver's relu iterates stall relative to
the edge of the domain ``rho(a) = gamma^2 sup_h (a.relu(h))^2 / h^T K0^+ h < 1``. MNIST 5k subset,
digits 0-4 vs 5-9 (``bench_mean_field_concave.mnist_split``), L = 1, T = 0.05, relu, seed 0.

Per (P, gamma): the concave fit cut at ``--max-stages`` (time, converged, Newton residual
``|grad g| / |y|``, Kish fraction), rho at its returned ``a`` by the pattern witness, by the
solver's domain bound (``RayBound``, fresh) and by the reference L-BFGS ascent from 64 starts
(``reference.mcmc.relu_ray_sup``, returning its direction ``h*``); the cosine between the SAA
gradient ``y - T a - K a`` and ``relu(h*)`` (the gradient of rho at ``a``: a KKT point of
"maximise g subject to rho <= 1" has cosine 1). ``--sampled``: the sampled solver at the same
point and rho at its readout ``a = (K + T I)^{-1} y``.

    AK_CONCAVE_DEBUG=1 python benches/concave_relu_edge_probe.py --P 100 --gammas 0.5 1 --max-stages 12
"""
import argparse
import time
import warnings

import numpy as np
from scipy.optimize import minimize

import adaptive_kernels as ak
from adaptive_kernels import _core
from bench_mean_field_concave import mnist_split


def sup_direction(k0, a, n_starts=64, seed=0):
    """``max_{b = +-a} sup_z (b.relu(F z))^2 / |z|^2`` by L-BFGS (as ``relu_ray_sup``) and its ``h = F z``."""
    w, V = np.linalg.eigh(k0)
    keep = w > 1e-10 * w[-1]
    F = V[:, keep] * np.sqrt(w[keep])

    def negc(z, b):
        n2, h = z @ z, F @ z
        s = b @ np.maximum(h, 0)
        return -s * s / n2, -2 * s * (F.T @ (b * (h > 0)) - s * z / n2) / n2

    rng, best = np.random.default_rng(seed), (0.0, None)
    for t in range(n_starts):
        b = a if t % 2 else -a
        r = minimize(negc, rng.standard_normal(F.shape[1]), args=(b,), jac=True, method="L-BFGS-B")
        if -r.fun > best[0]:
            best = (-r.fun, F @ r.x / np.linalg.norm(r.x))
    return best


def fit(solver, X, y, g, T, **kw):
    m = ak.BayesianMeanField(ak.MLP(depth=1, activation="relu"), gamma=g, temperature=T, solver=solver, **kw)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X, y)
    return time.perf_counter() - t, m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--P", type=int, nargs="+", default=[100])
    ap.add_argument("--gammas", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--T", type=float, default=0.05)
    ap.add_argument("--max-stages", type=int, default=12)
    ap.add_argument("--sampled", action="store_true")
    a = ap.parse_args()
    for P in a.P:
        X, y = mnist_split(P)
        k0 = X @ X.T / X.shape[1]
        for g in a.gammas:
            dt, m = fit("concave", X, y, g, a.T, rtol=0.01, seed=0, solver_options=dict(max_stages=a.max_stages))
            av, K = m.dual_coef_[:, 0], m.kernel_
            sup, h = sup_direction(k0, av)
            psi = np.maximum(h, 0)
            grad = y - a.T * av - K @ av
            print(f"P={P} gamma={g}: concave {dt:.0f}s converged {m.converged_} residual {m.residual_:.3f} "
                  f"kish {m.kish_:.3f} draws {m.n_samples_}; rho: pattern "
                  f"{_core._testing.mean_field_concave_domain_ratio(k0, av, gamma=g):.4f}, RayBound "
                  f"{_core._testing.mean_field_concave_domain_bound(k0, av[None], gamma=g)[0]:.4f}, "
                  f"L-BFGS 64 starts {g * g * sup:.4f}; cos(grad, relu(h*)) "
                  f"{abs(grad @ psi) / (np.linalg.norm(grad) * np.linalg.norm(psi)):.3f}", flush=True)
            if a.sampled:
                try:
                    dt, ms = fit("sampled", X, y, g, a.T)
                except ValueError as e:
                    print(f"  sampled: {e}", flush=True)
                    continue
                aS = np.linalg.solve(ms.kernel_ + a.T * np.eye(P), y)
                print(f"  sampled {dt:.0f}s converged {ms.converged_} gamma reached {ms.gamma_reached_}; rho at its a: "
                      f"RayBound {_core._testing.mean_field_concave_domain_bound(k0, aS[None], gamma=g)[0]:.4f}; "
                      f"kernel vs concave {np.linalg.norm(ms.kernel_ - K) / np.linalg.norm(K):.3f}", flush=True)


if __name__ == "__main__":
    main()
