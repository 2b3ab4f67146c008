"""Input validation: bad input gives clear exceptions naming the argument, never a Rust panic."""
import warnings

import numpy as np
import pytest

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
        out = _core.lazy_kernels(Xb, None, depth=3, activation="tanh", derivative=None, sigma_w=1.0,
                                 sigma_b=0.0, method="quadrature", quadrature_order=128, ntk=True,
                                 progress=progress)
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
    with pytest.raises(RuntimeError, match="not fitted"):
        est.predict(X_TEST)
    assert not hasattr(est, "X_train_")


def test_flow_coefficients_before_fit():
    with pytest.raises(RuntimeError, match="not fitted"):
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
    with pytest.raises(RuntimeError, match="not fitted"):
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
        _core.cholesky(np.ascontiguousarray(K), 0.0)
    assert isinstance(info.value, np.linalg.LinAlgError)


def test_cholesky_of_pd_matrix_has_no_jitter():
    U, jitter, attempts = _core.cholesky(K5, 0.0)
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
# No panic across the Rust boundary


def _no_panic(func, *args, **kwargs):
    """Call func; any exception is fine except a Rust panic (pyo3_runtime.PanicException)."""
    try:
        func(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 -- PanicException derives from BaseException
        assert type(e).__name__ != "PanicException", f"{func}: Rust panic {e!r}"
        return e
    return None


def _bad_arrays():
    yield np.ones(3)
    yield np.ones((2, 2, 2))
    yield np.ones((0, 3))
    yield np.ones((3, 0))
    yield np.ones((0, 0))
    yield np.full((3, 3), np.nan)
    yield np.full((3, 3), np.inf)
    yield np.ones((4, 6))[:, ::2]                    # non-contiguous
    yield np.asfortranarray(np.ones((3, 4)))         # Fortran order
    yield np.ones((3, 3), dtype=np.float32)
    yield np.ones((3, 3), dtype=np.int64)
    yield np.array([["a", "b"], ["c", "d"]])
    yield np.array([[object(), 1.0]], dtype=object)
    yield np.ones((3, 3)) + 1j
    yield np.ones((1, 1))
    yield np.float64(2.0)
    yield None
    yield "X"


BAD = list(_bad_arrays())


def _hostile_callables():
    def raises(x):
        raise ZeroDivisionError

    def raises_base(x):
        raise ArithmeticError("nope")
    return [raises, raises_base, lambda x: x[:-1], lambda x: x * np.nan, lambda x: None,
            lambda x: np.ones((2, 2)), lambda x: "s", lambda x: x.astype(np.float32),
            lambda x: x[::2], lambda x: np.full_like(x, np.inf), lambda: 0, np.tanh]


def test_no_panic_public_functions():
    caught = 0
    nets = [ak.MLP(depth=d, activation=a, method=m)
            for d in (0, 2) for a in ("relu", "tanh") for m in ("auto", "quadrature")]
    nets += [ak.MLP(depth=1, activation=f, method="quadrature", quadrature_order=4)
             for f in _hostile_callables()]
    nets += [ak.MLP(depth=1, activation=np.tanh, activation_derivative=f, quadrature_order=4)
             for f in _hostile_callables()]
    for net in nets:
        for x in BAD + [X]:
            for func in (ak.nngp_kernel, ak.ntk_kernel, ak.lazy_kernels):
                caught += _no_panic(func, net, x) is not None
                caught += _no_panic(func, net, X, x) is not None
            caught += _no_panic(ak.kernel_diagonal, net, x, kernel="ntk") is not None
    for a in BAD + [K5]:
        for b in BAD + [K5, np.ones(5)]:
            caught += _no_panic(ak.cka, a, b) is not None
            caught += _no_panic(ak.kernel_alignment, a, b) is not None
    for x in BAD:
        for make in (lambda: ak.GaussianProcess(NET), lambda: ak.KernelRidge(NET, kernel="ntk"),
                     lambda: ak.NTKGradientFlow(NET)):
            caught += _no_panic(make().fit, x, Y) is not None
            caught += _no_panic(make().fit, X, x) is not None
            est = make().fit(X, Y)
            caught += _no_panic(est.predict, x) is not None
            caught += _no_panic(est.score, x, Y) is not None
            caught += _no_panic(est.score, X_TEST, x) is not None
    flow = ak.NTKGradientFlow(NET).fit(X, Y)
    for t in (np.nan, -1.0, [1, np.nan], np.ones((2, 2)), "t", None, [], np.inf):
        _no_panic(flow.predict, X_TEST, time=t)
    assert caught > 500  # the battery really exercised the error paths


def test_no_panic_core_functions():
    k = np.ascontiguousarray(K5)
    mats = BAD + [k, np.eye(3), np.eye(5), np.ones((5, 1)), np.ones((5, 2)), np.zeros((5, 5)),
                  -np.eye(5), np.ones((2, 5))]
    vecs = [np.ones(5), np.ones(3), np.ones(0), np.full(5, np.nan), np.ones(10)[::2],
            np.array([-1.0]), np.array([np.inf]), np.ones(5, dtype=np.float32), None, "v", 1.0]
    threads = [None, 0, 1, 2, -1]
    kw = dict(depth=1, activation="relu", derivative=None, sigma_w=1.0, sigma_b=0.0, method="auto",
              quadrature_order=8, ntk=True)
    errors = 0
    for a in mats:
        for b in mats[:12] + [None, k]:
            errors += _no_panic(_core.lazy_kernels, a, b, **kw) is not None
    base = np.ones((3, 2))
    for over in (dict(depth=-1), dict(depth=10**4), dict(depth=1.5), dict(activation="nope"),
                 dict(activation=3), dict(method="nope"), dict(quadrature_order=0),
                 dict(quadrature_order=10**6), dict(quadrature_order=-1), dict(sigma_w=-1.0),
                 dict(sigma_w=np.nan), dict(sigma_b=np.inf), dict(n_threads=0), dict(n_threads=-1),
                 dict(progress=lambda d, t: 1 / 0), dict(progress=3), dict(ntk=False)):
        errors += _no_panic(_core.lazy_kernels, base, None, **{**kw, **over}) is not None
    for f in _hostile_callables():
        for m in ("auto", "quadrature"):
            errors += _no_panic(_core.lazy_kernels, base, None, **{**kw, "activation": f, "method": m}) is not None
            errors += _no_panic(_core.lazy_kernels, base, None,
                                **{**kw, "activation": np.tanh, "derivative": f, "method": m}) is not None
    for a in mats:
        for r in (0.0, -1.0, np.nan, np.inf, 1e300):
            errors += _no_panic(_core.cholesky, a, r) is not None
        errors += _no_panic(_core.symmetric_eigen, a) is not None
        for b in mats:
            errors += _no_panic(_core.cho_solve, a, b) is not None
            errors += _no_panic(_core.kernel_alignment, a, b) is not None
            errors += _no_panic(_core.cka, a, b) is not None
    U = _core.cholesky(k, 0.1)[0]
    alpha = _core.cho_solve(U, np.ones((5, 1)))
    for u in (U, np.eye(3), np.ones((5, 4)), np.ones((0, 0)), U[:, ::1].T, np.asfortranarray(U)):
        for al in (alpha, np.ones((3, 1)), np.ones((5, 0)), np.ones(5)):
            for kc in (np.ones((5, 4)), np.ones((3, 4)), np.ones((5, 0)), np.ones((4, 5)).T):
                for kd in (None, np.ones(4), np.ones(3), np.full(4, np.nan), np.ones(8)[::2]):
                    errors += _no_panic(_core.gp_predict, u, al, kc, kd) is not None
    w, V = _core.symmetric_eigen(k)
    for ww in (w, np.ones(3), -w, np.full(5, np.nan), np.ones(0), w[::-1].copy(), w.reshape(1, 5)):
        for vv in (V, np.eye(3), np.ones((5, 3)), np.ones((3, 5)), np.ones((0, 0)), V.T):
            for yy in (np.ones((5, 1)), np.ones((3, 1)), np.ones((5, 0)), np.full((5, 1), np.nan)):
                for tt in (np.array([1.0, np.inf]), np.array([-1.0]), np.array([np.nan]), np.ones(0)):
                    for lr in (1.0, 0.0, -1.0, np.nan):
                        errors += _no_panic(_core.ntk_flow_coefficients, ww, vv, yy, tt, lr) is not None
    for nt in threads:
        errors += _no_panic(_core.cka, k, k, n_threads=nt) is not None
        errors += _no_panic(_core.kernel_alignment, k, np.ones((5, 1)), n_threads=nt) is not None
        errors += _no_panic(_core.cholesky, k, 0.0, n_threads=nt) is not None
        errors += _no_panic(_core.symmetric_eigen, k, n_threads=nt) is not None
    assert isinstance(_core.default_threads(), int) and _core.default_threads() >= 1
    assert errors > 1000


def test_no_panic_every_core_function_generic():
    """Every callable in ``_core`` (including ones added later) survives generic hostile calls."""
    funcs = {n: f for n, f in vars(_core).items() if callable(f) and not n.startswith("_")}
    assert {"lazy_kernels", "cholesky", "cho_solve", "gp_predict", "symmetric_eigen",
            "ntk_flow_coefficients", "kernel_alignment", "cka", "default_threads"} <= set(funcs)
    values = [None, 0, -1, np.nan, "x", np.ones(3), np.ones(4)[::2], np.ones((0, 0)), np.ones((2, 3)),
              np.eye(3), np.eye(6)[::2, ::2], np.full((2, 2), np.nan), np.ones((2, 2), np.float32),
              lambda *a: 1 / 0]
    calls = 0
    for name, f in funcs.items():
        for n_args in range(0, 7):
            for v in values:
                _no_panic(f, *([v] * n_args))
                _no_panic(f, *([np.eye(3)] * (n_args - 1) + [v]) if n_args else ())
                calls += 2
    assert calls > 100


@pytest.mark.parametrize("call", [
    lambda: _core.cka(np.eye(6)[::2, ::2], np.eye(3)),
    lambda: _core.kernel_alignment(np.eye(6)[::2, ::2], np.ones((3, 1))),
    lambda: _core.cholesky(np.eye(6)[::2, ::2], 0.0),
    lambda: _core.symmetric_eigen(np.eye(6)[::2, ::2]),
    lambda: _core.cho_solve(np.eye(3), np.ones((3, 2))[:, ::2]),
    lambda: _core.lazy_kernels(np.ones((4, 6))[:, ::2], None, depth=1, activation="relu",
                               derivative=None, sigma_w=1.0, sigma_b=0.0, method="auto",
                               quadrature_order=8, ntk=False),
    lambda: _core.gp_predict(np.eye(3), np.ones((3, 2))[:, ::2], np.ones((3, 2))),
    lambda: _core.ntk_flow_coefficients(np.ones(6)[::2], np.eye(3), np.ones((3, 1)), np.ones(1), 1.0),
], ids=["cka", "alignment", "cholesky", "eigen", "cho_solve", "lazy_kernels",
        "gp_predict", "flow"])
def test_core_rejects_non_contiguous(call):
    """Non-contiguous arrays passed straight to the core are refused with a ValueError."""
    with pytest.raises(ValueError, match="contiguous"):
        call()


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
        _core.ntk_flow_coefficients(np.ones(3), np.eye(2), np.ones((3, 1)), np.ones(1), 1.0)
