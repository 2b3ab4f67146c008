"""Bench: the concave one-hidden-layer mean-field solver (``solver="concave"``) on the bundled
MNIST 5k subset, digits 0-4 (+1) vs 5-9 (-1), L = 1, T = 0.05: time per gamma and the kernel's
relative Monte-Carlo error measured across independent seeds (|K_s0 - K_s1|_F / (sqrt 2 |K|_F)),
next to the error the solver reports; the current sampled solver at a smaller P with a time cap.

    python benches/bench_mean_field_concave.py --P 1000 --acts relu tanh --gammas 0.5 1 2 4 \
        --sampled-P 100 --sampled-cap 300 --out benches/results/mean_field_concave.json
"""
import argparse
import gzip
import json
import multiprocessing as mp
import time

import numpy as np

import adaptive_kernels as ak
from adaptive_kernels.datasets import _mnist5k_path


def mnist_split(P, seed=0):
    with gzip.open(_mnist5k_path(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",")
    X, labels = table[:, :-1], table[:, -1].astype(int)
    idx = np.random.default_rng(seed).permutation(len(X))[:P]
    X, labels = X[idx], labels[idx]
    X = X - X.mean(0)
    X /= np.linalg.norm(X, axis=1, keepdims=True) / np.sqrt(X.shape[1])   # |x|^2 = d: K^0_ii = 1
    return X, np.where(labels <= 4, 1.0, -1.0)


def concave(act, X, y, gamma, T, rtol, seed):
    m = ak.BayesianMeanField(ak.MLP(depth=1, activation=act), gamma=gamma, temperature=T, solver="concave",
                             rtol=rtol, seed=seed)
    t = time.perf_counter()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X, y)
    return time.perf_counter() - t, m


def _sampled(q, act, X, y, gamma, T):
    import warnings
    m = ak.BayesianMeanField(ak.MLP(depth=1, activation=act), gamma=gamma, temperature=T, solver="sampled")
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X, y)
    q.put(dict(time_s=time.perf_counter() - t, converged=bool(m.converged_), gamma_reached=m.gamma_reached_,
               kernel=m.kernel_.tolist()))


def sampled_capped(act, X, y, gamma, T, cap):
    q = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=_sampled, args=(q, act, X, y, gamma, T))
    p.start()
    p.join(cap)
    if p.is_alive():
        p.terminate()
        p.join()
        return dict(time_s=cap, converged=False, gamma_reached=None, timed_out=True)
    return q.get()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--P", type=int, default=1000)
    ap.add_argument("--acts", nargs="+", default=["relu", "tanh"])
    ap.add_argument("--gammas", nargs="+", type=float, default=[0.5, 1, 2, 4])
    ap.add_argument("--T", type=float, default=0.05)
    ap.add_argument("--rtol", type=float, default=0.01)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--sampled-P", type=int, default=100)
    ap.add_argument("--sampled-cap", type=float, default=300)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    X, y = mnist_split(a.P)
    rows = []
    for act in a.acts:
        for g in a.gammas:
            ks, row = [], dict(act=act, gamma=g, P=a.P, T=a.T, rtol=a.rtol, runs=[])
            for s in range(a.seeds):
                dt, m = concave(act, X, y, g, a.T, a.rtol, s)
                ks.append(m.kernel_)
                row["runs"].append(dict(seed=s, time_s=dt, converged=bool(m.converged_), reported_rel_err=m.kernel_rel_err_,
                                        n_samples=m.n_samples_, kish=m.kish_, stages=list(map(int, m.stages_))))
                print(act, g, "seed", s, f"{dt:.1f}s", row["runs"][-1], flush=True)
            if len(ks) >= 2:
                row["measured_rel_err"] = float(np.linalg.norm(ks[0] - ks[1]) / (np.sqrt(2) * np.linalg.norm(ks[0])))
                print(act, g, "measured rel err (2 seeds)", row["measured_rel_err"], flush=True)
            if a.sampled_P:
                Xs, ys = X[:a.sampled_P], y[:a.sampled_P]
                sm = sampled_capped(act, Xs, ys, g, a.T, a.sampled_cap)
                dt, mc = concave(act, Xs, ys, g, a.T, a.rtol, 0)
                k = sm.pop("kernel", None)
                if k is not None:
                    sm["rel_diff_to_concave"] = float(np.linalg.norm(np.asarray(k) - mc.kernel_) / np.linalg.norm(mc.kernel_))
                row["small"] = dict(P=a.sampled_P, sampled=sm, concave=dict(time_s=dt, converged=bool(mc.converged_),
                                                                           reported_rel_err=mc.kernel_rel_err_))
                print(act, g, "small P", row["small"], flush=True)
            rows.append(row)
            if a.out:
                with open(a.out, "w") as fh:
                    json.dump(dict(machine="2 shared cores (other helpers running)", rows=rows), fh, indent=1)


if __name__ == "__main__":
    main()
