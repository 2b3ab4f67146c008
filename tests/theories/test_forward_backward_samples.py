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


def _importance_posterior_kernels(net, X, y, N, R, seed=0, batch=1000):
    """Exact posterior-mean kernels by importance sampling of R prior networks: given C^L the
    output is N(0, C^L), so the weights are N(y; 0, C^L + T I) (no MCMC)."""
    from scipy.special import erf
    rng = np.random.default_rng(seed)
    g, b, (P, d) = net.sigma_w ** 2, net.sigma_b ** 2, X.shape
    logw, Cs = [], [[] for _ in range(net.depth)]
    for _ in range(R // batch):
        h = net.sigma_w * np.einsum("pd,rdn->rpn", X, rng.standard_normal((batch, d, N))) / np.sqrt(d) \
            + net.sigma_b * rng.standard_normal((batch, 1, N))
        for l in range(net.depth):
            f = erf(h)
            Cs[l].append(g * f @ f.transpose(0, 2, 1) / N + b)
            h = net.sigma_w * f @ rng.standard_normal((batch, N, N)) / np.sqrt(N) \
                + net.sigma_b * rng.standard_normal((batch, 1, N))
        L = np.linalg.cholesky(Cs[-1][-1] + T * np.eye(P))
        z = np.linalg.solve(L, np.broadcast_to(y[:, None], (batch, P, 1)))[..., 0]
        logw.append(-0.5 * np.sum(z * z, axis=1) - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1))
    logw = np.concatenate(logw)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    return [np.einsum("r,rij->ij", w, np.concatenate(C)) for C in Cs], 1.0 / np.sum(w * w)


def test_small_alpha_digits_matches_the_exact_posterior_mean():
    """alpha = 0.1 (P = 8, N = 80), digits 0/3: the first-order change of both layers' kernels,
    projected on y y^T, is within 20% of the exact posterior mean (Monte-Carlo error ~5%) (importance sampling of prior
    networks). At larger alpha the gap grows ~linearly (benches/README.md)."""
    ds = ak.datasets.load_digits(classes=(0, 3), n_train=8, n_test=1, seed=0)
    X, y = ds.X_train, ds.y_train
    exact, ess = _importance_posterior_kernels(NET, X, y, 80, 10000)
    assert ess > 5000
    th = ak.ForwardBackwardKernels(NET, width=80, temperature=T, method="perturbative").fit(X, y)
    for C, E, K in zip(th.kernels_, exact, th.nngp_kernels_):
        assert abs(_proj(C - K, y) - _proj(E - K, y)) < 0.2 * abs(_proj(E - K, y)), (_proj(C - K, y), _proj(E - K, y))
