"""Kernel renormalization (``ak.KernelRenormalization``) vs Langevin (MALA) samples of the finite network.

Problem (standard scaling, as in ``ak.sample_posterior``): digits 3 vs 8 (d = 64, +-1 targets, rows
of norm sqrt(d)), P = 40 training and 20 test points, one hidden layer of width N = P / alpha,
sigma_w = 1.5, sigma_b = 0, temperature T = 0.1; 2 MALA chains. Statistic, per predictor and split:
``z = sqrt(mean(((MALA mean - predictor) / se)^2))`` over the points, ``se`` the per-point Monte-Carlo
standard error of the MALA mean (from the chains' integrated autocorrelation times); z ~ 1 means
agreement within sampling error. The readout scale ``q = |w|^2 / N`` (the sampler's trace) is the
order parameter the theory's Q estimates (its saddle point; NNGP: q = 1).

Measured with benches/kernel_renormalization_vs_langevin.py (2 chains x 4000 kept x thin 10, seed 1;
"effect" = RMS(theory - NNGP) on the training points, se = RMS Monte-Carlo error there):

    net      alpha  N   effect  se      z(theory) train/test  z(NNGP) train/test  q MALA          Q*
    linear   0.5    80  0.015   0.009   0.97 / 0.86           1.77 / 1.10         0.663 +- 0.011  0.668
    linear   1      40  0.034   0.010   1.01 / 1.08           3.99 / 3.32         0.437 +- 0.011  0.431
    linear   2      20  0.068   0.011   1.05 / 1.09           6.96 / 5.32         0.239 +- 0.006  0.224
    erf      0.5    80  0.016   0.006   1.10 / 0.71           3.16 / 0.97         0.782 +- 0.007  0.802
    erf      1      40  0.029   0.006   1.31 / 1.20           4.71 / 1.64         0.654 +- 0.008  0.674
    erf      2      20  0.047   0.006   7.05 / 4.82           2.98 / 5.76         0.539 +- 0.005  0.540

* Linear: the theory agrees within sampling error at every alpha (and equals the exact finite-N
  posterior up to the saddle point's O(1/N) shift of q, exact - Q* = 0.002, 0.008, 0.014 at
  N = 80, 40, 20); the NNGP predictor is several standard errors off from alpha = 1.
* erf: agreement within sampling error at alpha = 0.5 and 1. At alpha = 2 the renormalized
  predictor is off by ~7 standard errors on the training points, more than the theory-NNGP effect
  itself; the Monte-Carlo network fits the training set better (RMS residual 0.096 vs 0.139) and
  generalizes better (test MSE 0.15 vs 0.20) than the theory. This is not the saddle point's 1/N error
  (the Gaussian-equivalent model integrated over q at the actual N gives the same predictor to 1e-3)
  and does not shrink with size at fixed alpha = 2 (RMS train gap 0.043, 0.053, 0.052 at P = 40, 80,
  160): a scalar renormalization misses this adaptation of the hidden features. The readout scale q
  still matches Q* (0.539 vs 0.540). The alpha = 2 predictor check is therefore an expected failure.
"""
import functools
import warnings

import numpy as np
import pytest

import adaptive_kernels as ak

pytestmark = pytest.mark.skipif(not hasattr(ak, "KernelRenormalization"),
                                reason="ak.KernelRenormalization is not in the installed extension (rebuild it)")

P, N_TEST, SIGMA_W, T = 40, 20, 1.5, 0.1
SAMPLES, THIN, SEED = 2500, 10, 1
Z_AGREE = 2.0      # z(theory) below this on train and test points: agreement within sampling error
Z_NNGP = 2.5       # z(NNGP) above this: the lazy predictor is resolved as wrong
Q_FINITE_N = 0.5   # allowed |E[q] - Q*| beyond 4 s.e., times 1/N (linear: exact - Q* measured <= 0.34/N)


def _rms(v):
    return float(np.sqrt(np.mean(np.square(v))))


@functools.lru_cache(maxsize=None)
def compare(activation, alpha, samples=SAMPLES, seed=SEED):
    """Sample the posterior once per (activation, alpha) and return the statistics of the module docstring."""
    X, y, Xt, _ = ak.datasets.load_digits(classes=(3, 8), n_train=P, n_test=N_TEST, seed=0)
    N = int(round(P / alpha))
    net = ak.MLP(depth=1, activation=activation, sigma_w=SIGMA_W, sigma_b=0.0)
    kr = ak.KernelRenormalization(net, width=N, temperature=T).fit(X, y)
    assert kr.converged_
    gp = ak.GaussianProcess(net, ridge=T).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ak.ConvergenceWarning)    # judged below; the s.e. include the mixing time
        s = ak.sample_posterior(net, X, y, Xt, width=N, temperature=T, n_chains=2, n_samples=samples, thin=THIN,
                                step_size=1e-3, seed=seed, store_weights=False)
    assert np.max(s.rhat) < 1.2 and np.min(s.acceptance_rate) > 0.3, (s.rhat, s.acceptance_rate)
    out = dict(N=N, Q=float(kr.Q_[-1]), rhat=float(np.max(s.rhat)))
    for split, mean, se, Xs in (("train", s.train_mean, s.train_mean_se, X), ("test", s.mean, s.mean_se, Xt)):
        theory, nngp = kr.predict(Xs), gp.predict(Xs)
        out[f"{split}_z_theory"] = _rms((mean - theory) / se)
        out[f"{split}_z_nngp"] = _rms((mean - nngp) / se)
        out[f"{split}_effect_over_se"] = _rms(theory - nngp) / _rms(se)
    q = np.concatenate([t[s.trace_names.index("readout_scale")] for t in s.traces])
    out["q"] = float(q.mean())
    out["q_se"] = float(np.std(q) * np.sqrt(s.trace_autocorrelation_time("readout_scale") / q.size))
    return out


def _check_readout_scale(r):
    tol = 4 * r["q_se"] + Q_FINITE_N / r["N"]
    assert abs(r["q"] - r["Q"]) < tol, r
    assert abs(r["q"] - 1.0) > 10 * r["q_se"] + Q_FINITE_N / r["N"], r     # NNGP (q = 1) is far outside


def _check_theory_agrees(r):
    assert r["train_z_theory"] < Z_AGREE and r["test_z_theory"] < Z_AGREE, r


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_linear_network_matches_theory(alpha):
    """Deep-linear BKR is exact in the proportional limit: predictor within sampling error at every alpha."""
    r = compare("linear", alpha)
    _check_theory_agrees(r)
    _check_readout_scale(r)
    if alpha >= 1:
        assert r["train_z_nngp"] > Z_NNGP, r


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_erf_network_matches_theory(alpha):
    r = compare("erf", alpha)
    _check_theory_agrees(r)
    _check_readout_scale(r)
    if alpha >= 1:
        assert r["train_z_nngp"] > Z_NNGP, r


def test_erf_readout_scale_at_alpha_2():
    """Even where the predictor disagrees (next test), the order parameter Q matches the sampled |w|^2/N."""
    _check_readout_scale(compare("erf", 2.0))


@pytest.mark.xfail(strict=True, reason="measured: at alpha = 2 (N = 20) the sampled erf network's posterior mean "
                   "is ~7 s.e. from the renormalized predictor on the training points (not a 1/N effect: "
                   "unchanged at P = 80, 160); see the module docstring")
def test_erf_predictor_at_alpha_2():
    _check_theory_agrees(compare("erf", 2.0))
