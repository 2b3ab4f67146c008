"""The scaling knob ``chi`` of the finite-width ground truth: readout / sqrt(chi), likelihood x chi.
chi = 1 is today's standard parameterization bit for bit; chi = N gamma^2 (sigma_w = 1) is the
mean-field parameterization at richness gamma (an independent consistency check, exact and
sampled); the NNGP limit is the same for every chi; bad chi is refused by name."""
from __future__ import annotations

import numpy as np
import pytest

import adaptive_kernels as ak

LIN = ak.MLP(depth=1, activation="linear")
# short chains (the bitwise / same-seed comparisons do not need mixed ones)
SHORT = pytest.mark.filterwarnings("ignore:chains have not mixed", "ignore:acceptance")


def _data(P=12, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    return X, np.sign(X @ rng.standard_normal(d)), rng.standard_normal((4, d))


@SHORT
def test_chi_one_is_the_standard_parameterization_bitwise():
    X, y, Xt = _data()
    net = ak.MLP(depth=1, activation="linear", sigma_w=1.3)
    a = ak.exact_linear_posterior(net, X, y, Xt, width=7, temperature=0.1)
    b = ak.exact_linear_posterior(net, X, y, Xt, width=7, temperature=0.1, chi=1.0)
    for f in ("mean", "var", "train_mean", "train_var"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    kw = dict(width=5, temperature=0.2, n_chains=2, n_samples=20, burn_in=10, seed=3, n_threads=1)
    tanh = ak.MLP(depth=1, activation="tanh", sigma_b=0.3)
    s1 = ak.sample_posterior(tanh, X, y, Xt, **kw)
    s2 = ak.sample_posterior(tanh, X, y, Xt, chi=1.0, **kw)
    np.testing.assert_array_equal(s1.final_theta, s2.final_theta)
    np.testing.assert_array_equal(s1.mean, s2.mean)


@pytest.mark.parametrize("gamma", [0.3, 1.0, 2.5])
def test_chi_n_gamma2_is_mean_field_exact(gamma):
    X, y, Xt = _data()
    N = 9
    mf = ak.exact_linear_posterior(LIN, X, y, Xt, width=N, temperature=0.05, parameterization="mean_field",
                                   gamma=gamma)
    ch = ak.exact_linear_posterior(LIN, X, y, Xt, width=N, temperature=0.05, chi=N * gamma ** 2)
    for f in ("mean", "var", "train_mean", "train_var"):
        np.testing.assert_allclose(getattr(ch, f), getattr(mf, f), rtol=1e-10, atol=1e-13)
    assert ch.kernel_scale_mean == pytest.approx(mf.kernel_scale_mean, rel=1e-10)


@SHORT
def test_chi_n_gamma2_is_mean_field_sampled():
    """Same seed, same potential up to rounding: the MALA chains agree closely."""
    X, y, Xt = _data(P=8, d=4)
    N, gamma = 6, 0.8
    kw = dict(width=N, temperature=0.1, n_chains=2, n_samples=30, burn_in=20, seed=5, n_threads=1)
    tanh = ak.MLP(depth=1, activation="tanh")
    mf = ak.sample_posterior(tanh, X, y, Xt, parameterization="mean_field", gamma=gamma, **kw)
    ch = ak.sample_posterior(tanh, X, y, Xt, chi=N * gamma ** 2, **kw)
    np.testing.assert_allclose(ch.train_mean, mf.train_mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ch.mean, mf.mean, rtol=1e-6, atol=1e-8)


def test_nngp_limit_is_the_same_for_every_chi():
    X, y, Xt = _data()
    gp = ak.GaussianProcess(LIN, ridge=0.1).fit(X, y).predict(Xt)
    for chi in (0.3, 1.0, 20.0):
        ex = ak.exact_linear_posterior(LIN, X, y, Xt, width=10 ** 9, temperature=0.1, chi=chi)
        np.testing.assert_allclose(ex.mean, gp, rtol=1e-6, atol=1e-8)


def test_sampled_chi_matches_the_exact_chi():
    """MALA at chi = 10 against the exact Gamma mixture (a few Monte-Carlo standard errors)."""
    X, y, _ = _data(P=8, d=4)
    N, chi = 6, 10.0
    ex = ak.exact_linear_posterior(LIN, X, y, width=N, temperature=0.1, chi=chi)
    s = ak.sample_posterior(LIN, X, y, width=N, temperature=0.1, chi=chi, n_chains=4, n_samples=1500, thin=2,
                            seed=2, n_threads=1)
    z = (s.train_mean - ex.train_mean) / np.maximum(s.train_mean_se, 1e-12)
    assert np.max(np.abs(z)) < 5, z


@pytest.mark.parametrize("chi", [0.0, -1.0, np.nan, np.inf, "a"])
def test_bad_chi_is_named(chi):
    X, y, _ = _data()
    with pytest.raises((ValueError, TypeError), match=r"^chi: "):
        ak.exact_linear_posterior(LIN, X, y, width=5, temperature=0.1, chi=chi)
    with pytest.raises((ValueError, TypeError), match=r"^chi: "):
        ak.sample_posterior(LIN, X, y, width=5, temperature=0.1, chi=chi, n_samples=2)


def test_chi_needs_the_standard_parameterization():
    X, y, _ = _data()
    with pytest.raises(ValueError, match=r"^chi: .*standard"):
        ak.exact_linear_posterior(LIN, X, y, width=5, temperature=0.1, parameterization="mean_field", chi=2.0)
    with pytest.raises(ValueError, match=r"^chi: .*standard"):
        ak.sample_posterior(LIN, X, y, width=5, temperature=0.1, parameterization="mean_field", chi=2.0, n_samples=2)
