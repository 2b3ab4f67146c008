"""Nonlinear forward-backward kernels (first order, issue #18) against MALA-sampled networks.

    python benches/forward_backward_nonlinear.py samples [--P 20] [--seeds 3] [--n-samples 2000]
    python benches/forward_backward_nonlinear.py criticality [--P 20] [--seeds 3]
    python benches/forward_backward_nonlinear.py importance [--P 20] [--R 40000]

* samples: XOR (4 noisy clusters, d = 2) and digits 0 vs 3 (8x8, standardized), L = 2,
  alpha = P / N in {0.25, 1, 2}, T = 0.1, erf with sigma_w^2 = 1.5625, sigma_b^2 = 0.1 (chi_1 = 1.003,
  the edge of chaos) and a linear control (sigma_w = 1, sigma_b = 0). Per layer: CKA of C^l with
  y y^T and ``proj`` = <C^l - K^l, y y^T> / |y y^T|^2 (K^l the NNGP kernel), theory (first order)
  vs samples (posterior mean of g phi phi^T / N + b), mean +- standard error over sampler seeds.
* importance: exact posterior-mean kernels by importance sampling of R prior networks (the
  output given C^L is Gaussian, so the weights are N(y; 0, C^L + T I)): an MCMC-free check of
  the samples and of the first order (alpha in {0.25, 1}; the effective sample size is printed).
* criticality: erf, sigma_b^2 = 0.1, sigma_w^2 across the edge of chaos (chi_1 from
  ak.criticality), alpha = 1, XOR: proj and CKA gain per layer, theory at every point, samples at
  a few.

Writes ``benches/results/forward_backward_nonlinear_<mode>.json`` and a figure in
``benches/figures/`` when matplotlib is available.
"""
import argparse
import json
import pathlib
import time

import numpy as np

import adaptive_kernels as ak

HERE = pathlib.Path(__file__).parent
T = 0.1


def task(name, P, seed=0):
    if name == "xor":
        ds = ak.datasets.xor(n_train=P, n_test=1, noise=0.2, seed=seed)
    else:
        ds = ak.datasets.load_digits(classes=(0, 3), n_train=P, n_test=1, seed=seed)
    return ds.X_train, ds.y_train


def measures(C, K, y):
    Y = np.outer(y, y)
    return float(np.sum((C - K) * Y) / np.sum(Y * Y)), float(ak.cka(C, Y))


def prior_kernels(net, X, N, R=2000, seed=0):
    """Prior mean of C^l over R random width-N networks (direct simulation; the NNGP kernel K^l is
    its N -> inf limit, and E C^l - K^l = O(1/N) for l >= 2 with a nonlinear phi), and its
    standard error per layer as a list of (mean, se-array)."""
    from scipy.special import erf
    phi = {"erf": erf, "linear": lambda h: h, "tanh": np.tanh}[net.activation_name]
    rng = np.random.default_rng(seed)
    g, b, (P, d) = net.sigma_w ** 2, net.sigma_b ** 2, X.shape
    acc = [[] for _ in range(net.depth)]
    for _ in range(R):
        h = net.sigma_w * X @ rng.standard_normal((d, N)) / np.sqrt(d) + net.sigma_b * rng.standard_normal(N)
        for l in range(net.depth):
            f = phi(h)
            acc[l].append(g * f @ f.T / N + b)
            h = net.sigma_w * f @ rng.standard_normal((N, N)) / np.sqrt(N) + net.sigma_b * rng.standard_normal(N)
    return [np.array(a) for a in acc]


