"""Convergence diagnostics reported by ``sample_posterior``: the rank-normalized R-hat and the
bulk and tail ESS of the traces (those of ``adaptive_kernels.mcmc.chain_diagnostics``), the
classic split-R-hat, the not-mixed warning, and ``PosteriorSamples.to_inference_data``."""
import sys
import warnings

import numpy as np
import pytest

import adaptive_kernels as ak
from adaptive_kernels.mcmc import chain_diagnostics


def _sample(**kw):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 3))
    args = dict(width=8, temperature=0.1, n_chains=3, n_samples=400, seed=1) | kw
    return ak.sample_posterior(ak.MLP(depth=1, activation="tanh"), X, np.sin(X[:, 0]), **args)


@pytest.fixture(scope="module")
def post():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ak.ConvergenceWarning)
        return _sample()


def _classic_split_rhat(x):
    h = x.shape[1] // 2
    s = np.concatenate([x[:, :h], x[:, h:2 * h]])
    n = s.shape[1]
    W = np.mean(np.var(s, axis=1, ddof=1))
    return np.sqrt(((n - 1) / n * W + np.var(s.mean(axis=1), ddof=1)) / W)


def test_pooled_diagnostics_are_those_of_the_traces(post):
    draws = np.stack(post.traces).transpose(0, 2, 1)          # (chains, kept, traces)
    d = chain_diagnostics(draws)
    np.testing.assert_array_equal(post.rhat, d.rhat)
    np.testing.assert_array_equal(post.ess_bulk, d.ess_bulk)
    np.testing.assert_array_equal(post.ess_tail, d.ess_tail)
    k = len(post.trace_names)
    assert post.rhat.shape == post.ess_bulk.shape == post.rhat_classic.shape == (k,)
    assert post.ess.shape == (3, k)                             # per chain, as before
    np.testing.assert_allclose(post.rhat_classic, [_classic_split_rhat(draws[:, :, j]) for j in range(k)],
                               rtol=1e-12)
    assert np.all(post.ess_bulk > 0) and np.all(post.ess_tail <= 2 * 3 * 400)


def test_one_chain_has_no_rank_rhat_but_a_classic_one():
    s = _sample(n_chains=1, n_samples=100)
    assert np.all(np.isnan(s.rhat)) and np.all(np.isfinite(s.rhat_classic)) and np.all(s.ess_bulk > 0)


def test_unmixed_chains_warn_with_the_rank_rhat():
    """A tiny frozen step: each chain stays near its own starting point."""
    with pytest.warns(ak.ConvergenceWarning, match="rank-normalized R-hat"):
        s = _sample(step_size=1e-9, adapt_step_size=False, burn_in=0, n_samples=100)
    assert np.max(s.rhat) > ak._diagnostics.RHAT_MAX


def test_to_inference_data(post):
    az = pytest.importorskip("arviz")
    idata = post.to_inference_data()
    assert isinstance(idata, az.InferenceData)
    assert set(idata.posterior.data_vars) == set(post.trace_names)
    for k, name in enumerate(post.trace_names):
        v = idata.posterior[name]
        assert v.dims == ("chain", "draw") and v.shape == (3, 400)
        np.testing.assert_array_equal(v.values, np.stack([t[k] for t in post.traces]))
    np.testing.assert_array_equal(idata.sample_stats["acceptance_rate"].values, post.acceptance_rate)
    np.testing.assert_array_equal(idata.sample_stats["step_size"].values, post.step_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat, bulk, tail = az.rhat(idata), az.ess(idata, method="bulk"), az.ess(idata, method="tail")
    for k, name in enumerate(post.trace_names):
        np.testing.assert_allclose([rhat[name].item(), bulk[name].item(), tail[name].item()],
                                   [post.rhat[k], post.ess_bulk[k], post.ess_tail[k]], rtol=1e-8)


def test_to_inference_data_names_the_extra_without_arviz(post, monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)
    with pytest.raises(ImportError, match=r"adaptive-kernels\[arviz\]"):
        post.to_inference_data()
