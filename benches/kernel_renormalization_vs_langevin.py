"""Kernel renormalization (Li-Sompolinsky / Pacelli et al.) vs Langevin (MALA) samples of finite networks.

For each network and each alpha = P/N, samples the Bayesian posterior of the finite-width MLP
(standard scaling, temperature T) with ``ak.sample_posterior`` and compares its posterior-mean
predictor, on the training and on the test points, with

* ``theory``: the kernel-renormalization predictor (saddle point Q* of SPEC.md's action; from
  ``ak.KernelRenormalization`` when the installed package has it, else from the small private
  solver below, which implements the same action),
* ``NNGP``: the infinite-width GP predictor (``ak.GaussianProcess(net, ridge=T)``, i.e. Q = 1),
* for one hidden layer also ``GE-N``: the same Gaussian-equivalence model *without* the saddle
  point, p(q | y) ∝ q^(N/2-1) e^(-N q/2) N(y; 0, q M + T I) integrated over the readout scale
  q = |w|^2/N at the actual width N (for a linear network this is the exact posterior; for a
  nonlinear one it is the theory's model at finite N, so sampled-minus-GE-N isolates the error of
  the Gaussian-equivalence assumption from the 1/N error of the saddle point),
* for linear networks also ``exact`` (``ak.exact_linear_posterior``, L = 1 only).

Also the readout scale: the posterior mean of |w|^2/N_L (the sampler's ``readout_scale`` trace)
against the theory's Q_L (the saddle point of the same order parameter) and 1 (NNGP).

Columns (RMS over points; ``se`` is the RMS Monte-Carlo standard error of the sampled mean,
from the chains' integrated autocorrelation times; ``z`` = sqrt(mean(((sampled - x)/se)^2)),
about 1 when x agrees with the sampled mean within sampling error):

    python benches/kernel_renormalization_vs_langevin.py                       # default table, ~3-4 min on 2 cores
    python benches/kernel_renormalization_vs_langevin.py --P 80 --nets erf:1:1.5 --alphas 2
    python benches/kernel_renormalization_vs_langevin.py --out /tmp/kr_langevin.png --json /tmp/kr.json

Data: scikit-learn 8x8 digits 3 vs 8 (binary +-1 targets, d = 64, rows of norm sqrt(d)), P training
points, 20 test points, no biases (sigma_b = 0).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402


# ---------------------------------------------------------------- private solver of SPEC.md's action
def _layer_map(act: str, K: np.ndarray, sw: float, sb: float) -> np.ndarray:
    """sigma_w^2 E_{(u,v)~N(0,K)}[phi(u) phi(v)] + sigma_b^2 on a full (symmetric) Gram matrix."""
    dg = np.diag(K)
    if act == "erf":
        s = 1.0 + 2.0 * dg
        E = 2.0 / np.pi * np.arcsin(np.clip(2.0 * K / np.sqrt(np.outer(s, s)), -1.0, 1.0))
    elif act == "relu":
        n = np.sqrt(np.outer(dg, dg))
        c = np.clip(K / n, -1.0, 1.0)
        th = np.arccos(c)
        E = n / (2 * np.pi) * (np.sin(th) + (np.pi - th) * c)
    elif act == "linear":
        E = K
    else:
        raise ValueError(f"private solver: activation {act!r} not supported (erf, relu, linear)")
    return sw**2 * E + sb**2


def _kernel(net, X: np.ndarray, Q) -> np.ndarray:
    """Renormalized K^L on the rows of X: K^0 = sw^2 X X^T/d + sb^2, K^l = Q_l M^l(K^{l-1})."""
    K = net.sigma_w**2 * X @ X.T / X.shape[1] + net.sigma_b**2
    for q in Q:
        K = q * _layer_map(net.activation, K, net.sigma_w, net.sigma_b)
    return K


def _action_and_grad(net, X, y, widths, T, logQ):
    """S(Q) and dS/dlog Q_l (the data term's derivative via central differences of K^L in log Q_l)."""
    Q = np.exp(logQ)
    K = _kernel(net, X, Q)
    A = K + T * np.eye(len(y))
    c = np.linalg.cholesky(A)
    Ai = np.linalg.inv(A)
    a = Ai @ y
    S = 0.5 * np.sum(widths * (Q - logQ)) + 0.5 * (y @ a + 2 * np.sum(np.log(np.diag(c))))
    G = Ai - np.outer(a, a)
    g = np.empty(len(Q))
    for l in range(len(Q)):
        h = 1e-5
        dK = (_kernel(net, X, np.exp(logQ + h * np.eye(len(Q))[l])) -
              _kernel(net, X, np.exp(logQ - h * np.eye(len(Q))[l]))) / (2 * h)
        g[l] = 0.5 * widths[l] * (Q[l] - 1) + 0.5 * np.sum(G * dK)
    return S, g


def private_kernel_renormalization(net, X, y, Xt, width, T):
    """Saddle point of S(Q) (SPEC.md) by BFGS on log Q; returns Q, test and train means, residual."""
    widths = np.full(net.depth, float(width))
    r = minimize(lambda lq: _action_and_grad(net, X, y, widths, T, lq), np.zeros(net.depth), jac=True,
                 method="BFGS", options=dict(gtol=1e-11, maxiter=500))
    Q = np.exp(r.x)
    _, g = _action_and_grad(net, X, y, widths, T, r.x)
    residual = float(np.max(np.abs(2 * g / widths)))
    P = len(X)
    K = _kernel(net, np.vstack([X, Xt]), Q)
    alpha = np.linalg.solve(K[:P, :P] + T * np.eye(P), y)
    return dict(Q=Q, test=K[P:, :P] @ alpha, train=K[:P, :P] @ alpha, residual=residual, source="private")


def library_kernel_renormalization(ak, net, X, y, Xt, width, T):
    m = ak.KernelRenormalization(net, width=width, temperature=T).fit(X, y)
    return dict(Q=np.asarray(m.Q_, float), test=np.asarray(m.predict(Xt)), train=np.asarray(m.predict(X)),
                residual=float(m.residual_), source="ak")


def gaussian_equivalent_finite_n(net, X, y, Xt, width, T, n_grid=1601):
    """L = 1: the posterior-mean predictor and E[q | y] of the model f | q ~ N(0, q M), q = |w|^2/N ~
    Gamma(N/2, 2/N), integrated over q on a grid in log q (no saddle point)."""
    assert net.depth == 1 and net.sigma_b == 0
    P, N = len(X), width
    K = _kernel(net, np.vstack([X, Xt]), [1.0])
    lam, V = np.linalg.eigh(K[:P, :P])
    yh = V.T @ y

    def logp(lq):
        q = np.exp(lq)
        return (N / 2) * lq - N * q / 2 - 0.5 * np.sum(np.log(q * lam + T)) - 0.5 * np.sum(yh**2 / (q * lam + T))

    grid = np.linspace(-8, 4, 6001)
    c = grid[np.argmax([logp(v) for v in grid])]
    grid = np.linspace(c - 4.0, c + 4.0, n_grid)
    lp = np.array([logp(v) for v in grid])
    w = np.exp(lp - lp.max())
    assert w[0] < 1e-12 and w[-1] < 1e-12, "q grid too narrow"
    w /= w.sum()
    test = np.zeros(len(Xt))
    train = np.zeros(P)
    qm = 0.0
    for wi, lq in zip(w, grid):
        q = np.exp(lq)
        coef = V @ (q * yh / (q * lam + T))        # (qK + T)^{-1} y times q, in the eigenbasis
        test += wi * K[P:, :P] @ coef
        train += wi * K[:P, :P] @ coef
        qm += wi * q
    return dict(Q=np.array([qm]), test=test, train=train)


# ---------------------------------------------------------------- one case
def rms(v):
    return float(np.sqrt(np.mean(np.square(v))))


def run_case(ak, act, depth, sw, T, P, alpha, *, n_test, samples, thin, chains, seed, threads, data_seed):
    X, y, Xt, _ = ak.datasets.load_digits(classes=(3, 8), n_train=P, n_test=n_test, seed=data_seed)
    N = int(round(P / alpha))
    net = ak.MLP(depth=depth, activation=act, sigma_w=sw, sigma_b=0.0)
    priv = private_kernel_renormalization(net, X, y, Xt, N, T)
    th = priv
    lib_diff = None
    if hasattr(ak, "KernelRenormalization"):
        th = library_kernel_renormalization(ak, net, X, y, Xt, N, T)
        lib_diff = max(float(np.max(np.abs(th["Q"] - priv["Q"]))), float(np.max(np.abs(th["test"] - priv["test"]))))
    gp = ak.GaussianProcess(net, ridge=T).fit(X, y)
    nngp = dict(test=gp.predict(Xt), train=gp.predict(X))
    refs = {"theory": th, "NNGP": nngp}
    if depth == 1:
        refs["GE-N"] = gaussian_equivalent_finite_n(net, X, y, Xt, N, T)
    if act == "linear" and depth == 1:
        ex = ak.exact_linear_posterior(net, X, y, Xt, width=N, temperature=T)
        refs["exact"] = dict(test=ex.mean, train=ex.train_mean, Q=np.array([ex.kernel_scale_mean / sw**2]))
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        s = ak.sample_posterior(net, X, y, Xt, width=N, temperature=T, n_chains=chains, n_samples=samples,
                                thin=thin, step_size=1e-3, seed=seed, n_threads=threads, store_weights=False)
    elapsed = time.perf_counter() - t0
    q = np.concatenate([t[s.trace_names.index("readout_scale")] for t in s.traces])
    q_se = float(np.std(q) * np.sqrt(s.trace_autocorrelation_time("readout_scale") / q.size))
    row = dict(act=act, L=depth, sw=sw, T=T, P=P, N=N, alpha=P / N, Q_theory=[float(v) for v in th["Q"]],
               theory_source=th["source"], theory_residual=th["residual"], lib_vs_private=lib_diff,
               q_sampled=float(q.mean()), q_se=q_se, accept=float(np.mean(s.acceptance_rate)),
               tau=float(s.autocorrelation_time), rhat=float(np.nanmax(s.rhat)), n_samples=int(s.n_samples),
               seconds=elapsed, warnings=[str(w.message)[:120] for w in wlist])
    if "GE-N" in refs:
        row["q_GE_N"] = float(refs["GE-N"]["Q"][0])
    if "exact" in refs:
        row["q_exact"] = float(refs["exact"]["Q"][0])
    for split, mean, se in (("test", s.mean, s.mean_se), ("train", s.train_mean, s.train_mean_se)):
        row[f"{split}_se"] = rms(se)
        row[f"{split}_effect"] = rms(th[split] - nngp[split])      # theory - NNGP: the size of the effect
        for name, ref in refs.items():
            row[f"{split}_gap_{name}"] = rms(mean - ref[split])
            row[f"{split}_z_{name}"] = rms((mean - ref[split]) / se)
            if name == "theory":
                row[f"{split}_zmax_theory"] = float(np.max(np.abs(mean - ref[split]) / se))
    return row


def print_row(r, header=False):
    cols = ["net", "P", "N", "alpha", "Q_th", "q_samp", "split", "effect", "se", "gap_th", "z_th", "gap_nngp",
            "z_nngp", "gap_GEN", "z_GEN", "gap_ex", "z_ex", "acc", "tau", "rhat", "sec"]
    if header:
        print(" ".join(f"{c:>8}" for c in cols))
    for split in ("train", "test"):
        def g(k):
            v = r.get(f"{split}_{k}")
            return f"{v:8.4f}" if v is not None else f"{'-':>8}"

        def z(k):
            v = r.get(f"{split}_{k}")
            return f"{v:8.2f}" if v is not None else f"{'-':>8}"
        first = split == "train"
        print(" ".join([
            f"{r['act'] + ':' + str(r['L']):>8}" if first else f"{'':>8}", f"{r['P']:>8}" if first else f"{'':>8}",
            f"{r['N']:>8}" if first else f"{'':>8}", f"{r['alpha']:>8.2f}" if first else f"{'':>8}",
            f"{r['Q_theory'][-1]:>8.4f}" if first else f"{'':>8}",
            (f"{r['q_sampled']:>8.4f}" if first else f"{'+-' + format(r['q_se'], '.4f'):>8}"),
            f"{split:>8}", g("effect"), g("se"), g("gap_theory"), z("z_theory"), g("gap_NNGP"), z("z_NNGP"),
            g("gap_GE-N"), z("z_GE-N"), g("gap_exact"), z("z_exact"),
            f"{r['accept']:8.2f}" if first else f"{'':>8}", f"{r['tau']:8.1f}" if first else f"{'':>8}",
            f"{r['rhat']:8.3f}" if first else f"{'':>8}", f"{r['seconds']:8.1f}" if first else f"{'':>8}"]), flush=True)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = list(dict.fromkeys((r["act"], r["L"], r["sw"], r["P"]) for r in rows))
    fig, axes = plt.subplots(3, len(nets), figsize=(3.3 * len(nets), 8.2), squeeze=False)
    for j, key in enumerate(nets):
        rs = sorted([r for r in rows if (r["act"], r["L"], r["sw"], r["P"]) == key], key=lambda r: r["alpha"])
        a = np.array([r["alpha"] for r in rs])
        for i, split in enumerate(("train", "test")):
            ax = axes[i, j]
            ax.plot(a, [r[f"{split}_gap_theory"] for r in rs], "o-", label="|MALA - theory|")
            ax.plot(a, [r[f"{split}_gap_NNGP"] for r in rs], "s-", label="|MALA - NNGP|")
            if f"{split}_gap_GE-N" in rs[0]:
                ax.plot(a, [r[f"{split}_gap_GE-N"] for r in rs], "^:", label="|MALA - GE-N| (= exact if linear)")
            ax.plot(a, [r[f"{split}_effect"] for r in rs], "k--", label="|theory - NNGP|")
            ax.fill_between(a, 0, [r[f"{split}_se"] for r in rs], color="0.85", label="MC s.e.")
            ax.set_title(f"{key[0]} L={key[1]} sw={key[2]} P={key[3]}: {split}", fontsize=8)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("alpha = P/N")
            ax.set_ylabel("RMS over points")
            if j == 0:
                ax.legend(fontsize=6)
        ax = axes[2, j]
        ax.errorbar(a, [r["q_sampled"] for r in rs], yerr=[2 * r["q_se"] for r in rs], fmt="o", label="MALA |w|^2/N_L")
        ax.plot(a, [r["Q_theory"][-1] for r in rs], "x-", label="theory Q_L")
        if "q_GE_N" in rs[0]:
            ax.plot(a, [r["q_GE_N"] for r in rs], "+:", label="GE-N E[q]")
        ax.axhline(1.0, color="k", ls="--", lw=0.8, label="NNGP (1)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("alpha = P/N")
        ax.set_ylabel("readout scale")
        if j == 0:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=["linear:1:1.5", "erf:1:1.5", "relu:1:1.5", "erf:2:1.5", "relu:2:1.0"],
                    help="activation:depth:sigma_w")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--P", type=int, nargs="+", default=[40])
    ap.add_argument("--T", type=float, default=0.1)
    ap.add_argument("--n-test", type=int, default=20)
    ap.add_argument("--samples", type=int, default=4000, help="kept samples per chain")
    ap.add_argument("--thin", type=int, default=10)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/kr_langevin.png", help="PNG path for the figure ('' for none)")
    ap.add_argument("--json", default=None, help="also write the rows as JSON")
    args = ap.parse_args()
    import adaptive_kernels as ak

    print(f"# theory from {'ak.KernelRenormalization' if hasattr(ak, 'KernelRenormalization') else 'private solver'};"
          f" digits 3 vs 8, d=64, T={args.T}, {args.chains} chains x {args.samples} kept x thin {args.thin}, "
          f"seed {args.seed}")
    rows = []
    t_all = time.perf_counter()
    for P in args.P:
        for spec in args.nets:
            act, depth, sw = spec.split(":")
            for alpha in args.alphas:
                r = run_case(ak, act, int(depth), float(sw), args.T, P, alpha, n_test=args.n_test,
                             samples=args.samples, thin=args.thin, chains=args.chains, seed=args.seed,
                             threads=args.threads, data_seed=args.data_seed)
                print_row(r, header=not rows)
                for w in r["warnings"]:
                    print(f"#   warning: {w}")
                if r["lib_vs_private"] is not None and r["lib_vs_private"] > 1e-6:
                    print(f"#   note: ak.KernelRenormalization and the private solver differ by "
                          f"{r['lib_vs_private']:.2e}")
                rows.append(r)
    print(f"# total {time.perf_counter() - t_all:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    if args.out:
        plot(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
