"""Progress bars (``adaptive_kernels._progress``): each entry point names the unit its core
counts, and the count ends at the work done in that unit (the binding reports the final count
once the work is over)."""
from __future__ import annotations

import contextlib
import importlib
import warnings

import numpy as np
import pytest

import adaptive_kernels as ak
from adaptive_kernels import _progress

MODULES = ["kernels.lazy", "mcmc", "finite.sampling", "finite.training", "finite.exact",
           "theories.kernel_renormalization", "theories.mean_field", "theories.dmft"]


@pytest.fixture
def bars(monkeypatch):
    """Replaces every module's progress bar by a recorder: one dict per bar with its ``unit``
    and the ``(done, total)`` pairs the core reported."""
    out = []

    @contextlib.contextmanager
    def recorder(enabled, desc, expected_work, threshold=5e7, *, unit):
        bar = dict(desc=desc, unit=unit, calls=[])
        out.append(bar)
        yield lambda done, total: bar["calls"].append((done, total))

    for name in MODULES:
        monkeypatch.setattr(importlib.import_module(f"adaptive_kernels.{name}"), "progress_bar", recorder)
    return out


def _final(bars):
    assert len(bars) == 1 and bars[0]["calls"], bars
    return bars[0]["unit"], bars[0]["calls"][-1]


rng = np.random.default_rng(0)
X = rng.standard_normal((10, 3))
Y = np.tanh(X[:, 0])


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_kernel_entries(bars):
    ak.nngp_kernel(ak.MLP(depth=2, activation="tanh"), X, progress=True)
    assert _final(bars) == ("entries", (55, 55))   # the lower triangle of a 10 x 10 kernel


def test_posterior_sampling_steps(bars):
    ak.sample_posterior(ak.MLP(depth=1, activation="tanh"), X, Y, width=4, temperature=0.1, n_chains=3, n_samples=20, burn_in=10,
                        thin=2, progress=True)
    assert _final(bars) == ("steps", (3 * (10 + 20 * 2),) * 2)   # MALA steps of every chain


def test_gradient_descent_steps(bars):
    ak.train_gd(ak.MLP(depth=1, activation="tanh"), X, Y, width=4, lr=0.01, steps=30, tol=0.0, n_ensemble=2,
                progress=True)
    assert _final(bars) == ("steps", (60, 60))


def test_exact_posterior_points(bars):
    ak.exact_linear_posterior(ak.MLP(depth=1, activation="linear"), X, Y, X[:4], width=5, temperature=0.1,
                              progress=True)
    assert _final(bars) == ("points", (14, 14))   # training and test points


def test_tilted_density_steps(bars):
    C = X @ X.T / 3 + np.eye(10)
    ak.tilted_moments(C, 0.1 * np.eye(10), n_chains=5, n_samples=300, burn_in=100, thin=1, progress=True)
    assert _final(bars) == ("steps", (5 * 400,) * 2)


def test_kernel_renormalization_counts_action_evaluations(bars):
    net = ak.MLP(depth=2, activation="tanh")
    path = ak.KernelRenormalization(net, width=20, temperature=0.1, progress=True).path(X, Y, widths=[40, 20, 10])
    unit, (done, total) = _final(bars)
    # no total (the number of evaluations is not known ahead: no misleading ETA), and the
    # predictor built after each point (kernel entries) is not counted
    assert unit == "evaluations" and total == 0
    assert done == sum(m.n_eval_ for m in path.models) > len(path)


def test_mean_field_iterations_and_mcmc_steps(bars):
    lin = ak.BayesianMeanField(ak.MLP(depth=2, activation="linear"), temperature=0.1, solver="lbfgs", progress=True)
    p = lin.path(X, Y, gammas=[0.5, 1.0])
    assert _final(bars) == ("iterations", (sum(p.n_iter), 0))
    bars.clear()
    ak.BayesianMeanField(ak.MLP(depth=2, activation="linear"), temperature=0.1, solver="closed_form",
                         progress=True).path(X, Y, gammas=[0.5, 1.0, 2.0])
    assert _final(bars) == ("iterations", (3, 3))
    bars.clear()
    ak.BayesianMeanField(ak.MLP(depth=1, activation="tanh"), gamma=0.5, temperature=0.1, n_chains=4, n_samples=50,
                         burn_in=20, progress=True).fit(X, Y)
    unit, (done, total) = _final(bars)
    assert unit == "steps" and done == total > 0 and done % 4 == 0   # MCMC steps of the tilted samplers' chains


def test_gradient_flow_steps(bars):
    m = ak.GradientFlowFixedPoint(ak.MLP(depth=1, activation="tanh"), gamma=1.0, weight_decay=0.5, n_particles=16,
                                  progress=True).fit(X, Y)
    unit, (done, total) = _final(bars)
    # flow steps, then the polish's L-BFGS iterations; no total (max_steps only bounds them)
    assert unit == "steps" and total == 0 and done == m.n_iter_ > 0   # n_iter_: Euler steps + L-BFGS iterations


def test_the_bar_shows_the_unit_and_no_eta_without_a_total():
    from tqdm.auto import tqdm
    with _progress.progress_bar(True, "kernel renormalization", 0.0, unit="evaluations") as cb:
        bar = next(b for b in tqdm._instances if b.desc == "kernel renormalization")
        cb(7, 0)
        text = str(bar)
        cb(7, 10)
        with_total = str(bar)
    assert "7 evaluations [" in text and "entries" not in text and "<" not in text, text   # no ETA
    assert "7/10" in with_total and "<" in with_total and " evaluations/s" in with_total, with_total
    with pytest.raises(TypeError):
        with _progress.progress_bar(True, "x", 0.0):   # every caller names its unit
            pass
