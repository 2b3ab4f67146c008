"""Command line.

``adaptive-kernels demo``: a small ``compare_theories`` study on scikit-learn's bundled digits
(lazy NNGP/NTK predictors next to the adaptive theories, same data, same ridge).
``adaptive-kernels sweep study.toml``: the sweep a TOML file describes (see
:mod:`adaptive_kernels.studies.config`), resumable through its store.
``adaptive-kernels plot results.parquet --x width``: a learning curve of a store (or Parquet
file) written to a PNG (needs matplotlib).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

NAMES = {"nngp": "nngp", "ntk": "ntk", "kernel_renormalization": "renorm", "bayesian_mean_field": "meanfield",
         "gradient_flow": "gradflow"}


def _demo(args: argparse.Namespace) -> int:
    import adaptive_kernels as ak

    t_start = time.perf_counter()
    ds = ak.datasets.load_digits(n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    Xtr, ytr, Xte, yte = ds
    P = Xtr.shape[0]
    width = max(1, int(round(P / args.alpha)))
    print(f"data: {ds.name}  train {Xtr.shape}  test {Xte.shape}  targets {ytr.shape[1]} classes (centered one-hot)")
    print(f"ridge = temperature {args.ridge:g}, sigma_w^2 = 2 for relu and 1 otherwise, no bias; "
          f"width N = P/{args.alpha:g} = {width}, gamma {args.gamma:g}; threads {ak._core.default_threads()}\n")
    header = (f"{'activation':>10} {'L':>2} {'kernel':>9} {'test MSE':>9} {'test acc':>8} {'align(K,y)':>10} "
              f"{'CKA(K,NNGP)':>11} {'time s':>7}")
    print(header)
    print("-" * len(header))
    wins = []
    for act in args.activations:
        sw = np.sqrt(2.0) if act == "relu" else 1.0
        for depth in args.depths:
            net = ak.MLP(depth=depth, activation=act, sigma_w=sw)
            theories = ["nngp", "ntk"]
            if depth >= 1:
                theories.append("kernel_renormalization")
                if act == "linear":   # closed form / L-BFGS; nonlinear nets are sampled (slower)
                    theories.append("bayesian_mean_field")
            table = ak.compare_theories(net, Xtr, ytr, Xte, yte, theories=theories, width=width,
                                        temperature=args.ridge, gamma=args.gamma)
            lazy = min(r["test_loss"] for r in table if r["kind"] == "lazy")
            for r in table:
                name = NAMES[r["model"]]
                if r["error"] is not None:
                    print(f"{act:>10} {depth:>2} {name:>9}  failed: {r['error']}")
                    continue
                # accuracy: refit is cheap at this size; the table carries losses only
                print(f"{act:>10} {depth:>2} {name:>9} {r['test_loss']:9.5f} {_accuracy(ak, r['model'], net, args, width, Xtr, ytr, Xte, yte):8.4f} "
                      f"{r['alignment']:10.4f} {r['cka_nngp']:11.4f} {r['fit_time']:7.2f}")
                if r["kind"] == "theory" and r["test_loss"] < lazy:
                    wins.append(f"{name} ({act}, L={depth}): {r['test_loss']:.5f} < {lazy:.5f} "
                                f"({100 * (1 - r['test_loss'] / lazy):.1f}% lower)")
    print("\nnngp/ntk: lazy (infinite-width) predictors. renorm: kernel renormalization of a Bayesian network of "
          "width N (proportional limit; several outputs share Q). meanfield: Bayesian mean-field adaptive kernels "
          "(muP, richness gamma; linear nets).")
    if wins:
        print("adaptive theories below both lazy test losses: " + "; ".join(wins))
    else:
        print("no adaptive theory has a lower test loss than the best lazy predictor on these settings")
    print(f"total time {time.perf_counter() - t_start:.1f} s")
    return 0


def _accuracy(ak, model, net, args, width, Xtr, ytr, Xte, yte) -> float:
    if model == "nngp":
        est = ak.GaussianProcess(net, ridge=args.ridge)
    elif model == "ntk":
        est = ak.KernelRidge(net, kernel="ntk", ridge=args.ridge)
    elif model == "kernel_renormalization":
        est = ak.KernelRenormalization(net, width=width, temperature=args.ridge)
    else:
        est = ak.BayesianMeanField(net, gamma=args.gamma, temperature=args.ridge)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = est.fit(Xtr, ytr).predict(Xte)
    return float(np.mean(pred.argmax(1) == yte.argmax(1)))


def _sweep(args: argparse.Namespace) -> int:
    from .studies.config import load_study, run_study

    study = load_study(args.study)
    t0 = time.perf_counter()
    ds, table = run_study(study)
    print(f"data: {ds.description}")
    print(f"estimator: {study['estimator'].__name__}  net: {study['net']}  store: {study['store'] or '-'}\n")
    cols = [c for c in table.columns if c not in ("key", "estimator", "warnings", "version", "error")]
    print(table.to_string(columns=cols))
    failed = [r for r in table if r["error"] is not None]
    for r in failed:
        print(f"failed cell {r['key']}: {r['error']}")
    print(f"\n{len(table)} cells, {len(failed)} failed, {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


RESULT_COLUMNS = {"key", "estimator", "model", "kind", "converged", "n_iter", "residual", "action", "alignment",
                  "train_loss", "test_loss", "fit_time", "error", "warnings", "version", "seed", "cka_nngp"}


def _plot(args: argparse.Namespace) -> int:
    import pathlib

    from .studies.plots import _rows, plot_learning_curve

    rows = _rows(args.table)
    if not rows:
        raise ValueError(f"table: {args.table!r} has no rows")
    x = args.x
    if x is None:
        # the one numeric parameter column that varies
        cols = [c for c in rows[0] if c not in RESULT_COLUMNS and not c.startswith(("cka_", "max_dist_"))]
        cand = [c for c in cols if all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                                       for r in rows) and len({r.get(c) for r in rows}) > 1]
        if len(cand) != 1:
            raise ValueError(f"--x: give the column to plot against (numeric columns that vary: {cand or 'none'})")
        x = cand[0]
    fig = plot_learning_curve(rows, x, args.y, by=args.by, logx=args.logx, logy=args.logy, title=args.title)
    out = pathlib.Path(args.out) if args.out else pathlib.Path(str(args.table).rstrip("/")).with_suffix(".png")
    fig.savefig(out, dpi=args.dpi)
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="adaptive-kernels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="lazy kernels vs adaptive theories (compare_theories) on scikit-learn's digits")
    demo.add_argument("--n-train", type=int, default=300)
    demo.add_argument("--n-test", type=int, default=797)
    demo.add_argument("--ridge", type=float, default=1e-2, help="ridge of the lazy predictors = temperature")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--alpha", type=float, default=4.0, help="load P/N of the finite-width theories")
    demo.add_argument("--gamma", type=float, default=1.0, help="richness of the mean-field theory")
    demo.add_argument("--depths", type=int, nargs="+", default=[1, 3])
    demo.add_argument("--activations", nargs="+", default=["linear", "relu", "tanh"],
                      help="relu, erf, linear use closed forms; tanh, gelu, softplus Hermite expansions")
    sw = sub.add_parser("sweep", help="run the sweep a study TOML file describes (resumable through its store)")
    sw.add_argument("study", help="path of the study .toml file")
    pl = sub.add_parser("plot", help="learning curve of a results store (sweep/compare tables) as a PNG")
    pl.add_argument("table", help="a Parquet store directory (sweep's store=) or a Parquet file")
    pl.add_argument("--x", help="column on the x axis (default: the one numeric parameter that varies)")
    pl.add_argument("--y", default="test_loss", help="column on the y axis (default test_loss)")
    pl.add_argument("--by", nargs="+", help="columns that name a curve (default: model, where present)")
    pl.add_argument("--logx", action="store_true")
    pl.add_argument("--logy", action="store_true")
    pl.add_argument("--title")
    pl.add_argument("--dpi", type=int, default=120)
    pl.add_argument("--out", help="output image (default: the table's path with .png)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "plot":
        return _plot(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
