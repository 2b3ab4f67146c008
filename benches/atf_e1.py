"""Experiment E1 of LeJeune & Alemohammad (CPAL 2024; digest
``shared/theory/lejeune_alemohammad_adaptive_tangent_features.md`` §6 E1): how well the
path-averaged tangent kernel of a trained network aligns with the kernel of its output change,
for a target that the tangent features represent well (smooth teacher output) and one they
represent poorly (its sign). The authors report sim(Kbar, K_yhat) = 0.17 (smooth) and 0.40 (sign).

Setup (differences from the authors in brackets):

* data: MNIST digits 2 and 3 from ``ak.load_mnist5k(classes=(2, 3), standardize=False)``, every
  image centred and scaled to unit l2 norm, as the authors do [the bundled subset holds only 500
  images per digit, so n_train <= 1000 instead of 5000];
* teacher: random relu net 784-256-256 (no bias, He-normal) with a linear readout fitted to the
  +-1 labels (3 -> +1, 2 -> -1) [least squares with a tiny ridge instead of 400 epochs of SGD on
  the MSE, which converges to the same fit]; smooth target y = teacher output, sign target sign(y);
* student: 784-256-256-1 relu MLP with biases, ``ak.MLP(depth=2, relu, sigma_w=sqrt(2),
  sigma_b)``, trained by ``ak.train_gd`` [full-batch gradient descent on 1/2 sum (f - y)^2, no
  momentum, fixed lr = lr_scale / lambda_max(K0), a fixed step budget, instead of SGD(lr 0.1,
  momentum 0.9, batch 100, cosine schedule, 500 epochs); the library's parameterization puts
  the scale sigma_w / sqrt(fan_in) outside N(0, 1) weights (NTK-style), so at initialization the
  network function equals He-normal's but the tangent kernel weighs the layers differently than
  PyTorch's];
* kernels on the first ``n_kernel`` training points: K0 = J(theta_0) J(theta_0)^T, K_T at the
  trained parameters, Kbar = ``ak.path_averaged_kernel`` over ``n_path`` points (authors: 50),
  K_yhat = df df^T with df = f(theta_T) - f(theta_0); sim = uncentred cosine
  (``ak.kernel_alignment(K, df)``), plus CKA and ``ak.kernel_decomposition(Kbar, K0, df)``.

    OPENBLAS_NUM_THREADS=2 nice -n 10 python benches/atf_e1.py            # default sizes
    python benches/atf_e1.py --n-train 300 --n-kernel 100 --width 64 --steps 200   # smoke

Writes ``benches/results/atf_e1.json``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time
import warnings

import numpy as np

import adaptive_kernels as ak

AUTHORS = {"smooth": 0.17, "sign": 0.40}


def load(n_train):
    ds = ak.datasets.load_mnist5k(classes=(2, 3), standardize=False, seed=0)   # all images of 2 and 3
    X = np.concatenate([ds.X_train, ds.X_test])[:n_train]
    X = X - X.mean(axis=1, keepdims=True)                     # per image: centre, unit norm
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    labels = -np.concatenate([ds.y_train, ds.y_test])[:n_train].astype(float)  # ours: +1 for 2; authors: 3 -> +1
    return X, labels


def teacher(X, labels, width, seed):
    rng = np.random.default_rng(seed)
    h = X
    for fan_out in (width, width):
        W = rng.standard_normal((h.shape[1], fan_out)) * np.sqrt(2.0 / h.shape[1])
        h = np.maximum(h @ W, 0.0)
    ridge = 1e-8 * np.trace(h.T @ h) / h.shape[1]
    w = np.linalg.solve(h.T @ h + ridge * np.eye(h.shape[1]), h.T @ labels)
    return h @ w


def run_target(name, X, y, y_smooth, args, net, kw):
    out = {"target": name}
    theta0 = ak.init_params(net, width=args.width, n_features=X.shape[1], seed=args.seed)
    t = time.perf_counter()
    tf0 = ak.tangent_features(net, theta0, X, **kw)
    lam_max = float(np.linalg.eigvalsh(tf0.kernel())[-1])
    lr = args.lr_scale / lam_max
    out.update(lambda_max_K0_train=lam_max, lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a fixed step budget: GD does not reach tol
        tr = ak.train_gd(net, X, y, width=args.width, lr=lr, steps=args.steps, tol=1e-10,
                         record_every=max(1, args.steps // 20), seed=args.seed, progress=False)
    out["train_s"] = time.perf_counter() - t
    thetaT = tr.theta[0]
    assert np.allclose(thetaT.shape, theta0.shape)
    fT = tr.train_output[0]
    curve = tr.loss_curves[0]
    out.update(steps=int(tr.n_steps[0]), train_mse=float(np.mean((fT - y) ** 2)),
               train_mse_init=float(np.mean((tf0.f0[:, 0] - y) ** 2)),
               sign_agreement=float(np.mean(np.sign(fT) == np.sign(y))),
               loss_curve=[[float(a), float(b)] for a, b in curve[:, :2]],
               rel_param_change=float(np.linalg.norm(thetaT - theta0) / np.linalg.norm(theta0)))
    m = args.n_kernel
    Xk = X[:m]
    t = time.perf_counter()
    tfk0 = ak.tangent_features(net, theta0, Xk, **kw)
    tfkT = ak.tangent_features(net, thetaT, Xk, **kw)
    K0, KT = tfk0.kernel(), tfkT.kernel()
    Kbar = ak.path_averaged_kernel(net, theta0, thetaT, Xk, n_points=args.n_path, **kw)
    out["kernels_s"] = time.perf_counter() - t
    df = tfkT.f0[:, 0] - tfk0.f0[:, 0]
    yk = y[:m]
    res = yk - tfk0.f0[:, 0]
    for kname, K in (("K0", K0), ("Kbar", Kbar), ("KT", KT)):
        out[f"sim_{kname}_df"] = ak.kernel_alignment(K, df)      # the authors' number
        out[f"sim_{kname}_target"] = ak.kernel_alignment(K, yk)
        out[f"sim_{kname}_residual"] = ak.kernel_alignment(K, res)
        out[f"cka_{kname}_df"] = ak.cka(K, np.outer(df, df))
    dec = ak.kernel_decomposition(Kbar, K0, df)
    out.update(decomp_c0=dec.c0, decomp_c1=dec.c1, decomp_rest_fraction=dec.rest_fraction)
    # linearity check of the path average: f(theta_T) - f(theta_0) = Jbar (theta_T - theta_0)
    ts = np.linspace(0.0, 1.0, args.n_path)
    jv = np.mean([ak.tangent_features(net, (1 - s) * theta0 + s * thetaT, Xk, **kw).jvp(thetaT - theta0)
                  for s in ts], axis=0)
    out["path_linearity_rel_err"] = float(np.linalg.norm(jv - df) / np.linalg.norm(df))
    # the authors' diag Kbar vs |y| observation (mnist_reg.pdf): diagonal near the boundary vs away
    d = np.diag(Kbar)
    near, far = np.abs(y_smooth[:m]) < 0.25, np.abs(y_smooth[:m]) > 0.5   # teacher output: distance to the boundary
    out.update(diag_Kbar_near_boundary=float(d[near].mean()) if near.any() else None,
               diag_Kbar_far=float(d[far].mean()) if far.any() else None,
               diag_K0_mean=float(np.diag(K0).mean()), n_near=int(near.sum()), n_far=int(far.sum()))
    out["authors_sim_Kbar_df"] = AUTHORS[name]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-kernel", type=int, default=500)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr-scale", type=float, default=1.0)
    p.add_argument("--n-path", type=int, default=50)
    p.add_argument("--sigma-b", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--targets", default="smooth,sign")
    p.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "atf_e1.json"))
    args = p.parse_args()
    X, labels = load(args.n_train)
    yt = teacher(X, labels, args.width, seed=1000 + args.seed)
    targets = {"smooth": yt, "sign": np.sign(yt)}
    net = ak.MLP(depth=2, activation="relu", sigma_w=np.sqrt(2.0), sigma_b=args.sigma_b)
    kw = dict(width=args.width)
    result = {"args": vars(args), "n_train": int(X.shape[0]),
              "teacher_sign_accuracy": float(np.mean(np.sign(yt) == labels)),
              "teacher_output_std": float(yt.std()), "runs": []}
    for name in args.targets.split(","):
        r = run_target(name, X, targets[name], yt, args, net, kw)
        result["runs"].append(r)
        print(f"[{name}] steps={r['steps']} train_mse={r['train_mse']:.4f} (init {r['train_mse_init']:.3f}) "
              f"|dtheta|/|theta0|={r['rel_param_change']:.3f}  sim(Kbar,dfdf^T)={r['sim_Kbar_df']:.3f} "
              f"(authors {AUTHORS[name]:.2f})  sim(K0,.)={r['sim_K0_df']:.3f} sim(KT,.)={r['sim_KT_df']:.3f}  "
              f"decomp c0={r['decomp_c0']:.3g} c1={r['decomp_c1']:.3g} rest={r['decomp_rest_fraction']:.3f}  "
              f"lin.err={r['path_linearity_rel_err']:.2e}  train {r['train_s']:.0f}s kernels {r['kernels_s']:.0f}s",
              flush=True)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
