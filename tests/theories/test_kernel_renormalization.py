"""Kernel renormalization (ak.KernelRenormalization): Rust core vs the NumPy reference, the
known limits (infinite width = NNGP GP, Li-Sompolinsky for deep linear nets, the T -> 0 closed
form, the exact finite-width posterior of a linear net), continuation and bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

import adaptive_kernels as ak
from adaptive_kernels.reference.theories import kernel_renormalization as ref


def _data(seed, p=24, d=6, c=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((p, d))
    W = rng.standard_normal((d, c))
    Y = np.tanh(X @ W / np.sqrt(d)) + 0.1 * rng.standard_normal((p, c))
    return X, (Y[:, 0] if c == 1 else Y)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000),
       act=st.sampled_from(["linear", "relu", "erf", "tanh"]),
       depth=st.integers(1, 3),
       sigma_b=st.sampled_from([0.0, 0.3]),
       c=st.sampled_from([1, 2]),
       temperature=st.floats(0.01, 1.0))
def test_action_gradient_and_solution_match_reference(seed, act, depth, sigma_b, c, temperature):
    X, Y = _data(seed, p=16 if act == "tanh" else 24, c=c)
    net = ak.MLP(depth=depth, activation=act, sigma_w=1.3, sigma_b=sigma_b)
    rng = np.random.default_rng(seed + 1)
    widths = list(rng.integers(8, 60, size=depth).astype(float))
    Q = rng.uniform(0.5, 2.0, size=depth)
    m = ak.KernelRenormalization(net, width=widths, temperature=temperature).fit(X, Y)
    S, g = m.action(Q)
    np.testing.assert_allclose(S, ref.action(net, X, Y, Q, widths, temperature), rtol=1e-10)
    g_ref = ref.action_gradient(net, X, Y, Q, widths, temperature)
    np.testing.assert_allclose(g, g_ref, rtol=1e-8, atol=1e-9 * np.abs(g_ref).max())
    assert m.converged_ and m.residual_ < 1e-10
    if act == "tanh":  # the reference quadrature is slow: check stationarity of Q_ instead
        g0 = ref.action_gradient(net, X, Y, m.Q_, widths, temperature)
        assert np.all(np.abs(2 * m.Q_ * g0 / np.asarray(widths)) < 1e-8)
    else:
        np.testing.assert_allclose(m.Q_, ref.solve(net, X, Y, widths, temperature), rtol=1e-8)
    mean, var = ref.predict(net, X, Y, m.Q_, temperature, X[:5] * 1.1)
    mu, sd = m.predict(X[:5] * 1.1, return_std=True)
    # tanh: core (400-node coefficients, orders lowered per tile) and reference (200 nodes, order
    # 128) expand the kernels to ~1e-12 each, not bit for bit like the shared quadrature rule before
    # (and the test points 1.1 x have rho = 1 with unequal variances against x: those entries miss the
    # series bound and take the order-128 quadrature, ~1e-9 accurate for tanh)
    np.testing.assert_allclose(mu, mean, rtol=1e-9 if act != "tanh" else 1e-8,
                               atol=1e-11 if act != "tanh" else 1e-8 * np.abs(mean).max())
    np.testing.assert_allclose(sd**2, var, rtol=1e-8, atol=1e-12)


def test_gradient_matches_finite_differences_of_rust_action():
    X, Y = _data(3, c=2)
    net = ak.MLP(depth=3, activation="erf", sigma_w=1.4, sigma_b=0.2)
    m = ak.KernelRenormalization(net, width=[20, 30, 40], temperature=0.1).fit(X, Y)
    Q = np.array([0.9, 1.3, 0.7])
    _, g = m.action(Q)
    h = 1e-6
    for l in range(3):
        e = np.eye(3)[l] * h
        fd = (m.action(Q + e)[0] - m.action(Q - e)[0]) / (2 * h)
        assert abs(g[l] - fd) < 1e-6 * (1 + abs(fd))


def test_infinite_width_is_the_nngp_gp():
    X, y = _data(4, p=40)
    Xt = _data(5, p=10)[0]
    net = ak.MLP(depth=2, activation="relu", sigma_w=1.4, sigma_b=0.1)
    gp = ak.GaussianProcess(net, ridge=0.05).fit(X, y)
    for width in (np.inf, 1e12):
        m = ak.KernelRenormalization(net, width=width, temperature=0.05).fit(X, y)
        np.testing.assert_allclose(m.Q_, 1.0, atol=1e-9)
        mu, sd = m.predict(Xt, return_std=True)
        mu0, sd0 = gp.predict(Xt, return_std=True)
        np.testing.assert_allclose(mu, mu0, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(sd, sd0, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("depth,widths,c", [(1, [30], 1), (2, [25, 60], 1), (3, [40, 20, 80], 2)])
def test_deep_linear_matches_li_sompolinsky(depth, widths, c):
    X, Y = _data(6, p=30, d=12, c=c)
    net = ak.MLP(depth=depth, activation="linear", sigma_w=1.1)
    for solver in ("cholesky", "spectral"):
        m = ak.KernelRenormalization(net, width=widths, temperature=0.02, solver=solver).fit(X, Y)
        assert m.converged_ and m.solver_ == solver
        np.testing.assert_allclose(m.Q_, ref.li_sompolinsky(net, X, Y, widths, 0.02), rtol=1e-9)
        # the defining property: N_l (Q_l - 1) is the same in every layer
        r = np.asarray(widths) * (m.Q_ - 1)
        np.testing.assert_allclose(r, r[0], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("width", [5, 10, 40])
def test_one_hidden_layer_zero_temperature_closed_form(width):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((10, 20))
    y = np.sign(X[:, 0])
    net = ak.MLP(depth=1, activation="linear", sigma_w=0.9)
    m = ak.KernelRenormalization(net, width=width, temperature=1e-10).fit(X, y)
    q = ref.li_sompolinsky_zero_temperature(X, y, width, sigma_w=0.9)
    np.testing.assert_allclose(m.Q_[0], q, rtol=1e-7)


def test_closer_to_exact_finite_width_posterior_than_nngp():
    """One hidden linear layer at finite width: the exact posterior is a Gamma scale mixture of
    GPs (ak.exact_linear_posterior); the renormalized GP is its saddle point."""
    rng = np.random.default_rng(1)
    P, d, T = 40, 80, 0.05
    X = rng.standard_normal((P, d))
    y = np.sign(X @ rng.standard_normal(d))
    Xt = rng.standard_normal((20, d))
    net = ak.MLP(depth=1, activation="linear", sigma_w=0.8)
    for N in (40, 80):
        ex = ak.exact_linear_posterior(net, X, y, Xt, width=N, temperature=T)
        exact = np.asarray(ex.mean).ravel()
        theory = ak.KernelRenormalization(net, width=N, temperature=T).fit(X, y).predict(Xt)
        lazy = ak.GaussianProcess(net, ridge=T).fit(X, y).predict(Xt)
        err_t = np.linalg.norm(theory - exact) / np.linalg.norm(exact)
        err_l = np.linalg.norm(lazy - exact) / np.linalg.norm(exact)
        assert err_l > 1e-2
        assert err_t < 0.1 * err_l, (N, err_t, err_l)


def test_relu_three_layers_converges_tightly():
    """deepbays' fsolve stalls on ReLU L = 3 (issue #4); BFGS in log Q must converge."""
    Xtr, ytr, _, _ = ak.datasets.load_digits(classes=(3, 8), n_train=300, n_test=10, seed=0)
    net = ak.MLP(depth=3, activation="relu", sigma_w=np.sqrt(2.0))
    m = ak.KernelRenormalization(net, width=150, temperature=0.01).fit(Xtr, ytr)
    assert m.converged_ and m.residual_ < 1e-10
    assert np.all(np.isfinite(m.Q_)) and np.all(m.Q_ > 0)


