"""MultiScaleAdaptive for deep linear networks (L >= 2 hidden layers): the core against the NumPy
reference, against the exact finite-width posterior (a quadrature over the kernel scale), and its
limits: the tree level is BayesianMeanField's deep-linear closed form, the corrected order at chi = 1
is KernelRenormalization, infinite width is the NNGP, large chi makes the trace term negligible;
first-order transitions (several minima of the scale's action) and Algorithm 1's path."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import adaptive_kernels as ak
from adaptive_kernels.reference.theories import multi_scale as ref


def _data(P, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    return X, np.sign(X @ rng.standard_normal(d)), rng.standard_normal((5, d))


def _lin(depth, sw=1.0):
    return ak.MLP(depth=depth, activation="linear", sigma_w=sw)


@settings(max_examples=10, deadline=None, database=None)
@given(P=st.integers(3, 10), d=st.integers(2, 12), depth=st.integers(2, 3), sw=st.floats(0.7, 1.3),
       N=st.floats(4.0, 60.0), T=st.floats(0.05, 0.5), chi=st.floats(0.3, 60.0),
       order=st.sampled_from(["tree", "corrected"]), seed=st.integers(0, 1000))
def test_core_matches_the_reference(P, d, depth, sw, N, T, chi, order, seed):
    X, y, Xt = _data(P, d, seed)
    m = ak.MultiScaleAdaptive(_lin(depth, sw), width=N, temperature=T, chi=chi, order=order).fit(X, y)
    r = ref.fit_deep(X, y, sigma_w=sw, depth=depth, width=N, temperature=T, chi=chi, order=order)
    assert m.converged_
    assert m.layer_scale_ == pytest.approx(r["layer_scale"], rel=1e-8)
    assert m.scale_ == pytest.approx(r["scale"], rel=1e-8)
    np.testing.assert_allclose(m.kernel_, r["kernel"], rtol=1e-7, atol=1e-9 * np.abs(r["kernel"]).max())
    np.testing.assert_allclose(m.discrepancy_, r["discrepancy"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(m.weight_covariance_, r["weight_covariance"], rtol=1e-7, atol=1e-9)
    # the Laplace precision of U: closed form (core) vs a finite-difference Hessian over the layers (reference)
    assert m.curvature_ == pytest.approx(r["curvature"], rel=1e-5)
    mean, std = m.predict(Xt, return_std=True)
    rm, rs = ref.predict_deep(r, Xt)
    np.testing.assert_allclose(mean, rm, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(std, rs, rtol=1e-5, atol=1e-9)


# -- against the exact posterior -------------------------------------------------------------------
P, D, N, T, SW = 20, 30, 40, 0.1, 1.1


def test_the_quadrature_is_the_exact_one_hidden_layer_posterior():
    X, y, Xt = _data(P, D, seed=1)
    for chi in (1.0, 40.0):
        ex = ak.exact_linear_posterior(_lin(1, SW), X, y, Xt, width=N, temperature=T, chi=chi)
        q = ref.exact_deep_linear(X, y, Xt, sigma_w=SW, depth=1, width=N, temperature=T, chi=chi)
        np.testing.assert_allclose(q["mean"], np.ravel(ex.mean), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(q["std"] ** 2, np.ravel(ex.var), rtol=1e-9)


@pytest.mark.parametrize("depth", [2, 3])
def test_against_the_exact_deep_posterior(depth):
    X, y, Xt = _data(P, D, seed=1)
    net = _lin(depth, SW)
    gp = ak.GaussianProcess(net, ridge=T).fit(X, y).predict(Xt)
    tree_err = []
    for chi in (1.0, 10.0, float(N)):
        ex = ref.exact_deep_linear(X, y, Xt, sigma_w=SW, depth=depth, width=N, temperature=T, chi=chi)
        fits = {o: ak.MultiScaleAdaptive(net, width=N, temperature=T, chi=chi, order=o).fit(X, y)
                for o in ("tree", "corrected")}
        err = {o: np.linalg.norm(f.predict(Xt) - ex["mean"]) / np.linalg.norm(ex["mean"]) for o, f in fits.items()}
        gp_err = np.linalg.norm(gp - ex["mean"]) / np.linalg.norm(ex["mean"])
        tree_err.append(err["tree"])
        # proportional-limit accuracy (O(1/N) of the shift), far better than the tree level and the NNGP
        assert err["corrected"] < 2.5e-2 / chi ** 0.5, (chi, err)
        assert err["corrected"] < err["tree"] / 5 and err["corrected"] < gp_err / 4, (chi, err, gp_err)
        # output std with the Laplace term of the scale
        _, sd = fits["corrected"].predict(Xt, return_std=True)
        assert np.max(np.abs(sd / ex["std"] - 1)) < 1e-2, chi
        assert fits["corrected"].scale_ == pytest.approx(ex["scale"], rel=3e-2)
        # first-layer weight covariance: spike along X^T t
        we = np.linalg.eigvalsh(ex["weight_covariance"])[::-1]
        assert fits["corrected"].weight_eigenvalues_[0] == pytest.approx(we[0], rel=2e-2)
    # the tree level becomes exact as chi grows
    assert tree_err[0] > tree_err[1] > tree_err[2], tree_err


# -- limits and relations -------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [2, 3])
def test_tree_level_is_the_deep_linear_mean_field_closed_form(depth):
    """chi = N gamma^2 sigma_w^2, T -> T / sigma_w^2: same predictor, Q = 1 / (1 - kappa), and the
    first-layer weight covariance gives BayesianMeanField's first-layer kernel Phi^1."""
    X, y, Xt = _data(15, 12, seed=2)
    sw, width, T_ = 1.2, 50.0, 0.1
    for chi in (1.0, 10.0, 200.0):
        net = _lin(depth, sw)
        m = ak.MultiScaleAdaptive(net, width=width, temperature=T_, chi=chi, order="tree").fit(X, y)
        mf = ak.BayesianMeanField(net, gamma=np.sqrt(chi / width) / sw, temperature=T_ / sw ** 2).fit(X, y)
        np.testing.assert_allclose(m.predict(Xt), mf.predict(Xt), rtol=1e-9, atol=1e-12)
        assert m.layer_scale_ == pytest.approx(1 / (1 - mf.kappa_), rel=1e-9)
        Xp = sw * X / np.sqrt(X.shape[1])
        np.testing.assert_allclose(Xp @ m.weight_covariance_ @ Xp.T, mf.kernels_[0], rtol=1e-8,
                                   atol=1e-10 * np.abs(mf.kernels_[0]).max())


