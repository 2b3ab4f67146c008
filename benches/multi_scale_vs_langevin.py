"""The kernel-renormalization xfail case (erf, one hidden layer, digits 3 vs 8, P = 40, T = 0.1,
sigma_w = 1.5, 2 MALA chains x 2500 kept x thin 10, seed 1; as tests/theories/test_kernel_renormalization_langevin.py):
z = RMS((MALA mean - predictor) / se) of the NNGP, kernel renormalization (rescaling) and the
multi-scale tree level at chi = 1 (sampled tilted measure, 16 chains x 8000 draws), and the
first-layer weight-covariance spike. ~40-60 s per alpha on 2 cores.

    python benches/multi_scale_vs_langevin.py 0.5 1 2
"""
import warnings, time, sys
import numpy as np, adaptive_kernels as ak
P, NT, SW, T = 40, 20, 1.5, 0.1
X, y, Xt, _ = ak.datasets.load_digits(classes=(3, 8), n_train=P, n_test=NT, seed=0)
rms = lambda v: float(np.sqrt(np.mean(np.square(v))))
for alpha in [float(a) for a in sys.argv[1:]]:
    t0 = time.time()
    N = int(round(P / alpha))
    net = ak.MLP(depth=1, activation="erf", sigma_w=SW)
    kr = ak.KernelRenormalization(net, width=N, temperature=T).fit(X, y)
    gp = ak.GaussianProcess(net, ridge=T).fit(X, y)
    ms = ak.MultiScaleAdaptive(net, width=N, temperature=T, chi=1.0, order="tree",
                               sampler_options=dict(n_samples=8000)).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = ak.sample_posterior(net, X, y, Xt, width=N, temperature=T, n_chains=2, n_samples=2500, thin=10,
                                step_size=1e-3, seed=1, store_weights=True)
    row = [f"alpha={alpha} N={N}"]
    for split, mean, se, Xs in (("train", s.train_mean, s.train_mean_se, X), ("test", s.mean, s.mean_se, Xt)):
        for name, pred in (("NNGP", gp.predict(Xs)), ("rescaling", kr.predict(Xs)), ("multiscale-tree", ms.predict(Xs))):
            row.append(f"{split} z({name})={rms((mean - pred) / se):.2f}")
    row.append(f"spike MALA {s.input_spectrum[0]:.3f} tree {ms.weight_eigenvalues_[0]:.3f}; {time.time()-t0:.0f}s")
    print("; ".join(row), flush=True)
