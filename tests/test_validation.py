"""Input validation: bad input gives clear exceptions naming the argument (the no-panic battery: test_no_panic.py)."""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import adaptive_kernels as ak
from adaptive_kernels import _core

RNG = np.random.default_rng(1234)
X = RNG.standard_normal((6, 3))
X_TEST = RNG.standard_normal((4, 3))
Y = RNG.standard_normal(6)
NET = ak.MLP(depth=1, activation="relu")


def _gram(seed=0, p=5):
    g = np.random.default_rng(seed).standard_normal((p, p + 2))
    return g @ g.T


K5 = _gram()


def _with_nan(a, where=(0, 0), value=np.nan):
    a = np.array(a, dtype=float, copy=True)
    a[where] = value
    return a


# ---------------------------------------------------------------------------------------
# MLP


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(depth=-1), ValueError, "depth"),
    (dict(depth=1.0), TypeError, "depth"),
    (dict(depth=1.5), TypeError, "depth"),
    (dict(depth="2"), TypeError, "depth"),
    (dict(depth=True), TypeError, "depth"),
    (dict(depth=None), TypeError, "depth"),
    (dict(depth=1, activation="sigmoid"), ValueError, "activation"),
    (dict(depth=1, activation="RELU"), ValueError, "activation"),
    (dict(depth=1, activation=3), TypeError, "activation"),
    (dict(depth=1, activation=None), TypeError, "activation"),
    (dict(depth=1, activation=["relu"]), TypeError, "activation"),
    (dict(depth=1, activation="relu", activation_derivative=np.cos), ValueError, "activation_derivative"),
    (dict(depth=1, activation=np.tanh, activation_derivative=2.0), TypeError, "activation_derivative"),
    (dict(depth=1, sigma_w=-0.5), ValueError, "sigma_w"),
    (dict(depth=1, sigma_b=-1e-9), ValueError, "sigma_b"),
    (dict(depth=1, sigma_w=np.nan), ValueError, "sigma_w"),
    (dict(depth=1, sigma_b=np.inf), ValueError, "sigma_b"),
    (dict(depth=1, sigma_w="1"), TypeError, "sigma_w"),
    (dict(depth=1, quadrature_order=1), ValueError, "quadrature_order"),
    (dict(depth=1, quadrature_order=0), ValueError, "quadrature_order"),
    (dict(depth=1, quadrature_order=-4), ValueError, "quadrature_order"),
    (dict(depth=1, quadrature_order=129), ValueError, "quadrature_order"),
    (dict(depth=1, quadrature_order=10**6), ValueError, "quadrature_order"),
    (dict(depth=1, quadrature_order=16.0), TypeError, "quadrature_order"),
    (dict(depth=1, method="closed"), ValueError, "method"),
    (dict(depth=1, method="Auto"), ValueError, "method"),
])
def test_mlp_rejects_bad_parameters(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        ak.MLP(**kwargs)


def test_mlp_accepts_boundary_values():
    for net in (ak.MLP(0), ak.MLP(np.int64(2)), ak.MLP(1, sigma_w=0.0, sigma_b=0.0),
                ak.MLP(1, activation="tanh", quadrature_order=2),
                ak.MLP(1, activation="tanh", quadrature_order=128),
                ak.MLP(1, activation=np.tanh, method="quadrature")):
        assert isinstance(net.depth, int) and net.depth >= 0
        K = ak.nngp_kernel(net, X[:3])
        assert K.shape == (3, 3) and np.isfinite(K).all()


# ---------------------------------------------------------------------------------------
# Kernels


KERNEL_FUNCS = [ak.nngp_kernel, ak.ntk_kernel, lambda net, *a, **k: ak.lazy_kernels(net, *a, **k)[0]]
KERNEL_IDS = ["nngp_kernel", "ntk_kernel", "lazy_kernels"]


@pytest.mark.parametrize("func", KERNEL_FUNCS, ids=KERNEL_IDS)
@pytest.mark.parametrize("args, exc, name", [
    ((np.ones(3),), ValueError, "X1"),                              # 1-D
    ((np.ones((2, 3, 4)),), ValueError, "X1"),                      # 3-D
    ((np.float64(1.0),), ValueError, "X1"),                         # 0-D
    ((np.ones((0, 3)),), ValueError, "X1"),                         # no rows
    ((np.ones((3, 0)),), ValueError, "X1"),                         # no features
    ((_with_nan(X),), ValueError, "X1"),
    ((_with_nan(X, (2, 1), np.inf),), ValueError, "X1"),
    ((_with_nan(X, (5, 2), -np.inf),), ValueError, "X1"),
    ((X.astype(str),), TypeError, "X1"),
    ((X.astype(object),), TypeError, "X1"),
    (([["a", "b"], ["c", "d"]],), TypeError, "X1"),
    ((X + 1j,), TypeError, "X1"),
    ((None,), TypeError, "X1"),
    ((X, np.ones((4, 2))), ValueError, "X2"),                       # feature mismatch
    ((X, np.ones(3)), ValueError, "X2"),
    ((X, np.ones((4, 3, 1))), ValueError, "X2"),
    ((X, np.ones((0, 3))), ValueError, "X2"),
    ((X, _with_nan(X_TEST)), ValueError, "X2"),
    ((X, X_TEST.astype(object)), TypeError, "X2"),
])
def test_kernels_reject_bad_arrays(func, args, exc, name):
    with pytest.raises(exc, match=name):
        func(NET, *args)


@pytest.mark.parametrize("func", KERNEL_FUNCS, ids=KERNEL_IDS)
@pytest.mark.parametrize("n_threads, exc", [(0, ValueError), (-1, ValueError), (-8, ValueError),
                                            (1.5, TypeError), ("2", TypeError), (10**6, ValueError)])
def test_kernels_reject_bad_n_threads(func, n_threads, exc):
    with pytest.raises(exc, match="n_threads"):
        func(NET, X, n_threads=n_threads)


def test_bad_ak_num_threads_env(monkeypatch):
    monkeypatch.setenv("AK_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="AK_NUM_THREADS"):
        ak.nngp_kernel(NET, X)
    monkeypatch.setenv("AK_NUM_THREADS", "0")
    with pytest.raises(ValueError, match="AK_NUM_THREADS"):
        ak.nngp_kernel(NET, X)
    monkeypatch.setenv("AK_NUM_THREADS", "1")
    assert np.array_equal(ak.nngp_kernel(NET, X), ak.nngp_kernel(NET, X, n_threads=2))


@pytest.mark.parametrize("func", KERNEL_FUNCS, ids=KERNEL_IDS)
@pytest.mark.parametrize("net", [None, "relu", {"depth": 1}, 3])
def test_kernels_reject_non_mlp(func, net):
    with pytest.raises(TypeError, match="net"):
        func(net, X)


def test_integer_and_bool_inputs_are_converted():
    Xi = np.arange(12).reshape(4, 3)
    np.testing.assert_array_equal(ak.nngp_kernel(NET, Xi), ak.nngp_kernel(NET, Xi.astype(float)))
    Xb = (Xi % 2).astype(bool)
    np.testing.assert_array_equal(ak.nngp_kernel(NET, Xb), ak.nngp_kernel(NET, Xb.astype(float)))


# ---------------------------------------------------------------------------------------
# Custom activations


def _raise_zero_division(x):
    raise ZeroDivisionError("custom activation divided by zero")


@pytest.mark.parametrize("method", ["auto", "quadrature"])
@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("func", [ak.nngp_kernel, ak.ntk_kernel])
def test_callable_activation_exception_propagates(method, depth, func):
    net = ak.MLP(depth=depth, activation=_raise_zero_division, method=method)
    with pytest.raises(ZeroDivisionError, match="custom activation divided by zero"):
        func(net, X)


def test_callable_derivative_exception_propagates():
    net = ak.MLP(depth=2, activation=np.tanh, activation_derivative=_raise_zero_division)
    with pytest.raises(ZeroDivisionError):
        ak.ntk_kernel(net, X)
    # the NNGP does not need the derivative
    assert np.isfinite(ak.nngp_kernel(net, X)).all()


def test_callable_not_called_at_depth_zero():
    net = ak.MLP(depth=0, activation=_raise_zero_division)
    np.testing.assert_allclose(ak.nngp_kernel(net, X), X @ X.T / X.shape[1], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("bad", [
    lambda x: x[:-1],                       # wrong length
    lambda x: np.concatenate([x, x]),       # too long
    lambda x: 1.0,                          # scalar
    lambda x: np.stack([x, x]),             # wrong ndim
    lambda x: None,
    lambda x: "not numbers",
], ids=["short", "long", "scalar", "2d", "none", "string"])
def test_callable_wrong_output_raises_value_error(bad):
    with pytest.raises(ValueError):
        ak.nngp_kernel(ak.MLP(depth=1, activation=bad), X)


def test_callable_wrong_length_message_names_activation():
    with pytest.raises(ValueError, match="activation.*elementwise"):
        ak.nngp_kernel(ak.MLP(depth=1, activation=lambda x: x[:-1]), X)
    net = ak.MLP(depth=1, activation=np.tanh, activation_derivative=lambda x: x[:2])
    with pytest.raises(ValueError, match="activation_derivative"):
        ak.ntk_kernel(net, X)


@pytest.mark.parametrize("bad", [lambda x: x * np.nan, lambda x: np.full_like(x, np.inf),
                                 lambda x: np.where(x > 0, np.nan, x)], ids=["nan", "inf", "half-nan"])
@pytest.mark.parametrize("method", ["auto", "quadrature"])
def test_callable_non_finite_raises_floating_point_error(bad, method):
    with pytest.raises(FloatingPointError, match="activation"):
        ak.nngp_kernel(ak.MLP(depth=2, activation=bad, method=method), X)


def test_callable_derivative_non_finite_raises_floating_point_error():
    net = ak.MLP(depth=1, activation=np.tanh, activation_derivative=lambda x: x * np.nan)
    with pytest.raises(FloatingPointError, match="activation_derivative"):
        ak.ntk_kernel(net, X)


def test_progress_callback_exception_propagates():
    class Stop(Exception):
        pass

    def progress(done, total):
        raise Stop

    net = ak.MLP(depth=3, activation="tanh", quadrature_order=128)
    Xb = np.random.default_rng(0).standard_normal((40, 4))
    try:
        out = _core.kernels.lazy_kernels(Xb, None, net, ntk=True, progress=progress)   # tanh: quadrature
    except Stop:
        return
    # only acceptable if the work finished before the first progress poll (50 ms)
    ref = ak.lazy_kernels(net, Xb)
    assert np.array_equal(out[0], ref[0])


# ---------------------------------------------------------------------------------------
# Predictors


def _fit_gp(**kw):
    return ak.GaussianProcess(NET, **kw).fit(X, Y)


PREDICTORS = [
    pytest.param(lambda: ak.GaussianProcess(NET), id="GaussianProcess"),
    pytest.param(lambda: ak.GaussianProcess(NET, kernel="ntk"), id="GaussianProcess-ntk"),
    pytest.param(lambda: ak.KernelRidge(NET), id="KernelRidge"),
    pytest.param(lambda: ak.NTKGradientFlow(NET), id="NTKGradientFlow"),
]


@pytest.mark.parametrize("make", PREDICTORS)
@pytest.mark.parametrize("Xf, yf, exc, name", [
    (np.ones(6), Y, ValueError, "X"),
    (np.ones((6, 3, 1)), Y, ValueError, "X"),
    (np.ones((0, 3)), np.ones(0), ValueError, "X"),
    (_with_nan(X), Y, ValueError, "X"),
    (_with_nan(X, (1, 1), np.inf), Y, ValueError, "X"),
    (X.astype(str), Y, TypeError, "X"),
    (X.astype(object), Y, TypeError, "X"),
    (None, Y, TypeError, "X"),
    (X, Y[:5], ValueError, "y"),                       # rows mismatch
    (X, np.ones((7, 2)), ValueError, "y"),
    (X, np.ones((6, 2, 2)), ValueError, "y"),
    (X, np.ones((6, 0)), ValueError, "y"),
    (X, np.float64(1.0), ValueError, "y"),
    (X, _with_nan(Y, 3), ValueError, "y"),
    (X, _with_nan(Y, 0, np.inf), ValueError, "y"),
    (X, np.array(["a"] * 6), TypeError, "y"),
    (X, Y.astype(object), TypeError, "y"),
    (X, None, TypeError, "y"),
])
def test_fit_rejects_bad_data(make, Xf, yf, exc, name):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        make().fit(Xf, yf)


@pytest.mark.parametrize("make", PREDICTORS)
@pytest.mark.parametrize("Xp, exc", [
    (np.ones((4, 2)), ValueError),       # feature mismatch with training data
    (np.ones((4, 5)), ValueError),
    (np.ones(3), ValueError),
    (np.ones((2, 2, 3)), ValueError),
    (np.ones((0, 3)), ValueError),
    (_with_nan(X_TEST), ValueError),
    (X_TEST.astype(str), TypeError),
    (X_TEST.astype(object), TypeError),
])
def test_predict_rejects_bad_data(make, Xp, exc):
    est = make().fit(X, Y)
    with pytest.raises(exc, match=r"\bX\b"):
        est.predict(Xp)


@pytest.mark.parametrize("make", PREDICTORS)
def test_predict_before_fit(make):
    est = make()
    with pytest.raises(NotFittedError, match="not fitted"):
        est.predict(X_TEST)
    assert not hasattr(est, "X_train_")


def test_flow_coefficients_before_fit():
    with pytest.raises(NotFittedError, match="not fitted"):
        ak.NTKGradientFlow(NET).coefficients(1.0)


@pytest.mark.parametrize("cls", [ak.GaussianProcess, ak.KernelRidge])
@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(kernel="rbf"), ValueError, "kernel"),
    (dict(kernel="NNGP"), ValueError, "kernel"),
    (dict(kernel=None), ValueError, "kernel"),
    (dict(ridge=-1e-3), ValueError, "ridge"),
    (dict(ridge=np.nan), ValueError, "ridge"),
    (dict(ridge=np.inf), ValueError, "ridge"),
    (dict(ridge="0.1"), TypeError, "ridge"),
    (dict(n_threads=0), ValueError, "n_threads"),
    (dict(n_threads=-2), ValueError, "n_threads"),
    (dict(n_threads=2.0), TypeError, "n_threads"),
])
def test_gp_rejects_bad_parameters(cls, kwargs, exc, name):
    with pytest.raises(exc, match=name):
        cls(NET, **kwargs).fit(X, Y)


