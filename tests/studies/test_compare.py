"""ak.compare_theories on a tiny problem: the expected rows and columns, consistency with the
estimators fitted directly, finite networks, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import adaptive_kernels as ak


@pytest.fixture(scope="module")
def data():
    return tuple(ak.datasets.load_digits(classes=(3, 8), n_train=30, n_test=20, seed=0))


NET = ak.MLP(depth=1, activation="linear")


def test_rows_and_columns(data):
    X, y, Xt, yt = data
    t = ak.compare_theories(NET, X, y, Xt, yt, width=60, temperature=0.05, gamma=0.5,
                            theories={"nngp": {}, "ntk": {}, "kernel_renormalization": {}, "bayesian_mean_field": {},
                                      "gradient_flow": dict(n_particles=64, max_steps=4000)},
                            simulate={"sample_posterior": dict(n_samples=100, n_chains=2),
                                      "train_gd": dict(steps=3000, n_ensemble=1)})
    assert t["model"] == ["nngp", "ntk", "kernel_renormalization", "bayesian_mean_field", "gradient_flow",
                          "sample_posterior", "train_gd"]
    assert t["kind"] == ["lazy", "lazy", "theory", "theory", "theory", "network", "network"]
    assert t.columns == ["model", "kind", "test_loss", "train_loss", "alignment", "cka_nngp",
                         "cka_sample_posterior", "max_dist_sample_posterior", "cka_train_gd", "max_dist_train_gd",
                         "fit_time", "converged", "error", "warnings"]
    for r in t:
        assert r["error"] is None, r
        for c in ("test_loss", "train_loss", "alignment", "cka_nngp", "cka_sample_posterior",
                  "max_dist_sample_posterior", "cka_train_gd", "max_dist_train_gd"):
            assert np.isfinite(r[c]), (r["model"], c)
        assert 0 < r["cka_nngp"] <= 1 + 1e-9
    nngp = t.where(model="nngp").rows()[0]
    assert nngp["cka_nngp"] == pytest.approx(1.0)
    assert t.where(model="sample_posterior").rows()[0]["max_dist_sample_posterior"] == 0.0
    # the same numbers as the estimators fitted directly
    kr = ak.KernelRenormalization(NET, width=60, temperature=0.05).fit(X, y)
    row = t.where(model="kernel_renormalization").rows()[0]
    assert row["test_loss"] == pytest.approx(float(np.mean((kr.predict(Xt) - yt) ** 2)), rel=1e-12)
    assert row["alignment"] == pytest.approx(ak.kernel_alignment(kr.kernel_, y), rel=1e-12)
    gp = ak.GaussianProcess(NET, ridge=0.05).fit(X, y)
    assert nngp["test_loss"] == pytest.approx(float(np.mean((gp.predict(Xt) - yt) ** 2)), rel=1e-12)


def test_default_theories_follow_the_architecture(data):
    X, y, Xt, yt = data
    t = ak.compare_theories(ak.MLP(depth=0), X, y, Xt, yt)
    assert t["model"] == ["nngp", "ntk"]
    t = ak.compare_theories(NET, X, y, Xt, yt, theories=["nngp", "bayesian_mean_field"])
    assert t["model"] == ["nngp", "bayesian_mean_field"] and t["converged"] == [True, True]


def test_bad_input_names_the_argument(data):
    X, y, Xt, yt = data
    with pytest.raises(ValueError, match="theories: unknown name 'nngpp'"):
        ak.compare_theories(NET, X, y, Xt, yt, theories=["nngpp"])
    with pytest.raises(ValueError, match="theories: kernel_renormalization needs width"):
        ak.compare_theories(NET, X, y, Xt, yt, theories=["kernel_renormalization"])
    with pytest.raises(ValueError, match="theories: bayesian_mean_field needs a hidden layer"):
        ak.compare_theories(ak.MLP(depth=0), X, y, Xt, yt, theories=["bayesian_mean_field"])
    with pytest.raises(ValueError, match="theories: nngp"):
        ak.compare_theories(NET, X, y, Xt, yt, theories={"nngp": {"ridgee": 1.0}})
    with pytest.raises(ValueError, match="simulate: unknown name"):
        ak.compare_theories(NET, X, y, Xt, yt, simulate={"langevin": {}})
