"""Structured tangent features (``ak.tangent_features``) and ``ak.init_params``: against the dense
NumPy reference (hypothesis), central finite differences of the network output, ``J J^T``, the
parameter format of ``train_gd``, and the infinite-width NTK."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptive_kernels as ak
from adaptive_kernels import _core
from adaptive_kernels.reference.finite import network as ref_net
from adaptive_kernels.reference.finite import tangent as ref_tangent


def _setup(depth, width, d, n, n_out, act, sigma_b, param="standard", seed=0):
    net = ak.MLP(depth=depth, activation=act, sigma_w=1.2, sigma_b=sigma_b)
    theta = ak.init_params(net, width=width, n_features=d, n_out=n_out, seed=seed, parameterization=param,
                           gamma=0.7)
    X = np.random.default_rng(seed + 1).standard_normal((n, d))
    kw = dict(n_out=n_out, widths=[width] * depth, activation=act, sigma_w=1.2, sigma_b=sigma_b,
              parameterization=param, gamma=0.7)
    tf = ak.tangent_features(net, theta, X, width=width, n_out=n_out, parameterization=param, gamma=0.7)
    return net, theta, X, kw, tf


@settings(max_examples=25, deadline=None)
@given(depth=st.integers(1, 3), width=st.integers(1, 6), d=st.integers(1, 4), n=st.integers(1, 5),
       n_out=st.integers(1, 3), act=st.sampled_from(["relu", "tanh", "erf", "linear"]),
       sigma_b=st.sampled_from([0.0, 0.3]), param=st.sampled_from(["standard", "mean_field"]),
       seed=st.integers(0, 100))
def test_core_matches_reference(depth, width, d, n, n_out, act, sigma_b, param, seed):
    net, theta, X, kw, tf = _setup(depth, width, d, n, n_out, act, sigma_b, param, seed)
    f0, J = ref_tangent.jacobian(theta, X, **kw)
    np.testing.assert_allclose(tf.f0, f0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tf.jacobian(), J, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(tf.kernel(), J @ J.T, rtol=1e-10, atol=1e-11)
    v = np.random.default_rng(seed).standard_normal(n * n_out)
    np.testing.assert_allclose(tf.vjp(v), J.T @ v, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("act,sigma_b,n_out", [("tanh", 0.4, 2), ("relu", 0.0, 1), ("erf", 0.2, 3)])
def test_jacobian_matches_central_differences(act, sigma_b, n_out):
    net, theta, X, kw, tf = _setup(2, 5, 3, 4, n_out, act, sigma_b)
    J = tf.jacobian()
    h = 1e-6
    fd = np.empty_like(J)
    for p in range(theta.size):
        e = np.zeros_like(theta)
        e[p] = h
        fp = ref_net.forward(theta + e, X, **kw)[0]
        fm = ref_net.forward(theta - e, X, **kw)[0]
        fd[:, p] = ((fp - fm) / (2 * h)).ravel()
    np.testing.assert_allclose(J, fd, atol=2e-8)


def test_structured_kernel_and_cross_kernel_equal_dense():
    net, theta, X, kw, tf = _setup(2, 7, 3, 6, 2, "relu", 0.3)
    Xt = np.random.default_rng(9).standard_normal((3, 3))
    tt = ak.tangent_features(net, theta, Xt, width=7, n_out=2)
    J, Jt = tf.jacobian(), tt.jacobian()
    np.testing.assert_allclose(tf.kernel(), J @ J.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tt.kernel(tf), Jt @ J.T, rtol=1e-12, atol=1e-12)
    assert len(tf.layer_kernels()) == 3   # two hidden layers and the readout
    np.testing.assert_allclose(sum(tf.layer_kernels()), tf.kernel())


@pytest.mark.filterwarnings("ignore::adaptive_kernels.ConvergenceWarning")
def test_init_params_is_train_gd_initial_point():
    net = ak.MLP(depth=2, activation="tanh", sigma_b=0.2)
    X = np.random.default_rng(0).standard_normal((5, 3))
    y = np.random.default_rng(1).standard_normal((5, 2))
    theta0 = ak.init_params(net, width=4, n_features=3, n_out=2, seed=7)
    res = ak.train_gd(net, X, y, width=4, lr=1e-300, steps=1, seed=7, n_threads=1)
    assert theta0.shape == res.theta[0].shape
    np.testing.assert_array_equal(theta0, res.theta[0])
    # the trained network's outputs are the tangent features' f0 at its parameters
    res = ak.train_gd(net, X, y, width=4, lr=0.05, steps=50, seed=7, n_threads=1)
    tf = ak.tangent_features(net, res.theta[0], X, width=4, n_out=2)
    np.testing.assert_allclose(tf.f0, res.train_output[0], rtol=1e-12, atol=1e-12)


def test_empirical_ntk_approaches_infinite_width_ntk():
    """Independent check: at large width the empirical NTK (standard scaling) concentrates on
    ``ak.ntk_kernel``; relative Frobenius error shrinks like 1/sqrt(width)."""
    net = ak.MLP(depth=2, activation="relu", sigma_w=1.4, sigma_b=0.1)
    X = np.random.default_rng(3).standard_normal((6, 4))
    Th = ak.ntk_kernel(net, X)
    errs = []
    for width in (64, 2048):
        theta = ak.init_params(net, width=width, n_features=4, seed=1)
        K = ak.tangent_features(net, theta, X, width=width).kernel()
        errs.append(np.linalg.norm(K - Th) / np.linalg.norm(Th))
    assert errs[1] < 0.08 and errs[1] < errs[0]


def test_bad_input_names_the_argument():
    net = ak.MLP(depth=1, activation="relu")
    theta = ak.init_params(net, width=3, n_features=2)
    X = np.ones((2, 2))
    with pytest.raises(ValueError, match="params"):
        ak.tangent_features(net, theta[:-1], X, width=3)
    with pytest.raises(ValueError, match="X"):
        ak.tangent_features(net, theta, np.array([[np.nan, 1.0]]), width=3)
    with pytest.raises(ValueError, match="n_features"):
        ak.init_params(net, width=3, n_features=0)
    with pytest.raises(ValueError, match="width"):
        ak.init_params(net, width=0, n_features=2)
    tf = ak.tangent_features(net, theta, X, width=3)
    other = ak.tangent_features(net, ak.init_params(net, width=4, n_features=2), X, width=4)
    with pytest.raises(ValueError, match="other"):
        tf.kernel(other)
    with pytest.raises(ValueError, match="v"):
        tf.vjp(np.ones(5))
    assert _core.finite.tangent_jacobian(tf).shape == (2, theta.size)


def test_path_averaged_kernel():
    """Against the dense reference, and the independent check that the network's change is
    linear in the averaged features: f(theta1) - f(theta0) ~ Jbar (theta1 - theta0)."""
    net, theta0, X, kw, tf = _setup(2, 6, 3, 5, 2, "tanh", 0.3)
    theta1 = theta0 + 0.3 * np.random.default_rng(5).standard_normal(theta0.size)
    K = ak.path_averaged_kernel(net, theta0, theta1, X, width=6, n_out=2, n_points=4)
    np.testing.assert_allclose(K, ref_tangent.path_averaged_kernel(theta0, theta1, X, 4, **kw), rtol=1e-10,
                               atol=1e-12)
    Xt = X[:2] + 0.1
    Kx = ak.path_averaged_kernel(net, theta0, theta1, Xt, X, width=6, n_out=2, n_points=4)
    Jb = np.mean([ref_tangent.jacobian((1 - t) * theta0 + t * theta1, Xt, **kw)[1] for t in np.linspace(0, 1, 4)],
                 axis=0)
    Jx = np.mean([ref_tangent.jacobian((1 - t) * theta0 + t * theta1, X, **kw)[1] for t in np.linspace(0, 1, 4)], axis=0)
    np.testing.assert_allclose(Kx, Jb @ Jx.T, rtol=1e-10, atol=1e-12)
    ts = np.linspace(0, 1, 201)
    df = np.mean([ak.tangent_features(net, (1 - t) * theta0 + t * theta1, X, width=6, n_out=2).jvp(theta1 - theta0)
                  for t in ts], axis=0)
    exact = (ref_net.forward(theta1, X, **kw)[0] - ref_net.forward(theta0, X, **kw)[0]).ravel()
    np.testing.assert_allclose(df, exact, rtol=0, atol=2e-2 * np.abs(exact).max())


@pytest.mark.parametrize("chi", [0.3, 5.0])
def test_chi_divides_readout_and_jacobian_by_sqrt_chi(chi):
    """``chi`` as in ``sample_posterior``: f = (sigma_w w . phi / sqrt(N) + sigma_b b) / sqrt(chi),
    so f0, J (readout bias included) are the chi = 1 reference's divided by sqrt(chi)."""
    net, theta, X, kw, _ = _setup(2, 5, 3, 4, 2, "tanh", 0.4)
    tf = ak.tangent_features(net, theta, X, width=5, n_out=2, chi=chi)
    f0, J = ref_tangent.jacobian(theta, X, **kw)
    np.testing.assert_allclose(tf.f0, f0 / np.sqrt(chi), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tf.jacobian(), J / np.sqrt(chi), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(tf.kernel(), J @ J.T / chi, rtol=1e-10, atol=1e-12)
    K = ak.path_averaged_kernel(net, theta, theta, X, width=5, n_out=2, n_points=1, chi=chi)
    np.testing.assert_allclose(K, tf.kernel(), rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match=r"^chi: "):
        ak.tangent_features(net, theta, X, width=5, n_out=2, chi=0.0)
    with pytest.raises(ValueError, match=r"^chi: "):
        ak.tangent_features(net, theta, X, width=5, n_out=2, chi=2.0, parameterization="mean_field")


def test_f0_is_the_sampled_networks_output_at_chi():
    """Parameters from ``sample_posterior(chi=5)``: ``tangent_features(..., chi=5).f0`` is that
    network's output (the sampler's trace of the mean training output at its last state); at the
    default chi = 1 it would be sqrt(5) times too large."""
    net = ak.MLP(depth=1, activation="erf", sigma_w=1.2, sigma_b=0.3)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 3))
    y = np.sign(X[:, 0])
    s = ak.sample_posterior(net, X, y, width=7, temperature=0.1, chi=5.0, n_chains=1, n_samples=4, thin=1,
                            burn_in=6, seed=0, n_threads=1)
    out = s.traces[0][list(s.trace_names).index("mean_train_output")][-1]
    tf = ak.tangent_features(net, s.final_theta[0], X, width=7, chi=5.0)
    assert tf.f0.mean() == pytest.approx(out, rel=1e-12, abs=1e-14)
    wrong = ak.tangent_features(net, s.final_theta[0], X, width=7)
    np.testing.assert_allclose(wrong.f0, np.sqrt(5.0) * tf.f0, rtol=1e-12)