def compare(net, X, y, N, seeds, n_samples, full=False, reuse=None):
    """Theory (first order; with ``full`` also the full sampled MAP solve) against MALA samples;
    ``reuse``: a callable ``layer -> row`` of an earlier run with the same set-up (its sample
    columns are kept instead of sampling again: MALA at fixed seeds is deterministic)."""
    g, b = net.sigma_w ** 2, net.sigma_b ** 2
    th = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="perturbative", n_samples=50_000).fit(X, y)
    thf = None
    if full:
        t0 = time.time()
        thf = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="full", n_samples=20_000).fit(X, y)
        t_full = time.time() - t0
    rows = []
    samp = []
    if reuse is not None:
        for l in range(net.depth):
            K = th.nngp_kernels_[l]
            p_th, c_th = measures(th.kernels_[l], K, y)
            r = dict(reuse(l + 1))
            r.update(layer=l + 1, cka_nngp=measures(K, K, y)[1], proj_theory=p_th, cka_theory=c_th, reused_samples=True)
            if thf is not None:
                r.update(_full_row(thf, K, y, l, t_full))
            rows.append(r)
        return rows
    for s in range(seeds):
        ps = ak.sample_posterior(net, X, y, width=N, temperature=T, n_chains=4, n_samples=n_samples, thin=5,
                                 seed=100 + s, store_weights=False)
        samp.append(([g * k + b for k in ps.kernels], float(np.nanmax(ps.rhat))))
    prior = prior_kernels(net, X, N)
    for l in range(net.depth):
        K = th.nngp_kernels_[l]
        p_th, c_th = measures(th.kernels_[l], K, y)
        pv = np.array([measures(c, K, y)[0] for c in prior[l]])
        vals = np.array([measures(ks[l], K, y) for ks, _ in samp])
        se = vals.std(axis=0, ddof=1) / np.sqrt(len(vals)) if len(vals) > 1 else np.full(2, np.nan)
        rows.append(dict(layer=l + 1, cka_nngp=measures(K, K, y)[1], proj_theory=p_th, cka_theory=c_th,
                         proj_samples=float(vals[:, 0].mean()), proj_se=float(se[0]),
                         cka_samples=float(vals[:, 1].mean()), cka_se=float(se[1]),
                         rhat_max=max(r for _, r in samp), proj_prior=float(pv.mean()),
                         proj_prior_se=float(pv.std(ddof=1) / np.sqrt(len(pv)))))
        if thf is not None:
            rows[-1].update(_full_row(thf, K, y, l, t_full))
    return rows


def _full_row(thf, K, y, l, seconds):
    p, c = measures(thf.kernels_[l], K, y)
    return dict(proj_full=p, cka_full=c, full_converged=bool(thf.converged_), full_residual=float(thf.residual_),
                full_kish=float(thf.kish_[l]) if len(thf.kish_) else float("nan"), full_draws=int(thf.n_draws_), full_seconds=seconds)


def importance(net, X, y, N, T, R, seed=0, batch=2000):
    """Exact posterior-mean kernels by importance sampling of prior networks: f | C^L ~ N(0, C^L),
    weights N(y; 0, C^L + T I)."""
    from scipy.special import erf
    phi = {"erf": erf, "linear": lambda h: h, "tanh": np.tanh}[net.activation_name]
    rng = np.random.default_rng(seed)
    g, b, (P, d) = net.sigma_w ** 2, net.sigma_b ** 2, X.shape
    logw, Cs = [], [[] for _ in range(net.depth)]
    for _ in range(R // batch):
        h = net.sigma_w * np.einsum("pd,rdn->rpn", X, rng.standard_normal((batch, d, N))) / np.sqrt(d) + net.sigma_b * rng.standard_normal((batch, 1, N))
        for l in range(net.depth):
            f = phi(h)
            C = g * f @ f.transpose(0, 2, 1) / N + b
            Cs[l].append(C)
            if l + 1 < net.depth:
                h = net.sigma_w * f @ rng.standard_normal((batch, N, N)) / np.sqrt(N) + net.sigma_b * rng.standard_normal((batch, 1, N))
        G = C + T * np.eye(P)
        L = np.linalg.cholesky(G)
        z = np.linalg.solve(L, y[None, :, None])[..., 0]
        logw.append(-0.5 * np.sum(z * z, axis=1) - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1))
    logw = np.concatenate(logw); w = np.exp(logw - logw.max()); w /= w.sum()
    kish = 1 / (len(w) * np.sum(w * w))
    return [np.einsum("r,rij->ij", w, np.concatenate(c)) for c in Cs], kish

def importance_check(args):
    """Exact posterior-mean kernels by importance sampling of prior networks (no MCMC), against
    the first order (and, printed from the samples run, MALA)."""
    out = []
    nets = {"erf": ak.MLP(depth=2, activation="erf", sigma_w=1.25, sigma_b=np.sqrt(0.1)),
            "linear": ak.MLP(depth=2, activation="linear")}
    for act, net in nets.items():
        for tname in ("xor", "digits03"):
            X, y = task(tname, args.P)
            for alpha in (0.25, 1.0):
                N = int(round(args.P / alpha))
                m, kish = importance(net, X, y, N, T, args.R)
                th = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="perturbative").fit(X, y)
                for l in range(2):
                    K = th.nngp_kernels_[l]
                    r = dict(act=act, task=tname, alpha=alpha, N=N, layer=l + 1, kish=kish, ess=kish * args.R,
                             proj_exact=measures(m[l], K, y)[0], proj_theory=measures(th.kernels_[l], K, y)[0])
                    out.append(r)
                    print(f"{act:6s} {tname:8s} alpha {alpha:4} layer {l + 1}: proj exact (IS) {r['proj_exact']:.4f} "
                          f"first order {r['proj_theory']:.4f} (ESS {r['ess']:.0f})", flush=True)
    return out


