"""tanh NNGP by Hermite (Mehler) expansions vs today's polar quadrature, with relu for scale.

tanh MLP, L = 3, d = 784 Gaussian inputs, sigma_w = 1 (the default MLP): ``method="hermite"``
against ``method="quadrature"`` (the polar quadrature, what "auto" used for tanh before issue #20;
"auto" is now the expansion) and relu's closed form, all in one run,
with the max relative difference of the two tanh kernels on the first 300 points. The 2-core GEMM
rate is measured in the same run by a NumPy matmul (P x d times d x P), and each time is printed
with the fraction of that rate it achieves: "GEMM frac" = (time the Gram product X X^T alone
would take at the GEMM rate) / (measured time), i.e. how close the whole kernel is to the cost of
its one unavoidable GEMM.

    python benches/bench_hermite.py                     # P = 4000
    python benches/bench_hermite.py --sizes 1000 4000 --quadrature-above 2000
    python benches/bench_hermite.py --sizes 10000 --quadrature-above 300   # relu's GEMM fraction (issue #20)

relu and tanh-hermite times are the best of --repeats runs (default 2): the first kernel a process
computes also pays for touching fresh memory (measured: relu at P = 10000 2.2 s cold, 1.4 s warm).

The quadrature path costs ~100 s at P = 4000; ``--quadrature-above P0`` times it at P0 only and
scales by (P / P0)^2 (its cost is per entry), marked "(scaled)".
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000])
    parser.add_argument("--dim", type=int, default=784)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2,
                        help="best of this many runs of each fast kernel (the first run in a process also pays "
                             "for touching fresh memory: ~0.8 s of kernel page clearing for relu's 800 MB at P = 10000)")
    parser.add_argument("--quadrature-above", type=int, default=None,
                        help="time the quadrature path at this P only and scale quadratically")
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads or os.cpu_count()))
    import numpy as np

    import adaptive_kernels as ak
    from adaptive_kernels import _core

    threads = args.threads or _core.default_threads()
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2000, args.dim))
    A @ A.T
    t0 = time.perf_counter()
    for _ in range(3):
        A @ A.T
    rate = 3 * 2.0 * 2000 * 2000 * args.dim / (time.perf_counter() - t0)
    print(f"# L={args.depth}, d={args.dim}, Rust threads={threads}, cores={os.cpu_count()}; "
          f"NumPy GEMM rate {rate / 1e9:.1f} GFLOP/s")
    print(f"{'P':>6} | {'relu s':>8} {'frac':>6} | {'tanh hermite s':>14} {'frac':>6} | "
          f"{'tanh quadrature s':>20} {'frac':>6} | {'speedup':>8} {'vs relu':>7} | {'max rel diff':>12}")
    tanh_h = ak.MLP(depth=args.depth, activation="tanh", method="hermite")
    tanh_q = ak.MLP(depth=args.depth, activation="tanh", method="quadrature")
    relu = ak.MLP(depth=args.depth, activation="relu", sigma_w=np.sqrt(2.0))

    def timed(net, X, repeats=1):
        best, K = float("inf"), None
        for _ in range(repeats):
            del K
            t = time.perf_counter()
            K = ak.nngp_kernel(net, X, n_threads=threads)
            best = min(best, time.perf_counter() - t)
        return best, K

    for P in args.sizes:
        X = np.random.default_rng(P).standard_normal((P, args.dim))
        gemm = 2.0 * P * P * args.dim / rate
        tr, _ = timed(relu, X, args.repeats)
        th, Kh = timed(tanh_h, X, args.repeats)
        diff_pts = min(P, 300)
        Kh_small = Kh[:diff_pts, :diff_pts].copy()
        del Kh
        p0 = args.quadrature_above
        if p0 is not None and P > p0:
            tq0, _ = timed(tanh_q, X[:p0])
            tq, note = tq0 * (P / p0) ** 2, " (scaled)"
        else:
            tq, _ = timed(tanh_q, X)
            note = ""
        _, Kq_small = timed(tanh_q, X[:diff_pts])
        diff = np.abs(Kh_small - Kq_small).max() / np.abs(Kq_small).max()
        print(f"{P:>6} | {tr:>8.3f} {gemm / tr:>6.1%} | {th:>14.3f} {gemm / th:>6.1%} | "
              f"{tq:>11.2f}{note:>9} {gemm / tq:>6.2%} | {tq / th:>7.0f}x {th / tr:>6.2f}x | {diff:>12.2e}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
