"""Paper B's experiment (2), reconstructed: a two-layer erf network on a single-index teacher

    y = He_1(w . x) + eps He_3(w . x),   x ~ N(0, I_d),  |w| = 1,  He_3(z) = z^3 - 3 z,

and how much of the cubic component the predictor learns as P / d grows. For each predictor f
on a common Gaussian test set we regress f on the orthonormal Hermite functions of z = w . x
(He_0..He_5 / sqrt(k!), least squares) and report

    c3 = <f, He_3(z)> / (3! eps)   (1 = the cubic component fully learned, 0 = not at all)
    c1 = <f, He_1(z)>              (1 = the linear component fully learned)

Predictors: the NNGP GP (``ak.GaussianProcess``), kernel rescaling (``ak.KernelRenormalization``,
width N), the multi-scale tree level (``ak.MultiScaleAdaptive(order="tree")``, sampled tilted
measure) at standard scaling chi = 1 and at mean-field scaling chi = N gamma^2 (gamma = 1,
sigma_w = 1), and MALA samples of the network (``ak.sample_posterior(chi=...)``) at both chi
for the P where affordable. Defaults: d = 20, eps = -0.5, N = 40, T = 0.05, sigma_w = 1,
P / d in {1, 2, 4, 8}, 3000 test points, no label noise, tree level 16 x 500 tilted draws,
MALA 2 chains x 500 kept x thin 10.

eps < 0 on purpose: an erf neuron aligned with w has He_3 / He_1 coefficients of ratio
-a^2 / (1 + 2 a^2) < 0 (a = its weight norm), so with eps > 0 the cubic needs cancellations
between neurons of different norms and sign; at eps = +0.5 (P <= 80) no predictor, MALA
included, learned any of it (|c3| < 0.05).

    python benches/multi_scale_single_index.py [--ratios 1 2 4 8] [--tree-stages 8] [--plot]

Writes benches/results/multi_scale_single_index.json (after every P) and, with --plot,
benches/figures/multi_scale_single_index.png. Cost on 2 shared cores: P <= 40 ~10 s per
predictor; at P = 80 the tree level at chi = N takes > 5 min with the default 40 continuation
stages (67 s and unconverged with --tree-stages 8); P = 160 did not finish in 5 min.
"""
from __future__ import annotations

import argparse
import json
import math
import time
import warnings

import numpy as np

import adaptive_kernels as ak


def hermite(z, kmax=5):
    """Orthonormal probabilists' Hermite functions He_k(z) / sqrt(k!), k = 0..kmax, as columns."""
    H = [np.ones_like(z), z]
    for k in range(1, kmax):
        H.append(z * H[k] - k * H[k - 1])
    return np.stack([h / math.sqrt(math.factorial(k)) for k, h in enumerate(H)], axis=1)


