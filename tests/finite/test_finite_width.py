"""Finite-width ground truth: Rust steps vs the NumPy reference, exact posteriors, the N -> inf
limit, determinism, bad input."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import adaptive_kernels as ak
from adaptive_kernels import _core
from adaptive_kernels.reference.finite import network as ref

ACTS = ["linear", "relu", "erf", "tanh", "gelu", "softplus"]


def net_kw(widths, act, sw, sb, param, gamma):
    """The network arguments of the NumPy reference."""
    return dict(widths=list(widths), activation=act, sigma_w=sw, sigma_b=sb, parameterization=param, gamma=gamma)


def core_kw(kw):
    """The same network as the arguments of the core's finite-network functions (an ak.MLP as ``net``)."""
    net = ak.MLP(depth=len(kw["widths"]), activation=kw["activation"], sigma_w=kw["sigma_w"], sigma_b=kw["sigma_b"])
    return dict(net=net, widths=kw["widths"], parameterization=kw["parameterization"], gamma=kw["gamma"])


problem = st.fixed_dictionaries(dict(
    act=st.sampled_from(ACTS),
    widths=st.lists(st.integers(1, 7), min_size=1, max_size=3),
    p=st.integers(1, 6), d=st.integers(1, 5), c=st.integers(1, 2),
    sw=st.floats(0.5, 2.0), sb=st.one_of(st.just(0.0), st.floats(0.1, 1.0)),
    param=st.sampled_from(["standard", "mean_field"]), gamma=st.floats(0.2, 3.0),
    seed=st.integers(0, 2**32 - 1),
))


def draw(pr):
    rng = np.random.default_rng(pr["seed"])
    kw = net_kw(pr["widths"], pr["act"], pr["sw"], pr["sb"], pr["param"], pr["gamma"])
    n = _core._testing.param_count(d=pr["d"], n_out=pr["c"], **core_kw(kw))
    assert n == ref.param_count(pr["d"], pr["widths"], pr["c"], pr["sb"], pr["param"])
    X = rng.standard_normal((pr["p"], pr["d"]))
    Y = rng.standard_normal((pr["p"], pr["c"]))
    theta = rng.standard_normal(n)
    return rng, kw, X, Y, theta


def close(a, b, rel=1e-12):
    np.testing.assert_allclose(a, b, rtol=rel, atol=rel * max(np.abs(b).max(), 1e-300))


@settings(max_examples=60)
@given(pr=problem, beta=st.floats(0.01, 100.0), decay=st.floats(0.0, 2.0))
def test_potential_gradient_and_forward_match_reference(pr, beta, decay):
    rng, kw, X, Y, theta = draw(pr)
    U, g = _core._testing.potential_and_gradient(theta, X, Y, beta=beta, decay=decay, **core_kw(kw))
    Ur, gr = ref.potential_and_gradient(theta, X, Y, beta=beta, decay=decay, **kw)
    close(U, Ur)
    close(g, gr)
    ck = core_kw(kw)
    f, kernels = _core.finite.forward(theta, X, ck.pop("net"), n_out=pr["c"], **ck)
    fr, _, acts = ref.forward(theta, X, n_out=pr["c"], **kw)
    close(f, fr)
    for K, a in zip(kernels, acts):
        close(K, a @ a.T / a.shape[1])


@settings(max_examples=40)
@given(pr=problem, temperature=st.floats(0.01, 2.0), eta=st.floats(1e-5, 1e-2), lr=st.floats(1e-4, 0.1),
       wd=st.floats(0.0, 1.0))
def test_langevin_and_gd_steps_match_reference(pr, temperature, eta, lr, wd):
    rng, kw, X, Y, theta = draw(pr)
    xi = rng.standard_normal(theta.size)
    prop, log_ratio = _core._testing.langevin_step(theta, X, Y, xi, temperature=temperature, step_size=eta,
                                                   **core_kw(kw))
    prop_r, log_ratio_r = ref.langevin_step(theta, X, Y, xi, temperature=temperature, step_size=eta, **kw)
    close(prop, prop_r)
    np.testing.assert_allclose(log_ratio, log_ratio_r, rtol=1e-9, atol=1e-9 * (1 + abs(log_ratio_r)))
    close(_core._testing.gd_step(theta, X, Y, lr=lr, weight_decay=wd, **core_kw(kw)),
          ref.gd_step(theta, X, Y, lr=lr, weight_decay=wd, **kw))


