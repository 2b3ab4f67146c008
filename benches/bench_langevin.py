"""Langevin (MALA) steps per second: adaptive-kernels (Rust core) vs NumPy, side by side.

Problem: P = 1000 Gaussian inputs, d = 784, ReLU MLP with L = 2 hidden layers of width N = 1024,
standard scaling, temperature 1e-2. One MALA step = one forward + backward pass at the proposal
(the current point's gradient is cached) + noise + accept/reject, in both implementations.

    python benches/bench_langevin.py                     # 2 chains, 1 and 2 Rust threads
    python benches/bench_langevin.py --P 500 --steps 10

The NumPy step uses `adaptive_kernels.reference.finite.network.potential_and_gradient` (the same
equations; GEMMs through NumPy's OpenBLAS with OPENBLAS_NUM_THREADS set before import, see
--blas-threads). Chains run one per Rust thread; the NumPy loop runs one chain at a time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--P", type=int, default=1000)
    ap.add_argument("--d", type=int, default=784)
    ap.add_argument("--N", type=int, default=1024)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20, help="MALA steps per chain")
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--blas-threads", type=int, default=1)
    args = ap.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)

    import numpy as np

    import adaptive_kernels as ak
    from adaptive_kernels import _core
    from adaptive_kernels.reference.finite import network as ref

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.P, args.d))
    y = np.tanh(X[:, 0])
    net = ak.MLP(depth=args.depth, activation="relu", sigma_w=np.sqrt(2.0))
    T, eta = 1e-2, 1e-6
    print(f"# MALA steps/s: P={args.P} d={args.d} N={args.N} L={args.depth} relu; cores={os.cpu_count()}, "
          f"OPENBLAS_NUM_THREADS={args.blas_threads}")

    results = {}
    for threads in (1, 2):
        t0 = time.perf_counter()
        ak.sample_posterior(net, X, y, width=args.N, temperature=T, n_chains=args.chains, n_samples=args.steps,
                            burn_in=0, step_size=eta, adapt_step_size=False, store_kernels=False,
                            store_weights=False, n_threads=threads, seed=1)
        dt = time.perf_counter() - t0
        results[threads] = args.chains * args.steps / dt
        print(f"rust  threads={threads}: {results[threads]:7.2f} steps/s  ({dt:.1f} s for {args.chains} chains x {args.steps})")

    # NumPy MALA loop, one chain, same work per step
    kw = dict(widths=[args.N] * args.depth, activation="relu", sigma_w=np.sqrt(2.0), sigma_b=0.0,
              parameterization="standard", gamma=1.0)
    n = _core._testing.param_count(d=args.d, n_out=1, net=net, widths=kw["widths"],
                                   parameterization=kw["parameterization"], gamma=kw["gamma"])
    theta = rng.standard_normal(n)
    Y = y[:, None]
    beta = ref.loss_scale(kw["widths"], T, "standard", 1.0)
    U, g = ref.potential_and_gradient(theta, X, Y, beta=beta, decay=1.0, **kw)
    np_steps = max(3, args.steps // 2)
    t0 = time.perf_counter()
    for _ in range(np_steps):
        xi = rng.standard_normal(n)
        prop = theta - eta * g + np.sqrt(2 * eta) * xi
        Up, gp = ref.potential_and_gradient(prop, X, Y, beta=beta, decay=1.0, **kw)
        log_a = U - Up + (np.sum((prop - theta + eta * g) ** 2) - np.sum((theta - prop + eta * gp) ** 2)) / (4 * eta)
        if np.log(rng.uniform()) < log_a:
            theta, U, g = prop, Up, gp
    dt = time.perf_counter() - t0
    numpy_rate = np_steps / dt
    print(f"numpy (1 chain):  {numpy_rate:7.2f} steps/s  ({dt:.1f} s for {np_steps} steps)")
    print(f"ratio rust(2 threads) / numpy: {results[2] / numpy_rate:.2f}x;  "
          f"rust speed-up 1 -> 2 threads: {results[2] / results[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
