"""Gradient-flow fixed point (ak.GradientFlowFixedPoint): Rust core vs the NumPy reference (one
particle step, the objective and its stationarity residual), the exact fixed point of linear
two-layer nets, the dead-state threshold, the same computation as ak.train_gd, deep nets, the
two predictors, the path and bad input."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptive_kernels as ak
from adaptive_kernels import _core
from adaptive_kernels.reference.theories import dmft as ref


def _data(seed, p=12, d=5, positive=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((p, d))
    y = np.sign(rng.standard_normal(p)) + 0.3 * rng.standard_normal(p)
    if positive:
        X, y = np.abs(X), np.abs(y) + 0.5
    return X, y, rng.standard_normal((7, d))


def _k0(A, B, net):
    return net.sigma_w**2 * A @ B.T / A.shape[1] + net.sigma_b**2


def _one_step(net, X, Y, theta, gamma, lam, M, dt):
    """One Euler step of the core's flow from `theta`: (theta after, residual after)."""
    _, (fp,), _ = _core.dmft.solve(X, Y, net, points=[(gamma, lam)], init=theta,
                                    options=dict(n_particles=M, dt=dt, adaptive=False, polish_iter=0, max_steps=1,
                                                 tol=1e-300, switch_tol=0.0), n_threads=1)
    return np.asarray(fp.theta), fp.report.residual


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), activation=st.sampled_from(["linear", "relu", "tanh", "erf"]),
       sigma_b=st.sampled_from([0.0, 0.4]), M=st.integers(1, 9), C=st.integers(1, 2),
       gamma=st.floats(0.2, 3.0), lam=st.floats(0.01, 2.0), dt=st.floats(1e-3, 0.1))
def test_particle_step_and_residual_match_reference(seed, activation, sigma_b, M, C, gamma, lam, dt):
    rng = np.random.default_rng(seed)
    P, d = 6, 3
    X, Y = rng.standard_normal((P, d)), rng.standard_normal((P, C))
    net = ak.MLP(depth=1, activation=activation, sigma_w=1.3, sigma_b=sigma_b)
    n = M * d + (M if sigma_b > 0 else 0) + M * C
    theta = rng.standard_normal(n)
    F = ref.features(X, net.sigma_w, sigma_b)
    Theta, Z = ref.particles(theta, d, M, C, sigma_b)
    J, gT, gZ, rms0 = ref.objective(Theta, Z, F, Y, gamma=gamma, weight_decay=lam, activation=activation)
    # the core's Lyapunov function and gradient
    U, grad = _core._testing.potential_and_gradient(theta, X, Y, net=net, widths=[M], parameterization="mean_field",
                                                    gamma=gamma, beta=M * gamma**2, decay=lam)
    assert np.isclose(U, J, rtol=1e-12)
    gT_core, gZ_core = ref.particles(np.asarray(grad), d, M, C, sigma_b)
    np.testing.assert_allclose(gT_core, gT, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gZ_core, gZ, rtol=1e-10, atol=1e-12)
    # one step of the flow, compared on the preactivations (the particle form of the step)
    theta1, rms1 = _one_step(net, X, Y, theta, gamma, lam, M, dt)
    Theta1, Z1 = ref.particles(theta1, d, M, C, sigma_b)
    H1, Z1_ref = ref.particle_step(F @ Theta.T, Z, F @ F.T, Y, gamma=gamma, weight_decay=lam, dt=dt,
                                   activation=activation)
    scale = 1.0 + np.abs(H1).max()
    np.testing.assert_allclose(F @ Theta1.T, H1, rtol=0, atol=1e-11 * scale)
    np.testing.assert_allclose(Z1, Z1_ref, rtol=0, atol=1e-11 * (1.0 + np.abs(Z1_ref).max()))
    assert np.isclose(rms1, ref.objective(Theta1, Z1, F, Y, gamma=gamma, weight_decay=lam,
                                          activation=activation)[3], rtol=1e-9)


@pytest.mark.parametrize("sigma_b,d", [(0.0, 5), (0.5, 5), (0.0, 30)])   # d = 30 > P: the span coordinates
def test_linear_two_layer_exact_fixed_point(sigma_b, d):
    X, y, Xt = _data(0, p=12, d=d)
    net = ak.MLP(depth=1, activation="linear", sigma_w=1.2, sigma_b=sigma_b)
    gamma, lam = 1.5, 0.4
    exact = ref.linear_fixed_point(_k0(X, X, net), y, gamma=gamma, weight_decay=lam, K0_test=_k0(Xt, X, net))
    assert exact is not None
    m = ak.GradientFlowFixedPoint(net, gamma=gamma, weight_decay=lam, n_particles=200, seed=1).fit(X, y)
    assert m.converged_ and m.residual_ < 1e-10 and not m.dead_
    np.testing.assert_allclose(m.train_output_[:, 0], exact["f_train"], atol=1e-8)
    np.testing.assert_allclose(m.predict(Xt), exact["f_test"], atol=1e-8)
    if sigma_b == 0:   # the NTK form needs a homogeneous net
        np.testing.assert_allclose(m.predict(Xt, form="ntk"), exact["f_test"], atol=1e-8)
    np.testing.assert_allclose(m.kernel_, exact["Phi"], atol=1e-8)
    np.testing.assert_allclose(m.ntk_, exact["ntk"], atol=1e-8)
    # the fixed point is unique in its kernels: another draw of particles lands on it too
    m2 = ak.GradientFlowFixedPoint(net, gamma=gamma, weight_decay=lam, n_particles=37, seed=5).fit(X, y)
    np.testing.assert_allclose(m2.kernel_, exact["Phi"], atol=1e-8)


