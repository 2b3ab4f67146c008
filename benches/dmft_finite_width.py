"""Finite networks approach the gradient-flow fixed point as the width grows (issue #15).

``ak.train_gd(parameterization="mean_field")`` at widths N (several independent seeds each) vs
``ak.GradientFlowFixedPoint`` with M particles (its own seed, independent of the networks), on
small synthetic problems (P training points in d dimensions, Q = 30 test points, a tanh teacher,
gamma = 1, weight_decay = 1; ``CONFIGS``). Errors: the max over test points of
|f_N(x*) - f_theory(x*)| (the theory's particles' own outputs) and the relative Frobenius errors
|A_N - A_M|_F / |A_M|_F of the feature kernels Phi^l and of the NTK on the training points,
averaged over the seeds; the slope of log(error) vs log(N) is fitted.

* "fixed point" (tanh): networks by GD at lr = dt to ``--net-tol``; the theory by Euler steps
  of the same dt (``adaptive=False``) to residual 1e-6, then L-BFGS to ``--theory-tol``. The
  same dt matters: the fixed point reached depends on the Euler step (several neuron types,
  whose populations the transient decides); at P = 40 the library's adaptive step (grown to
  near the stability limit) lands 3.5e-3 away (max over test outputs) from the dt = 0.04 one,
  more than the N = 256 networks' error.
* "fixed flow time": relu never reaches its fixed point (kink chatter, the residual stalls at
  ~1e-1), and the deep theory (the width-M network's flow, ~M^2 P per step, ~3 s per step at
  M = 8192 on 2 busy cores) is too slow to run to its fixed point at M = 8192, so both are
  compared after the same number of Euler steps at the same dt (``adaptive=False,
  polish_iter=0`` for the theory, ``lr = dt, tol = 0`` for the networks).
* ``*:P12``: a small problem whose fixed point has a single neuron type (Phi of rank one): the
  fixed point is then the same for every width, to the solver tolerance.

The theory at finite M carries its own Monte-Carlo error ~ 1/sqrt(M), independent of the
network's, so the expected error is c sqrt(1/N + 1/M) and the raw slope between N = 256 and
4096 is shallower than -1/2 (about -0.46 for M = 16384, -0.43 for M = 8192); both the free
power-law slope and that one-parameter fit are reported.

    python benches/dmft_finite_width.py --configs tanh:1 relu:1 tanh:1:P12 tanh:2:P12   # ~8 min, 2 busy cores
    python benches/dmft_finite_width.py --configs tanh:2                                # ~8 min
    python benches/dmft_finite_width.py --configs relu:2 --plot                         # ~8 min
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def problem(P, d, Q, seed=0):
    rng = np.random.default_rng(seed)
    X, Xt = rng.standard_normal((P, d)), rng.standard_normal((Q, d))
    teacher = lambda Z: np.tanh(Z[:, 0] + 0.5 * Z[:, 1] * Z[:, 2])  # noqa: E731
    y = teacher(X)
    return X, y / y.std(), Xt


def theory_outputs(net, m, Xt, M, gamma):
    """The particles' own outputs on test points (the particle network of width M)."""
    from adaptive_kernels import _core
    from adaptive_kernels.finite._common import net_args

    return np.asarray(_core.finite.forward(m.theta_, Xt, n_out=1, **net_args(net, M, "mean_field", gamma))[0])[:, 0]


