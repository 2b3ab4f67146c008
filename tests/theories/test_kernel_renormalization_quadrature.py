"""Kernel renormalization with ``method="quadrature"`` at large pre-activation variance.

The gradient of the action in Q holds ``E[phi''(u) phi(v)] / 2`` for the layer maps 2..L. phi''
of tanh/gelu/softplus lives within ~1 of 0, a band of width ~1/sqrt(variance) of the standard
Gaussian that the fixed polar rule (q radial x q/2 angular nodes) misses as the variance grows:
tanh, sigma_w = 9.6, rank-1 X gave dS/dQ_1 = -20,884 against -4,145 by finite differences, while
``method="auto"`` (Hermite expansions; the graded rule or the collinear 1-D rule where they
miss) is right. The estimator now warns, naming ``method``, when a fit or ``action`` needs a
layer-input variance above what the rule resolves; below that limit the gradient agrees with
finite differences of the action (independent check: the action itself).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import adaptive_kernels as ak


def _data(seed: int, collinear: bool, P: int = 6, d: int = 3):
    rng = np.random.default_rng(seed)
    X = np.outer(rng.standard_normal(P), rng.standard_normal(d)) if collinear else rng.standard_normal((P, d))
    X = X * np.sqrt(d) / np.linalg.norm(X, axis=1).max()      # largest |x|^2 / d = 1
    return X, np.tanh(X[:, 0]) + 0.1 * rng.standard_normal(P)


def _fit(net, X, y):
    """A one-iteration fit: only the landscape (``action``) is inspected."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = ak.KernelRenormalization(net, width=5.0, temperature=0.1, max_iter=1, n_threads=1,
                                     progress=False).fit(X, y)
    return m, [w for w in caught if issubclass(w.category, RuntimeWarning) and "method" in str(w.message)]


def _gradient_and_fd(m, Q, h=1e-5):
    """dS/dQ, the central difference of S in Q_1 (the component that needs phi'' at depth 2:
    Q_2 only scales the last map's output) and the warnings naming ``method``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        S, g = m.action(Q)
    warned = [w for w in caught if issubclass(w.category, RuntimeWarning) and "method" in str(w.message)]
    e = np.zeros(len(Q))
    e[0] = h
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fd = (m.action(Q + e)[0] - m.action(Q - e)[0]) / (2 * h)
    return np.asarray(g), fd, warned


def test_issue_case_auto_is_right_and_quadrature_warns():
    X, y = _data(0, collinear=True)
    Q = np.array([0.7, 1.1])
    kw = dict(depth=2, activation="tanh", sigma_w=9.6)
    auto, warned = _fit(ak.MLP(**kw), X, y)
    assert not warned
    g, fd, warned = _gradient_and_fd(auto, Q)
    assert not warned
    assert abs(g[0] - fd) <= 1e-5 * np.abs(g).max()
    quad, warned = _fit(ak.MLP(**kw, method="quadrature"), X, y)
    assert len(warned) == 1
    msg = str(warned[0].message)
    assert msg.startswith("method: 'quadrature'") and "quadrature_order=32" in msg and "method='auto'" in msg
    assert warned[0].filename == __file__          # points at the caller's fit
    gq, fdq, warned = _gradient_and_fd(quad, Q)
    assert len(warned) == 1 and warned[0].filename == __file__
    # what the warning is about: the rule's dS/dQ_1 is not the derivative of its own action
    assert abs(gq[0] - fdq) > 0.5 * max(abs(fdq), abs(gq[1]))


@pytest.mark.parametrize("activation", ["tanh", "gelu", "softplus"])
@pytest.mark.parametrize("order", [32, 128])
def test_quadrature_gradient_is_right_wherever_it_does_not_warn(activation, order):
    """A sigma_w grid on collinear and generic rows (data other than the ones the limit was
    measured on): every fit without the warning has dS/dQ_1 within 5e-5 (relative to max |dS/dQ|)
    of the central difference of the action; the large sigma_w end warns."""
    Q = np.array([0.7, 1.1])
    n_quiet = n_warned = 0
    for collinear in (True, False):
        X, y = _data(1, collinear)
        for sigma_w in (1.0, 1.5, 2.5, 3.5, 5.0):   # below and near each limit, and above
            net = ak.MLP(depth=2, activation=activation, sigma_w=sigma_w, method="quadrature",
                         quadrature_order=order)
            m, fit_warned = _fit(net, X, y)
            g, fd, warned = _gradient_and_fd(m, Q)
            if warned:
                n_warned += 1
                continue
            n_quiet += 1
            err = abs(g[0] - fd) / np.abs(g).max()
            assert err <= 5e-5, (collinear, sigma_w, g, fd)
    assert n_quiet >= 2 and n_warned >= 2, (n_quiet, n_warned)


def test_no_warning_where_the_method_does_not_use_the_polar_rule_for_phi2():
    X, y = _data(0, collinear=True)
    for net in (ak.MLP(depth=2, activation="erf", sigma_w=9.6, method="quadrature"),   # closed form
                ak.MLP(depth=1, activation="tanh", sigma_w=9.6, method="quadrature"),  # no phi'' at depth 1
                ak.MLP(depth=2, activation="tanh", sigma_w=9.6, method="hermite")):
        assert not _fit(net, X, y)[1]