def samples(args):
    # tanh at its edge of chaos for sigma_b^2 = 0.1 (sigma_w^2 = 1.9861, digest §2), like erf
    nets = {"erf": ak.MLP(depth=2, activation="erf", sigma_w=1.25, sigma_b=np.sqrt(0.1)),
            "tanh": ak.MLP(depth=2, activation="tanh", sigma_w=np.sqrt(1.9861), sigma_b=np.sqrt(0.1)),
            "linear": ak.MLP(depth=2, activation="linear")}
    old = []
    path = HERE / "results" / "forward_backward_nonlinear_samples.json"
    if args.reuse and path.exists():
        old = json.loads(path.read_text())
    out = []
    for tname in ("xor", "digits03"):
        X, y = task(tname, args.P)
        for act, net in nets.items():
            for alpha in (0.25, 1.0, 2.0):
                N = int(round(args.P / alpha))
                t0 = time.time()
                prev = {r["layer"]: r for r in old if (r["task"], r["act"], r["alpha"]) == (tname, act, alpha)}
                reuse = (lambda l, prev=prev: prev[l]) if len(prev) == net.depth else None
                for r in compare(net, X, y, N, args.seeds, args.n_samples, full=args.full, reuse=reuse):
                    r.update(task=tname, act=act, alpha=alpha, N=N)
                    out.append(r)
                    print(f"{tname:8s} {act:6s} alpha {alpha:4} layer {r['layer']}: proj theory {r['proj_theory']:.4f} "
                          f"samples {r['proj_samples']:.4f} +- {r['proj_se']:.4f} prior bias {r['proj_prior']:.4f} +- {r['proj_prior_se']:.4f} | CKA nngp {r['cka_nngp']:.3f} "
                          f"theory {r['cka_theory']:.3f} samples {r['cka_samples']:.3f} +- {r['cka_se']:.3f} "
                          f"(R-hat {r['rhat_max']:.2f}, {time.time() - t0:.0f} s)"
                          + (f" | full proj {r['proj_full']:.4f} CKA {r['cka_full']:.3f} (converged {r['full_converged']}, "
                             f"residual {r['full_residual']:.1e}, Kish {r['full_kish']:.2f}, draws {r['full_draws']}, "
                             f"{r['full_seconds']:.1f} s)" if "proj_full" in r else ""), flush=True)
                if args.reuse:   # partial results, so that an interrupted run keeps its samples
                    (HERE / "results").mkdir(exist_ok=True)
                    path.write_text(json.dumps(out + [r for r in old if (r["task"], r["act"], r["alpha"]) not in
                                                      {(o["task"], o["act"], o["alpha"]) for o in out}], indent=1))
    return out


def criticality(args):
    X, y = task("xor", args.P)
    sb = np.sqrt(0.1)
    N = args.P   # alpha = 1
    out = []
    L, act = args.depth, args.act
    for g in np.linspace(0.6, 3.0, 13) if act == "erf" else np.linspace(0.8, 3.6, 15):
        net = ak.MLP(depth=L, activation=act, sigma_w=np.sqrt(g), sigma_b=sb)
        chi1 = ak.criticality(net).chi_1
        th = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="perturbative", n_samples=50_000).fit(X, y)
        for l in range(L):
            K = th.nngp_kernels_[l]
            p, c = measures(th.kernels_[l], K, y)
            out.append(dict(g=float(g), chi_1=float(chi1), layer=l + 1, proj_theory=p,
                            cka_gain_theory=c - measures(K, K, y)[1]))
        print(f"sigma_w^2 {g:.2f} chi_1 {chi1:.3f}: proj theory " +
              " ".join(f"{r['proj_theory']:.4f}" for r in out[-L:]) + " | CKA gain " +
              " ".join(f"{r['cka_gain_theory']:.4f}" for r in out[-L:]), flush=True)
    for g in args.sample_g:
        net = ak.MLP(depth=L, activation=act, sigma_w=np.sqrt(g), sigma_b=sb)
        for r in compare(net, X, y, N, args.seeds, args.n_samples):
            r.update(g=g, chi_1=float(ak.criticality(net).chi_1), sampled=True,
                     cka_gain_theory=r["cka_theory"] - r["cka_nngp"], cka_gain_samples=r["cka_samples"] - r["cka_nngp"])
            out.append(r)
            print(f"sampled sigma_w^2 {g}: layer {r['layer']} proj theory {r['proj_theory']:.4f} samples "
                  f"{r['proj_samples']:.4f} +- {r['proj_se']:.4f} (prior bias {r['proj_prior']:.4f}); CKA gain theory {r['cka_gain_theory']:.4f} "
                  f"samples {r['cka_gain_samples']:.4f} +- {r['cka_se']:.4f} (R-hat {r['rhat_max']:.2f})", flush=True)
    return out