def kink_fraction(theta, X, N, depth):
    """Per hidden layer, the fraction of (neuron, training point) preactivations within 1e-3 of the
    mean |h| of zero (sigma_w = 1, sigma_b = 0): relu neurons stuck at the kink."""
    d = X.shape[1]
    W = theta[:N * d].reshape((N, d), order="F")
    h = X @ W.T / np.sqrt(d)
    off, out = N * d, []
    for layer in range(depth):
        out.append(float(np.mean(np.abs(h) < 1e-3 * np.abs(h).mean())))
        if layer + 1 < depth:
            W = theta[off:off + N * N].reshape((N, N), order="F")
            off += N * N
            h = np.maximum(h, 0) @ W.T / np.sqrt(N)
    return out


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def run_config(activation, depth, *, mode, widths, members, M, P, d, Q, gamma, lam, dt, steps, net_tol,
               theory_tol, theory_seed=12345, verbose=True):
    """Errors of finite networks vs the theory, both at their fixed points (``mode="fixed point"``)
    or both after ``steps`` Euler steps of size ``dt`` (``mode="fixed flow time"``)."""
    import adaptive_kernels as ak

    X, y, Xt = problem(P, d, Q)
    net = ak.MLP(depth=depth, activation=activation)
    fixed_time = mode == "fixed flow time"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fixed_time:
            th = ak.GradientFlowFixedPoint(net, gamma=gamma, weight_decay=lam, n_particles=M, seed=theory_seed, dt=dt,
                                           adaptive=False, polish_iter=0, max_steps=steps).fit(X, y)
        else:   # the networks' step: the fixed point reached depends on the Euler step (see the docs)
            th = ak.GradientFlowFixedPoint(net, gamma=gamma, weight_decay=lam, n_particles=M, seed=theory_seed, dt=dt,
                                           adaptive=False, switch_tol=1e-6, tol=theory_tol,
                                           max_steps=steps).fit(X, y)
    t_theory = time.perf_counter() - t0
    f_th = theory_outputs(net, th, Xt, M, gamma)
    lr = dt
    ev = np.linalg.eigvalsh(th.kernel_)[::-1]
    kinks = activation == "relu"
    out = dict(activation=activation, depth=depth, M=M, P=P, d=d, Q=Q, gamma=gamma, weight_decay=lam, dt=dt,
               steps=steps, mode=mode, theory_seconds=t_theory,
               theory_phi_spectrum=(ev[:6] / ev[0]).tolist(), lambda_max_ntk=float(np.linalg.eigvalsh(th.ntk_)[-1]),
               theory_residual=th.residual_, theory_converged=bool(th.converged_), theory_flow_time=th.flow_time_,
               theory_readout_gap=th.readout_gap_, theory_readout_vs_particles=float(np.abs(th.predict(Xt) - f_th).max()),
               lr=float(lr), rows=[], theory_kink_fraction=kink_fraction(th.theta_, X, M, depth) if kinks else None)
    if verbose:
        print(f"{activation} L = {depth}: theory M = {M}, {out['mode']}, t = {th.flow_time_:.3g}, residual "
              f"{th.residual_:.2e}, {t_theory:.0f} s" + (f", at the kink: {out['theory_kink_fraction']}" if kinks else ""),
              flush=True)
    for i, N in enumerate(widths):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = ak.train_gd(net, X, y, Xt, width=N, parameterization="mean_field", gamma=gamma, weight_decay=lam,
                            lr=lr, steps=steps, tol=0.0 if fixed_time else net_tol, n_ensemble=members[i],
                            seed=1 + 1000 * i)
        pred = [float(np.abs(r.test_output[k] - f_th).max()) for k in range(members[i])]
        kern = [[rel(r.feature_kernels[l][k], th.feature_kernels_[l]) for k in range(members[i])]
                for l in range(depth)]
        ntk = [rel(r.ntk[k], th.ntk_) for k in range(members[i])]
        row = dict(N=N, members=members[i], pred_max_err=pred, kernel_rel_err=kern, ntk_rel_err=ntk,
                   n_steps=r.n_steps.tolist(), grad_rms=r.grad_rms.tolist(), converged=r.converged.tolist(),
                   seconds=time.perf_counter() - t0,
                   kink_fraction=[kink_fraction(r.theta[k], X, N, depth) for k in range(members[i])] if kinks else None)
        out["rows"].append(row)
        if verbose:
            print(f"  N = {N:5d} ({members[i]} seeds): pred {np.mean(pred):.4f}  Phi "
                  + " ".join(f"{np.mean(k):.4f}" for k in kern) + f"  NTK {np.mean(ntk):.4f}  steps "
                  f"{int(np.max(r.n_steps))}  grad_rms {np.max(r.grad_rms):.1e}  {row['seconds']:.0f} s", flush=True)
    out["fits"] = fits(out)
    return out


def slope(Ns, errs):
    return float(np.polyfit(np.log(Ns), np.log(errs), 1)[0])


