"""Robustness regressions: overflow, extreme scales, shape checks in the core, argument types."""
import numpy as np
import pytest

import adaptive_kernels as ak
from adaptive_kernels import _core
from adaptive_kernels._validation import as_matrix

RNG = np.random.default_rng(99)
X = RNG.standard_normal((7, 3))
X_TEST = RNG.standard_normal((4, 3))
Y = RNG.standard_normal(7)
Y2 = RNG.standard_normal((7, 2))
NET = ak.MLP(depth=2, activation="relu")


def _gram(seed=0, p=6):
    g = np.random.default_rng(seed).standard_normal((p, p + 3))
    return g @ g.T


# ---------------------------------------------------------------------------------------
# kernel_diagonal


@pytest.mark.parametrize("kernel", ["rbf", "NTK", "", None, 3, ["ntk"]])
def test_kernel_diagonal_rejects_bad_kernel(kernel):
    with pytest.raises(ValueError, match="kernel"):
        ak.kernel_diagonal(NET, X, kernel=kernel)


def test_kernel_diagonal_checks_net_and_threads():
    with pytest.raises(TypeError, match="net"):
        ak.kernel_diagonal("relu", X)
    with pytest.raises(ValueError, match="n_threads"):
        ak.kernel_diagonal(NET, X, n_threads=0)


# ---------------------------------------------------------------------------------------
# score


@pytest.mark.parametrize("make", [lambda: ak.GaussianProcess(NET), lambda: ak.KernelRidge(NET, kernel="ntk"),
                                  lambda: ak.NTKGradientFlow(NET, time=3.0)],
                         ids=["gp", "kr", "flow"])
def test_score_validates_y(make):
    est = make().fit(X, Y)
    with pytest.raises(ValueError, match=r"\by\b"):
        est.score(X_TEST, Y)                          # 4 test points, 7 targets
    with pytest.raises(ValueError, match=r"\by\b"):
        est.score(X_TEST, np.ones((4, 2)))            # 2 outputs, fitted with 1
    with pytest.raises(ValueError, match=r"\by\b"):
        est.score(X_TEST, np.full(4, np.nan))
    with pytest.raises(TypeError, match=r"\by\b"):
        est.score(X_TEST, None)
    with pytest.raises(ValueError, match=r"\bX\b"):
        est.score(np.ones((4, 2)), np.ones(4))
    # a 1-D y and its column give the same score
    yt = RNG.standard_normal(4)
    s1, s2 = est.score(X_TEST, yt), est.score(X_TEST, yt[:, None])
    assert np.isfinite(s1) and s1 == s2
    # training data: (near) interpolation
    assert est.score(X, Y) > 0.5


def test_score_multi_output():
    gp = ak.GaussianProcess(NET).fit(X, Y2)
    assert gp.score(X, Y2) > 0.99
    with pytest.raises(ValueError, match=r"\by\b"):
        gp.score(X, Y2[:, 0])
    with pytest.raises(ValueError, match=r"\by\b"):
        gp.score(X, np.ones((7, 3)))


# ---------------------------------------------------------------------------------------
# NTKGradientFlow time


@pytest.fixture(scope="module")
def flow():
    return ak.NTKGradientFlow(NET).fit(X, Y)


@pytest.mark.parametrize("time", ["10", "abc", b"1", True, np.bool_(False), np.array(["1.0"]),
                                  [1.0, "a"], np.array([1.0, 2.0], dtype=object), [True, False],
                                  1 + 2j, np.array([1j]), {"t": 1}, np.datetime64("2020-01-01"),
                                  np.array([1, 2], dtype="m8[s]")])
def test_flow_time_type_checked(flow, time):
    with pytest.raises(TypeError, match="time"):
        flow.predict(X_TEST, time=time)
    with pytest.raises(TypeError, match="time"):
        flow.coefficients(time)


@pytest.mark.parametrize("time", [-1, -np.inf, np.nan, [0.0, -1e-300], [[1.0]], [[1.0], [2.0, 3.0]]])
def test_flow_time_values_checked(flow, time):
    with pytest.raises(ValueError, match="time"):
        flow.predict(X_TEST, time=time)


