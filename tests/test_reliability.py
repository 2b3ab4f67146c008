"""Regression tests of the reliability findings of issue #14 that are fixed (the memory guard has
its own file, test_memory.py): integers the core cannot take are refused naming the argument,
``score`` checks the output count, a trained ensemble checks the feature count."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import adaptive_kernels as ak

X = np.random.default_rng(0).standard_normal((10, 3))
Y = np.tanh(X[:, 0])


@pytest.mark.parametrize("call, name", [
    (lambda: ak.BayesianMeanField(ak.MLP(depth=1, activation="tanh"), temperature=0.1, seed=2**70).fit(X, Y), "seed"),
    (lambda: ak.BayesianMeanField(ak.MLP(depth=1, activation="tanh"), temperature=0.1, n_samples=2**70).fit(X, Y),
     "n_samples"),
    (lambda: ak.sample_posterior(ak.MLP(depth=1), X, Y, width=4, temperature=0.1, n_samples=2**70), "n_samples"),
    (lambda: ak.train_gd(ak.MLP(depth=1), X, Y, width=4, steps=2**65), "steps"),
    (lambda: ak.MLP(depth=2**70), "depth"),
    (lambda: ak.tilted_moments(np.eye(2), np.zeros((2, 2)), n_chains=2**80), "n_chains"),
])
def test_integers_beyond_64_bits_are_named(call, name):
    with pytest.raises(ValueError, match=rf"^{name}: must be <="):
        call()


@pytest.mark.parametrize("make", [
    lambda: ak.KernelRenormalization(ak.MLP(depth=1), width=5, temperature=0.1),
    lambda: ak.BayesianMeanField(ak.MLP(depth=1, activation="linear"), temperature=0.1),
    lambda: ak.GaussianProcess(ak.MLP(depth=1)),
])
def test_score_checks_the_output_count(make):
    m = make().fit(X, Y)
    with pytest.raises(ValueError, match="^y: has 2 output columns"):
        m.score(X, np.stack([Y, Y], 1))


def test_trained_networks_predict_checks_the_features():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = ak.train_gd(ak.MLP(depth=1), X, Y, width=4, steps=5)
    with pytest.raises(ValueError, match="^X: has 2 features, the networks were trained on 3"):
        g.predict(X[:, :2])
    assert g.predict(X).shape == (10,)


def test_duplicated_rows_with_a_deep_sampled_net_name_X():
    Xd = X.copy()
    Xd[5] = Xd[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="^X: .*duplicated rows"):
            ak.BayesianMeanField(ak.MLP(depth=2, activation="tanh"), temperature=0.1, n_samples=200,
                                 n_chains=4).fit(Xd, np.tanh(Xd[:, 0]))
        # one hidden layer: the singular K^0 is handled on its support
        ak.BayesianMeanField(ak.MLP(depth=1, activation="tanh"), temperature=0.1, n_samples=200,
                             n_chains=4).fit(Xd, np.tanh(Xd[:, 0]))


def test_gradient_descent_divergence_is_caught_before_overflow():
    rng = np.random.default_rng(1)
    Xg, yg = rng.standard_normal((20, 3)), rng.standard_normal(20)
    with pytest.raises(FloatingPointError, match="^lr: gradient descent diverged .*objective"):
        ak.train_gd(ak.MLP(depth=1, activation="relu"), Xg, yg, width=16, lr=1.5, steps=2000)


def test_huge_inputs_give_an_error_not_a_non_finite_ntk():
    with pytest.raises(FloatingPointError, match="^(X|lr): "):
        ak.train_gd(ak.MLP(depth=1, activation="relu"), X * 1e155, Y, width=4, steps=1, lr=1e-300)


def test_interrupt_during_burn_in_raises_instead_of_a_nan_mean():
    import os
    import signal
    import threading
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt, match="burn-in"):
            ak.sample_posterior(ak.MLP(depth=1, activation="tanh"), X, Y, X[:2], width=64, temperature=0.1,
                                n_chains=2, n_samples=10, burn_in=10**8, step_size=1e-3)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)


def test_exact_posterior_scales_are_limited_like_every_solver():
    """The 1,000-example random fuzz (#14): temperature = 1e308 gave "log_evidence: is -inf"
    naming no argument; temperature and gamma are now limited to [1e-100, 1e100] as elsewhere."""
    rng = np.random.default_rng(5)
    X, XT = rng.standard_normal((6, 3)), rng.standard_normal((4, 3))
    y = np.tanh(X[:, 0])
    net = ak.MLP(depth=1, activation="linear")
    with pytest.raises(ValueError, match="temperature"):
        ak.exact_linear_posterior(net, X, y, X_test=XT, width=4, temperature=1e308, chi=0.5)
    with pytest.raises(ValueError, match="gamma"):
        ak.exact_linear_posterior(net, X, y, width=4, temperature=0.1, parameterization="mean_field", gamma=1e200)
    r = ak.exact_linear_posterior(net, X, y, X_test=XT, width=4, temperature=1e100, chi=0.5)
    assert np.isfinite(r.log_evidence)
