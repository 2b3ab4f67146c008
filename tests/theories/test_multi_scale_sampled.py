"""MultiScaleAdaptive at tree level for nonlinear one-hidden-layer networks (the tilted
per-neuron measure, sampled): the mapping to the mean-field saddle point, the closed form for
linear nets, the NNGP at small chi, and MALA samples of finite erf networks in mean-field
scaling (chi = N)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import adaptive_kernels as ak

ERF = ak.MLP(depth=1, activation="erf", sigma_w=1.3)


def _data(P, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    return X, np.sign(X @ rng.standard_normal(d)), rng.standard_normal((5, d))


def test_tree_level_is_the_mean_field_saddle_point():
    """gamma = sqrt(chi / N) / sigma_w, temperature T / sigma_w^2 (same sampler, same seed)."""
    X, y, Xt = _data(10, 6)
    N, T, chi = 15, 0.1, 6.0
    m = ak.MultiScaleAdaptive(ERF, width=N, temperature=T, chi=chi, order="tree").fit(X, y)
    b = ak.BayesianMeanField(ERF, gamma=np.sqrt(chi / N) / ERF.sigma_w, temperature=T / ERF.sigma_w ** 2,
                             solver="sampled", width=N).fit(X, y)
    np.testing.assert_allclose(m.predict(Xt), b.predict(Xt), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m.kernel_, ERF.sigma_w ** 2 * b.kernel_, rtol=1e-12)
    np.testing.assert_allclose(m.predict(Xt, return_std=True)[1], b.predict(Xt, return_std=True)[1], rtol=1e-10)
    np.testing.assert_allclose((m.kernel_ + T * np.eye(10)) @ m.dual_coef_, y[:, None], atol=1e-8)
    np.testing.assert_allclose(m.discrepancy_, y - m.train_mean_, atol=1e-12)


@pytest.mark.parametrize("chi", [1.0, 20.0])
def test_sampled_route_reproduces_the_linear_closed_form(chi):
    X, y, Xt = _data(12, 16)
    net = ak.MLP(depth=1, activation="linear", sigma_w=1.2)
    c = ak.MultiScaleAdaptive(net, width=20, temperature=0.1, chi=chi, order="tree").fit(X, y)
    s = ak.MultiScaleAdaptive(net, width=20, temperature=0.1, chi=chi, order="tree", solver="sampled").fit(X, y)
    assert np.isnan(s.scale_) and s.converged_
    # Monte-Carlo accuracy of the default sampler (16 chains x 1000 draws)
    assert np.max(np.abs(c.predict(Xt) - s.predict(Xt))) < 0.08
    assert s.weight_eigenvalues_[0] == pytest.approx(c.weight_eigenvalues_[0], rel=0.03)
    assert s.weight_overlap_ > 0.98


def test_small_chi_is_the_nngp():
    X, y, Xt = _data(10, 6)
    m = ak.MultiScaleAdaptive(ERF, width=50, temperature=0.1, chi=1e-6, order="tree").fit(X, y)
    gp = ak.GaussianProcess(ERF, ridge=0.1).fit(X, y).predict(Xt)
    # up to the Monte-Carlo error of the sampled kernel (16 chains x 1000 draws)
    np.testing.assert_allclose(m.predict(Xt), gp, atol=0.03)
    np.testing.assert_allclose(m.kernel_, ak.nngp_kernel(ERF, X), atol=0.03 * np.abs(m.kernel_).max())


def test_mean_field_scaling_against_mala():
    """chi = N: the tree level is the right theory (error falls with N), the NNGP is far off."""
    X, y, _ = _data(10, 6, seed=2)
    net, T = ak.MLP(depth=1, activation="erf"), 0.05
    errs = []
    for N in (10, 40):
        th = ak.MultiScaleAdaptive(net, width=N, temperature=T, chi=float(N), order="tree").fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ak.ConvergenceWarning)
            s = ak.sample_posterior(net, X, y, width=N, temperature=T, chi=float(N), n_chains=4, n_samples=3000,
                                    thin=2, seed=0, n_threads=1)
        gp = ak.GaussianProcess(net, ridge=T).fit(X, y).predict(X)
        err, gp_err = np.abs(th.train_mean_ - s.train_mean).max(), np.abs(gp - s.train_mean).max()
        assert err < gp_err / 10, (N, err, gp_err)
        errs.append(err)
    assert errs[1] < errs[0] / 2, errs


def test_sampled_refusals_name_the_argument():
    X, y, _ = _data(8, 4)
    with pytest.raises(ValueError, match=r"^order: "):
        ak.MultiScaleAdaptive(ERF, width=10, temperature=0.1, order="corrected").fit(X, y)   # linear only
    with pytest.raises(ValueError, match=r"^solver: "):
        ak.MultiScaleAdaptive(ERF, width=10, temperature=0.1, order="tree", solver="closed_form").fit(X, y)
    with pytest.raises(ValueError, match=r"^width: "):
        ak.MultiScaleAdaptive(ERF, width=np.inf, temperature=0.1, order="tree").fit(X, y)
    with pytest.raises(ValueError, match=r"^net: "):
        ak.MultiScaleAdaptive(ak.MLP(depth=2, activation="erf"), width=10, temperature=0.1, order="tree").fit(X, y)
    with pytest.raises(ValueError, match="no_such_knob"):
        ak.MultiScaleAdaptive(ERF, width=10, temperature=0.1, order="tree",
                              sampler_options={"no_such_knob": 1}).fit(X, y)


def test_default_order_auto_is_corrected_for_linear_and_tree_for_nonlinear():
    """The default (read from the core) is "auto": the closed form's corrected order for linear
    nets, the sampled tree level for nonlinear ones (bitwise the explicit orders)."""
    from adaptive_kernels import _core
    assert _core.multi_scale.defaults()["order"] == "auto"
    assert ak.MultiScaleAdaptive(ERF, width=10, temperature=0.1).get_params()["order"] == "auto"
    X, y, Xt = _data(10, 6)
    opts = dict(n_chains=4, n_samples=100, burn_in=50)
    auto = ak.MultiScaleAdaptive(ERF, width=15, temperature=0.1, chi=6.0, sampler_options=opts).fit(X, y)
    tree = ak.MultiScaleAdaptive(ERF, width=15, temperature=0.1, chi=6.0, order="tree", sampler_options=opts).fit(X, y)
    assert auto.order_ == "tree"
    np.testing.assert_array_equal(auto.predict(Xt, return_std=True)[1], tree.predict(Xt, return_std=True)[1])
    lin = ak.MLP(depth=1, activation="linear", sigma_w=1.2)
    auto = ak.MultiScaleAdaptive(lin, width=15, temperature=0.1, chi=6.0).fit(X, y)
    corr = ak.MultiScaleAdaptive(lin, width=15, temperature=0.1, chi=6.0, order="corrected").fit(X, y)
    assert auto.order_ == "corrected" and auto.scale_ == corr.scale_
    np.testing.assert_array_equal(auto.predict(Xt, return_std=True)[1], corr.predict(Xt, return_std=True)[1])
    # solver="sampled" on a linear net: only the tree level exists there
    s = ak.MultiScaleAdaptive(lin, width=15, temperature=0.1, chi=6.0, solver="sampled", sampler_options=opts).fit(X, y)
    assert s.order_ == "tree"


def test_std_uses_the_chi_reached_when_the_continuation_stops_early():
    """Stopped at max_stages, the predictive std is that of the saddle reached (the mean-field
    solver stopped at the same gamma), not rescaled by the requested chi."""
    X, y, Xt = _data(10, 6)
    N, T, chi = 15, 0.05, 60.0
    opts = dict(max_stages=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ak.MultiScaleAdaptive(ERF, width=N, temperature=T, chi=chi, order="tree", sampler_options=opts).fit(X, y)
        b = ak.BayesianMeanField(ERF, gamma=np.sqrt(chi / N) / ERF.sigma_w, temperature=T / ERF.sigma_w ** 2,
                                 solver="sampled", width=N, solver_options=opts).fit(X, y)
    assert not m.converged_ and m.gamma_reached_ < np.sqrt(chi / N) / ERF.sigma_w
    np.testing.assert_allclose(m.predict(Xt), b.predict(Xt), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(m.predict(Xt, return_std=True)[1], b.predict(Xt, return_std=True)[1], rtol=1e-10)