def test_same_result_with_one_and_two_threads():
    X, Y = _data(8, p=50, c=2)
    net = ak.MLP(depth=2, activation="erf", sigma_w=1.5, sigma_b=0.2)
    a = ak.KernelRenormalization(net, width=30, temperature=0.05, n_threads=1).fit(X, Y)
    b = ak.KernelRenormalization(net, width=30, temperature=0.05, n_threads=2).fit(X, Y)
    np.testing.assert_array_equal(a.Q_, b.Q_)
    np.testing.assert_array_equal(a.predict(X[:7]), b.predict(X[:7]))


def test_path_warm_starts_and_matches_independent_fits():
    X, y = _data(9, p=40)
    Xt, yt = _data(10, p=15)
    net = ak.MLP(depth=2, activation="erf", sigma_w=1.3)
    widths = [400, 100, 40, 20]
    path = ak.KernelRenormalization(net, width=widths[0], temperature=0.05).path(X, y, widths=widths, X_test=Xt,
                                                                                 y_test=yt)
    Q = path.attribute("Q_")
    assert Q.shape == (4, 2) and path.converged.all()
    for k, w in enumerate(widths):
        m = ak.KernelRenormalization(net, width=w, temperature=0.05).fit(X, y)
        np.testing.assert_allclose(Q[k], m.Q_, rtol=1e-8)
        np.testing.assert_allclose(path.test_loss[k], np.mean((m.predict(Xt) - yt) ** 2), rtol=1e-8)
    # spectral path (one hidden layer) equals the Cholesky solves
    net1 = ak.MLP(depth=1, activation="relu", sigma_w=1.3)
    temps = [1.0, 0.3, 0.1, 0.03]
    p1 = ak.KernelRenormalization(net1, width=20, temperature=temps[0]).path(X, y, temperatures=temps)
    for k, t in enumerate(temps):
        m = ak.KernelRenormalization(net1, width=20, temperature=t, solver="cholesky").fit(X, y)
        np.testing.assert_allclose(p1.attribute("Q_")[k], m.Q_, rtol=1e-8)
        np.testing.assert_allclose(p1.action[k], m.action_, rtol=1e-10)
    # the NNGP baseline along the path is the Q = 1 GP
    gp = ak.GaussianProcess(net, ridge=0.05).fit(X, y)
    np.testing.assert_allclose(path.nngp_test_loss, np.mean((gp.predict(Xt) - yt) ** 2), rtol=1e-8)


