"""Writes ``arviz_diagnostics.npz``: seeded test chains and ArviZ's rank-normalized R-hat,
bulk ESS and tail ESS of each, the independent check of ``adaptive_kernels.mcmc.chain_diagnostics``
(``tests/test_mcmc_diagnostics.py`` compares against the stored values without ArviZ).

Run once, with ArviZ installed, from the repository root::

    python tests/data/make_arviz_diagnostics.py

Keys: ``chains_<case>`` (n_chains, n_draws), ``arviz_<case>`` = [rhat, ess_bulk, ess_tail] from
``arviz.rhat(x, method="rank")``, ``arviz.ess(x, method="bulk")``, ``arviz.ess(x, method="tail")``;
``arviz_version``.
"""
from __future__ import annotations

import logging
import pathlib
import warnings

import numpy as np


def ar1(rng, m, n, phi):
    """``m`` stationary AR(1) chains ``x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t``."""
    e = rng.standard_normal((m, n))
    x = np.empty((m, n))
    x[:, 0] = e[:, 0]
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + np.sqrt(1 - phi**2) * e[:, t]
    return x


def cases(seed: int = 20240614) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "iid": ar1(rng, 4, 500, 0.0),
        "ar1_slow": ar1(rng, 4, 1000, 0.9),                          # ESS ~ N / 19
        "ar1_antithetic": ar1(rng, 4, 500, -0.3),                    # ESS > N
        "random_walk": ar1(rng, 4, 300, 0.999),                      # not mixed
        "shifted": ar1(rng, 4, 500, 0.5) + np.array([[0.0], [0.0], [0.0], [0.7]]),
        "one_wide": ar1(rng, 4, 500, 0.3) * np.array([[1.0], [1.0], [1.0], [3.0]]),   # tail R-hat
        "heavy_tailed": rng.standard_t(1.5, (4, 400)),
        "ties_poisson": rng.poisson(1.5, (4, 300)).astype(float),
        "ties_rounded_odd": np.round(ar1(rng, 3, 301, 0.6), 1),      # odd draws: middle dropped
        "short_odd": rng.standard_normal((2, 7)),
        "one_chain": ar1(rng, 1, 200, 0.5),                          # R-hat NaN (ArviZ)
        "constant": np.full((2, 10), 3.0),                           # ESS = draws, R-hat NaN
        "many_chains": ar1(rng, 8, 64, 0.7),
    }


def main():
    import arviz as az
    logging.getLogger("arviz").setLevel(logging.ERROR)
    out = {"arviz_version": np.array(az.__version__)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, x in cases().items():
            out[f"chains_{name}"] = x
            out[f"arviz_{name}"] = np.array([float(az.rhat(x, method="rank")), float(az.ess(x, method="bulk")),
                                             float(az.ess(x, method="tail"))])
    path = pathlib.Path(__file__).with_name("arviz_diagnostics.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} (ArviZ {az.__version__})")
    for name in cases():
        print(f"{name:>18}: rhat, ess_bulk, ess_tail = {out[f'arviz_{name}']}")


if __name__ == "__main__":
    main()
