"""MultiScaleAdaptive (one-hidden-layer linear): fit time of the core next to the NumPy reference
in one run, and the accuracy table across chi against the exact finite-width posterior.

    python benches/bench_multi_scale.py [--sizes 500 1000] [--repeat 3]

Timing: the corrected order (the reference solves the scalar root by brentq with dense solves;
the core does one eigendecomposition, then O(P) per evaluation). Accuracy: P = 40, d = 80,
N = 80, T = 0.05, sign-of-linear-teacher labels; relative L2 error of the training mean.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import adaptive_kernels as ak
from adaptive_kernels.reference.theories import multi_scale as ref

LIN = ak.MLP(depth=1, activation="linear")


def _data(P, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    return X, np.sign(X @ rng.standard_normal(d))


def _best(f, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return min(times), out


def timing(sizes, repeat, d=200, N=None, T=0.05, chi=10.0):
    print("| P | core s | reference s | reference/core | |Q_core - Q_ref| / Q |")
    print("|---|---|---|---|---|")
    for P in sizes:
        X, y = _data(P, d, 0)
        width = N or P
        tc, m = _best(lambda: ak.MultiScaleAdaptive(LIN, width=width, temperature=T, chi=chi).fit(X, y), repeat)
        tr, r = _best(lambda: ref.fit(X, y, sigma_w=1.0, width=width, temperature=T, chi=chi), 1)
        print(f"| {P} | {tc:.3f} | {tr:.3f} | {tr / tc:.1f} | {abs(m.scale_ - r['scale']) / r['scale']:.1e} |")


def accuracy():
    P, D, N, T = 40, 80, 80, 0.05
    X, y = _data(P, D, 1)
    gp = ak.GaussianProcess(LIN, ridge=T).fit(X, y).predict(X)
    err = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)
    print("\n| chi | exact E[u]/c | Q corrected | Q tree | err NNGP | err tree | err corrected "
          "| var max rel err corrected | tree |")
    print("|---|---|---|---|---|---|---|---|---|")
    for chi in (1.0, 3.0, 10.0, 30.0, 80.0, 300.0, 1000.0):
        ex = ak.exact_linear_posterior(LIN, X, y, width=N, temperature=T, chi=chi)
        c = ak.MultiScaleAdaptive(LIN, width=N, temperature=T, chi=chi).fit(X, y)
        t = ak.MultiScaleAdaptive(LIN, width=N, temperature=T, chi=chi, order="tree").fit(X, y)
        vr = lambda m: np.max(np.abs(m.train_std_ ** 2 - ex.train_var) / ex.train_var)
        print(f"| {chi:g} | {ex.kernel_scale_mean / ex.prior_scale:.4f} | {c.scale_:.4f} | {t.scale_:.4f} "
              f"| {err(gp, ex.train_mean):.2e} | {err(t.train_mean_, ex.train_mean):.2e} "
              f"| {err(c.train_mean_, ex.train_mean):.2e} | {vr(c):.1e} | {vr(t):.1e} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1000])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    timing(a.sizes, a.repeat)
    accuracy()
