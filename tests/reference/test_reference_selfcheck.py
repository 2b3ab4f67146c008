import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from adaptive_kernels.reference import predictors
from adaptive_kernels.reference.kernels import alignment, quadrature
from adaptive_kernels.reference.kernels import lazy as lk

STRING_ACTIVATIONS = ["linear", "relu", "erf", "tanh", "gelu", "softplus"]
relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
step = lambda x: (x > 0).astype(float)  # noqa: E731
ident = lambda x: x  # noqa: E731

variance = st.floats(0.1, 3.0)
correlation = st.floats(-1.0, 1.0)


def cov(a, b, r):
    return a, b, r * np.sqrt(a * b)


def closed(activation, a, b, c):
    e, ed = lk.gaussian_expectations(activation, np.array([a]), np.array([b]), np.array([c]),
                                     need_derivative=True)
    return e[0], ed[0]


def points(P=6, d=5, seed=0):
    return np.random.default_rng(seed).standard_normal((P, d))


# ---------------------------------------------------------------- quadrature

@settings(max_examples=40, deadline=None)
@given(variance, variance, correlation)
def test_polar_rule_exact_for_homogeneous(a, b, r):
    a, b, c = cov(a, b, r)
    e, ed = closed("relu", a, b, c)
    tol = 1e-13 * np.sqrt(a * b)  # absolute floor for entries that vanish as rho -> -1
    assert quadrature.polar_expectation(relu, relu, a, b, c) == pytest.approx(e, rel=1e-12,
                                                                             abs=tol)
    assert quadrature.polar_expectation(step, step, a, b, c) == pytest.approx(ed, rel=1e-12)
    assert quadrature.polar_expectation(ident, ident, a, b, c) == pytest.approx(c, rel=1e-12,
                                                                               abs=tol)


@settings(max_examples=40, deadline=None)
@given(variance, variance, correlation)
def test_polar_rule_erf(a, b, r):
    a, b, c = cov(a, b, r)
    phi, dphi = lk.activation_functions("erf")
    e, ed = closed("erf", a, b, c)
    assert quadrature.polar_expectation(phi, phi, a, b, c, order=48) == pytest.approx(
        e, rel=1e-8, abs=1e-12)
    # E[phi' phi'] integrates a sharper Gaussian: ~2e-7 relative error at order 48
    assert quadrature.polar_expectation(dphi, dphi, a, b, c, order=48) == pytest.approx(
        ed, rel=1e-6)
    assert quadrature.polar_expectation(dphi, dphi, a, b, c, order=80) == pytest.approx(
        ed, rel=1e-10)


def test_polar_rule_converges_for_erf():
    a, b, c = 2.5, 1.7, 0.9
    phi, _ = lk.activation_functions("erf")
    exact, _ = closed("erf", a, b, c)
    errors = [abs(quadrature.polar_expectation(phi, phi, a, b, c, order=q) - exact)
              for q in (4, 8, 16, 32)]
    assert all(e1 < e0 for e0, e1 in zip(errors, errors[1:]) if e0 > 1e-14), errors
    assert errors[-1] < 1e-9


def test_degenerate_variance_convention():
    e, ed = closed("relu", 0.0, 2.0, 0.0)
    assert e == 0.0 and ed == 0.25


# ---------------------------------------------------------------- kernels

def test_depth_zero_is_linear_kernel():
    X1, X2 = points(), points(4, seed=1)
    for kernel in (lk.nngp_kernel, lk.ntk_kernel):
        np.testing.assert_array_equal(kernel(X1, X2, depth=0, sigma_w=1.3, sigma_b=0.4),
                                      lk.input_kernel(X1, X2, sigma_w=1.3, sigma_b=0.4))


@pytest.mark.parametrize("activation", STRING_ACTIVATIONS)
@pytest.mark.parametrize("sigma_b", [0.0, 0.3])
def test_kernels_symmetric_psd(activation, sigma_b):
    X = points(5, 4, seed=2)
    for depth in range(4):
        nngp = lk.nngp_kernel(X, depth=depth, activation=activation, sigma_w=1.2,
                              sigma_b=sigma_b)
        ntk = lk.ntk_kernel(X, depth=depth, activation=activation, sigma_w=1.2,
                            sigma_b=sigma_b)
        for K in (nngp, ntk):
            # swapping (a, b) moves the non-kink cut of the angular rule: the quadrature is
            # symmetric only up to its angular error (~3e-12 relative at order 32)
            np.testing.assert_allclose(K, K.T, rtol=1e-10, atol=1e-10 * np.abs(K).max())
            eig = np.linalg.eigvalsh(K)
            assert eig.min() >= -1e-10 * eig.max()
        assert np.all(np.diag(ntk) >= np.diag(nngp) - 1e-12)


