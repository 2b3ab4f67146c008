"""MultiScaleAdaptive (Rubin et al. 2025, reconstructed), one-hidden-layer linear networks: the
core against the NumPy reference, against the exact finite-width posterior across chi, and
its limits (KernelRenormalization at chi = 1, the NNGP at infinite width, BayesianMeanField at
chi = N gamma^2 as N grows), Algorithm 1 (annealing in chi) and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.special import gammaln

import adaptive_kernels as ak
from adaptive_kernels.reference.theories import multi_scale as ref

LIN = ak.MLP(depth=1, activation="linear")


def _data(P, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    return X, np.sign(X @ rng.standard_normal(d)), rng.standard_normal((6, d))


@settings(max_examples=12, deadline=None, database=None)
@given(P=st.integers(3, 10), d=st.integers(2, 12), sw=st.floats(0.6, 1.5), N=st.floats(3.0, 60.0),
       T=st.floats(0.03, 0.5), chi=st.floats(0.3, 60.0), order=st.sampled_from(["tree", "corrected"]),
       seed=st.integers(0, 1000))
def test_core_matches_the_reference(P, d, sw, N, T, chi, order, seed):
    X, y, Xt = _data(P, d, seed)
    net = ak.MLP(depth=1, activation="linear", sigma_w=sw)
    m = ak.MultiScaleAdaptive(net, width=N, temperature=T, chi=chi, order=order).fit(X, y)
    r = ref.fit(X, y, sigma_w=sw, width=N, temperature=T, chi=chi, order=order)
    assert m.converged_
    assert m.scale_ == pytest.approx(r["scale"], rel=1e-8)
    np.testing.assert_allclose(m.kernel_, r["kernel"], rtol=1e-7, atol=1e-9 * np.abs(r["kernel"]).max())
    np.testing.assert_allclose(m.discrepancy_, r["discrepancy"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(m.weight_covariance_, r["weight_covariance"], rtol=1e-7, atol=1e-9)
    assert m.curvature_ == pytest.approx(r["curvature"], rel=1e-7)
    mean, std = m.predict(Xt, return_std=True)
    rm, rs = ref.predict(r, Xt)
    np.testing.assert_allclose(mean, rm, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(std, rs, rtol=1e-6, atol=1e-9)
    # training-set statistics stored by fit are those predict gives at the training points
    tm, ts = m.predict(X, return_std=True)
    np.testing.assert_allclose(m.train_mean_, tm, atol=1e-9)
    np.testing.assert_allclose(m.train_std_, ts, rtol=1e-6, atol=1e-9)


# -- against the exact posterior of the finite network ---------------------------------------------
P, D, N, T = 40, 80, 80, 0.05


@pytest.fixture(scope="module")
def exact_case():
    X, y, Xt = _data(P, D, seed=1)
    out = {}
    for chi in (1.0, 10.0, float(N)):
        ex = ak.exact_linear_posterior(LIN, X, y, Xt, width=N, temperature=T, chi=chi)
        fits = {o: ak.MultiScaleAdaptive(LIN, width=N, temperature=T, chi=chi, order=o).fit(X, y)
                for o in ("tree", "corrected")}
        out[chi] = (ex, fits)
    return X, y, Xt, out


def _err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_mean_predictor_against_the_exact_posterior(exact_case):
    X, y, Xt, out = exact_case
    tree_err = []
    for chi, (ex, fits) in out.items():
        gp_err = _err(ak.GaussianProcess(LIN, ridge=T).fit(X, y).predict(X), ex.train_mean)
        corr = _err(fits["corrected"].train_mean_, ex.train_mean)
        tree = _err(fits["tree"].train_mean_, ex.train_mean)
        tree_err.append(tree)
        # the proportional-limit (Li-Sompolinsky) accuracy: O(1/N) of the feature-learning shift
        assert corr < 1e-3, (chi, corr)
        assert corr < tree / 10 and corr < gp_err / 4, (chi, corr, tree, gp_err)
        assert _err(fits["corrected"].predict(Xt), ex.mean) < 2e-3
    # the tree level becomes exact as chi grows (mean-field needs only the saddle point)
    assert tree_err[0] > tree_err[1] > tree_err[2], tree_err


def test_scale_and_output_variance_against_the_exact_posterior(exact_case):
    X, y, Xt, out = exact_case
    for chi, (ex, fits) in out.items():
        u_exact = ex.kernel_scale_mean / ex.prior_scale
        assert fits["corrected"].scale_ == pytest.approx(u_exact, rel=1e-2)
        # the output variance: GP on Q Kn plus the Laplace term of the scale mode
        v = fits["corrected"].train_std_ ** 2
        assert np.max(np.abs(v - ex.train_var) / ex.train_var) < 0.05, chi
        _, sd = fits["corrected"].predict(Xt, return_std=True)
        assert np.max(np.abs(sd ** 2 - ex.var) / ex.var) < 0.05, chi


def _exact_weight_covariance(X, y, width, temperature, chi, n=4001):
    """E[W^T W] / N of the exact posterior (sigma_w = 1): the conditional formula
    ``I + (u / (N d)) X^T (z z^T - G_u^{-1}) X`` averaged over the posterior of u (quadrature)."""
    Pn, d = X.shape
    K0 = X @ X.T / d
    lam, V = np.linalg.eigh(K0)
    yk = V.T @ y
    c, kappa = 1.0 / chi, temperature / chi
    logu = np.linspace(np.log(c) - 6, np.log(c) + 6, n)
    u = np.exp(logu)
    s = u[:, None] * lam[None] + kappa
    a = width / 2
    logw = a * logu - a * u / c - 0.5 * np.sum(np.log(s) + yk ** 2 / s, 1)   # Gamma(N/2) prior in log u
    w = np.exp(logw - logw.max())
    w /= w.sum()
    S = np.zeros((d, d))
    for ui, wi, si in zip(u, w, s):
        if wi < 1e-14:
            continue
        XV = X.T @ V
        z = yk / si
        M = np.outer(XV @ z, XV @ z) - (XV / si) @ XV.T
        S += wi * ui / (width * d) * M
    return np.eye(d) + S


def test_weight_covariance_spike_against_the_exact_posterior(exact_case):
    """The directional observable a rescaling theory cannot express: a spike of E[W^T W]/N along
    X^T t whose height is not the mean-predictor rescaling."""
    X, y, _, out = exact_case
    for chi, (ex, fits) in out.items():
        S = _exact_weight_covariance(X, y, N, T, chi)
        ev, vecs = np.linalg.eigh(S)
        top = ev[-1]
        corr, tree = fits["corrected"], fits["tree"]
        assert corr.weight_eigenvalues_[0] == pytest.approx(top, rel=1e-2), chi
        assert corr.weight_overlap_ > 0.999
        assert abs(vecs[:, -1] @ np.linalg.eigh(corr.weight_covariance_)[1][:, -1]) > 0.999
        # the bulk: the exact shrinkage in the data subspace is captured at the corrected order
        np.testing.assert_allclose(np.sort(corr.weight_eigenvalues_)[:-1], ev[:-1], atol=5e-3)
        # the tree level's spike equals its scale (the rank-one tilted measure)
        assert tree.weight_eigenvalues_[0] == pytest.approx(tree.scale_, rel=1e-10)
    # at chi = 1 the spike is not the rescaling factor (digest: 1.55 vs 1.10)
    ex, fits = out[1.0]
    assert fits["corrected"].weight_eigenvalues_[0] - 1 > 2 * (fits["corrected"].scale_ - 1)


# -- limits and relations -------------------------------------------------------------------------
def test_chi_one_corrected_is_kernel_renormalization():
    X, y, Xt = _data(30, 20, seed=3)
    net = ak.MLP(depth=1, activation="linear", sigma_w=1.2)
    m = ak.MultiScaleAdaptive(net, width=25, temperature=0.1).fit(X, y)
    kr = ak.KernelRenormalization(net, width=25, temperature=0.1).fit(X, y)
    assert m.scale_ == pytest.approx(kr.Q_[0], rel=1e-9)
    np.testing.assert_allclose(m.kernel_, kr.kernel_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.predict(Xt), kr.predict(Xt), rtol=1e-8, atol=1e-10)
    assert m.action_ == pytest.approx(kr.action_, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("order", ["tree", "corrected"])
def test_infinite_width_is_the_nngp_gp(order):
    X, y, Xt = _data(15, 8)
    gp = ak.GaussianProcess(LIN, ridge=0.2).fit(X, y)
    mu, sd = gp.predict(Xt, return_std=True)
    for chi in (0.5, 1.0, 30.0):
        m = ak.MultiScaleAdaptive(LIN, width=np.inf, temperature=0.2, chi=chi, order=order).fit(X, y)
        assert m.scale_ == 1.0 and m.report_.solver == "nngp"
        mm, ms = m.predict(Xt, return_std=True)
        np.testing.assert_allclose(mm, mu, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ms, sd / np.sqrt(chi), rtol=1e-8)   # f's std: the GP's / sqrt(chi)
        np.testing.assert_allclose(m.weight_covariance_, np.eye(8))


def test_mean_field_scaling_tends_to_bayesian_mean_field():
    """chi = N gamma^2: the tree level depends on chi / N only and *is* BayesianMeanField(gamma)'s
    saddle at every N; the corrected theory tends to it as N grows (the trace term is O(1/N))."""
    X, y, Xt = _data(20, 10, seed=4)
    gamma, T_ = 1.0, 0.1
    bmf = ak.BayesianMeanField(LIN, gamma=gamma, temperature=T_).fit(X, y).predict(Xt)
    errs = []
    for width in (20, 200, 2000):
        kw = dict(width=width, temperature=T_, chi=width * gamma ** 2)
        tree = ak.MultiScaleAdaptive(LIN, order="tree", **kw).fit(X, y)
        np.testing.assert_allclose(tree.predict(Xt), bmf, rtol=1e-9, atol=1e-12)
        errs.append(_err(ak.MultiScaleAdaptive(LIN, order="corrected", **kw).fit(X, y).predict(Xt), bmf))
    assert errs[2] < 1e-3 and errs[0] > errs[1] > errs[2], errs
    assert errs[1] / errs[2] > 5, errs


def test_algorithm_1_path_in_chi():
    X, y, Xt = _data(30, 40, seed=5)
    chis = np.geomspace(1, 100, 12)
    base = ak.MultiScaleAdaptive(LIN, width=30, temperature=0.05, order="tree")
    p = base.path(X, y, chis=chis, X_test=Xt, y_test=np.sign(Xt[:, 0]))
    assert p.parameter == "chi" and len(p) == len(chis) and p.converged.all()
    for chi, m in zip(chis, p.models):
        single = ak.MultiScaleAdaptive(LIN, width=30, temperature=0.05, order="tree", chi=chi).fit(X, y)
        assert m.scale_ == pytest.approx(single.scale_, rel=1e-9)
        assert m.report_.stages.tolist() == [chi]
    # warm starts: fewer iterations than the cold starts summed
    assert p.n_iter.sum() <= sum(ak.MultiScaleAdaptive(LIN, width=30, temperature=0.05, order="tree", chi=c)
                                 .fit(X, y).n_iter_ for c in chis)
    # the NNGP's test loss is the same at every chi
    assert np.ptp(p.nngp_test_loss) == 0


def test_several_outputs_share_the_scale():
    X, y, Xt = _data(20, 10)
    Y = np.stack([y, -0.5 * y + 0.1], 1)
    m = ak.MultiScaleAdaptive(LIN, width=20, temperature=0.1, chi=3.0).fit(X, Y)
    kr = ak.KernelRenormalization(LIN, width=20, temperature=0.1).fit(X, Y)
    assert m.predict(Xt).shape == (6, 2) and m.weight_covariance_ is None
    m1 = ak.MultiScaleAdaptive(LIN, width=20, temperature=0.1).fit(X, Y)
    assert m1.scale_ == pytest.approx(kr.Q_[0], rel=1e-9)


@pytest.mark.parametrize("kw, name", [
    (dict(chi=0.0), "chi"), (dict(chi=np.nan), "chi"), (dict(chi=-2.0), "chi"), (dict(order="loop"), "order"),
    (dict(width=-1.0), "width"), (dict(temperature=0.0), "temperature"), (dict(Q0=-1.0), "Q0"),
    (dict(tol=0.0), "tol"), (dict(max_iter=0), "max_iter"),
])
def test_bad_parameters_are_named(kw, name):
    X, y, _ = _data(8, 4)
    params = dict(width=10, temperature=0.1) | kw
    with pytest.raises(ValueError, match=rf"^{name}: "):
        ak.MultiScaleAdaptive(LIN, **params).fit(X, y)


@pytest.mark.parametrize("net", [ak.MLP(depth=2, activation="tanh"), ak.MLP(depth=1, activation="linear", sigma_b=0.2)])
def test_unsupported_networks_are_refused(net):
    X, y, _ = _data(8, 4)
    with pytest.raises(ValueError, match=r"^net: "):
        ak.MultiScaleAdaptive(net, width=10, temperature=0.1).fit(X, y)
