"""Finite-width posterior mean vs the NNGP GP predictor as the width grows (standard scaling).

Samples the Bayesian posterior of a one-hidden-layer erf network (P = 10 points in d = 3,
T = 0.02) with MALA at several widths, and prints / plots the RMS gap between the sampled
posterior-mean predictor on 6 test points and the NNGP GP predictor (ridge T), with Monte-Carlo
standard errors. The gap should shrink like 1/N.

    python benches/finite_width_convergence.py --widths 4 16 64 256 1024 --out gap.png
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=int, nargs="+", default=[4, 16, 64, 256])
    ap.add_argument("--samples", type=int, default=6000)
    ap.add_argument("--thin", type=int, default=10)
    ap.add_argument("--out", default=None, help="PNG path for the plot (needs matplotlib)")
    args = ap.parse_args()
    import adaptive_kernels as ak

    rng = np.random.default_rng(6)
    X, Xt = rng.standard_normal((10, 3)), rng.standard_normal((6, 3))
    y = np.sin(2 * X[:, 0])
    net = ak.MLP(depth=1, activation="erf", sigma_w=1.5)
    T = 0.02
    gp = ak.GaussianProcess(net, ridge=T).fit(X, y).predict(Xt)
    rows = []
    print(f"{'N':>6} {'RMS gap':>9} {'MC s.e.':>9} {'N x gap':>8} {'accept':>7} {'time s':>7}")
    for N in args.widths:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = ak.sample_posterior(net, X, y, Xt, width=N, temperature=T, n_chains=4, n_samples=args.samples,
                                    thin=args.thin, step_size=1e-3, seed=N)
        gap = float(np.sqrt(np.mean((s.mean - gp) ** 2)))
        se = float(np.sqrt(np.mean(s.mean_se**2)))
        rows.append((N, gap, se))
        print(f"{N:>6} {gap:>9.4f} {se:>9.4f} {N * gap:>8.3f} {s.acceptance_rate.mean():>7.2f} "
              f"{time.perf_counter() - t0:>7.1f}", flush=True)
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        Ns, gaps, ses = map(np.array, zip(*rows))
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        ax.errorbar(Ns, gaps, yerr=ses, fmt="o", label="MALA posterior mean vs NNGP GP")
        ax.plot(Ns, gaps[0] * Ns[0] / Ns, "k--", label="1/N")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("width N")
        ax.set_ylabel("RMS gap on test points")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.out, dpi=120)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