@pytest.mark.parametrize("depth", [2, 3])
def test_chi_one_corrected_is_kernel_renormalization(depth):
    X, y, Xt = _data(25, 20, seed=3)
    net = _lin(depth, 1.1)
    m = ak.MultiScaleAdaptive(net, width=30, temperature=0.1).fit(X, y)
    kr = ak.KernelRenormalization(net, width=30, temperature=0.1).fit(X, y)
    np.testing.assert_allclose(kr.Q_, m.layer_scale_, rtol=1e-8)
    np.testing.assert_allclose(m.kernel_, kr.kernel_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(m.predict(Xt), kr.predict(Xt), rtol=1e-8, atol=1e-10)
    assert m.action_ == pytest.approx(kr.action_, rel=1e-8, abs=1e-8)


@pytest.mark.parametrize("order", ["tree", "corrected"])
def test_infinite_width_is_the_nngp_gp(order):
    X, y, Xt = _data(15, 8)
    net = _lin(2, 1.1)
    mu = ak.GaussianProcess(net, ridge=0.2).fit(X, y).predict(Xt)
    m = ak.MultiScaleAdaptive(net, width=np.inf, temperature=0.2, chi=5.0, order=order).fit(X, y)
    assert m.scale_ == 1.0
    np.testing.assert_allclose(m.predict(Xt), mu, rtol=1e-10, atol=1e-12)
    errs = [np.abs(ak.MultiScaleAdaptive(net, width=w, temperature=0.2, chi=5.0, order=order).fit(X, y)
                   .predict(Xt) - mu).max() for w in (1e3, 1e5)]
    assert errs[1] < errs[0] / 50, errs


def test_large_chi_the_trace_term_vanishes():
    """At fixed N and T, the data term grows like chi and the trace term saturates at rank / N: with
    Kn invertible, Q - 1 ~ (chi y^T Kn^-1 y / N)^(1/(L+1)), so the tree and corrected orders merge
    with a relative gap in Q ~ chi^(-1/(L+1)) (L = 2: -1/3 per decade of chi), and the tree level
    approaches the exact mean."""
    X, y, Xt = _data(P, D, seed=1)
    net = _lin(2, SW)
    gaps, errs = [], []
    for chi in (1e2, 1e3, 1e4):
        fits = [ak.MultiScaleAdaptive(net, width=N, temperature=T, chi=chi, order=o).fit(X, y) for o in ("tree", "corrected")]
        gaps.append(abs(fits[0].layer_scale_ / fits[1].layer_scale_ - 1))
        ex = ref.exact_deep_linear(X, y, Xt, sigma_w=SW, depth=2, width=N, temperature=T, chi=chi)
        errs.append(np.linalg.norm(fits[0].predict(Xt) - ex["mean"]) / np.linalg.norm(ex["mean"]))
    slopes = np.diff(np.log10(gaps))
    assert np.all((slopes > -0.4) & (slopes < -0.28)), (gaps, slopes)
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3, errs


def test_several_minima_take_the_global_one():
    # BayesianMeanField's first-order-transition case (test_mean_field.py) at chi = N gamma^2
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 8)) * rng.uniform(0.3, 3)
    y = rng.standard_normal(6)
    net = _lin(4)
    mf = ak.BayesianMeanField(net, gamma=3.0, temperature=6.78).fit(X, y)
    m = ak.MultiScaleAdaptive(net, width=100, temperature=6.78, chi=900.0, order="tree").fit(X, y)
    assert len(m.minima_) == 2
    assert m.layer_scale_ == pytest.approx(1 / (1 - mf.kappa_), rel=1e-9)
    assert m.action_ == min(a for _, a in m.minima_)


def test_algorithm_1_path_in_chi():
    X, y, Xt = _data(20, 25, seed=5)
    net = _lin(2)
    chis = np.geomspace(1, 100, 8)
    p = ak.MultiScaleAdaptive(net, width=30, temperature=0.05).path(X, y, chis=chis, X_test=Xt, y_test=np.sign(Xt[:, 0]))
    assert p.parameter == "chi" and len(p) == len(chis) and p.converged.all()
    for chi, m in zip(chis, p.models):
        single = ak.MultiScaleAdaptive(net, width=30, temperature=0.05, chi=chi).fit(X, y)
        assert m.scale_ == single.scale_
        np.testing.assert_array_equal(m.predict(Xt), single.predict(Xt))
    assert np.all(np.diff([m.scale_ for m in p.models]) > 0)


@pytest.mark.parametrize("net", [ak.MLP(depth=2, activation="erf"), ak.MLP(depth=2, activation="linear", sigma_b=0.2)])
def test_unsupported_deep_networks_are_refused(net):
    X, y, _ = _data(8, 4)
    with pytest.raises(ValueError, match=r"^net: "):
        ak.MultiScaleAdaptive(net, width=10, temperature=0.1).fit(X, y)