@pytest.mark.parametrize("param", ["standard", "mean_field"])
def test_gradient_matches_finite_differences(param):
    """Independent check of the backward pass: directional derivatives by central differences."""
    rng = np.random.default_rng(1)
    kw = net_kw([5, 4], "tanh", 1.3, 0.4, param, 0.7)
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    ck = core_kw(kw)
    n = _core._testing.param_count(d=3, n_out=2, **ck)
    theta = rng.standard_normal(n)
    U, g = _core._testing.potential_and_gradient(theta, X, Y, beta=2.0, decay=0.5, **ck)
    for _ in range(5):
        v = rng.standard_normal(n)
        eps = 1e-5
        up = _core._testing.potential_and_gradient(theta + eps * v, X, Y, beta=2.0, decay=0.5, **ck)[0]
        um = _core._testing.potential_and_gradient(theta - eps * v, X, Y, beta=2.0, decay=0.5, **ck)[0]
        assert abs((up - um) / (2 * eps) - g @ v) < 1e-6 * (1 + abs(g @ v))


def test_mala_acceptance_ratio_is_exact_for_gaussian_readout():
    """For a linear model the MALA log-ratio of a tiny step is ~0 (the proposal is reversible
    to O(eta^{3/2}))."""
    rng = np.random.default_rng(2)
    kw = net_kw([4], "linear", 1.0, 0.0, "standard", 1.0)
    X, Y = rng.standard_normal((5, 2)), rng.standard_normal((5, 1))
    ck = core_kw(kw)
    theta = rng.standard_normal(_core._testing.param_count(d=2, n_out=1, **ck))
    _, lr_small = _core._testing.langevin_step(theta, X, Y, rng.standard_normal(theta.size), temperature=1.0,
                                               step_size=1e-8, **ck)
    assert abs(lr_small) < 1e-5


def random_features_posterior(theta, X, Y, Xt, kw, temperature):
    """Exact Gaussian posterior of the readout on frozen random features (standard scaling)."""
    _, _, acts = ref.forward(theta, X, n_out=1, **kw)
    _, _, acts_t = ref.forward(theta, Xt, n_out=1, **kw)
    A, At = acts[-1], acts_t[-1]
    so = kw["sigma_w"] / np.sqrt(A.shape[1])
    prec = np.eye(A.shape[1]) + so**2 * A.T @ A / temperature
    cov = np.linalg.inv(prec)
    mu = so * cov @ A.T @ Y[:, 0] / temperature
    return so * At @ mu, so**2 * np.einsum("qi,ij,qj->q", At, cov, At)


def test_frozen_random_features_match_exact_gaussian_posterior():
    rng = np.random.default_rng(3)
    X, Xt = rng.standard_normal((12, 3)), rng.standard_normal((5, 3))
    y = np.tanh(X[:, 0]) + 0.1 * rng.standard_normal(12)
    net = ak.MLP(depth=2, activation="relu", sigma_w=1.2)
    T = 0.05
    s = ak.sample_posterior(net, X, y, Xt, width=16, temperature=T, n_chains=1, n_samples=3000, thin=4,
                            burn_in=2000, step_size=1e-2, train_hidden=False, seed=5)
    kw = net_kw([16, 16], "relu", 1.2, 0.0, "standard", 1.0)
    mean, var = random_features_posterior(s.final_theta[0], X, y[:, None], Xt, kw, T)
    se = s.mean_se
    assert np.all(np.abs(s.mean - mean) < 4 * se + 1e-12), (s.mean - mean) / se
    # variance: relative error ~ sqrt(2 tau / n)
    rel = np.sqrt(2 * s.autocorrelation_time / s.n_samples)
    np.testing.assert_allclose(s.var, var, rtol=5 * rel)
    assert 0.3 < s.acceptance_rate[0] < 0.9