@pytest.mark.parametrize("cls", [ak.GaussianProcess, ak.KernelRidge, ak.NTKGradientFlow])
def test_predictors_reject_non_mlp(cls):
    with pytest.raises(TypeError, match="net"):
        cls("relu").fit(X, Y)


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr=-1.0), ValueError, "lr"),
    (dict(lr=np.inf), ValueError, "lr"),
    (dict(lr=np.nan), ValueError, "lr"),
    (dict(lr="1"), TypeError, "lr"),
    (dict(time=-1.0), ValueError, "time"),
    (dict(time=-np.inf), ValueError, "time"),
    (dict(time=np.nan), ValueError, "time"),
    (dict(time="10"), TypeError, "time"),
    (dict(ridge=-0.1), ValueError, "ridge"),
    (dict(n_threads=0), ValueError, "n_threads"),
    (dict(n_threads=-1), ValueError, "n_threads"),
])
def test_flow_rejects_bad_parameters(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        ak.NTKGradientFlow(NET, **kwargs).fit(X, Y)


@pytest.mark.parametrize("time", [-1.0, np.nan, [1.0, -2.0], [[1.0, 2.0]], [np.nan]])
def test_flow_predict_rejects_bad_time(time):
    flow = ak.NTKGradientFlow(NET).fit(X, Y)
    with pytest.raises(ValueError, match="time"):
        flow.predict(X_TEST, time=time)
    with pytest.raises(ValueError, match="time"):
        flow.coefficients(time)


def test_gp_return_std_and_cov_exclusive():
    gp = _fit_gp()
    with pytest.raises(ValueError, match="return_std"):
        gp.predict(X_TEST, return_std=True, return_cov=True)


def test_parameter_errors_leave_no_fitted_state():
    gp = ak.GaussianProcess(NET, ridge=-1.0)
    with pytest.raises(ValueError, match="ridge"):
        gp.fit(X, Y)
    with pytest.raises(NotFittedError, match="not fitted"):
        gp.predict(X_TEST)


# ---------------------------------------------------------------------------------------
# Alignment


@pytest.mark.parametrize("K, y, exc, name", [
    (np.ones(5), np.ones(5), ValueError, "K"),
    (np.ones((5, 4)), np.ones(5), ValueError, "K"),
    (np.ones((5, 5, 1)), np.ones(5), ValueError, "K"),
    (np.ones((0, 0)), np.ones(0), ValueError, "K"),
    (_with_nan(K5), np.ones(5), ValueError, "K"),
    (_with_nan(K5, (4, 4), np.inf), np.ones(5), ValueError, "K"),
    (K5.astype(str), np.ones(5), TypeError, "K"),
    (K5.astype(object), np.ones(5), TypeError, "K"),
    (np.zeros((5, 5)), np.ones(5), ValueError, "K"),
    (K5, np.ones(4), ValueError, "y"),
    (K5, np.ones((6, 2)), ValueError, "y"),
    (K5, np.ones((5, 2, 1)), ValueError, "y"),
    (K5, _with_nan(np.ones(5), 2), ValueError, "y"),
    (K5, np.zeros(5), ValueError, "y"),
    (K5, np.array(list("abcde")), TypeError, "y"),
])
def test_kernel_alignment_rejects_bad_input(K, y, exc, name):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        ak.kernel_alignment(K, y)


@pytest.mark.parametrize("K1, K2, exc, name", [
    (np.ones(5), K5, ValueError, "K1"),
    (np.ones((5, 4)), K5, ValueError, "K1"),
    (np.ones((0, 0)), K5, ValueError, "K1"),
    (_with_nan(K5), K5, ValueError, "K1"),
    (K5.astype(object), K5, TypeError, "K1"),
    (K5, np.ones((5, 5, 2)), ValueError, "K2"),
    (K5, np.ones((4, 5)), ValueError, "K2"),
    (K5, _gram(1, 4), ValueError, "K2"),            # shape mismatch
    (K5, _with_nan(K5, (1, 2), -np.inf), ValueError, "K2"),
    (K5, K5.astype(str), TypeError, "K2"),
    (np.zeros((5, 5)), K5, ValueError, "K1"),       # zero after centering
    (np.ones((5, 5)), K5, ValueError, "K1"),
    (K5, np.full((5, 5), 3.0), ValueError, "K2"),
])
def test_cka_rejects_bad_input(K1, K2, exc, name):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        ak.cka(K1, K2)


@pytest.mark.parametrize("n_threads, exc", [(0, ValueError), (-1, ValueError), (1.0, TypeError)])
def test_alignment_rejects_bad_n_threads(n_threads, exc):
    with pytest.raises(exc, match="n_threads"):
        ak.cka(K5, K5, n_threads=n_threads)
    with pytest.raises(exc, match="n_threads"):
        ak.kernel_alignment(K5, np.ones(5), n_threads=n_threads)


# ---------------------------------------------------------------------------------------
# Positive definiteness


def test_not_positive_definite_error_is_linalg_error():
    assert issubclass(ak.NotPositiveDefiniteError, np.linalg.LinAlgError)
    assert ak.NotPositiveDefiniteError is ak.exceptions.NotPositiveDefiniteError
    assert issubclass(ak.NumericalJitterWarning, RuntimeWarning)


@pytest.mark.parametrize("K", [np.diag([1.0, -1.0]), np.array([[1.0, 2.0], [2.0, 1.0]]),
                               -np.eye(3), np.diag([1.0, 1.0, -1e-2])])
def test_cholesky_indefinite_raises(K):
    with pytest.raises(ak.NotPositiveDefiniteError, match="K") as info:
        _core.linalg.cholesky(np.ascontiguousarray(K), 0.0)
    assert isinstance(info.value, np.linalg.LinAlgError)


def test_cholesky_of_pd_matrix_has_no_jitter():
    U, jitter, attempts = _core.linalg.cholesky(K5, 0.0)
    assert jitter == 0.0
    np.testing.assert_allclose(U.T @ U, K5, rtol=1e-12, atol=1e-12 * np.abs(K5).max())
    assert np.allclose(np.tril(U, -1), 0.0)


def test_rank_deficient_kernel_warns_jitter_and_predicts():
    Xd = np.vstack([X, X])                      # duplicate training points: K is singular
    yd = np.concatenate([Y, Y])
    with pytest.warns(ak.NumericalJitterWarning, match="jitter"):
        gp = ak.GaussianProcess(NET, ridge=0.0).fit(Xd, yd)
    assert gp.jitter_ > 0
    mean, std = gp.predict(X_TEST, return_std=True)
    assert np.isfinite(mean).all() and np.isfinite(std).all()
    # and it still (nearly) interpolates the consistent duplicated targets
    np.testing.assert_allclose(gp.predict(X), Y, atol=1e-3 * np.abs(Y).max())


def test_full_rank_kernel_no_jitter_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ak.NumericalJitterWarning)
        gp = ak.GaussianProcess(NET, ridge=1e-3).fit(X, Y)
    assert gp.jitter_ == 0.0


