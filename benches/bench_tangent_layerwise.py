"""Layerwise (two-sided M1 B M2) adaptive tangent features: plain alternating minimisation
(``anderson=0``, the solver before issue #16's speed-up) against the safeguarded Anderson-
extrapolated one (``anderson=5``, the default), side by side in one run.

Part 1: 784-256-256-1 relu (biases), n = 500 MNIST 2 vs 3 (bench_tangent's data), reg in
{1, 0.1, 0.01}, tol 1e-10, max_iter 2000: iterations, objective evaluations, time, objective and
test-free predictor difference.  Part 2: E2's 10-class one-vs-rest layerwise fit at n = 125
(depth-5 width-128 relu MLP, reg in {1, 0.01}, max_iter 200, as ``benches/atf_e2.py``).

    OPENBLAS_NUM_THREADS=2 RAYON_NUM_THREADS=2 nice -n 10 python benches/bench_tangent_layerwise.py
"""
from __future__ import annotations

import argparse
import time
import warnings
warnings.simplefilter("ignore")

import numpy as np

import adaptive_kernels as ak
from bench_tangent import data, timed


def part1(args):
    net = ak.MLP(depth=2, activation="relu", sigma_w=np.sqrt(2.0), sigma_b=0.1)
    X, y, src = data(args.n)
    theta = ak.init_params(net, width=256, n_features=784, seed=0)
    tf = ak.tangent_features(net, theta, X, width=256)
    print(f"part 1: n = {args.n}, 784-256-256-1 relu, {src}, threads {ak._core.default_threads()}, "
          f"tol 1e-10, max_iter {args.max_iter}")
    print("| reg | plain: iters (conv) | time | Anderson: iters (conv), objective evals | time | speed-up "
          "| objective plain / Anderson | rel. diff of the updates |")
    for reg in args.regs:
        fits = {}
        for a in (0, 5):
            fits[a] = timed(lambda: ak.AdaptiveTangentFeatures("layerwise", reg=reg, anderson=a, tol=1e-10,
                                                                max_iter=args.max_iter).fit(tf, y))
        (p, tp), (q, tq) = fits[0], fits[5]
        up, uq = p.update_, q.update_
        dd = np.linalg.norm(up - uq) / np.linalg.norm(up)
        print(f"| {reg:g} | {p.n_iter_} ({p.converged_}) | {tp:.1f} s | {q.n_iter_} ({q.converged_}), "
              f"{q.report_.n_eval} | {tq:.1f} s | {tp / tq:.1f}x "
              f"| {p.objective_:.10g} / {q.objective_:.10g} | update {dd:.1e} |", flush=True)


def part2(args):
    net = ak.MLP(depth=4, activation="relu", sigma_w=np.sqrt(2.0), sigma_b=0.05)
    ds = ak.datasets.load_mnist5k(classes=None, standardize=False, n_train=125, n_test=1000, seed=0)
    X, Y, Xt, Yt = ds.X_train / 255.0, np.asarray(ds.y_train), ds.X_test / 255.0, np.asarray(ds.y_test)
    theta = ak.init_params(net, width=128, n_features=784, seed=0)
    tf, tft = ak.tangent_features(net, theta, X, width=128), ak.tangent_features(net, theta, Xt, width=128)
    print("part 2: E2 n = 125, 10 classes one-vs-rest, max_iter 200")
    for reg in (1.0, 0.01):
        for a in (0, 5):
            t = time.perf_counter()
            preds, iters = [], []
            for c in range(Y.shape[1]):
                m = ak.AdaptiveTangentFeatures("layerwise", reg=reg, anderson=a, max_iter=200)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m.fit(tf, Y[:, c])
                preds.append(m.predict(tft))
                iters.append(m.n_iter_)
            err = np.mean(np.argmax(np.stack(preds, 1), 1) != np.argmax(Yt, 1))
            print(f"reg {reg:g} anderson {a}: {time.perf_counter() - t:.1f} s, iterations per class {iters}, "
                  f"test error {err:.3f}", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--regs", default="1,0.1,0.01")
    ap.add_argument("--max-iter", type=int, default=2000)
    ap.add_argument("--part", default="12")
    args = ap.parse_args()
    args.regs = [float(v) for v in args.regs.split(",")]
    if "1" in args.part:
        part1(args)
    if "2" in args.part:
        part2(args)