@pytest.mark.skipif(not hasattr(ak, "exact_linear_posterior"), reason="exact_linear_posterior not available")
@pytest.mark.parametrize("param,gamma", [("standard", 1.0), ("mean_field", 1.0)])
def test_linear_network_matches_exact_finite_width_posterior(param, gamma):
    """One-hidden-layer linear network at width 6: the sampled posterior mean, variance and the
    readout kernel scale match the exact Gamma-mixture posterior within 4 standard errors."""
    rng = np.random.default_rng(4)
    P, d, N, T = 8, 4, 6, 0.05
    X, Xt = rng.standard_normal((P, d)), rng.standard_normal((4, d))
    y = X @ rng.standard_normal(d) / np.sqrt(d)
    net = ak.MLP(depth=1, activation="linear", sigma_w=1.0)
    ex = ak.exact_linear_posterior(net, X, y, Xt, width=N, temperature=T, parameterization=param, gamma=gamma)
    s = ak.sample_posterior(net, X, y, Xt, width=N, temperature=T, parameterization=param, gamma=gamma,
                            n_chains=4, n_samples=4000, thin=5, burn_in=4000, step_size=1e-3, seed=11)
    se = s.mean_se
    assert np.all(np.abs(s.mean - ex.mean) < 4 * se), (s.mean - ex.mean) / se
    rel = np.sqrt(2 * s.autocorrelation_time / s.n_samples)
    np.testing.assert_allclose(s.var, ex.var, rtol=6 * rel)
    # kernel scale u = c |w|^2 / N, c = sigma_w^2 (standard) or 1/(gamma^2 N) (mean field)
    c = 1.0 if param == "standard" else 1.0 / (gamma**2 * N)
    u = c * np.concatenate([t[2] for t in s.traces])
    se_u = np.std(u) * np.sqrt(s.autocorrelation_time / u.size)
    assert abs(u.mean() - ex.kernel_scale_mean) < 4 * se_u, (u.mean(), ex.kernel_scale_mean, se_u)
    assert np.all(s.rhat < 1.1)


def test_approaches_nngp_predictor_as_width_grows():
    """Standard scaling: the gap between the sampled posterior mean and the NNGP GP mean
    shrinks with the width (roughly like 1/N; figure in benches/ and the issue note)."""
    rng = np.random.default_rng(6)
    X, Xt = rng.standard_normal((10, 3)), rng.standard_normal((6, 3))
    y = np.sin(2 * X[:, 0])
    net = ak.MLP(depth=1, activation="erf", sigma_w=1.5)
    T = 0.02
    gp = ak.GaussianProcess(net, ridge=T).fit(X, y).predict(Xt)
    gaps, ses = [], []
    for N, n in ((4, 12000), (64, 6000)):
        s = ak.sample_posterior(net, X, y, Xt, width=N, temperature=T, n_chains=4, n_samples=n, thin=10,
                                step_size=1e-3, seed=N)
        gaps.append(np.sqrt(np.mean((s.mean - gp) ** 2)))
        ses.append(np.sqrt(np.mean(s.mean_se ** 2)))
    assert gaps[0] > 3 * ses[0], (gaps, ses)       # the finite-width effect is resolved at N = 4
    assert gaps[1] < gaps[0] / 4 + 3 * ses[1], (gaps, ses)   # and shrinks ~1/N by N = 64