def fits(res):
    """Free power-law slopes, and c of err = c sqrt(1/N + 1/M) with the raw slope it implies."""
    Ns = np.array([r["N"] for r in res["rows"]], float)
    M = res["M"]
    series = {"pred": [np.mean(r["pred_max_err"]) for r in res["rows"]],
              "ntk": [np.mean(r["ntk_rel_err"]) for r in res["rows"]]}
    for l in range(res["depth"]):
        series[f"Phi{l + 1}"] = [np.mean(r["kernel_rel_err"][l]) for r in res["rows"]]
    base = np.sqrt(1 / Ns + 1 / M)
    out = {"expected_slope": slope(Ns, base)}
    for k, e in series.items():
        e = np.array(e)
        c = float(np.exp(np.mean(np.log(e / base))))
        out[k] = {"slope": slope(Ns, e), "c": c, "fit_rel_dev": float(np.max(np.abs(e / (c * base) - 1)))}
    return out


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = min(3, len(results))
    nrow = -(-len(results) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.3 * nrow), squeeze=False)
    for ax in axes.flat[len(results):]:
        ax.axis("off")
    for ax, res in zip(axes.flat, results):
        Ns = np.array([r["N"] for r in res["rows"]], float)
        curves = [("pred", "max |f_N - f| (test)", [r["pred_max_err"] for r in res["rows"]]),
                  ("ntk", "NTK rel. Frobenius", [r["ntk_rel_err"] for r in res["rows"]])]
        curves += [(f"Phi{l + 1}", f"Phi^{l + 1} rel. Frobenius", [r["kernel_rel_err"][l] for r in res["rows"]])
                   for l in range(res["depth"])]
        for key, label, vals in curves:
            mean = np.array([np.mean(v) for v in vals])
            lo = mean - np.array([np.min(v) for v in vals])
            hi = np.array([np.max(v) for v in vals]) - mean
            ax.errorbar(Ns, mean, yerr=[lo, hi], fmt="o-", ms=3, capsize=2,
                        label=f"{label} ({res['fits'][key]['slope']:.2f})")
        ref = np.mean([np.mean(v) for v in curves[0][2][:1]]) * np.sqrt(Ns[0] / Ns)
        ax.plot(Ns, ref, "k:", lw=0.8, label="N^-1/2")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(Ns, [str(int(n)) for n in Ns])
        ax.minorticks_off()
        ax.set_xlabel("width N")
        ax.set_title(f"{res['activation']} L = {res['depth']}, P = {res['P']}, M = {res['M']}\n({res['mode']}, "
                     f"t = {res['theory_flow_time']:.3g})", fontsize=8)
        ax.legend(fontsize=5.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


CONFIGS = {  # relu never reaches its fixed point: it is compared at a fixed flow time dt * steps
    "tanh:1": dict(activation="tanh", depth=1, mode="fixed point", P=40, d=10, M=16384, dt=0.04, steps=20000),
    "relu:1": dict(activation="relu", depth=1, mode="fixed flow time", P=40, d=10, M=16384, dt=0.04, steps=500),
    "tanh:2": dict(activation="tanh", depth=2, mode="fixed flow time", P=20, d=8, M=8192, dt=0.04, steps=125),
    "relu:2": dict(activation="relu", depth=2, mode="fixed flow time", P=20, d=8, M=8192, dt=0.04, steps=125),
    # a small problem whose fixed point has a single neuron type: width-independent
    "tanh:1:P12": dict(activation="tanh", depth=1, mode="fixed point", P=12, d=6, M=16384, dt=0.08, steps=20000),
    "tanh:2:P12": dict(activation="tanh", depth=2, mode="fixed point", P=12, d=6, M=2048, dt=0.08, steps=20000),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="*", default=[], help="activation:depth, e.g. tanh:1 relu:2")
    ap.add_argument("--widths", type=int, nargs="+", default=[256, 1024, 4096])
    ap.add_argument("--members", type=int, nargs="+", default=[4, 4, 2], help="seeds per width")
    ap.add_argument("--Q", type=int, default=30)
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--weight-decay", type=float, default=1.0)
    ap.add_argument("--net-tol", type=float, default=1e-8)
    ap.add_argument("--theory-tol", type=float, default=1e-9)
    ap.add_argument("--M", type=int, default=None, help="override the theory's particle count")
    ap.add_argument("--out", default="dmft_finite_width", help="results/<out>.json and .png")
    ap.add_argument("--plot", action="store_true")
    args = ap.parse_args()
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{args.out}.json")
    saved = json.load(open(path)) if os.path.exists(path) else {}
    for cfg in args.configs:
        c = dict(CONFIGS[cfg])
        if args.M:
            c["M"] = args.M
        saved[cfg] = run_config(**c, widths=args.widths, members=args.members, Q=args.Q, gamma=args.gamma,
                                lam=args.weight_decay, net_tol=args.net_tol, theory_tol=args.theory_tol)
        with open(path, "w") as fh:
            json.dump(saved, fh, indent=1)
    print(f"\n{'config':<11} {'mode':<16} {'P':>3} {'M':>6} {'N':>5} {'max pred err':>12} {'NTK rel':>9} "
          f"{'Phi^l rel':>19}  at the kink")
    for cfg, res in saved.items():
        for r in res["rows"]:
            kink = "" if r.get("kink_fraction") is None else " ".join(
                f"{v:.3f}" for v in np.mean(r["kink_fraction"], axis=0))
            print(f"{cfg:<11} {res['mode']:<16} {res['P']:>3} {res['M']:>6} {r['N']:>5} "
                  f"{np.mean(r['pred_max_err']):>12.2e} {np.mean(r['ntk_rel_err']):>9.2e} "
                  + " ".join(f"{np.mean(k):9.2e}" for k in r["kernel_rel_err"]) + f"  {kink}")
        f = res["fits"]
        print(f"{'':<8} slopes: " + ", ".join(f"{k} {v['slope']:.2f}" for k, v in f.items() if k != "expected_slope")
              + f" (expected with the theory's own error: {f['expected_slope']:.2f})")
    if args.plot and saved:
        order = [k for k in CONFIGS if k in saved] + [k for k in saved if k not in CONFIGS]
        plot([saved[k] for k in order], os.path.join(RESULTS, f"{args.out}.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
