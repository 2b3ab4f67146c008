"""The contract every estimator follows (``adaptive_kernels._base``): scikit-learn conventions
(clone, get_params/set_params, pickling a fitted model, NotFittedError, cross-validation in a
Pipeline), arrays owned by the model, the common fitted attributes of a theory, the path
template, and bad input refused with the argument named."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import adaptive_kernels as ak

RELU = ak.MLP(depth=2, activation="relu", sigma_b=0.1)
LINEAR = ak.MLP(depth=2, activation="linear")
TANH = ak.MLP(depth=1, activation="tanh")
SAMPLER = dict(n_chains=4, n_samples=100, burn_in=50, seed=1, n_threads=1)

# name -> (factory, parameter to change in set_params with a valid new value, a negative scalar parameter)
ESTIMATORS = {
    "gp": (lambda: ak.GaussianProcess(RELU, ridge=0.05), ("ridge", 0.1), "ridge"),
    "kernel_ridge": (lambda: ak.KernelRidge(RELU, kernel="ntk", ridge=0.01), ("ridge", 0.1), "ridge"),
    "ntk_flow": (lambda: ak.NTKGradientFlow(RELU, lr=0.5, time=2.0), ("time", 3.0), "time"),
    "kernel_renormalization": (lambda: ak.KernelRenormalization(RELU, width=8, temperature=0.1),
                               ("temperature", 0.2), "temperature"),
    "forward_backward": (lambda: ak.ForwardBackwardKernels(LINEAR, width=8, temperature=0.1), ("temperature", 0.2),
                         "temperature"),
    "mean_field_linear": (lambda: ak.BayesianMeanField(LINEAR, gamma=1.0, temperature=0.1, width=10),
                          ("gamma", 0.5), "gamma"),
    "mean_field_sampled": (lambda: ak.BayesianMeanField(TANH, gamma=0.5, temperature=0.1, width=10, **SAMPLER),
                           ("gamma", 0.25), "temperature"),
    "gradient_flow": (lambda: ak.GradientFlowFixedPoint(TANH, gamma=1.0, weight_decay=0.5, n_particles=32,
                                                        n_threads=1), ("weight_decay", 0.6), "weight_decay"),
    "multi_scale": (lambda: ak.MultiScaleAdaptive(ak.MLP(depth=1, activation="linear"), width=8, temperature=0.1,
                                                  chi=3.0), ("temperature", 0.2), "temperature"),
}
THEORIES = ("kernel_renormalization", "forward_backward", "mean_field_linear", "mean_field_sampled", "gradient_flow",
            "multi_scale")


def _data(P=12, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    return X, np.tanh(X[:, 0] - 0.5 * X[:, 1]), rng.standard_normal((5, d))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ak.ConvergenceWarning)
        yield


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_clone_and_params(name):
    make, (param, value), _ = ESTIMATORS[name]
    est = make()
    params = est.get_params()
    c = clone(est)
    assert type(c) is type(est) and c is not est
    assert c.get_params().keys() == params.keys()
    for k, v in params.items():
        assert c.get_params()[k] is v or c.get_params()[k] == v or k == "net"
    assert c.set_params(**{param: value}) is c
    assert c.get_params()[param] == value and est.get_params()[param] == params[param]
    with pytest.raises(ValueError):
        c.set_params(no_such_parameter=1)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_not_fitted_then_fit_predict_pickle(name):
    make, _, _ = ESTIMATORS[name]
    X, y, Xt = _data()
    est = make()
    with pytest.raises(NotFittedError):
        est.predict(Xt)
    assert est.fit(X, y) is est
    pred = est.predict(Xt)
    assert pred.shape == (len(Xt),) and np.all(np.isfinite(pred))
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(Xt), pred)
    assert np.isfinite(est.score(X, y))
    # two outputs keep their column axis
    Y2 = np.stack([y, -y], 1)
    assert clone(est).fit(X, Y2).predict(Xt).shape == (len(Xt), 2)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_model_owns_its_arrays(name):
    make, _, _ = ESTIMATORS[name]
    X, y, Xt = _data()
    est = make().fit(X, y)
    pred = est.predict(Xt)
    X += 1.0
    y *= -3.0
    np.testing.assert_array_equal(est.predict(Xt), pred)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_cross_validation_in_a_pipeline(name):
    make, _, _ = ESTIMATORS[name]
    X, y, _ = _data(P=15)
    scores = cross_val_score(make_pipeline(StandardScaler(), make()), X, y, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


BAD_X = {
    "nan": lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X),
    "inf": lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X),
    "empty": lambda X: X[:0],
    "1-D": lambda X: X[:, 0],
    "strings": lambda X: X.astype(str),
    "complex": lambda X: X + 1j,
}


@pytest.mark.parametrize("bad", sorted(BAD_X))
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_bad_inputs_name_the_argument(name, bad):
    make, _, negative = ESTIMATORS[name]
    X, y, Xt = _data()
    with pytest.raises((ValueError, TypeError), match=r"^X: "):
        make().fit(BAD_X[bad](X), y)
    with pytest.raises((ValueError, TypeError), match=r"^y: "):
        make().fit(X, np.where(np.arange(len(y)) == 2, np.nan, y) if bad == "nan" else y[:-1])
    est = make().fit(X, y)
    with pytest.raises((ValueError, TypeError), match=r"^X: "):
        est.predict(BAD_X[bad](Xt) if bad != "empty" else Xt[:, :2])
    with pytest.raises(ValueError, match=rf"^{negative}: "):
        make().set_params(**{negative: -1.0}).fit(X, y)


@pytest.mark.parametrize("name", THEORIES)
def test_theory_fitted_attributes(name):
    make, _, _ = ESTIMATORS[name]
    X, y, _ = _data()
    m = make().fit(X, y)
    assert isinstance(m, ak.TheoryEstimator)
    assert isinstance(m.report_, ak.SolveReport)
    assert m.converged_ == m.report_.converged and m.n_iter_ == m.report_.n_iter
    assert m.residual_ == m.report_.residual and len(m.residual_history_) >= 1
    assert len(m.kernels_) == m.net.depth
    np.testing.assert_array_equal(m.kernel_, m.kernels_[-1])
    P = len(X)
    assert all(k.shape == (P, P) for k in m.kernels_)
    T = m.temperature if hasattr(m, "temperature") else m.weight_decay   # the readout ridge
    np.testing.assert_allclose((m.kernel_ + T * np.eye(P)) @ m.dual_coef_, y[:, None], atol=1e-8)
    assert m.action_ is None or np.isfinite(m.action_)


@pytest.mark.parametrize("name", THEORIES)
def test_theory_path_template(name):
    make, (param, _), _ = ESTIMATORS[name]
    X, y, Xt = _data()
    base = make()
    key = {"gamma": "gammas", "temperature": "temperatures", "weight_decay": "weight_decays"}[param]
    values = [0.25, 0.5] if param == "gamma" else [0.3, 0.2]
    p = base.path(X, y, **{key: values}, X_test=Xt, y_test=np.tanh(Xt[:, 0]))
    assert isinstance(p, ak.PathResult) and len(p) == 2 and p.parameter == param
    np.testing.assert_array_equal(p.values, values)
    assert [m.get_params()[param] for m in p.models] == values
    assert p.test_loss.shape == p.nngp_test_loss.shape == (2,)
    assert [r[param] for r in p.rows()] == values
    with pytest.raises(ValueError, match=key):
        base.path(X, y)
    # the base estimator is left unfitted
    with pytest.raises(NotFittedError):
        base.predict(Xt)


def test_kernel_renormalization_width_path_values_per_layer():
    X, y, _ = _data()
    p = ak.KernelRenormalization(RELU, width=50, temperature=0.1).path(X, y, widths=[50, [20, 10]])
    assert p.values.shape == (2, 2) and p.attribute("Q_").shape == (2, 2)


def test_python_defaults_are_the_cores():
    from adaptive_kernels import _core
    kr = ak.KernelRenormalization(RELU, width=5, temperature=0.1).get_params()
    for k, v in _core.kernel_renormalization.defaults().items():
        assert kr[k] == v
    ms = ak.MultiScaleAdaptive(ak.MLP(depth=1, activation="linear"), width=5, temperature=0.1).get_params()
    for k, v in _core.multi_scale.defaults().items():
        assert ms[k] == v
    fb = ak.ForwardBackwardKernels(LINEAR, width=5, temperature=0.1).get_params()
    for k, v in _core.forward_backward.defaults().items():
        assert fb[k] == v
    gf = ak.GradientFlowFixedPoint(TANH, weight_decay=0.1).get_params()
    for k, v in _core.dmft.defaults().items():
        assert gf[k] == v or (k == "dt" and v == 0.0 and gf[k] is None)
    mf = ak.BayesianMeanField(TANH, temperature=0.1).get_params()
    for k, v in _core.tilted.defaults().items():
        if k in mf and mf[k] is not None:   # None: the core's default for the chosen solver
            assert mf[k] == v
    import inspect
    sig = inspect.signature(ak.tilted_moments).parameters
    for k, v in _core.mcmc.defaults().items():
        assert sig[k].default == v


def test_unknown_solver_option_is_named():
    X, y, _ = _data()
    with pytest.raises(ValueError, match="no_such_knob"):
        ak.BayesianMeanField(LINEAR, temperature=0.1, solver_options={"no_such_knob": 1}).fit(X, y)


# -- Ctrl-C during a path keeps the points solved before it (every theory) ------------------------
# The SIGINT is sent from the progress callback once the core's count passes the first point's
# work, so what is solved when it arrives does not depend on the machine's speed; the default
# SIGINT handler is installed for the test (a runner that starts jobs in the background ignores
# SIGINT, and Python then installs no KeyboardInterrupt handler).
TANH2 = ak.MLP(depth=2, activation="tanh")
INTERRUPTED_PATHS = {   # a fast first point, then slower ones (~1 s in all at least); data (P, d)
    "kernel_renormalization": (lambda: ak.KernelRenormalization(TANH2, width=20, temperature=0.1, n_threads=1),
                               "widths", [np.inf, 40, 20, 10, 5], (120, 4)),   # P = 30: the faster Hermite
                               # tables (a8a1ec2) finished the first point within the first 50 ms poll
    "forward_backward": (lambda: ak.ForwardBackwardKernels(ak.MLP(depth=2, activation="linear"), width=20,
                                                            temperature=0.05, n_threads=1),
                         "widths", [np.inf, 3000, 1000, 300, 100, 60, 40, 30], (100, 120)),
    "mean_field_linear": (lambda: ak.BayesianMeanField(ak.MLP(depth=3, activation="linear"), temperature=0.01,
                                                       solver="lbfgs", tol=1e-12, n_threads=1),
                          "gammas", [0.05] + [0.5 + 0.25 * i for i in range(16)], (60, 30)),
    "mean_field_sampled": (lambda: ak.BayesianMeanField(TANH, temperature=0.1, **dict(SAMPLER, n_samples=1000)),
                           "gammas", [0.1] + [0.25 + 0.1 * i for i in range(12)], (30, 4)),
    "gradient_flow": (lambda: ak.GradientFlowFixedPoint(TANH, gamma=1.0, weight_decay=0.5, n_particles=512,
                                                        n_threads=1),
                      "weight_decays", [2.0] + [0.5 - 0.03 * i for i in range(12)], (30, 4)),
    "multi_scale": (lambda: ak.MultiScaleAdaptive(ak.MLP(depth=1, activation="linear"), width=100, temperature=0.05,
                                                  order="tree", n_threads=1),
                    "chis", list(np.geomspace(1, 100, 40)), (60, 300)),
}


def _sigint_past(monkeypatch, est, threshold: int, record: list):
    """Patches the theory's progress bar: records ``(done, total)``; past ``threshold`` sends one
    SIGINT to this process (``threshold=None``: never)."""
    import contextlib
    import os
    import signal
    import sys
    import time

    @contextlib.contextmanager
    def bar(enabled, desc, expected_work, threshold_=5e7, **unit):
        def callback(done, total):
            record.append((done, total))
            if threshold is not None and done > threshold and not any(isinstance(r, float) for r in record):
                record.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)
        yield callback

    monkeypatch.setattr(sys.modules[type(est).__module__], "progress_bar", bar)


@pytest.fixture
def sigint_handler():
    import signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("name", THEORIES)
def test_ctrl_c_during_a_path_keeps_the_solved_points(name, monkeypatch, sigint_handler):
    import time
    make, key, values, (P, d) = INTERRUPTED_PATHS[name]
    X, y, _ = _data(P=P, d=d)
    param = key[:-1]
    # the first point's count of work, from a fit of it alone (the core reports its final count)
    record: list = []
    _sigint_past(monkeypatch, make(), None, record)
    make().set_params(**{param: values[0]}).fit(X, y)
    first = record[-1][0]
    full = make().path(X, y, **{key: values})
    assert not full.interrupted and len(full) == len(values)
    record = []
    _sigint_past(monkeypatch, make(), first, record)
    start = time.monotonic()
    with pytest.warns(RuntimeWarning, match=r"path interrupted: returning the \d+ of"):
        part = make().path(X, y, **{key: values}, X_test=X[:5], y_test=y[:5])
    sent = next(r for r in record if isinstance(r, float))
    assert time.monotonic() - sent < 2.0, "the path did not stop promptly"
    assert time.monotonic() - start < 30
    assert part.interrupted and 1 <= len(part) < len(values)
    n = len(part)
    # the kept points are complete and are those of the uninterrupted path
    np.testing.assert_array_equal(part.values, full.values[:n])
    for field in ("action", "converged", "n_iter", "residual"):
        np.testing.assert_array_equal(getattr(part, field), getattr(full, field)[:n])
    for a, b in zip(part.models, full.models):
        np.testing.assert_array_equal(a.kernel_, b.kernel_)
        np.testing.assert_array_equal(a.predict(X[:5]), b.predict(X[:5]))
    assert part.test_loss.shape == part.nngp_test_loss.shape == (n,) and len(part.rows()) == n


def test_ctrl_c_before_the_first_point_or_during_fit_raises(monkeypatch, sigint_handler):
    make, key, values, (P, d) = INTERRUPTED_PATHS["kernel_renormalization"]
    X, y, _ = _data(P=P, d=d)
    for run in (lambda: make().path(X, y, **{key: values[1:]}), lambda: make().fit(X, y)):
        _sigint_past(monkeypatch, make(), -1, [])   # at the first poll: the first point is still running
        with pytest.raises(KeyboardInterrupt):
            run()