def test_flow_time_accepted_forms(flow):
    ref = flow.predict(X_TEST, time=2.5)
    assert ref.shape == (4,)
    for t in (2.5, np.float64(2.5), np.float32(2.5), np.array(2.5)):
        np.testing.assert_array_equal(flow.predict(X_TEST, time=t), ref)
    np.testing.assert_array_equal(flow.predict(X_TEST, time=3), flow.predict(X_TEST, time=3.0))
    out = flow.predict(X_TEST, time=[0, 2.5, np.inf])
    assert out.shape == (3, 4)
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(out[1], ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(out[2], flow.predict(X_TEST), rtol=1e-12, atol=1e-14)
    assert flow.predict(X_TEST, time=np.arange(3)).shape == (3, 4)
    assert flow.coefficients(None).shape == (1, 7, 1)


# ---------------------------------------------------------------------------------------
# Kernel overflow


@pytest.mark.parametrize("func", [ak.nngp_kernel, ak.ntk_kernel,
                                  lambda net, *a: ak.lazy_kernels(net, *a)[0],
                                  lambda net, *a: ak.lazy_kernels(net, *a, ntk=False)[0]],
                         ids=["nngp", "ntk", "lazy", "lazy-nngp-only"])
@pytest.mark.parametrize("net", [ak.MLP(0), ak.MLP(1), ak.MLP(2, activation="tanh"), ak.MLP(2, activation="erf"),
                                 ak.MLP(1, activation="tanh", method="quadrature", quadrature_order=8)],
                         ids=["depth0", "relu", "tanh", "erf", "tanh-quad"])
def test_kernel_overflow_raises_floating_point_error(func, net):
    with pytest.raises(FloatingPointError, match="X1.*overflow"):
        func(net, X * 1e200)
    with pytest.raises(FloatingPointError, match="overflow"):
        func(net, X, X_TEST * 1e200)
    with pytest.raises(FloatingPointError, match="overflow"):
        func(net, X * 1e200, X_TEST)


def test_kernel_overflow_through_layers_and_sigma_w():
    with pytest.raises(FloatingPointError, match="sigma_w"):
        ak.nngp_kernel(ak.MLP(3, sigma_w=1e160), X)
    # finite input layer, the kernel grows by sigma_w^2 / 2 per ReLU layer until it overflows
    with pytest.raises(FloatingPointError, match="overflow"):
        ak.ntk_kernel(ak.MLP(40, sigma_w=1e10), X)
    with pytest.raises(FloatingPointError):
        ak.kernel_diagonal(ak.MLP(1), X * 1e200)


def test_kernel_overflow_custom_activation():
    # the input overflow is reported before the callable ever sees an infinite variance
    calls = []

    def act(x):
        calls.append(np.isfinite(x).all())
        return np.tanh(x)

    with pytest.raises(FloatingPointError, match="X1"):
        ak.nngp_kernel(ak.MLP(1, activation=act), X * 1e200)
    assert all(calls)


def test_large_but_finite_kernels_are_exact():
    # large but far from overflow (the closed forms multiply two variances): ReLU (sigma_b = 0) is positively homogeneous, K(cX) = c^2 K(X)
    net = ak.MLP(2, activation="relu", sigma_b=0.0)
    c = 2.0 ** 200
    K = ak.nngp_kernel(net, X)
    Kc = ak.nngp_kernel(net, X * c)
    assert np.isfinite(Kc).all()
    np.testing.assert_allclose(Kc / c**2, K, rtol=1e-13, atol=0)
    Th = ak.ntk_kernel(net, X * c, X_TEST)
    np.testing.assert_allclose(Th / c, ak.ntk_kernel(net, X, X_TEST), rtol=1e-13, atol=0)  # degree 1 in each


def test_overflow_check_is_thread_independent():
    Xb = np.random.default_rng(3).standard_normal((300, 5))
    Xb[277] *= 1e200                      # one bad row, deep in the matrix
    for nt in (1, 3, 8):
        with pytest.raises(FloatingPointError, match="overflow"):
            ak.ntk_kernel(NET, Xb, n_threads=nt)
    Xb[277] /= 1e200
    K1 = ak.ntk_kernel(NET, Xb, n_threads=1)
    assert np.isfinite(K1).all() and np.array_equal(K1, ak.ntk_kernel(NET, Xb, n_threads=5))


# ---------------------------------------------------------------------------------------
# Alignment / CKA at extreme scales


SCALES = [1e300, 1e200, 1e100, 1.0, 1e-100, 1e-200, 1e-300]


@pytest.mark.parametrize("s", SCALES)
def test_kernel_alignment_scale_invariant(s):
    K = _gram(1)
    y = np.random.default_rng(2).standard_normal((6, 2))
    ref = ak.kernel_alignment(K, y)
    assert ak.kernel_alignment(K * s, y) == pytest.approx(ref, rel=1e-12)
    assert ak.kernel_alignment(K, y * s) == pytest.approx(ref, rel=1e-12)
    assert ak.kernel_alignment(K * s, y * s) == pytest.approx(ref, rel=1e-12)
    assert ak.kernel_alignment(np.outer(y[:, 0], y[:, 0]) * s, y[:, 0]) == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize("s", SCALES)
def test_cka_scale_invariant(s):
    K1, K2 = _gram(1), _gram(2)
    ref = ak.cka(K1, K2)
    assert ak.cka(K1 * s, K2) == pytest.approx(ref, rel=1e-12)
    assert ak.cka(K1, K2 * s) == pytest.approx(ref, rel=1e-12)
    assert ak.cka(K1 * s, K2 / max(s, 1.0)) == pytest.approx(ref, rel=1e-12)
    assert ak.cka(K1 * s, K1) == pytest.approx(1.0, rel=1e-14)


def test_power_of_two_scaling_is_bit_exact():
    K1, K2 = _gram(4), _gram(5)
    y = np.random.default_rng(6).standard_normal(6)
    for s in (2.0**900, 2.0**-900, 2.0**-1000, 2.0**3):
        assert ak.cka(K1 * s, K2) == ak.cka(K1, K2)
        assert ak.kernel_alignment(K1 * s, y) == ak.kernel_alignment(K1, y)
        assert ak.kernel_alignment(K1, y * s) == ak.kernel_alignment(K1, y)


def test_alignment_subnormal_inputs():
    # subnormal kernels keep only a few significant bits, but the metrics stay finite and sane
    K1, K2 = _gram(1), _gram(2)
    y = np.random.default_rng(2).standard_normal(6)
    for s in (1e-310, 1e-318):
        assert ak.cka(K1 * s, K2) == pytest.approx(ak.cka(K1, K2), rel=1e-3)
        assert ak.kernel_alignment(K1 * s, y * s) == pytest.approx(ak.kernel_alignment(K1, y), rel=1e-3)
    assert ak.kernel_alignment(np.eye(3) * 5e-324, np.ones(3)) == pytest.approx(1 / np.sqrt(3), rel=1e-14)


def test_alignment_zero_still_named():
    with pytest.raises(ValueError, match=r"\bK\b"):
        ak.kernel_alignment(np.zeros((4, 4)), np.ones(4))
    with pytest.raises(ValueError, match=r"\by\b"):
        ak.kernel_alignment(np.eye(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"\bK1\b"):
        ak.cka(np.zeros((4, 4)), np.eye(4))
    with pytest.raises(ValueError, match=r"\bK2\b"):
        ak.cka(np.eye(4), np.full((4, 4), 1e-310))     # constant, tiny
    # tiny but not constant is fine
    assert np.isfinite(ak.cka(np.eye(4) * 1e-320, np.eye(4)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_core_alignment_rejects_non_finite(bad):
    K = np.ascontiguousarray(_gram(1))
    Kb = K.copy()
    Kb[2, 3] = bad
    yb = np.ones((6, 1))
    yb[4, 0] = bad
    with pytest.raises(ValueError, match=r"\bK\b.*non-finite"):
        _core.kernels.kernel_alignment(Kb, np.ones((6, 1)))
    with pytest.raises(ValueError, match=r"\by\b.*non-finite"):
        _core.kernels.kernel_alignment(K, yb)
    with pytest.raises(ValueError, match=r"\bK1\b.*non-finite"):
        _core.kernels.cka(Kb, K)
    with pytest.raises(ValueError, match=r"\bK2\b.*non-finite"):
        _core.kernels.cka(K, Kb)


def test_alignment_thread_independent():
    K1, K2 = _gram(7, 300), _gram(8, 300)
    y = np.random.default_rng(9).standard_normal((300, 3))
    for s in (1.0, 1e250, 1e-250):
        a = [ak.kernel_alignment(K1 * s, y, n_threads=n) for n in (1, 2, 7)]
        c = [ak.cka(K1 * s, K2, n_threads=n) for n in (1, 2, 7)]
        assert len(set(a)) == 1 and len(set(c)) == 1


# ---------------------------------------------------------------------------------------
# Core shape checks (never a faer assertion / RuntimeError "internal error")


def _no_internal_error(call, exc=ValueError, match=None):
    with pytest.raises(exc, match=match) as info:
        call()
    assert "internal error" not in str(info.value)


@pytest.mark.parametrize("w, V, y, name", [
    (np.ones(3), np.eye(2), np.ones((3, 1)), "eigenvectors"),
    (np.ones(3), np.ones((3, 2)), np.ones((3, 1)), "eigenvectors"),
    (np.ones(3), np.ones((2, 3)), np.ones((3, 1)), "eigenvectors"),
    (np.ones(2), np.eye(3), np.ones((3, 1)), "eigenvectors"),
    (np.ones(3), np.eye(3), np.ones((2, 1)), "y"),
    (np.array([1.0, np.nan, 2.0]), np.eye(3), np.ones((3, 1)), "eigenvalues"),
    (np.ones(3), np.full((3, 3), np.inf), np.ones((3, 1)), "eigenvectors"),
    (np.ones(3), np.eye(3), np.full((3, 1), np.nan), "y"),
])
def test_core_flow_coefficients_shapes(w, V, y, name):
    _no_internal_error(lambda: _core.predictors.ntk_flow_coefficients(w, V, y, np.ones(1), 1.0), match=rf"\b{name}\b")


def test_core_flow_unsorted_negative_eigenvalue():
    with pytest.raises(ak.NotPositiveDefiniteError):
        _core.predictors.ntk_flow_coefficients(np.array([3.0, -1.0, 2.0]), np.eye(3), np.ones((3, 1)), np.ones(1), 1.0)


def test_core_gp_predict_shapes():
    K = np.ascontiguousarray(_gram(1, 5))
    U = _core.linalg.cholesky(K, 0.1)[0]
    alpha = _core.linalg.cho_solve(U, np.ones((5, 1)))
    Kc = np.ones((5, 4))
    mean, var = _core.predictors.gp_predict(U, alpha, Kc, np.full(4, 100.0))
    assert mean.shape == (4, 1) and var.shape == (4,)
    _no_internal_error(lambda: _core.predictors.gp_predict(np.ones((5, 4)), alpha, Kc, None), match="factor")
    _no_internal_error(lambda: _core.predictors.gp_predict(np.ones((4, 5)), alpha, Kc, None), match="factor")
    _no_internal_error(lambda: _core.predictors.gp_predict(U, np.ones((3, 1)), Kc, None), match="alpha")
    _no_internal_error(lambda: _core.predictors.gp_predict(U, alpha, np.ones((3, 4)), None), match="K_cross")
    _no_internal_error(lambda: _core.predictors.gp_predict(U, alpha, Kc, np.ones(3)), match="k_test_diag")
    _no_internal_error(lambda: _core.predictors.gp_predict(U, alpha, Kc, np.full(4, np.nan)), match="k_test_diag")
    Us = U.copy()
    Us[2, 2] = 0.0
    _no_internal_error(lambda: _core.predictors.gp_predict(Us, alpha, Kc, np.ones(4)), match="factor")


@pytest.mark.parametrize("diag", [0.0, np.nan, np.inf, -0.0])
def test_core_cho_solve_singular_factor(diag):
    U = np.triu(np.ones((4, 4))) + np.eye(4)
    U[1, 1] = diag
    _no_internal_error(lambda: _core.linalg.cho_solve(U, np.ones((4, 2))), match=r"\bfactor\b")


def test_core_cho_solve_shapes():
    U = np.ascontiguousarray(np.eye(3) * 2.0)
    np.testing.assert_array_equal(_core.linalg.cho_solve(U, np.ones((3, 2))), np.full((3, 2), 0.25))
    _no_internal_error(lambda: _core.linalg.cho_solve(np.ones((3, 2)), np.ones((3, 1))), match="factor")
    _no_internal_error(lambda: _core.linalg.cho_solve(np.ones((2, 3)), np.ones((3, 1))), match="factor")
    _no_internal_error(lambda: _core.linalg.cho_solve(U, np.ones((2, 1))), match=r"\by\b")


# ---------------------------------------------------------------------------------------
# Date/time dtypes


@pytest.mark.parametrize("arr", [np.arange(6).reshape(3, 2).astype("m8[s]"),
                                 np.arange(6).reshape(3, 2).astype("M8[D]"),
                                 np.zeros((3, 2), dtype="V8"), np.zeros((3, 2), dtype="S3")])
def test_as_matrix_rejects_datetime_like(arr):
    with pytest.raises(TypeError, match="X1"):
        as_matrix("X1", arr)
    with pytest.raises(TypeError, match="X1"):
        ak.nngp_kernel(NET, arr)
    with pytest.raises(TypeError, match=r"\by\b"):
        ak.GaussianProcess(NET).fit(X[:3], arr[:, 0])


def test_as_matrix_still_accepts_numeric_kinds():
    for dt in (np.int8, np.uint16, np.int64, np.float16, np.float32, np.longdouble, bool):
        out = as_matrix("X", np.ones((2, 3), dtype=dt))
        assert out.dtype == np.float64 and out.flags.c_contiguous
    with pytest.raises(TypeError, match="complex"):
        as_matrix("X", np.ones((2, 2), dtype=complex))
