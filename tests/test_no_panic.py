"""No Rust panic across the binding: hostile input to every public function and every ``_core``
function (submodules included) gives a Python exception, never a ``PanicException``; the core
refuses non-contiguous arrays. (The input checks that name the argument: test_validation.py.)"""
import types

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


def _raw_net(**attributes):
    """A network as the core reads it (the attributes of an ak.MLP) without the MLP's validation, so
    that hostile values reach the core."""
    net = dict(depth=1, activation="relu", activation_derivative=None, sigma_w=1.0, sigma_b=0.0, method="auto",
               quadrature_order=8)
    return types.SimpleNamespace(**(net | attributes))


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
    lazy = _core.kernels.lazy_kernels
    net = _raw_net()
    errors = 0
    for a in mats:
        for b in mats[:12] + [None, k]:
            errors += _no_panic(lazy, a, b, net, ntk=True) is not None
    base = np.ones((3, 2))
    for bad_net in (None, "relu", 3, {"depth": 1}):     # not an MLP at all
        errors += _no_panic(lazy, base, None, bad_net, ntk=True) is not None
    for over in (dict(depth=-1), dict(depth=10**4), dict(depth=1.5), dict(activation="nope"),
                 dict(activation=3), dict(method="nope"), dict(quadrature_order=0),
                 dict(quadrature_order=10**6), dict(quadrature_order=-1), dict(sigma_w=-1.0),
                 dict(sigma_w=np.nan), dict(sigma_b=np.inf)):
        errors += _no_panic(lazy, base, None, _raw_net(**over), ntk=True) is not None
    for over in (dict(n_threads=0), dict(n_threads=-1), dict(progress=lambda d, t: 1 / 0), dict(progress=3),
                 dict(ntk=False)):
        errors += _no_panic(lazy, base, None, net, **{"ntk": True, **over}) is not None
    for f in _hostile_callables():
        for m in ("auto", "quadrature"):
            errors += _no_panic(lazy, base, None, _raw_net(activation=f, method=m), ntk=True) is not None
            errors += _no_panic(lazy, base, None, _raw_net(activation=np.tanh, activation_derivative=f, method=m),
                                ntk=True) is not None
    for a in mats:
        for r in (0.0, -1.0, np.nan, np.inf, 1e300):
            errors += _no_panic(_core.linalg.cholesky, a, r) is not None
        errors += _no_panic(_core.linalg.symmetric_eigen, a) is not None
        for b in mats:
            errors += _no_panic(_core.linalg.cho_solve, a, b) is not None
            errors += _no_panic(_core.kernels.kernel_alignment, a, b) is not None
            errors += _no_panic(_core.kernels.cka, a, b) is not None
    U = _core.linalg.cholesky(k, 0.1)[0]
    alpha = _core.linalg.cho_solve(U, np.ones((5, 1)))
    for u in (U, np.eye(3), np.ones((5, 4)), np.ones((0, 0)), U[:, ::1].T, np.asfortranarray(U)):
        for al in (alpha, np.ones((3, 1)), np.ones((5, 0)), np.ones(5)):
            for kc in (np.ones((5, 4)), np.ones((3, 4)), np.ones((5, 0)), np.ones((4, 5)).T):
                for kd in (None, np.ones(4), np.ones(3), np.full(4, np.nan), np.ones(8)[::2]):
                    errors += _no_panic(_core.predictors.gp_predict, u, al, kc, kd) is not None
    w, V = _core.linalg.symmetric_eigen(k)
    for ww in (w, np.ones(3), -w, np.full(5, np.nan), np.ones(0), w[::-1].copy(), w.reshape(1, 5)):
        for vv in (V, np.eye(3), np.ones((5, 3)), np.ones((3, 5)), np.ones((0, 0)), V.T):
            for yy in (np.ones((5, 1)), np.ones((3, 1)), np.ones((5, 0)), np.full((5, 1), np.nan)):
                for tt in (np.array([1.0, np.inf]), np.array([-1.0]), np.array([np.nan]), np.ones(0)):
                    for lr in (1.0, 0.0, -1.0, np.nan):
                        errors += _no_panic(_core.predictors.ntk_flow_coefficients, ww, vv, yy, tt, lr) is not None
    for nt in threads:
        errors += _no_panic(_core.kernels.cka, k, k, n_threads=nt) is not None
        errors += _no_panic(_core.kernels.kernel_alignment, k, np.ones((5, 1)), n_threads=nt) is not None
        errors += _no_panic(_core.linalg.cholesky, k, 0.0, n_threads=nt) is not None
        errors += _no_panic(_core.linalg.symmetric_eigen, k, n_threads=nt) is not None
    assert isinstance(_core.default_threads(), int) and _core.default_threads() >= 1
    assert errors > 1000


def test_no_panic_every_core_function_generic():
    """Every callable in ``_core`` and its submodules, ``_testing`` included (including ones added
    later), survives generic hostile calls."""
    funcs = {n: f for n, f in vars(_core).items() if callable(f) and not n.startswith("_")}
    for mod_name, mod in vars(_core).items():
        if isinstance(mod, types.ModuleType):
            funcs.update({f"{mod_name}.{n}": f for n, f in vars(mod).items() if callable(f) and not n.startswith("_")})
    assert {"kernels.lazy_kernels", "linalg.cholesky", "linalg.cho_solve", "predictors.gp_predict",
            "linalg.symmetric_eigen", "predictors.ntk_flow_coefficients", "kernels.kernel_alignment", "kernels.cka",
            "default_threads", "finite.sample_posterior", "kernel_renormalization.solve", "mean_field.solve",
            "mcmc.tilted_moments", "_testing.potential_and_gradient"} <= set(funcs)
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
    lambda: _core.kernels.cka(np.eye(6)[::2, ::2], np.eye(3)),
    lambda: _core.kernels.kernel_alignment(np.eye(6)[::2, ::2], np.ones((3, 1))),
    lambda: _core.linalg.cholesky(np.eye(6)[::2, ::2], 0.0),
    lambda: _core.linalg.symmetric_eigen(np.eye(6)[::2, ::2]),
    lambda: _core.linalg.cho_solve(np.eye(3), np.ones((3, 2))[:, ::2]),
    lambda: _core.kernels.lazy_kernels(np.ones((4, 6))[:, ::2], None, ak.MLP(depth=1, activation="relu",
                                                                            quadrature_order=8), ntk=False),
    lambda: _core.predictors.gp_predict(np.eye(3), np.ones((3, 2))[:, ::2], np.ones((3, 2))),
    lambda: _core.predictors.ntk_flow_coefficients(np.ones(6)[::2], np.eye(3), np.ones((3, 1)), np.ones(1), 1.0),
], ids=["cka", "alignment", "cholesky", "eigen", "cho_solve", "lazy_kernels",
        "gp_predict", "flow"])
def test_core_rejects_non_contiguous(call):
    """Non-contiguous arrays passed straight to the core are refused with a ValueError."""
    with pytest.raises(ValueError, match="contiguous"):
        call()