# ---------------------------------------------------------------------------------------
# Formerly known defects (were strict xfails; fixed)


def test_kernel_diagonal_rejects_unknown_kernel():
    with pytest.raises(ValueError, match="kernel"):
        ak.kernel_diagonal(NET, X, kernel="rbf")


def test_kernel_diagonal_matches_full_kernel():
    for kernel, func in (("nngp", ak.nngp_kernel), ("ntk", ak.ntk_kernel)):
        np.testing.assert_allclose(ak.kernel_diagonal(NET, X, kernel=kernel), np.diag(func(NET, X)),
                                   rtol=1e-14, atol=0)


def test_score_rejects_y_with_wrong_rows():
    gp = _fit_gp()
    with pytest.raises(ValueError, match=r"\by\b"):
        gp.score(X_TEST, Y)             # 4 test points, 6 targets


def test_flow_predict_rejects_string_time():
    flow = ak.NTKGradientFlow(NET).fit(X, Y)
    with pytest.raises((TypeError, ValueError), match="time"):
        flow.predict(X_TEST, time="abc")


@pytest.mark.parametrize("net, scale", [(ak.MLP(1), 1e200), (ak.MLP(2, activation="tanh"), 1e200),
                                        (ak.MLP(3, sigma_w=1e160), 1.0)], ids=["relu-X", "tanh-X", "sigma_w"])