def data(P, d, eps, n_test, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(d)
    w /= np.linalg.norm(w)
    teacher = lambda X: (X @ w) + eps * ((X @ w) ** 3 - 3 * (X @ w))
    X, Xt = rng.standard_normal((P, d)), rng.standard_normal((n_test, d))
    return X, teacher(X), Xt, teacher(Xt), w


def components(f, Ht, eps):
    """(c1, c3, residual fraction) of the predictor f on the test set by least squares on Ht."""
    coef, *_ = np.linalg.lstsq(Ht, f, rcond=None)
    resid = f - Ht @ coef
    return float(coef[1]), float(coef[3] / (math.sqrt(6.0) * eps)), float(np.mean(resid ** 2) / np.mean(f ** 2))


def run(ratios, d, eps, N, T, sigma_w, gamma, n_test, seed, mala_max_ratio, mala_samples, tree_samples, tree_stages=40, out=None):
    net = ak.MLP(depth=1, activation="erf", sigma_w=sigma_w)
    chi_mf = N * gamma ** 2
    rows = []
    setup = dict(d=d, eps=eps, N=N, T=T, sigma_w=sigma_w, gamma=gamma, chi_mean_field=chi_mf, n_test=n_test,
                 seed=seed, tree_sampler=dict(n_chains=16, n_samples=tree_samples, max_stages=tree_stages),
                 mala=dict(n_chains=2, n_samples=mala_samples, thin=10, seed=1, max_ratio=mala_max_ratio))
    for r in ratios:
        P = int(round(r * d))
        X, y, Xt, yt, w = data(P, d, eps, n_test, seed)
        Ht = hermite(Xt @ w)
        preds, times, unconverged = {}, {}, []

        def timed(name, f):
            t0 = time.perf_counter()
            preds[name] = f()
            times[name] = time.perf_counter() - t0

        timed("NNGP", lambda: ak.GaussianProcess(net, ridge=T).fit(X, y).predict(Xt))
        timed("rescaling", lambda: ak.KernelRenormalization(net, width=N, temperature=T).fit(X, y).predict(Xt))
        for lab, chi in (("tree chi=1", 1.0), (f"tree chi=N", chi_mf)):
            def tree(chi=chi):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m = ak.MultiScaleAdaptive(net, width=N, temperature=T, chi=chi, order="tree",
                                              sampler_options=dict(n_samples=tree_samples, max_stages=tree_stages)).fit(X, y)
                if not m.converged_:
                    print(f"  [{lab}: not converged, residual {m.residual_:.2e}]")
                    unconverged.append(lab)
                return m.predict(Xt)
            timed(lab, tree)
        if r <= mala_max_ratio:
            for lab, chi in (("MALA chi=1", 1.0), ("MALA chi=N", chi_mf)):
                def mala(chi=chi):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        s = ak.sample_posterior(net, X, y, Xt, width=N, temperature=T, chi=chi, n_chains=2,
                                                n_samples=mala_samples, thin=10, step_size=1e-3, seed=1,
                                                store_kernels=False, store_weights=False)
                    return s.mean
                timed(lab, mala)
        row = dict(ratio=r, P=P, unconverged=unconverged)
        for name, f in preds.items():
            c1, c3, res = components(f, Ht, eps)
            row[name] = dict(c1=c1, c3=c3, resid=res, test_mse=float(np.mean((f - yt) ** 2)), seconds=times[name])
        rows.append(row)
        if out:   # after every P, so that an interrupted run keeps what it measured
            with open(out, "w") as fh:
                json.dump(dict(setup=setup, rows=rows), fh, indent=1)
        print(f"P/d = {r:g} (P = {P}): " + "; ".join(
            f"{k} c3={v['c3']:.3f} c1={v['c1']:.3f} ({v['seconds']:.1f}s)" for k, v in row.items() if isinstance(v, dict)),
            flush=True)
    return dict(setup=setup, rows=rows)


def table(res):
    names = [k for k in res["rows"][0] if isinstance(res["rows"][0][k], dict)]
    names += [k for row in res["rows"] for k in row if isinstance(row[k], dict) and k not in names]
    names = list(dict.fromkeys(names))
    print("\nc3 = learned cubic component / eps (c1 = linear component), test set of", res["setup"]["n_test"])
    print("| P/d | P | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for row in res["rows"]:
        cells = [f"{row[n]['c3']:.3f} ({row[n]['c1']:.2f})" if n in row else "-" for n in names]
        print(f"| {row['ratio']:g} | {row['P']} | " + " | ".join(cells) + " |")


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    styles = {"NNGP": "C0--", "rescaling": "C1-.", "tree chi=1": "C2-", "tree chi=N": "C3-",
              "MALA chi=1": "C2o", "MALA chi=N": "C3s"}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, st in styles.items():
        rs = [row["ratio"] for row in res["rows"] if name in row]
        if not rs:
            continue
        for ax, key in ((axes[0], "c3"), (axes[1], "c1")):
            ax.plot(rs, [row[name][key] for row in res["rows"] if name in row], st, label=name)
    s = res["setup"]
    for ax, t in ((axes[0], "cubic component  <f, He_3> / (6 eps)"), (axes[1], "linear component  <f, He_1>")):
        ax.set_xscale("log"), ax.set_xlabel("P / d"), ax.set_title(t, fontsize=9), ax.axhline(1, color="gray", lw=0.5)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"erf 1HL, single-index teacher He_1 + {s['eps']} He_3: d={s['d']}, N={s['N']}, T={s['T']}, "
                 f"sigma_w={s['sigma_w']}, chi_MF = N gamma^2 = {s['chi_mean_field']:g}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--ratios", type=float, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--eps", type=float, default=-0.5)
    ap.add_argument("--N", type=int, default=40)
    ap.add_argument("--T", type=float, default=0.05)
    ap.add_argument("--sigma-w", type=float, default=1.0)
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--n-test", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mala-max-ratio", type=float, default=8.0)
    ap.add_argument("--mala-samples", type=int, default=500)
    ap.add_argument("--tree-samples", type=int, default=500)
    ap.add_argument("--tree-stages", type=int, default=40, help="continuation stages of the tree-level fits")
    ap.add_argument("--out", default="benches/results/multi_scale_single_index.json")
    ap.add_argument("--plot", action="store_true")
    a = ap.parse_args()
    t0 = time.time()
    res = run(a.ratios, a.d, a.eps, a.N, a.T, a.sigma_w, a.gamma, a.n_test, a.seed, a.mala_max_ratio, a.mala_samples,
              a.tree_samples, a.tree_stages, a.out)
    res["seconds"] = time.time() - t0
    table(res)
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)
    if a.plot:
        plot(res, "benches/figures/multi_scale_single_index.png")
    print(f"total {res['seconds']:.0f} s")
