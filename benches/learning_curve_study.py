"""Learning curve on the bundled digits: theories and sampled networks against alpha = P / N.

For each activation (default: linear and relu, one hidden layer of fixed width N) and each
load alpha, P = alpha N training digits (10 classes, centered one-hot targets; the first P of
one seeded shuffle, so the training sets are nested) are fitted by ``ak.compare_theories``:
the lazy NNGP (GP posterior mean) and NTK (kernel ridge) predictors, kernel renormalization at
width N, the Bayesian mean-field theory (linear nets, where it is a deterministic saddle point;
the sampled nonlinear solver is skipped here as slow), and Bayesian networks of width N sampled
by MALA (``ak.sample_posterior``, standard scaling: the network kernel renormalization
describes) with several seeds, drawn as mean +- standard error over seeds. Same temperature =
ridge everywhere. Writes the table (``--table``, JSON rows; Parquet too with pyarrow) and the
figure ``benches/figures/learning_curve.png`` (one panel per activation), drawn by
``ak.studies.plot_learning_curve``.

    nice -n 10 python benches/learning_curve_study.py
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import warnings

import numpy as np

import adaptive_kernels as ak

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=50, help="hidden width N of the finite-width theories/networks")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1, 2, 4])
    ap.add_argument("--activations", nargs="+", default=["linear", "relu"])
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--gamma", type=float, default=1.0, help="richness of the mean-field theory")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="MALA seeds of the sampled networks")
    ap.add_argument("--n-samples", type=int, default=1000)
    ap.add_argument("--n-chains", type=int, default=2)
    ap.add_argument("--thin", type=int, default=5)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--table", default=str(HERE / "results" / "learning_curve.json"))
    ap.add_argument("--out", default=str(HERE / "figures" / "learning_curve.png"))
    ap.add_argument("--replot", action="store_true", help="only redraw the figure from --table")
    args = ap.parse_args()
    if args.replot:
        rows = json.loads(pathlib.Path(args.table).read_text())
        args.alphas = sorted({r["alpha"] for r in rows})
        figure(ak.Table(rows), args)
        print(f"wrote {args.out}")
        return 0
    N, T = args.width, args.temperature
    t_start = time.perf_counter()
    rows = []
    for act in args.activations:
        net = ak.MLP(depth=1, activation=act, sigma_w=np.sqrt(2.0) if act == "relu" else 1.0)
        theories = ["nngp", "ntk", "kernel_renormalization"] + (["bayesian_mean_field"] if act == "linear" else [])
        for alpha in args.alphas:
            P = int(round(alpha * N))
            Xtr, ytr, Xte, yte = ak.datasets.load_digits(n_train=P, n_test=args.n_test, seed=0)
            for i, seed in enumerate(args.seeds):
                sim = {"sample_posterior": dict(seed=seed, n_chains=args.n_chains, n_samples=args.n_samples, thin=args.thin)}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t = ak.compare_theories(net, Xtr, ytr, Xte, yte, theories=theories if i == 0 else [],
                                            simulate=sim, width=N, temperature=T, gamma=args.gamma)
                for r in t:
                    if r["model"] == "sample_posterior" or i == 0:
                        rows.append(dict(activation=act, alpha=float(alpha), P=P, width=N, temperature=T,
                                         seed=seed if r["model"] == "sample_posterior" else None, **r))
            done = [r for r in rows if r["activation"] == act and r["alpha"] == float(alpha)]
            print(f"{act:>6} alpha {alpha:4g} P {P:4d}: " + "  ".join(
                f"{r['model']}{'' if r['seed'] is None else '#' + str(r['seed'])} "
                f"{'failed' if r['test_loss'] is None else format(r['test_loss'], '.4f')}" for r in done)
                + f"  [{time.perf_counter() - t_start:.0f} s]", flush=True)
    table = ak.Table(rows)
    out_table = pathlib.Path(args.table)
    out_table.parent.mkdir(parents=True, exist_ok=True)
    out_table.write_text(json.dumps(table.rows(), indent=1, default=str))
    try:
        import pyarrow.parquet as pq
        pq.write_table(table.to_arrow(), out_table.with_suffix(".parquet"))
    except ImportError:
        pass

    figure(table, args)
    print(f"\nwrote {out_table} and {args.out}; {time.perf_counter() - t_start:.0f} s")
    failed = [r for r in rows if r["error"] is not None]
    for r in failed:
        print(f"failed: {r['activation']} alpha {r['alpha']} {r['model']}: {r['error']}")
    unconverged = [r for r in rows if r["converged"] is False]
    for r in unconverged:
        print(f"not converged (R-hat >= 1.1): {r['activation']} alpha {r['alpha']} {r['model']} seed {r['seed']}")
    return 0


def figure(table, args) -> None:
    """One panel per activation: ``ak.studies.plot_learning_curve`` of its rows."""
    from matplotlib.figure import Figure
    N, T = table["width"][0], table["temperature"][0]
    acts = list(dict.fromkeys(table["activation"]))
    fig = Figure(figsize=(6 * len(acts), 4.6), layout="constrained")
    axes = fig.subplots(1, len(acts), squeeze=False)[0]
    for ax, act in zip(axes, acts):
        ak.studies.plot_learning_curve(table.where(activation=act), "alpha", "test_loss", ax=ax, logx=True, logy=True,
                                       title=f"digits, 10 classes, {act} net, L = 1, N = {N}, T = {T:g}")
        ax.set_xlabel("alpha = P / N")
        ax.set_xticks(args.alphas, [f"{a:g}" for a in args.alphas])
        ax.xaxis.set_minor_formatter("")
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
