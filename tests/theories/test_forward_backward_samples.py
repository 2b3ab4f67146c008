"""Nonlinear first-order forward-backward kernels against MALA-sampled networks (tiny sizes).

Measured at larger size in ``benches/forward_backward_nonlinear.py`` (table in benches/README.md):
first order tracks the samples at alpha = 0.25 and deviates at alpha >= 1, in a task-dependent
direction (XOR erf: samples ~0.6x the first order; digits 0/3: samples ~1.3-1.5x (erf), 2-3x (linear)).
"""
import warnings

import numpy as np
import pytest

import adaptive_kernels as ak

NET = ak.MLP(depth=2, activation="erf", sigma_w=1.25, sigma_b=np.sqrt(0.1))   # chi_1 = 1.003
T = 0.1


def _proj(D, y):
    Y = np.outer(y, y)
    return float(np.sum(D * Y) / np.sum(Y * Y))


def _compare(X, y, N, seeds=3):
    th = ak.ForwardBackwardKernels(NET, width=N, temperature=T, method="perturbative").fit(X, y)
    g, b = NET.sigma_w ** 2, NET.sigma_b ** 2
    vals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # R-hat warnings at these short runs; the seed spread is the error bar
        for s in range(seeds):
            ps = ak.sample_posterior(NET, X, y, width=N, temperature=T, n_chains=2, n_samples=1000, thin=5,
                                     seed=1 + s, store_weights=False)
            vals.append([_proj(g * k + b - K, y) for k, K in zip(ps.kernels, th.nngp_kernels_)])
    vals = np.array(vals)
    theory = np.array([_proj(C - K, y) for C, K in zip(th.kernels_, th.nngp_kernels_)])
    return theory, vals.mean(axis=0), vals.std(axis=0, ddof=1) / np.sqrt(seeds)


def test_small_alpha_xor_matches_samples():
    """alpha = 0.25, XOR (P = 12, N = 48): the first-order kernel change projected on y y^T is
    within 3 standard errors + 35% of the sampled one, in both layers."""
    ds = ak.datasets.xor(n_train=12, n_test=1, noise=0.2, seed=0)
    theory, mean, se = _compare(ds.X_train, ds.y_train, 48)
    assert np.all(mean > 0) and np.all(theory > 0)
    assert np.all(np.abs(theory - mean) < 3 * se + 0.35 * mean), (theory, mean, se)


@pytest.mark.xfail(reason="measured: at alpha = 2 on digits 0/3 the sampled kernel change is ~1.3-1.4x the "
                          "first-order one (P = 12: layer 1 0.164 vs ~0.227, layer 2 0.229 vs ~0.295); "
                          "higher orders in alpha, not captured by the first-order method", strict=False)
def test_large_alpha_digits_first_order_gap():
    ds = ak.datasets.load_digits(classes=(0, 3), n_train=12, n_test=1, seed=0)
    theory, mean, se = _compare(ds.X_train, ds.y_train, 6)
    assert np.all(np.abs(theory - mean) < 3 * se + 0.15 * mean), (theory, mean, se)
