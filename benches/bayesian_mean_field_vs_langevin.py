"""Bayesian mean-field theory (ak.BayesianMeanField) vs finite-width mean-field Langevin samples.

A deep linear network (default one hidden layer, sigma_w = 1, no bias) on P = 16 points in d = 8,
temperature T = 0.1, in mean-field scaling with richness gamma. For each gamma and width N the
posterior is sampled with MALA (``ak.sample_posterior(..., parameterization="mean_field")``),
one chain per call, ``--workers`` calls at a time in forked processes, so that the spread between
chains gives the Monte-Carlo error of the sampled kernels and predictor. Printed per (gamma, N):

* ``K gap``: ``|<Phi^l>_Langevin - Phi^l_theory|_F / |Phi^l_theory|_F`` (last hidden layer), its
  Monte-Carlo floor ``K mc`` (the same norm of the between-chain standard error), and the gap of
  the NNGP kernel ``K nngp`` (gamma -> 0) for scale;
* ``f gap``: RMS over test points of Langevin posterior mean - theory predictor, its MC error,
  and for one hidden layer ``f exact`` = exact finite-N posterior mean - theory (the O(1/N) bias,
  no sampling: ``ak.exact_linear_posterior``); ``f nngp`` = theory - NNGP GP predictor;
* test MSE of theory, Langevin and NNGP, MALA acceptance and wall time.

    python benches/bayesian_mean_field_vs_langevin.py --out bmf_vs_langevin.png
    python benches/bayesian_mean_field_vs_langevin.py --depth 2 --widths 128 256 512 --samples 800
    python benches/bayesian_mean_field_vs_langevin.py --activation tanh --out bmf_tanh_vs_langevin.png

With a nonlinear ``--activation`` the theory is the sampled solver (``solver="sampled"``, its
own Monte-Carlo error ~ 1/sqrt(ess) is printed as ``th ess``).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np


def _chain(net, X, y, Xt, N, T, gamma, samples, thin, seed):
    """One MALA chain (in a worker process): last-layer kernel, test mean, acceptance."""
    import adaptive_kernels as ak

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = ak.sample_posterior(net, X, y, Xt, width=N, temperature=T, parameterization="mean_field", gamma=gamma,
                                n_chains=1, n_samples=samples, thin=thin, step_size=1e-3, seed=seed, n_threads=1)
    return r.kernels[-1], r.mean, float(r.acceptance_rate.mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gammas", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--widths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--activation", default="linear")
    ap.add_argument("--theory-samples", type=int, default=4000, help="per chain, 16 chains (sampled solver)")
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--samples", type=int, default=1500, help="kept samples per chain")
    ap.add_argument("--thin", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2, help="chains sampled concurrently")
    ap.add_argument("--out", default="bayesian_mean_field_vs_langevin.png", help="PNG path ('' for none)")
    args = ap.parse_args()
    import adaptive_kernels as ak

    rng = np.random.default_rng(11)
    # d > P: a positive definite K^0 (the sampled solver also handles P > d + 1, on its support)
    P, Q, d = 16, 8, (8 if args.activation == "linear" else 24)
    X, Xt = rng.standard_normal((P, d)), rng.standard_normal((Q, d))
    f = lambda Z: np.tanh(Z[:, 0] + 0.5 * Z[:, 1])  # noqa: E731
    y, yt = f(X), f(Xt)
    T, L = args.temperature, args.depth
    from adaptive_kernels.theories.mean_field import nngp_feature_kernel, nngp_predict

    net = ak.MLP(depth=L, activation=args.activation, sigma_w=1.0)
    f_nngp = nngp_predict(net, X, y, Xt, T)[:, 0]           # the gamma -> 0 limit
    K_nngp = nngp_feature_kernel(net, X)
    print(f"{args.activation} net L={L}, P={P}, d={d}, T={T}; chains={args.chains} x {args.samples} kept samples "
          f"(thin {args.thin})")
    head = (f"{'gamma':>5} {'N':>5} {'K gap':>7} {'K mc':>7} {'K nngp':>7} {'f gap':>7} {'f mc':>7} "
            f"{'f exact':>8} {'f nngp':>7} {'mse th':>7} {'mse MC':>7} {'mse GP':>7} {'acc':>5} {'time':>6}")
    print(head)
    rows = []
    for gamma in args.gammas:
        th = ak.BayesianMeanField(net, gamma=gamma, temperature=T, n_samples=args.theory_samples).fit(X, y)
        if args.activation != "linear":
            print(f"theory (sampled): ess per layer {np.round(th.ess_).tolist()}, residual {th.residual_:.1e}")
        f_th = th.predict(Xt)
        K_th = th.kernels_[-1]
        nK = np.linalg.norm(K_th)
        for N in args.widths:
            t0 = time.perf_counter()

            job = partial(_chain, net, X, y, Xt, N, T, gamma, args.samples, args.thin)
            with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("fork")) as ex:
                runs = list(ex.map(job, [1000 * N + k for k in range(args.chains)]))
            dt = time.perf_counter() - t0
            Ks = np.stack([r[0] for r in runs])
            fs = np.stack([r[1] for r in runs])
            n = len(runs)
            K_mc, f_mc = Ks.mean(0), fs.mean(0)
            k_gap = np.linalg.norm(K_mc - K_th) / nK
            k_floor = np.linalg.norm(Ks.std(0, ddof=1) / np.sqrt(n)) / nK
            f_gap = np.sqrt(np.mean((f_mc - f_th) ** 2))
            f_se = np.sqrt(np.mean(fs.var(0, ddof=1) / n))
            f_ex = np.nan
            if L == 1 and args.activation == "linear":
                e = ak.exact_linear_posterior(net, X, y, Xt, width=N, temperature=T, parameterization="mean_field",
                                              gamma=gamma)
                f_ex = np.sqrt(np.mean((e.mean - f_th) ** 2))
            row = dict(gamma=gamma, N=N, k_gap=k_gap, k_floor=k_floor,
                       k_nngp=np.linalg.norm(K_nngp - K_th) / nK, f_gap=f_gap, f_se=f_se, f_exact=f_ex,
                       f_nngp=np.sqrt(np.mean((f_th - f_nngp) ** 2)), mse_th=np.mean((f_th - yt) ** 2),
                       mse_mc=np.mean((f_mc - yt) ** 2), mse_gp=np.mean((f_nngp - yt) ** 2),
                       acc=np.mean([r[2] for r in runs]), time=dt)
            rows.append(row)
            print(f"{gamma:>5.2f} {N:>5d} {k_gap:>7.4f} {k_floor:>7.4f} {row['k_nngp']:>7.3f} {f_gap:>7.4f} "
                  f"{f_se:>7.4f} {f_ex:>8.5f} {row['f_nngp']:>7.4f} {row['mse_th']:>7.4f} {row['mse_mc']:>7.4f} "
                  f"{row['mse_gp']:>7.4f} {row['acc']:>5.2f} {dt:>6.1f}", flush=True)
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for i, gamma in enumerate(args.gammas):
            r = [row for row in rows if row["gamma"] == gamma]
            Ns = np.array([row["N"] for row in r])
            c = f"C{i}"
            axes[0].plot(Ns, [row["k_gap"] for row in r], "o-", color=c, label=f"gamma={gamma:g}")
            axes[0].plot(Ns, [row["k_floor"] for row in r], ":", color=c)
            axes[0].axhline(r[0]["k_nngp"], color=c, lw=0.8, alpha=0.5)
            axes[1].plot(Ns, [row["f_gap"] for row in r], "o-", color=c, label=f"gamma={gamma:g}")
            axes[1].plot(Ns, [row["f_se"] for row in r], ":", color=c)
            if L == 1 and args.activation == "linear":
                axes[1].plot(Ns, [row["f_exact"] for row in r], "--", color=c)
            axes[1].axhline(r[0]["f_nngp"], color=c, lw=0.8, alpha=0.5)
        axes[0].set_title(f"layer-{L} kernel: |<Phi>_MALA - Phi_theory| / |Phi|\n"
                          "(dotted: Monte-Carlo error; thin: NNGP kernel)", fontsize=9)
        axes[1].set_title("posterior-mean predictor: RMS gap to theory\n(dotted: MC error; dashed: exact "
                          "finite-N posterior; thin: NNGP)", fontsize=9)
        for ax in axes:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("width N")
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.out, dpi=150)
        print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
