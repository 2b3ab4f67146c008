"""ForwardBackwardKernels (deep linear nets): the measurements quoted in benches/README.md.

    python benches/forward_backward_checks.py [exact|samples|timing|predict_nonlinear]

* exact: one hidden layer (exact posterior known), P = 40, d = 80, T = 0.05, sign-linear
  teacher: |shift of the GP on the MAP kernel from the NNGP predictor| / |exact shift|, and the
  same for KernelRenormalization, at alpha in {0.1, 0.5, 1}.
* samples: L = 2, P = 20, d = 30, T = 0.05: per-layer CKA with y y^T and the projection of
  C^l - K^l on y y^T, NNGP / full MAP / first order / MALA posterior mean (4 chains x 4000
  samples, thin 5), alpha in {0.25, 1, 2}.
* timing: core fit (L = 3) at P in {8, 100, 300} and the NumPy reference at P = 8; the dense
  core on MNIST 0 vs 3 at P = 500 (no structured solver: benches/README.md, issue #18).
* predict_nonlinear: XOR, erf, L = 2, P = 12: GP on the full MAP kernel and first order vs
  MALA-sampled networks' mean predictor (3 seeds x 2 chains x 1000), alpha in {0.25, 1, 2}.
"""
import sys
import time
import warnings

import numpy as np

import adaptive_kernels as ak
from adaptive_kernels.reference.theories import forward_backward as ref

warnings.simplefilter("ignore")


def exact():
    rng = np.random.default_rng(0)
    P, d, T = 40, 80, 0.05
    X = rng.standard_normal((P, d))
    y = np.sign(X @ rng.standard_normal(d))
    net = ak.MLP(depth=1, activation="linear")
    g = ak.GaussianProcess(net, ridge=T).fit(X, y).predict(X)
    print("alpha  MAP-GP/exact  first-order/exact  KR/exact  cos(MAP, exact)")
    for alpha in (0.1, 0.5, 1.0):
        N = P / alpha
        ex = ak.exact_linear_posterior(net, X, y, width=int(round(N)), temperature=T).train_mean - g
        fb = ak.ForwardBackwardKernels(net, width=N, temperature=T).fit(X, y).predict(X) - g
        pt = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="perturbative").fit(X, y).predict(X) - g
        kr = ak.KernelRenormalization(net, width=N, temperature=T).fit(X, y).predict(X) - g
        n = np.linalg.norm
        print(f"{alpha:5}  {n(fb) / n(ex):12.3f}  {n(pt) / n(ex):17.3f}  {n(kr) / n(ex):8.3f}  {fb @ ex / n(fb) / n(ex):.5f}")


def samples():
    rng = np.random.default_rng(0)
    P, d, T = 20, 30, 0.05
    X = rng.standard_normal((P, d))
    y = np.sign(X @ rng.standard_normal(d))
    Y = np.outer(y, y)
    net = ak.MLP(depth=2, activation="linear")
    proj = lambda D: float(np.sum(D * Y) / np.sum(Y * Y))
    for alpha in (0.25, 1.0, 2.0):
        N = int(P / alpha)
        s = ak.sample_posterior(net, X, y, width=N, temperature=T, n_chains=4, n_samples=4000, thin=5, seed=1)
        fb = ak.ForwardBackwardKernels(net, width=N, temperature=T).fit(X, y)
        pt = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="perturbative").fit(X, y)
        for l in range(2):
            K = fb.nngp_kernels_[l]
            print(f"alpha {alpha} layer {l + 1}: CKA nngp {fb.nngp_alignment_[l]:.3f} MAP {fb.alignment_[l]:.3f} "
                  f"first-order {pt.alignment_[l]:.3f} samples {ak.cka(s.kernels[l], Y):.3f} | proj(C-K) "
                  f"MAP {proj(fb.kernels_[l] - K):.4f} first-order {proj(pt.kernels_[l] - K):.4f} "
                  f"samples {proj(s.kernels[l] - K):.4f} (R-hat max {np.nanmax(s.rhat):.3f})")


def timing():
    rng = np.random.default_rng(0)
    net = ak.MLP(depth=3, activation="linear", sigma_b=0.1)
    for P in (8, 100, 300):
        X = rng.standard_normal((P, 2 * P))
        y = np.sign(X @ rng.standard_normal(2 * P))
        t = time.perf_counter()
        m = ak.ForwardBackwardKernels(net, width=P, temperature=0.05, n_threads=1).fit(X, y)
        tc = time.perf_counter() - t
        line = f"P={P}: core {tc:.3f} s ({m.report_.n_eval} residuals, {len(m.report_.stages)} stages)"
        if P <= 8:
            t = time.perf_counter()
            ref.solve(ref.input_kernel(X, 1.0, 0.1), y, 3, 1.0, 0.01, 0.05, P)
            tr = time.perf_counter() - t
            line += f", reference {tr:.3f} s, ratio {tr / tc:.0f}x"
        print(line)
    # MNIST 0 vs 3 (bundled 5k subset), L = 3: the dense core at P = 500; P = 2000 is not run
    # (~64x the work of P = 500 by O(P^3) residuals, Krylov memory 40 x 3 x 2000^2 / 2 doubles)
    ds = ak.datasets.load_mnist5k(classes=(0, 3), n_train=500, seed=0)
    t = time.perf_counter()
    m = ak.ForwardBackwardKernels(net, width=500, temperature=0.05, n_threads=1).fit(ds.X_train, ds.y_train)
    print(f"MNIST P=500: dense core {time.perf_counter() - t:.1f} s ({m.report_.n_eval} residuals, "
          f"{len(m.report_.stages)} stages, converged {m.converged_})")


def predict_nonlinear():
    """GP on the MAP kernel of a full nonlinear fit vs MALA-sampled networks' mean predictor
    (XOR, erf at the edge of chaos, L = 2, P = 12, T = 0.1): shifts from the NNGP predictor."""
    import warnings
    ds = ak.datasets.xor(n_train=12, n_test=40, noise=0.2, seed=0)
    X, y, Xt = ds.X_train, ds.y_train, ds.X_test
    net = ak.MLP(depth=2, activation="erf", sigma_w=1.25, sigma_b=np.sqrt(0.1))
    T = 0.1
    nngp = ak.GaussianProcess(net, ridge=T).fit(X, y).predict(Xt)
    for N in (48, 12, 6):
        full = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="full", n_samples=8000).fit(X, y)
        pert = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="perturbative").fit(X, y)
        means = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for s in range(3):
                ps = ak.sample_posterior(net, X, y, Xt, width=N, temperature=T, n_chains=2, n_samples=1000,
                                         thin=5, seed=1 + s, store_weights=False)
                means.append(ps.mean)
        ms = np.mean(means, axis=0)
        se = np.linalg.norm(np.std(means, axis=0, ddof=1)) / np.sqrt(3)
        d_s = ms - nngp
        line = f"alpha={12 / N:g}: |MALA - NNGP| {np.linalg.norm(d_s):.4f} (s.e. {se:.4f})"
        for name, m in (("full MAP", full), ("first order", pert)):
            d = m.predict(Xt) - nngp
            cos = d @ d_s / (np.linalg.norm(d) * np.linalg.norm(d_s))
            line += f"; {name}: |shift| {np.linalg.norm(d):.4f}, cos {cos:.2f}, |pred - MALA| {np.linalg.norm(d - d_s):.4f}"
        print(line)


if __name__ == "__main__":
    for name in sys.argv[1:] or ["exact", "samples", "timing"]:
        {"exact": exact, "samples": samples, "timing": timing, "predict_nonlinear": predict_nonlinear}[name]()
