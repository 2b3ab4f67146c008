"""Adaptive tangent features (``ak.AdaptiveTangentFeatures``): the equivalence of the joint
(coefficients + transforms) problem with the regularized one, its limits (one unstructured group:
ridgeless tangent-kernel regression; reg -> inf: the lazy model), the IRLS against the NumPy
reference, the adapted kernel, and the induced penalties."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import adaptive_kernels as ak
from adaptive_kernels.reference.theories import tangent_features as ref


def _problem(width=3, d=2, n=3, n_out=1, sigma_b=0.0, act="tanh", seed=0, depth=1):
    net = ak.MLP(depth=depth, activation=act, sigma_b=sigma_b)
    theta = ak.init_params(net, width=width, n_features=d, n_out=n_out, seed=seed)
    rng = np.random.default_rng(seed + 10)
    X, Xt = rng.standard_normal((n, d)), rng.standard_normal((4, d))
    Y = np.sign(X[:, :1] * X[:, -1:]) + 0.3 * X[:, :1] + np.arange(n_out)
    tf = ak.tangent_features(net, theta, X, width=width, n_out=n_out)
    tt = ak.tangent_features(net, theta, Xt, width=width, n_out=n_out)
    return tf, tt, Y


def _groups(tf):
    from adaptive_kernels.theories.tangent_features import _layer_indices
    return [_layer_indices(tf, l) for l in range(len(tf.inputs))]


@settings(max_examples=15, deadline=None)
@given(width=st.integers(2, 4), d=st.integers(1, 3), n=st.integers(1, 4), n_out=st.integers(1, 2),
       sigma_b=st.sampled_from([0.0, 0.5]), reg=st.sampled_from([0.05, 0.5, 5.0]), seed=st.integers(0, 50),
       structure=st.sampled_from(["groups", "full"]))
def test_irls_matches_reference(width, d, n, n_out, sigma_b, reg, seed, structure):
    tf, tt, Y = _problem(width, d, n, n_out, sigma_b, seed=seed)
    r = (Y - tf.f0).ravel()
    Phi = tf.jacobian()
    groups = _groups(tf) if structure == "groups" else [np.arange(tf.n_params)]
    if np.linalg.cond(Phi @ Phi.T) > 1e8:
        return
    m = ak.AdaptiveTangentFeatures(structure, reg=reg).fit(tf, Y)
    theta, z, hist = ref.irls(Phi, groups, r, reg)
    assert m.converged_
    np.testing.assert_allclose(m.objective_, hist[-1], rtol=1e-8)
    np.testing.assert_allclose(m.update_, theta, rtol=1e-4, atol=1e-6 * np.abs(theta).max())
    np.testing.assert_allclose(Phi @ m.update_, r, atol=1e-8 * (1 + np.abs(r).max()))
    assert np.all(np.diff(m.objective_history_) <= 1e-9 * m.objective_history_[0])
    np.testing.assert_allclose(m.adapted_kernel_, ref.adapted_kernel(Phi, m.update_, groups, reg),
                               rtol=1e-8, atol=1e-10 * np.abs(m.kernel_).max())


def test_joint_problem_by_generic_optimizer_equals_regularized_problem():
    """BFGS over the transforms M_k (coefficients eliminated) reaches the objective of the
    equivalent regularized problem solved by IRLS, and the same predictor."""
    tf, tt, Y = _problem(width=2, d=2, n=3, sigma_b=0.0, seed=3)
    r = (Y - tf.f0).ravel()
    Phi, Phit = tf.jacobian(), tt.jacobian()
    groups = _groups(tf)                      # sizes 4 (hidden layer) and 2 (readout)
    reg = 0.3
    m = ak.AdaptiveTangentFeatures("groups", reg=reg).fit(tf, Y)
    sizes = [len(g) for g in groups]

    def unpack(x):
        out, o = [], 0
        for s in sizes:
            out.append(x[o:o + s * s].reshape(s, s))
            o += s * s
        return out

    x0 = np.concatenate([np.eye(s).ravel() for s in sizes])
    best = None
    for start in range(4):
        x = x0 + 0.3 * np.random.default_rng(start).standard_normal(x0.size) * (start > 0)
        res = minimize(lambda x: ref.joint_objective(unpack(x), Phi, groups, r, reg), x, method="BFGS",
                       options=dict(gtol=1e-10, maxiter=5000))
        if best is None or res.fun < best.fun:
            best = res
    np.testing.assert_allclose(best.fun, m.objective_, rtol=1e-6)
    M = np.zeros((tf.n_params, tf.n_params))
    for g, Mk in zip(groups, unpack(best.x)):
        M[np.ix_(g, g)] = Mk
    theta = M @ np.linalg.pinv(Phi @ M) @ r
    np.testing.assert_allclose(Phit @ theta, (m.predict(tt) - tt.f0).ravel(), rtol=1e-3, atol=1e-4)
    # the ridge (lazy) objective is larger
    assert m.objective_ < ref.irls(Phi, groups, r, 1e300)[2][-1]


@pytest.mark.parametrize("reg", [0.01, 1.0, 100.0])
def test_one_unstructured_group_is_ridgeless_tangent_kernel_regression(reg):
    tf, tt, Y = _problem(width=6, d=3, n=5, n_out=2, sigma_b=0.2, act="relu", seed=1, depth=2)
    K0, Kt = tf.kernel(), tt.kernel(tf)
    lazy = tt.f0 + (Kt @ np.linalg.solve(K0, (Y - tf.f0).ravel())).reshape(tt.f0.shape)
    m = ak.AdaptiveTangentFeatures("full", reg=reg).fit(tf, Y)
    np.testing.assert_allclose(m.predict(tt), lazy, rtol=1e-9, atol=1e-9)
    # the kernel changes by a rank-one term along r (alignment goes up) but the predictor does not
    r = (Y - tf.f0).ravel()
    assert ak.kernel_alignment(m.adapted_kernel_, r) > ak.kernel_alignment(K0, r)


def test_large_reg_is_the_lazy_model():
    tf, tt, Y = _problem(width=5, d=3, n=6, sigma_b=0.1, act="relu", seed=2, depth=2)
    K0, Kt = tf.kernel(), tt.kernel(tf)
    lazy = tt.f0[:, 0] + Kt @ np.linalg.solve(K0, (Y - tf.f0).ravel())
    y = Y[:, 0]
    np.testing.assert_allclose(ak.AdaptiveTangentFeatures(reg=np.inf).fit(tf, y).predict(tt), lazy, rtol=1e-10)
    gaps = [np.abs(ak.AdaptiveTangentFeatures(reg=reg).fit(tf, y).predict(tt) - lazy).max() for reg in (1e2, 1e4, 1e6)]
    assert gaps[2] < 1e-4 * np.abs(lazy).max() and gaps[2] < gaps[1] < gaps[0]
    assert np.abs(ak.AdaptiveTangentFeatures(reg=1e-2).fit(tf, y).predict(tt) - lazy).max() > 100 * gaps[2]


def test_adapted_kernel_aligns_better_with_the_target():
    tf, tt, Y = _problem(width=8, d=3, n=12, sigma_b=0.1, act="relu", seed=4, depth=2)
    r = (Y - tf.f0).ravel()
    m = ak.AdaptiveTangentFeatures("groups", reg=0.1).fit(tf, Y[:, 0])
    a0, a1 = ak.kernel_alignment(m.kernel_, r), ak.kernel_alignment(m.adapted_kernel_, r)
    assert a1 > a0
    assert ak.cka(m.adapted_kernel_, np.outer(r, r)) > ak.cka(m.kernel_, np.outer(r, r))
    # the transforms: unit directions inside their group, scales > 1, update = sum of groups
    u = sum(t["direction"] * np.linalg.norm(m.update_[_groups(tf)[t["groups"][0]]]) for t in m.transforms_)
    np.testing.assert_allclose(u, m.update_, atol=1e-12)
    assert all(t["scale"] >= 1 for t in m.transforms_)


def test_penalties_against_reference_and_digest():
    v = np.array([0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 30.0])
    for reg in (0.2, 1.0, 4.0):
        w, z = ak.one_sided_penalty(v, reg, return_scale=True)
        np.testing.assert_allclose(w, [ref.penalty(x, reg)[0] for x in v], rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(reg * z**3 * (z - 1), v**2, rtol=1e-9, atol=1e-14)
        w2 = ak.two_sided_penalty(v, reg)
        np.testing.assert_allclose(w2, [ref.two_sided_penalty(x, reg)[0] for x in v], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(ak.one_sided_penalty([0.1, 0.5, 1, 2, 5]), [0.00990, 0.21139, 0.66950, 1.86862, 6.24653],
                               atol=6e-6)
    big = 1e8
    for reg in (1.0, 3.0):   # large-v limits 2 sqrt(reg) v and 3 reg^(2/3) s^(2/3)
        assert abs(ak.one_sided_penalty(big, reg) / (2 * np.sqrt(reg) * big) - 1) < 1e-3
        assert abs(ak.two_sided_penalty(big, reg) / (3 * reg ** (2 / 3) * big ** (2 / 3)) - 1) < 1e-2
    with pytest.raises(ValueError, match="reg"):
        ak.one_sided_penalty(1.0, 0.0)


def test_estimator_contract():
    tf, tt, Y = _problem(width=4, d=2, n=4, seed=5)
    est = ak.AdaptiveTangentFeatures("groups", reg=0.5, tol=1e-10)
    with pytest.raises(NotFittedError):
        est.predict(tt)
    c = clone(est).set_params(reg=2.0)
    assert c.get_params()["reg"] == 2.0 and est.get_params()["reg"] == 0.5
    m = est.fit(tf, Y[:, 0])
    p = m.predict(tt)
    assert p.shape == (4,) and m.report_.solver == "irls" and m.n_iter_ >= 1
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m2.predict(tt), p)
    assert m.score(tf, Y[:, 0]) == pytest.approx(1.0)
    for kw, name in [(dict(reg=-1.0), "reg"), (dict(structure="bad"), "structure"), (dict(tol=0.0), "tol"),
                     (dict(max_iter=0), "max_iter")]:
        with pytest.raises(ValueError, match=name):
            ak.AdaptiveTangentFeatures(**kw).fit(tf, Y)
    with pytest.raises(TypeError, match="tf"):
        ak.AdaptiveTangentFeatures().fit(np.ones((4, 2)), Y)
    with pytest.raises(ValueError, match="y"):
        ak.AdaptiveTangentFeatures().fit(tf, Y[:3])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = ak.AdaptiveTangentFeatures(reg=0.01, max_iter=2).fit(tf, Y)
    assert not m.converged_ and any(issubclass(x.category, ak.ConvergenceWarning) for x in w)
