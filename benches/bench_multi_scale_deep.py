"""MultiScaleAdaptive for deep linear networks (depth 2) against MALA samples of the finite network
and the exact posterior (a quadrature over the kernel scale, ``reference.exact_deep_linear``).

    python benches/bench_multi_scale_deep.py [--widths 40 80] [--seeds 3] [--n-samples 2000]

Set-up: P = 20, d = 30, sigma_w = 1, T = 0.1, Gaussian inputs, sign-of-linear-teacher labels,
5 Gaussian test points; chi in {1, 10, N}. MALA: ``ak.sample_posterior(parameterization="standard",
chi=chi)``, 4 chains x n_samples kept x thin 10 per seed, independent seeds; the MALA mean is the
average over seeds, its standard error the runs' own (ESS-based) ``mean_se`` pooled over seeds.
Columns: relative L2 error of the training-point mean against the exact posterior (NNGP, tree,
corrected, MALA), z = RMS over the 20 training and 5 test points of (exact - MALA) / s.e. and of
(corrected - MALA) / s.e. (about 1 when MALA agrees within its noise), the kernel scale U (exact E[U], corrected,
tree), the readout scale E|v|^2 / N (MALA, vs the layer scale Q), and the top eigenvalue of the
first-layer weight covariance E[W0^T W0] / N (exact, corrected, tree, MALA).
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import adaptive_kernels as ak
from adaptive_kernels.reference.theories import multi_scale as ref

P, D, T, DEPTH = 20, 30, 0.1, 2


def main(widths, seeds, n_samples):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((P, D))
    y = np.sign(X @ rng.standard_normal(D))
    Xt = rng.standard_normal((5, D))
    net = ak.MLP(depth=DEPTH, activation="linear")
    gp = ak.GaussianProcess(net, ridge=T).fit(X, y).predict(X)
    err = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)
    print("| N | chi | err NNGP | err tree | err corrected | err MALA | z exact | z corrected | E[U] exact | U corr | U tree "
          "| E|v|^2/N MALA | Q corr | top W0 exact | corr | tree | MALA | MALA s |")
    print("|" + "---|" * 18)
    for N in widths:
        for chi in (1.0, 10.0, float(N)):
            XX = np.vstack([X, Xt])
            ex = ref.exact_deep_linear(X, y, XX, sigma_w=1.0, depth=DEPTH, width=N, temperature=T, chi=chi)
            c = ak.MultiScaleAdaptive(net, width=N, temperature=T, chi=chi, order="corrected").fit(X, y)
            t = ak.MultiScaleAdaptive(net, width=N, temperature=T, chi=chi, order="tree").fit(X, y)
            t0 = time.perf_counter()
            runs = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for s in range(seeds):
                    runs.append(ak.sample_posterior(net, X, y, XX, width=N, temperature=T, chi=chi,
                                                    n_chains=4, n_samples=n_samples, thin=10, seed=s))
            ts = time.perf_counter() - t0
            mm = np.mean([np.ravel(r.mean) for r in runs], 0)
            se = np.sqrt(np.sum([np.ravel(r.mean_se) ** 2 for r in runs], 0)) / seeds
            z = lambda f: np.sqrt(np.mean(((f - mm) / se) ** 2))
            ext, ct, tt, mt = ex["mean"][:P], c.predict(X), t.predict(X), mm[:P]
            vv = np.mean([np.mean(r.readout_spectrum) for r in runs])
            top = np.mean([r.input_spectrum[0] for r in runs])
            wex = np.linalg.eigvalsh(ex["weight_covariance"])[-1]
            print(f"| {N} | {chi:g} | {err(gp, ext):.2e} | {err(tt, ext):.2e} "
                  f"| {err(ct, ext):.2e} | {err(mt, ext):.2e} | {z(ex['mean']):.2f} | {z(c.predict(XX)):.2f} | {ex['scale']:.4f} "
                  f"| {c.scale_:.4f} | {t.scale_:.4f} | {vv:.4f} | {c.layer_scale_:.4f} | {wex:.4f} "
                  f"| {c.weight_eigenvalues_[0]:.4f} | {t.weight_eigenvalues_[0]:.4f} | {top:.4f} | {ts:.0f} |",
                  flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=int, nargs="+", default=[40, 80])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-samples", type=int, default=2000)
    a = ap.parse_args()
    main(a.widths, a.seeds, a.n_samples)
