"""Lazy kernels of smooth activations at large preactivation variance (issue #20): time and the
size of the error the order-128 polar quadrature makes there, side by side in one run.

tanh MLP (or --activation), depth L, d = 100 Gaussian inputs whose rows are duplicated with small
perturbations (so that a share of the entries has |rho| near 1 and takes the fallback), at
sigma_w in {1, 2, 4} (layer variances ~1, ~3.5, ~14 for tanh). For each: the default kernels
(`method="auto"`: Hermite expansion on the mesh rule, graded polar fallback), relu's closed form
for scale, and the order-128 polar quadrature everywhere (`method="quadrature"`, which is what the
fallback entries used before the graded rule) on the first 200 points, with the max relative
difference to the default (the quadrature's error where the default is accurate; see
tests/kernels/test_hermite.py for the independent checks).

    python benches/bench_hermite_large_variance.py
    python benches/bench_hermite_large_variance.py --size 2000 --depth 3
"""
from __future__ import annotations

import argparse
import os
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--sigma-w", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--check-size", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy as np

    import adaptive_kernels as ak

    rng = np.random.default_rng(0)
    half = args.size // 2
    base = rng.standard_normal((half, 100))
    X = np.vstack([base, base[: args.size - half] + 0.05 * rng.standard_normal((args.size - half, 100))])
    X = X[rng.permutation(args.size)]
    print(f"P = {args.size}, L = {args.depth}, {args.activation}, half the rows near-duplicated (noise 0.05)")
    print("| sigma_w | layer-1 variance | default s (NNGP+NTK) | relu s | default / relu "
          "| max rel diff, polar-128 vs default |")
    print("|---|---|---|---|---|---|")
    for sw in args.sigma_w:
        net = ak.MLP(depth=args.depth, activation=args.activation, sigma_w=sw)
        relu = ak.MLP(depth=args.depth, activation="relu", sigma_w=sw)
        t0 = time.perf_counter()
        K, Th = ak.lazy_kernels(net, X)
        t_def = time.perf_counter() - t0
        t0 = time.perf_counter()
        ak.lazy_kernels(relu, X)
        t_relu = time.perf_counter() - t0
        q = ak.MLP(depth=args.depth, activation=args.activation, sigma_w=sw, method="quadrature",
                   quadrature_order=128)
        Xc = X[: args.check_size]
        Kq, Thq = ak.lazy_kernels(q, Xc)
        Kd, Thd = ak.lazy_kernels(net, Xc)
        diff = max(np.abs(Kq - Kd).max() / np.abs(Kd).max(), np.abs(Thq - Thd).max() / np.abs(Thd).max())
        var1 = sw ** 2 * np.mean(np.einsum("ij,ij->i", X, X)) / X.shape[1]
        print(f"| {sw:g} | {var1:.2f} | {t_def:.3f} | {t_relu:.3f} | {t_def / t_relu:.1f}x | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