def test_linear_dead_state_threshold():
    X, y, _ = _data(1)
    net = ak.MLP(depth=1, activation="linear")
    thr = ref.linear_threshold(_k0(X, X, net), y)
    gamma = 2.0
    with pytest.warns(ak.DeadNetworkWarning, match="dead state"):
        dead = ak.GradientFlowFixedPoint(net, gamma=gamma, weight_decay=1.05 * thr * gamma, n_particles=64).fit(X, y)
    assert dead.dead_ and dead.converged_ and np.abs(dead.predict(X)).max() < 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("error", ak.DeadNetworkWarning)
        live = ak.GradientFlowFixedPoint(net, gamma=gamma, weight_decay=0.95 * thr * gamma, n_particles=64).fit(X, y)
    assert not live.dead_ and live.converged_
    exact = ref.linear_fixed_point(_k0(X, X, net), y, gamma=gamma, weight_decay=0.95 * thr * gamma)
    np.testing.assert_allclose(live.train_output_[:, 0], exact["f_train"], atol=1e-8)


def test_relu_dead_state_threshold():
    """relu, positive inputs and targets: every activation pattern's growth rate is at most that of
    the all-active one, sqrt(y^T K^0 y), which is consistent (K^0 y > 0)."""
    X, y, _ = _data(2, p=8, d=3, positive=True)
    net = ak.MLP(depth=1, activation="relu")
    K0 = _k0(X, X, net)
    assert (K0 @ y > 0).all()
    thr = ref.linear_threshold(K0, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ak.ConvergenceWarning)
        with pytest.warns(ak.DeadNetworkWarning):
            dead = ak.GradientFlowFixedPoint(net, gamma=1.0, weight_decay=1.1 * thr, n_particles=64,
                                             max_steps=20000).fit(X, y)
        live = ak.GradientFlowFixedPoint(net, gamma=1.0, weight_decay=0.9 * thr, n_particles=64,
                                         max_steps=3000).fit(X, y)
    assert dead.dead_ and not live.dead_
    assert np.abs(live.train_output_).max() > 1e-2


