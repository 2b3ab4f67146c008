"""MultiScaleAdaptive, nonlinear tree level (erf, one hidden layer): the core next to the NumPy
reference in one run, on the unit of work of the sampled solver (one outer iteration = the
conjugate fixed-point map on a fixed sample set; every Newton-Krylov vector and line-search trial
costs one). The multi-scale tree level *is* this solver at gamma = sqrt(chi / N) / sigma_w
(``theories/multi_scale.py`` calls the shared ``adaptive_kernels.tilted``), so the map is what a fit at P in {500, 2000} spends its time on.
S = 16 x 500 prior draws of the preactivations (the cost does not depend on how they were drawn),
Gaussian inputs d = P + 20, sign labels, T = 0.05, chi = N (gamma = 1).

    python benches/bench_multi_scale_nonlinear.py [--p 500 2000] [--samples 8000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from adaptive_kernels import _core
from adaptive_kernels.reference import tilted as ref
from adaptive_kernels.reference.kernels.input import input_kernel

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--samples", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    act, sw, sb = "erf", 1.0, 0.0
    kw = dict(activation=act, sigma_w=sw, sigma_b=sb, gamma=1.0, temperature=0.05)
    print(f"outer iteration (fixed-point map), erf L=1, S={a.samples}")
    print("| P | core s | NumPy reference s | reference/core | max rel diff |")
    print("|---|---|---|---|---|")
    for P in a.p:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((P, P + 20))
        Y = np.sign(X[:, :1])
        K0 = input_kernel(X, sigma_w=sw, sigma_b=sb)
        h1 = rng.standard_normal((a.samples, P)) @ np.linalg.cholesky(K0).T
        zero = np.zeros((P, P))
        A = 0.01 * rng.standard_normal((P, 1))
        o = _core._testing.tilted_map(K0, Y, [], A, [h1], [K0], [zero], repeat=a.repeats, **kw)
        samples = [(h1, ref.base_log_weights(h1, K0, zero, act))]
        tr = []
        for _ in range(max(1, a.repeats - 2)):
            t0 = time.perf_counter()
            r = ref.tilted_map([], A, samples, K0, Y, **kw)
            tr.append(time.perf_counter() - t0)
        diff = np.abs(np.asarray(o["kernels"][-1]) - r[2][-1]).max() / np.abs(r[2][-1]).max()
        print(f"| {P} | {o['seconds']:.3f} | {min(tr):.3f} | {min(tr) / o['seconds']:.1f} | {diff:.1e} |", flush=True)
