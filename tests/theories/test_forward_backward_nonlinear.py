"""Forward-backward kernels of nonlinear nets, first order in 1/N (method="perturbative")."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.special import erf

import adaptive_kernels as ak
from adaptive_kernels.reference.theories import forward_backward as ref

PHI = {"erf": erf, "tanh": np.tanh}


def _data(P=6, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    y = np.sign(X[:, 0] * X[:, 1])
    return X, y


@settings(max_examples=6, deadline=None)
@given(act=st.sampled_from(["erf", "tanh"]), depth=st.integers(1, 2), sw=st.floats(0.8, 1.6),
       sb=st.floats(0.0, 0.5), seed=st.integers(0, 100))
def test_agrees_with_reference(act, depth, sw, sb, seed):
    """Core vs NumPy reference: conjugates (deterministic; the reference differentiates the NNGP
    map numerically) tightly, kernel shifts within the Monte-Carlo error of both."""
    X, y = _data(4, 3, seed)
    y = y - y.mean() + 0.5 * X[:, 2]
    N, T = 20.0, 0.1
    net = ak.MLP(depth=depth, activation=act, sigma_w=sw, sigma_b=sb)
    m = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="perturbative", n_samples=100_000).fit(X, y)
    K0 = ref.input_kernel(X, sw, sb)
    Cs, Ct = ref.nl_perturbative(K0, y, depth, PHI[act], sw ** 2, sb ** 2, T, N, n_samples=100_000, seed=seed)
    Kr = K0
    for l in range(depth):
        np.testing.assert_allclose(m.conjugates_[l], Ct[l], atol=1e-4 * np.abs(Ct[l]).max())
        K = m.nngp_kernels_[l]
        Kr = ref.nl_layer_map(Kr, PHI[act], sw ** 2, sb ** 2)
        np.testing.assert_allclose(K, Kr, atol=1e-4 * np.abs(K).max())
        d_core, d_ref = m.kernels_[l] - K, Cs[l] - K
        assert np.abs(d_core - d_ref).max() < 0.1 * np.abs(d_ref).max() + 1e-4 * np.abs(K).max()


def test_identity_callable_equals_the_linear_closed_form():
    """A linear activation given as a callable goes through the nonlinear code path: it must
    reproduce the deep linear first-order kernels (within the Monte-Carlo error of V)."""
    X, y = _data(6, 4, 1)
    kw = dict(width=30.0, temperature=0.2, method="perturbative")
    lin = ak.ForwardBackwardKernels(ak.MLP(depth=2, activation="linear", sigma_w=1.1, sigma_b=0.2), **kw).fit(X, y)
    cal = ak.ForwardBackwardKernels(ak.MLP(depth=2, activation=lambda x: x, sigma_w=1.1, sigma_b=0.2),
                                    n_samples=100_000, **kw).fit(X, y)
    for l in range(2):
        np.testing.assert_allclose(cal.conjugates_[l], lin.conjugates_[l], rtol=1e-5, atol=1e-9)
        K = lin.nngp_kernels_[l]
        d_lin, d_cal = lin.kernels_[l] - K, cal.kernels_[l] - K
        assert np.abs(d_cal - d_lin).max() < 0.03 * np.abs(d_lin).max()


def test_infinite_width_is_nngp_and_shift_scales_as_one_over_n():
    X, y = _data(6, 3, 2)
    net = ak.MLP(depth=2, activation="erf", sigma_w=1.4, sigma_b=0.3)
    inf = ak.ForwardBackwardKernels(net, width=np.inf, temperature=0.1, method="perturbative").fit(X, y)
    for C, K in zip(inf.kernels_, inf.nngp_kernels_):
        np.testing.assert_allclose(C, K, rtol=1e-10, atol=1e-12)
    a = ak.ForwardBackwardKernels(net, width=10.0, temperature=0.1, method="perturbative", n_samples=2000).fit(X, y)
    b = ak.ForwardBackwardKernels(net, width=40.0, temperature=0.1, method="perturbative", n_samples=2000).fit(X, y)
    for Ca, Cb, K in zip(a.kernels_, b.kernels_, a.nngp_kernels_):
        np.testing.assert_allclose(Ca - K, 4 * (Cb - K), atol=1e-10)


def test_erf_one_layer_shift_against_a_direct_monte_carlo_of_the_prior_covariance():
    """Independent check, one hidden layer: dC = Cov_prior(C^1)[(z z^T - G^{-1}) / 2] with the
    prior kernel covariance estimated from an independent simulation of width-N layers
    (C^1 = (g/N) sum_i phi(h_i) phi(h_i)^T + b, h_i ~ N(0, K^0))."""
    X, y = _data(5, 3, 3)
    g, b, N, T = 1.5 ** 2, 0.1, 50, 0.1
    net = ak.MLP(depth=1, activation="erf", sigma_w=1.5, sigma_b=np.sqrt(b))
    m = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="perturbative", n_samples=100_000).fit(X, y)
    K0 = ref.input_kernel(X, 1.5, np.sqrt(b))
    K1 = m.nngp_kernels_[0]
    G = np.linalg.inv(K1 + T * np.eye(5))
    z = G @ y
    grad = 0.5 * (np.outer(z, z) - G)
    rng = np.random.default_rng(7)
    L = np.linalg.cholesky(K0 + 1e-12 * np.eye(5))
    R = 4000
    h = rng.standard_normal((R, N, 5)) @ L.T
    f = erf(h)
    C1 = g / N * np.einsum("rni,rnj->rij", f, f) + b
    dev = C1 - C1.mean(axis=0)
    shift = np.einsum("rij,rkl,kl->ij", dev, dev, grad) / R
    assert np.abs(m.kernels_[0] - K1 - shift).max() < 0.1 * np.abs(shift).max()


def test_prediction_train_block_and_bad_input():
    X, y = _data(6, 3, 4)
    net = ak.MLP(depth=2, activation="tanh", sigma_w=1.3, sigma_b=0.1)
    m = ak.ForwardBackwardKernels(net, width=20.0, temperature=0.1, method="perturbative", n_samples=5000).fit(X, y)
    cross, diag = m.joint_kernels(X)[-1]
    np.testing.assert_allclose(cross, m.kernel_, atol=1e-3 * np.abs(m.kernel_).max())
    np.testing.assert_allclose(diag, np.diag(m.kernel_), atol=1e-3 * np.abs(m.kernel_).max())
    mean, std = m.predict(X[:3], return_std=True)
    assert mean.shape == (3,) and np.all(np.isfinite(std))
    with pytest.raises(ValueError, match="^method"):
        ak.ForwardBackwardKernels(net, width=20.0, temperature=0.1, method="exact").fit(X, y)
    with pytest.raises(ValueError, match="^n_samples"):
        ak.ForwardBackwardKernels(net, width=20.0, temperature=0.1, method="perturbative", n_samples=1).fit(X, y)