def test_non_convergence_warns_and_flags():
    X, y = _data(11, p=30)
    net = ak.MLP(depth=2, activation="erf", sigma_w=1.3)
    with pytest.warns(ak.ConvergenceWarning, match="did not converge"):
        m = ak.KernelRenormalization(net, width=10, temperature=0.01, max_iter=1).fit(X, y)
    assert not m.converged_ and np.isfinite(m.Q_).all() and np.isfinite(m.residual_)


def test_multi_output_with_identical_columns_equals_scaled_single_output():
    """Two identical output columns: the data term doubles, i.e. the same saddle point as one
    output with the prior term halved (widths / 2)."""
    X, y = _data(12, p=30)
    net = ak.MLP(depth=2, activation="relu", sigma_w=1.4)
    m2 = ak.KernelRenormalization(net, width=40, temperature=0.05).fit(X, np.c_[y, y])
    m1 = ak.KernelRenormalization(net, width=20, temperature=0.05).fit(X, y)
    np.testing.assert_allclose(m2.Q_, m1.Q_, rtol=1e-8)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(width=0), ValueError, "width"),
    (dict(width=-5), ValueError, "width"),
    (dict(width=[10, 10, 10]), ValueError, "width"),
    (dict(width="wide"), TypeError, "width"),
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(temperature=np.nan), ValueError, "temperature"),
    (dict(solver="newton"), ValueError, "solver"),
    (dict(tol=-1.0), ValueError, "tol"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(Q0=[1.0, -1.0]), ValueError, "Q0"),
])
def test_bad_arguments_name_themselves(kwargs, exc, match):
    X, y = _data(13)
    net = ak.MLP(depth=2, activation="erf")
    args = dict(width=10, temperature=0.1) | kwargs
    with pytest.raises(exc, match=match):
        ak.KernelRenormalization(net, **args).fit(X, y)


def test_bad_data_and_architecture():
    X, y = _data(14)
    net = ak.MLP(depth=2, activation="erf")
    with pytest.raises(ValueError, match="y"):
        ak.KernelRenormalization(net, width=10, temperature=0.1).fit(X, y[:-1])
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="X"):
        ak.KernelRenormalization(net, width=10, temperature=0.1).fit(Xn, y)
    with pytest.raises(ValueError, match="depth"):
        ak.KernelRenormalization(ak.MLP(depth=0), width=10, temperature=0.1).fit(X, y)
    with pytest.raises(ValueError, match="spectral"):
        ak.KernelRenormalization(net, width=10, temperature=0.1, solver="spectral").fit(X, y)
    with pytest.raises(NotFittedError, match="not fitted"):
        ak.KernelRenormalization(net, width=10, temperature=0.1).predict(X)
    m = ak.KernelRenormalization(net, width=10, temperature=0.1).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        m.predict(X[:, :3])