@pytest.mark.parametrize("activation,sigma_b", [("relu", 0.0), ("tanh", 0.3)])
def test_same_computation_as_train_gd(activation, sigma_b):
    """M = N particles with the same seed and step are train_gd's network, step by step."""
    X, y, _ = _data(3, p=10, d=4)
    net = ak.MLP(depth=1, activation=activation, sigma_b=sigma_b)
    kw = dict(gamma=1.3, weight_decay=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ak.ConvergenceWarning)
        gd = ak.train_gd(net, X, y, width=48, parameterization="mean_field", lr=0.05, steps=200, record_every=10,
                         seed=4, tol=1e-300, **kw)
        m = ak.GradientFlowFixedPoint(net, n_particles=48, seed=4, dt=0.05, adaptive=False, polish_iter=0,
                                      max_steps=200, record_every=10, tol=1e-300, switch_tol=0.0, **kw).fit(X, y)
    np.testing.assert_allclose(m.loss_curve_, gd.loss_curves[0], rtol=1e-12, atol=0)
    np.testing.assert_allclose(m.theta_, gd.theta[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m.train_output_, gd.train_output[0][:, None], rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(m.ntk_, gd.ntk[0], rtol=1e-11, atol=1e-13)


def test_deep_linear_forms_agree_and_kernels_are_unique():
    """L = 2 linear: the readout and NTK (ridge 3 lambda) forms are two consequences of
    stationarity, and the kernels do not depend on the particles' draw."""
    X, y, Xt = _data(4, p=10, d=4)
    net = ak.MLP(depth=2, activation="linear")
    ms = [ak.GradientFlowFixedPoint(net, gamma=1.0, weight_decay=0.15, n_particles=M, seed=s).fit(X, y)
          for M, s in ((48, 0), (96, 1))]
    for m in ms:
        assert m.converged_ and not m.dead_ and m.readout_gap_ < 1e-9
        np.testing.assert_allclose(m.predict(Xt, form="ntk"), m.predict(Xt), atol=1e-8)
    for k0, k1 in zip(ms[0].kernels_, ms[1].kernels_):
        np.testing.assert_allclose(k0, k1, atol=1e-7)


def test_tanh_converges_and_readout_is_the_network():
    X, y, Xt = _data(5, p=10, d=3)
    net = ak.MLP(depth=1, activation="tanh", sigma_b=0.2)
    m = ak.GradientFlowFixedPoint(net, gamma=1.0, weight_decay=0.3, n_particles=128).fit(X, y)
    assert m.converged_ and m.residual_ < 1e-10 and m.readout_gap_ < 1e-9
    assert m.report_.solver == "gradient flow + L-BFGS"
    # at the fixed point the readout predictor is the particle network's own output
    theta, M = m.theta_, 128
    W, Z = ref.particles(theta, 3, M, 1, 0.2)
    F_test = ref.features(Xt, net.sigma_w, net.sigma_b)
    f_net = np.tanh(F_test @ W.T) @ Z / (m.gamma * M)
    np.testing.assert_allclose(m.predict(Xt), f_net[:, 0], atol=1e-9)
    with pytest.raises(ValueError, match="^form: .*homogeneous"):
        m.predict(Xt, form="ntk")
    with pytest.raises(ValueError, match="^return_std: "):
        m.predict(Xt, return_std=True)
    with pytest.raises(ValueError, match="^form: "):
        m.predict(Xt, form="kernel")


def test_path_warm_starts_and_reports_dead_points():
    X, y, Xt = _data(6)
    net = ak.MLP(depth=1, activation="linear")
    thr = ref.linear_threshold(_k0(X, X, net), y)
    with pytest.warns(ak.DeadNetworkWarning):
        p = ak.GradientFlowFixedPoint(net, gamma=1.0, weight_decay=0.1, n_particles=64).path(
            X, y, weight_decays=[0.3 * thr, 2 * thr, 0.5 * thr], X_test=Xt, y_test=np.ones(len(Xt)))
    assert [m.dead_ for m in p.models] == [False, True, False]
    for m, lam in zip(p.models, p.values):
        if not m.dead_:
            ex = ref.linear_fixed_point(_k0(X, X, net), y, gamma=1.0, weight_decay=lam)
            np.testing.assert_allclose(m.train_output_[:, 0], ex["f_train"], atol=1e-8)
    assert np.all(np.isfinite(p.test_loss)) and np.all(np.isfinite(p.nngp_test_loss))


def test_relu_residual_is_reported_honestly():
    X, y, _ = _data(7, p=10, d=4)
    net = ak.MLP(depth=1, activation="relu")
    with pytest.warns(ak.ConvergenceWarning, match="relu fixed points are non-smooth"):
        m = ak.GradientFlowFixedPoint(net, gamma=1.0, weight_decay=0.2, n_particles=64, max_steps=2000).fit(X, y)
    assert not m.converged_ and m.report_.solver == "gradient flow" and m.n_steps_ == 2000
    assert m.residual_ > 1e-6 and np.isfinite(m.readout_gap_)
    # without a step budget the flow stops once the residual has stalled
    with pytest.warns(ak.ConvergenceWarning):
        s = ak.GradientFlowFixedPoint(net, gamma=1.0, weight_decay=0.2, n_particles=64, max_steps=10**6,
                                      stall_steps=500).fit(X, y)
    assert s.report_.solver == "gradient flow (stalled)" and s.n_steps_ < 10**6


@pytest.mark.parametrize("kwargs,match", [
    (dict(weight_decay=0.0), "^weight_decay: "), (dict(weight_decay=-1.0), "^weight_decay: "),
    (dict(gamma=0.0), "^gamma: "), (dict(n_particles=0), "^n_particles: "), (dict(dt=-0.1), "^dt: "),
    (dict(max_steps=0), "^max_steps: "), (dict(tol=0.0), "^tol: "), (dict(adaptive="yes"), "^adaptive: "),
])
def test_bad_parameters_are_named(kwargs, match):
    X, y, _ = _data(8)
    args = dict(gamma=1.0, weight_decay=0.1, n_particles=8)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        ak.GradientFlowFixedPoint(ak.MLP(depth=1, activation="tanh"), **args).fit(X, y)


def test_core_refuses_bad_state_and_init():
    X, y, Xt = _data(9)
    net = ak.MLP(depth=1, activation="tanh")
    with pytest.raises(ValueError, match="^init: "):
        _core.dmft.solve(X, y[:, None], net, points=[(1.0, 0.1)], init=np.ones(3))
    with pytest.raises(ValueError, match="^init: "):
        _core.dmft.solve(X, y[:, None], net, points=[(1.0, 0.1)], init=np.full(8 * 6, np.nan),
                         options=dict(n_particles=8))
    with pytest.raises(ValueError, match="^theta: "):
        _core.dmft.predict(X, Xt, net, theta=np.ones(5), dual=np.ones((12, 1)), input_map=None, gamma=1.0,
                           n_particles=8, form="readout")
    for bad in (dict(gamma=np.nan), dict(gamma=-1.0), dict(n_particles=0)):
        args = dict(theta=np.ones(48), dual=np.ones((12, 1)), input_map=None, gamma=1.0, n_particles=8,
                    form="readout")
        args.update(bad)
        with pytest.raises(ValueError, match=f"^{next(iter(bad))}: "):
            _core.dmft.predict(X, Xt, net, **args)