def test_cross_kernel_matches_joint_kernel():
    X1, X2 = points(3, seed=3), points(4, seed=4)
    joint = lk.ntk_kernel(np.vstack([X1, X2]), depth=2, activation="tanh", sigma_b=0.2)
    cross = lk.ntk_kernel(X1, X2, depth=2, activation="tanh", sigma_b=0.2)
    np.testing.assert_allclose(cross, joint[:3, 3:], rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_closed_forms_match_quadrature(activation):
    X1, X2 = points(4, seed=5), points(3, seed=6)
    # relu is exact at any order; for erf (variances ~2 here) order 48 gives only ~5e-7
    # relative error on small entries after two layers, order 96 gives ~1e-11
    for kernel in (lk.nngp_kernel, lk.ntk_kernel):
        args = dict(depth=2, activation=activation, sigma_w=1.4, sigma_b=0.3)
        np.testing.assert_allclose(kernel(X1, X2, method="quadrature", order=96, **args),
                                   kernel(X1, X2, **args), rtol=1e-8)


def test_callable_activation_matches_named():
    X = points(4, seed=7)
    named = lk.ntk_kernel(X, depth=2, activation="tanh", order=24)
    exact_derivative = lk.ntk_kernel(X, depth=2, activation=np.tanh, order=24,
                                     derivative=lambda x: 1 - np.tanh(x) ** 2)
    finite_difference = lk.ntk_kernel(X, depth=2, activation=np.tanh, order=24)
    np.testing.assert_allclose(exact_derivative, named, rtol=1e-13)
    np.testing.assert_allclose(finite_difference, named, rtol=1e-8)


def test_empirical_nngp_converges():
    X = points(6, 5, seed=8)
    exact = lk.nngp_kernel(X, depth=2, activation="relu", sigma_w=np.sqrt(2), sigma_b=0.1)
    samples = lk.empirical_nngp(X, depth=2, activation="relu", sigma_w=np.sqrt(2),
                                sigma_b=0.1, width=2048, n_networks=20, seed=0)
    assert samples.shape == (20, 6, 6)
    stderr = samples.std(axis=0, ddof=1) / np.sqrt(20)
    assert np.all(np.abs(samples.mean(axis=0) - exact) <= 5 * stderr + 1e-12)


# ---------------------------------------------------------------- predictors

def _train_test_kernels():
    X, Xs = points(8, seed=9), points(3, seed=10)
    y = np.random.default_rng(11).standard_normal(8)
    Th = lk.ntk_kernel(X, depth=1)
    Th_cross = lk.ntk_kernel(X, Xs, depth=1)
    return Th, Th_cross, lk.ntk_kernel(Xs, depth=1), y


def test_gp_posterior_matches_direct_solve():
    K, Kc, Ks, y = _train_test_kernels()
    A = K + 0.1 * np.eye(len(K))
    for target in (y, np.stack([y, -2 * y], axis=1)):
        mean, var = predictors.gp_posterior(K, Kc, np.diag(Ks), target, 0.1)
        np.testing.assert_allclose(mean, Kc.T @ np.linalg.solve(A, target), rtol=1e-10)
        np.testing.assert_allclose(var, np.diag(Ks - Kc.T @ np.linalg.solve(A, Kc)),
                                   rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(predictors.kernel_ridge_mean(K, Kc, y, 0.1), mean[:, 0])


def test_ntk_flow_limits():
    Th, Tc, _, y = _train_test_kernels()
    at_inf = predictors.ntk_flow_mean(Th, Tc, y, np.inf)
    np.testing.assert_allclose(at_inf, Tc.T @ np.linalg.solve(Th, y), rtol=1e-8)
    np.testing.assert_array_equal(predictors.ntk_flow_mean(Th, Tc, y, 0.0), 0.0)
    late = predictors.ntk_flow_mean(Th, Tc, y, 1e4 / np.linalg.eigvalsh(Th).min(), lr=1.0)
    np.testing.assert_allclose(late, at_inf, rtol=1e-8)
    Y = np.stack([y, y], axis=1)
    np.testing.assert_allclose(predictors.ntk_flow_mean(Th, Tc, Y, 3.0)[:, 1],
                               predictors.ntk_flow_mean(Th, Tc, y, 3.0))


def test_ntk_flow_small_time_is_first_order():
    Th, Tc, _, y = _train_test_kernels()
    t = 1e-14
    np.testing.assert_allclose(predictors.ntk_flow_mean(Th, Tc, y, t, lr=0.5),
                               0.5 * t * Tc.T @ y, rtol=1e-6)


# ---------------------------------------------------------------- alignment

@settings(max_examples=30, deadline=None)
@given(st.integers(2, 8), st.integers(0, 10**6), st.floats(0.01, 100.0))
def test_alignment_properties(P, seed, scale):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(P)
    A, B = rng.standard_normal((P, 3)), rng.standard_normal((P, 4))
    K1, K2 = A @ A.T, B @ B.T
    assert alignment.kernel_alignment(np.outer(y, y), y) == pytest.approx(1.0)
    assert alignment.cka(K1, scale * K1) == pytest.approx(1.0)
    value = alignment.cka(K1, K2)
    assert -1e-12 <= value <= 1 + 1e-12
    assert alignment.cka(scale * K1, K2) == pytest.approx(value, rel=1e-10)
    assert -1 - 1e-12 <= alignment.kernel_alignment(K1, rng.standard_normal((P, 2))) <= 1