def test_custom_activation_matches_builtin():
    X, y = _data(15, p=20)
    a = ak.KernelRenormalization(ak.MLP(depth=2, activation="tanh", sigma_w=1.2), width=15, temperature=0.1).fit(X, y)
    b = ak.KernelRenormalization(ak.MLP(depth=2, activation=np.tanh, sigma_w=1.2,
                                        activation_derivative=lambda x: 1 - np.tanh(x) ** 2),
                                 width=15, temperature=0.1).fit(X, y)
    np.testing.assert_allclose(a.Q_, b.Q_, rtol=1e-6)


@pytest.mark.parametrize("act", ["tanh", "gelu", "softplus"])
def test_hermite_layer_maps_match_high_order_quadrature(act):
    # issue #20: with method="hermite" the layer maps of smooth activations (values, E[phi' phi'] and
    # E[phi'' phi] / 2 for the gradient) are Mehler expansions; independent check: the action and
    # gradient of the order-128 polar quadrature, and finite differences of the expansion's action
    X, Y = _data(4, p=14, c=1)
    kw = dict(depth=3, activation=act, sigma_w=1.1, sigma_b=0.2)
    m = ak.KernelRenormalization(ak.MLP(**kw, method="hermite"), width=[20, 30, 40], temperature=0.1).fit(X, Y)
    q = ak.KernelRenormalization(ak.MLP(**kw, method="quadrature", quadrature_order=128), width=[20, 30, 40],
                                 temperature=0.1).fit(X, Y)
    Q = np.array([0.9, 1.3, 0.7])
    (S, g), (Sq, gq) = m.action(Q), q.action(Q)
    assert abs(S - Sq) <= 1e-10 * abs(Sq)
    np.testing.assert_allclose(g, gq, rtol=1e-8, atol=1e-9 * np.abs(gq).max())
    h = 1e-6
    for l in range(3):
        e = np.zeros(3)
        e[l] = h
        fd = (m.action(Q + e)[0] - m.action(Q - e)[0]) / (2 * h)
        assert abs(fd - g[l]) <= 1e-6 * np.abs(g).max()
    np.testing.assert_allclose(m.Q_, q.Q_, rtol=1e-8)


def test_auto_layer_maps_are_hermite_on_equal_norm_rows(activation="tanh"):
    """method="auto" (the Hermite layer maps since issue #20) on rows of a common norm (one shared
    table per layer in the core): action and gradient equal the NumPy reference's, and equal the
    order-128 quadrature's layer maps (independent) to 1e-9; identical for 1 and 2 threads."""
    X, Y = _data(11, p=12, c=2)
    X = X * np.sqrt(X.shape[1]) / np.linalg.norm(X, axis=1, keepdims=True)
    kw = dict(depth=2, activation=activation, sigma_w=1.2, sigma_b=0.1)
    Q, widths, T = np.array([1.2, 0.8]), [15.0, 25.0], 0.05
    m = ak.KernelRenormalization(ak.MLP(**kw), width=widths, temperature=T, n_threads=1).fit(X, Y)
    S, g = m.action(Q)
    np.testing.assert_allclose(S, ref.action(ak.MLP(**kw), X, Y, Q, widths, T), rtol=1e-10)
    g_ref = ref.action_gradient(ak.MLP(**kw), X, Y, Q, widths, T)
    np.testing.assert_allclose(g, g_ref, rtol=1e-8, atol=1e-9 * np.abs(g_ref).max())
    mq = ak.KernelRenormalization(ak.MLP(**kw, method="quadrature", quadrature_order=128), width=widths,
                                  temperature=T).fit(X, Y)
    Sq, gq = mq.action(Q)
    np.testing.assert_allclose(S, Sq, rtol=1e-9)
    np.testing.assert_allclose(g, gq, rtol=1e-7, atol=1e-9 * np.abs(gq).max())
    np.testing.assert_allclose(m.Q_, mq.Q_, rtol=1e-8)
    m2 = ak.KernelRenormalization(ak.MLP(**kw), width=widths, temperature=T, n_threads=2).fit(X, Y)
    assert np.array_equal(m.Q_, m2.Q_) and m.action(Q)[0] == m2.action(Q)[0]