def test_kernel_overflow_raises(net, scale):
    with pytest.raises((FloatingPointError, ValueError)):
        K = ak.nngp_kernel(net, X * scale)
        assert np.isfinite(K).all()   # reached only if no exception: then the result must be finite


@pytest.mark.parametrize("case", ["align-huge", "align-tiny", "cka-huge", "cka-tiny"])
def test_alignment_scale_extremes(case):
    A, B = np.diag([1.0, 2.0, 0.0]), np.diag([1.0, 0.0, 3.0])
    if case == "align-huge":
        assert ak.kernel_alignment(np.eye(3) * 1e200, np.ones(3)) == pytest.approx(1 / np.sqrt(3))
    elif case == "align-tiny":
        assert ak.kernel_alignment(np.eye(3) * 1e-200, np.ones(3)) == pytest.approx(1 / np.sqrt(3))
    elif case == "cka-huge":
        assert ak.cka(A * 1e300, B) == pytest.approx(0.4514469490716345)
    else:
        assert ak.cka(A * 1e-300, B) == pytest.approx(0.4514469490716345)


def test_core_flow_coefficients_checks_eigenvector_shape():
    with pytest.raises(ValueError, match="eigenvectors"):
        _core.predictors.ntk_flow_coefficients(np.ones(3), np.eye(2), np.ones((3, 1)), np.ones(1), 1.0)