def test_same_samples_with_one_and_two_threads():
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    net = ak.MLP(depth=2, activation="tanh")
    kw = dict(width=8, temperature=0.1, n_chains=3, n_samples=50, step_size=1e-3, seed=3, X_test=X[:2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ak.sample_posterior(net, X, y, n_threads=1, **kw)
        b = ak.sample_posterior(net, X, y, n_threads=2, **kw)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.final_theta, b.final_theta)
    for ka, kb in zip(a.kernels, b.kernels):
        np.testing.assert_array_equal(ka, kb)
    g1 = ak.train_gd(net, X, y, width=8, lr=0.05, steps=200, tol=0, n_ensemble=3, n_threads=1)
    g2 = ak.train_gd(net, X, y, width=8, lr=0.05, steps=200, tol=0, n_ensemble=3, n_threads=2)
    np.testing.assert_array_equal(g1.theta, g2.theta)


def test_gradient_descent_reaches_a_fixed_point():
    rng = np.random.default_rng(8)
    X, y = rng.standard_normal((10, 4)), rng.standard_normal(10)
    net = ak.MLP(depth=1, activation="tanh", sigma_w=1.0)
    lam = 0.2
    res = ak.train_gd(net, X, y, X[:3], width=32, weight_decay=lam, lr=0.1, steps=50000, tol=1e-9, n_ensemble=2)
    assert res.converged.all()
    kw = net_kw([32], "tanh", 1.0, 0.0, "standard", 1.0)
    for theta in res.theta:  # stationarity of the regularized objective, independently recomputed
        _, g = ref.potential_and_gradient(theta, X, y[:, None], beta=1.0, decay=lam, **kw)
        assert np.sqrt(np.mean(g**2)) < 2e-9
    curve = res.loss_curves[0]
    assert np.all(np.diff(curve[:, 2]) <= 1e-12)   # the objective decreases monotonically
    np.testing.assert_allclose(res.predict(X[:3], members=True), res.test_output, rtol=1e-12)


def test_empirical_ntk_at_initialization_matches_ntk_kernel():
    """A single tiny GD step leaves the network at init: its empirical NTK (standard scaling)
    fluctuates around the infinite-width NTK with O(1/sqrt(N)) relative spread."""
    rng = np.random.default_rng(9)
    X = rng.standard_normal((5, 3))
    net = ak.MLP(depth=2, activation="relu", sigma_w=1.4, sigma_b=0.3)
    Th = ak.ntk_kernel(net, X)
    scale = np.abs(Th).max()
    spread = {}
    for N in (512, 2048):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ak.train_gd(net, X, np.zeros(5), width=N, lr=1e-12, steps=1, tol=0.0, n_ensemble=8)
        spread[N] = res.ntk.std(0, ddof=1).max() / scale
        gap = np.abs(res.ntk.mean(0) - Th).max() / scale
        # the ensemble mean is within 4 standard errors (the O(1/N) bias is far smaller)
        assert gap < 4 * spread[N] / np.sqrt(8), (N, gap, spread[N])
    assert 1.4 < spread[512] / spread[2048] < 2.9, spread   # ~ sqrt(2048/512) = 2


@pytest.mark.parametrize("kwargs,match", [
    (dict(width=0), "width"),
    (dict(width=[4, 4]), "width"),
    (dict(temperature=0.0), "temperature"),
    (dict(temperature=-1.0), "temperature"),
    (dict(step_size=0.0), "step_size"),
    (dict(step_size=-1e-3), "step_size"),
    (dict(n_chains=0), "n_chains"),
    (dict(parameterization="ntk"), "parameterization"),
    (dict(gamma=0.0, parameterization="mean_field"), "gamma"),
])
def test_bad_sampler_arguments(kwargs, match):
    X, y = np.ones((3, 2)), np.ones(3)
    args = dict(width=4, temperature=0.1, n_samples=5)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        ak.sample_posterior(ak.MLP(depth=1), X, y, **args)


def test_bad_data_and_networks():
    X, y = np.ones((3, 2)), np.ones(3)
    for Xb, yb, match in [(np.full((3, 2), np.nan), y, "X"), (X, np.array([1, np.inf, 0]), "y"), (X, np.ones(4), "y")]:
        with pytest.raises(ValueError, match=match):
            ak.sample_posterior(ak.MLP(depth=1), Xb, yb, width=4, temperature=0.1)
        with pytest.raises(ValueError, match=match):
            ak.train_gd(ak.MLP(depth=1), Xb, yb, width=4)
    with pytest.raises(ValueError, match="net"):
        ak.sample_posterior(ak.MLP(depth=0), X, y, width=4, temperature=0.1)
    with pytest.raises(ValueError, match="net"):
        ak.train_gd(ak.MLP(depth=1, activation=np.sin), X, y, width=4)
    with pytest.raises(ValueError, match="lr"):
        ak.train_gd(ak.MLP(depth=1), X, y, width=4, lr=0)
    with pytest.raises(ValueError, match="X_test"):
        ak.sample_posterior(ak.MLP(depth=1), X, y, np.ones((2, 3)), width=4, temperature=0.1)


def test_unadjusted_langevin_divergence_is_an_error():
    X, y = np.random.default_rng(0).standard_normal((5, 2)), np.ones(5)
    with pytest.raises(FloatingPointError, match="step_size"):
        ak.sample_posterior(ak.MLP(depth=1, activation="relu"), X, y, width=16, temperature=1e-4,
                            step_size=10.0, metropolis=False, n_samples=200)


def test_ctrl_c_returns_partial_samples():
    """SIGINT during sampling stops the chains and returns what was sampled, marked interrupted."""
    import os
    import signal
    import threading

    X, y = np.random.default_rng(0).standard_normal((8, 3)), np.ones(8)
    # A runner that starts jobs in the background ignores SIGINT, and Python then installs no
    # KeyboardInterrupt handler: install the default one for the test (else the sampler would
    # run its 10^8 samples), and restore the runner's afterwards.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.warns(RuntimeWarning, match="interrupted"):
            s = ak.sample_posterior(ak.MLP(depth=1, activation="tanh"), X, y, X[:2], width=64, temperature=0.1,
                                    n_chains=2, n_samples=10**8, burn_in=0, step_size=1e-3)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert s.interrupted
    assert 0 < s.n_samples < 2 * 10**8
    assert np.isfinite(s.mean).all()