def figure(mode, out, tag=""):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    if mode == "samples":
        fig, axes = plt.subplots(2, 3, figsize=(13, 7))
        for ax, (tname, act) in zip(axes.flat, [(t, a) for t in ("xor", "digits03") for a in ("erf", "tanh", "linear")]):
            for l, c in ((1, "C0"), (2, "C3")):
                rs = [r for r in out if r["task"] == tname and r["act"] == act and r["layer"] == l]
                a = [r["alpha"] for r in rs]
                ax.plot(a, [r["proj_theory"] for r in rs], "-", color=c, label=f"layer {l} first order")
                if rs and "proj_full" in rs[0]:
                    ax.plot(a, [r["proj_full"] for r in rs], "--", color=c, label=f"layer {l} full")
                ax.errorbar(a, [r["proj_samples"] for r in rs], [r["proj_se"] for r in rs], fmt="o", color=c,
                            label=f"layer {l} samples")
            ax.set(title=f"{tname}, {act}", xlabel="alpha = P/N", ylabel="proj of C - K on y y^T")
            ax.legend(fontsize=7)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for l in sorted({r["layer"] for r in out}):
            c = f"C{l - 1}"
            rs = [r for r in out if r["layer"] == l and not r.get("sampled")]
            ss = [r for r in out if r["layer"] == l and r.get("sampled")]
            axes[0].plot([r["chi_1"] for r in rs], [r["proj_theory"] for r in rs], "-", color=c, label=f"layer {l} theory")
            axes[0].errorbar([r["chi_1"] for r in ss], [r["proj_samples"] for r in ss], [r["proj_se"] for r in ss],
                             fmt="o", color=c, label=f"layer {l} samples")
            axes[1].plot([r["chi_1"] for r in rs], [r["cka_gain_theory"] for r in rs], "-", color=c, label=f"layer {l} theory")
            axes[1].errorbar([r["chi_1"] for r in ss], [r["cka_gain_samples"] for r in ss], [r["cka_se"] for r in ss],
                             fmt="o", color=c, label=f"layer {l} samples")
        for ax, lab in zip(axes, ("proj of C - K on y y^T", "CKA gain over NNGP")):
            ax.axvline(1.0, color="k", lw=0.5)
            ax.set(xlabel=f"chi_1 ({tag or 'erf'}, sigma_b^2 = 0.1, sigma_w^2 swept)", ylabel=lab)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "figures" / f"forward_backward_nonlinear_{mode}{'_' + tag if tag else ''}.png", dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["samples", "criticality", "importance"])
    ap.add_argument("--R", type=int, default=40000, help="prior networks for the importance check")
    ap.add_argument("--P", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-samples", type=int, default=2000)
    ap.add_argument("--sample-g", type=float, nargs="*", default=[0.8, 1.5625, 2.6])
    ap.add_argument("--act", default="erf", help="criticality: erf or tanh")
    ap.add_argument("--depth", type=int, default=2, help="criticality: number of hidden layers")
    ap.add_argument("--full", action="store_true", help="samples: add the full (sampled) MAP solve")
    ap.add_argument("--reuse", action="store_true",
                    help="samples: keep the MALA columns of the existing JSON where the set-up matches")
    args = ap.parse_args()
    out = {"samples": samples, "criticality": criticality, "importance": importance_check}[args.mode](args)
    (HERE / "results").mkdir(exist_ok=True)
    tag = "" if args.mode != "criticality" or (args.act, args.depth) == ("erf", 2) else f"{args.act}_L{args.depth}"
    (HERE / "results" / f"forward_backward_nonlinear_{args.mode}{'_' + tag if tag else ''}.json").write_text(
        json.dumps(out, indent=1))
    if args.mode != "importance":
        figure(args.mode, out, tag)


if __name__ == "__main__":
    main()
