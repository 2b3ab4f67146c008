"""Full (non-perturbative) forward-backward MAP kernels of nonlinear nets (``method="full"``).

The Rust unit tests (``theories/forward_backward/tests_full.rs``) check the identity activation
through this code path against the linear closed form, ``N -> inf`` = NNGP, and that the full
solution minus the first-order one scales as ``1/N^2``. Here: one map evaluation against the
NumPy reference (hypothesis), the estimator's contract for nonlinear nets, and the comparison
with MALA-sampled networks at a tiny size (the measurement at P = 20 is in benches/README.md).
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.special import erf

import adaptive_kernels as ak
from adaptive_kernels import _core
from adaptive_kernels.reference.theories import forward_backward as ref

PHI = {"erf": (erf, lambda h: 2 / np.sqrt(np.pi) * np.exp(-h * h)),
       "tanh": (np.tanh, lambda h: 1 - np.tanh(h) ** 2)}


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), act=st.sampled_from(["erf", "tanh"]), depth=st.integers(1, 2),
       P=st.integers(2, 4), width=st.floats(2.0, 50.0), T=st.floats(0.05, 1.0))
def test_sampled_map_matches_reference(seed, act, depth, P, width, T):
    rng = np.random.default_rng(seed)
    d = P + 2
    X = rng.standard_normal((P, d))
    y = rng.choice([-1.0, 1.0], size=(P, 1))
    net = ak.MLP(depth=depth, activation=act, sigma_w=1.2, sigma_b=0.3)
    g, b = net.sigma_w ** 2, net.sigma_b ** 2
    phi, dphi = PHI[act]
    K0 = ref.input_kernel(X, net.sigma_w, net.sigma_b)
    Ks, C = [], K0
    for _ in range(depth):
        C = ref.nl_layer_map(C, phi, g, b)
        A = rng.standard_normal((P, P)) * 0.02
        Ks.append(C + A @ A.T)          # a PD iterate near the NNGP
    S = 300
    zs = [rng.standard_normal((S, P)) for _ in range(depth)]
    e_refs = [0.1 * rng.standard_normal(S) for _ in range(depth)]
    out = _core._testing.fb_sampled_map(X, y, net, Ks, zs, [list(e) for e in e_refs], width=width, temperature=T)
    F, Ct, kish = ref.nl_sampled_map(K0, y, Ks, zs, e_refs, phi, dphi, g, b, T, width)
    for l in range(depth):
        np.testing.assert_allclose(out["forward"][l], F[l], atol=1e-7, rtol=1e-6)
        np.testing.assert_allclose(out["conjugates"][l], Ct[l], atol=1e-7 * np.abs(Ct[l]).max(), rtol=1e-5)
    np.testing.assert_allclose(out["kish"], kish, rtol=1e-10)


def _xor(P=8):
    ds = ak.datasets.xor(n_train=P, n_test=2, noise=0.2, seed=0)
    return ds.X_train, ds.y_train, ds.X_test


def test_full_nonlinear_fit_contract():
    """Converges with a finite reported residual; width = inf is the NNGP; at large width the
    full and first-order kernels agree to O(1/N^2); predict gives finite values."""
    X, y, Xt = _xor()
    net = ak.MLP(depth=2, activation="tanh", sigma_w=1.4, sigma_b=0.3)
    m = ak.ForwardBackwardKernels(net, width=8, temperature=0.1, method="full", n_samples=4000).fit(X, y)
    assert m.converged_ and np.isfinite(m.residual_) and m.residual_ < 1e-8
    assert m.report_.solver == "newton_krylov_sampled"
    assert m.kish_.shape == (2,) and np.all(m.kish_ >= 0.5) and m.n_draws_ >= 1
    assert np.all(m.alignment_ > m.nngp_alignment_)
    mean, std = m.predict(Xt, return_std=True)
    assert mean.shape == (len(Xt),) and np.all(np.isfinite(mean)) and np.all(std >= 0)
    inf = ak.ForwardBackwardKernels(net, width=np.inf, temperature=0.1, method="full").fit(X, y)
    for C, K in zip(inf.kernels_, inf.nngp_kernels_):
        np.testing.assert_allclose(C, K, atol=1e-10)
    # full-rank K^0 (d > P): the first draw shares the first order's normals, so the two agree to
    # first order on the samples (XOR's K^0 has rank 3 and its samples live on the support)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 10))
    y = np.sign(X[:, 0] * X[:, 1])
    N = 2000
    full = ak.ForwardBackwardKernels(net, width=N, temperature=0.1, method="full", n_samples=4000).fit(X, y)
    pert = ak.ForwardBackwardKernels(net, width=N, temperature=0.1, method="perturbative", n_samples=4000).fit(X, y)
    for C, Cp, K in zip(full.kernels_, pert.kernels_, full.nngp_kernels_):
        assert np.abs(C - Cp).max() < 0.02 * np.abs(C - K).max()


def test_full_refuses_callables_and_bad_min_kish():
    X, y, _ = _xor()
    net = ak.MLP(depth=1, activation=np.tanh, sigma_w=1.0)
    with pytest.raises(ValueError, match="activation"):
        ak.ForwardBackwardKernels(net, width=8, temperature=0.1, method="full").fit(X, y)
    with pytest.raises(ValueError, match="min_kish"):
        ak.ForwardBackwardKernels(ak.MLP(depth=1, activation="erf"), width=8, temperature=0.1, min_kish=2.0).fit(X, y)


def _proj(D, y):
    Y = np.outer(y, y)
    return float(np.sum(D * Y) / np.sum(Y * Y))


def _full_vs_samples(X, y, N, T=0.1, seeds=3):
    net = ak.MLP(depth=2, activation="erf", sigma_w=1.25, sigma_b=np.sqrt(0.1))   # chi_1 = 1.003
    full = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="full", n_samples=8000).fit(X, y)
    pert = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="perturbative").fit(X, y)
    assert full.converged_
    g, b = net.sigma_w ** 2, net.sigma_b ** 2
    vals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # R-hat warnings at these short runs; the seed spread is the error bar
        for s in range(seeds):
            ps = ak.sample_posterior(net, X, y, width=N, temperature=T, n_chains=2, n_samples=1000, thin=5,
                                     seed=1 + s, store_weights=False)
            vals.append([_proj(g * k + b - K, y) for k, K in zip(ps.kernels, full.nngp_kernels_)])
    vals = np.array(vals)
    mean, se = vals.mean(axis=0), vals.std(axis=0, ddof=1) / np.sqrt(seeds)
    th = [np.array([_proj(C - K, y) for C, K in zip(m.kernels_, m.nngp_kernels_)]) for m in (full, pert)]
    return th[0], th[1], mean, se


def test_full_closes_the_first_order_gap_on_xor():
    """XOR, alpha = 2 (P = 12, N = 6), erf at the edge of chaos: first order overshoots the
    sampled kernel change (by ~1.8x at P = 20, benches/README.md); the full MAP solution is
    within 3 standard errors + 20% of MALA in both layers, and closer than first order."""
    ds = ak.datasets.xor(n_train=12, n_test=1, noise=0.2, seed=0)
    full, pert, mean, se = _full_vs_samples(ds.X_train, ds.y_train, 6)
    assert np.all(np.abs(full - mean) < 3 * se + 0.2 * mean), (full, pert, mean, se)
    assert np.all(np.abs(full - mean) < np.abs(pert - mean)), (full, pert, mean, se)


@pytest.mark.xfail(reason="measured (P = 20, benches/README.md): on digits 0/3 at alpha = 2 the MAP kernel change "
                          "is below the sampled posterior-mean change (erf layer 2: full 0.129, first order 0.145, "
                          "MALA 0.215; the linear closed form shows the same, 0.065 vs 0.233): the posterior mean "
                          "of the kernels is not their mode in standard scaling", strict=False)
def test_full_vs_samples_digits_gap():
    ds = ak.datasets.load_digits(classes=(0, 3), n_train=12, n_test=1, seed=0)
    full, pert, mean, se = _full_vs_samples(ds.X_train, ds.y_train, 6)
    assert np.all(np.abs(full - mean) < 3 * se + 0.2 * mean), (full, pert, mean, se)
