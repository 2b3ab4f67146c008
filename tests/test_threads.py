"""A seed fixes every result, whatever the number of threads: every seeded or deterministic
entry point gives bitwise-identical results on 1, 2 and 3 threads, at sizes where the core's
parallel linear algebra splits the work (thin products and solves are computed in fixed blocks,
``rust/core/src/linalg/matmul.rs``)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import adaptive_kernels as ak

RNG = np.random.default_rng(7)
X = RNG.standard_normal((700, 12))
Y = np.tanh(X[:, 0] - X[:, 1])
XT = RNG.standard_normal((300, 12))
RELU = ak.MLP(depth=2, activation="relu", sigma_b=0.1)
XS = np.random.default_rng(0).standard_normal((120, 20))   # sampled solver: P = 120 > the 16-column blocks
YS = np.tanh(XS[:, 0])


def _flat(out) -> list[np.ndarray]:
    if isinstance(out, (list, tuple)):
        return [a for o in out for a in _flat(o)]
    return [np.asarray(out, dtype=float)]


CASES = {
    "lazy_kernels": lambda nt: ak.lazy_kernels(RELU, X, XT, n_threads=nt),
    "lazy_kernels_tanh_hermite": lambda nt: ak.lazy_kernels(ak.MLP(depth=3, activation="tanh", sigma_b=0.1,
                                                                   method="hermite"), X, XT, n_threads=nt),
    "nngp_tanh_hermite": lambda nt: ak.nngp_kernel(ak.MLP(depth=2, activation="tanh", method="hermite"),
                                                   np.vstack([X, X[:50] + 1e-6]), n_threads=nt),
    "kernel_diagonal": lambda nt: ak.kernel_diagonal(RELU, XT, kernel="ntk", n_threads=nt),
    "gaussian_process": lambda nt: ak.GaussianProcess(RELU, ridge=0.05, n_threads=nt).fit(X, Y).predict(
        XT, return_std=True),
    "ntk_flow": lambda nt: ak.NTKGradientFlow(RELU, lr=0.3, time=5.0, n_threads=nt).fit(X[:400], Y[:400]).predict(XT),
    "kernel_renormalization": lambda nt: (lambda m: (m.Q_, m.predict(XT, return_std=True)))(
        ak.KernelRenormalization(RELU, width=300, temperature=0.05, n_threads=nt).fit(X[:400], Y[:400])),
    "mean_field_linear": lambda nt: (lambda m: (m.kernels_, m.predict(XT, return_std=True)))(
        ak.BayesianMeanField(ak.MLP(depth=2, activation="linear", sigma_b=0.2), temperature=0.1, width=50,
                             n_threads=nt).fit(X[:400], Y[:400])),
    "mean_field_sampled": lambda nt: (lambda m: (m.kernels_, m.predict(XS[:30])))(
        # gamma 0.4: at 0.5 the relu tilt is not normalizable on this data (the ray-ascent witness of
        # check_normalizable finds rho >= 1; the pattern witness alone used to pass it)
        ak.BayesianMeanField(ak.MLP(depth=1, activation="relu"), gamma=0.4, temperature=0.1, n_chains=8, n_samples=300,
                             burn_in=100, seed=3, n_threads=nt).fit(XS, YS)),
    "mean_field_sampled_deep": lambda nt: ak.BayesianMeanField(
        ak.MLP(depth=2, activation="tanh"), gamma=0.2, temperature=0.1, n_chains=8, n_samples=300, burn_in=100, seed=3,
        n_threads=nt).fit(X[:40, :6], Y[:40]).kernels_,
    "gradient_flow": lambda nt: (lambda m: (m.theta_, m.kernels_, m.ntk_, m.predict(XT), m.residual_history_))(
        ak.GradientFlowFixedPoint(ak.MLP(depth=2, activation="tanh", sigma_b=0.1), weight_decay=0.5, n_particles=96,
                                  max_steps=300, polish_iter=20, n_threads=nt).fit(X[:200], Y[:200])),
    "tilted_moments": lambda nt: (lambda t: (t.phi2, t.h2))(ak.tilted_moments(
        X[:150, :20] @ X[:150, :20].T / 20 + 1e-3 * np.eye(150), -0.001 * np.outer(Y[:150], Y[:150]), activation="tanh",
        n_chains=8, n_samples=200, burn_in=50, seed=1, n_threads=nt)),
    "sample_posterior": lambda nt: (lambda s: (s.mean, s.var, s.final_theta))(ak.sample_posterior(
        ak.MLP(depth=1, activation="tanh"), X[:200], Y[:200], XT[:20], width=32, temperature=0.5, n_chains=3,
        n_samples=50, seed=2, n_threads=nt)),
    "train_gd": lambda nt: ak.train_gd(ak.MLP(depth=1, activation="tanh"), X[:200], Y[:200], width=32, lr=0.01,
                                       steps=100, n_ensemble=3, seed=2, n_threads=nt).theta,
    "exact_linear_posterior": lambda nt: (lambda r: (r.mean, r.var))(ak.exact_linear_posterior(
        ak.MLP(depth=1, activation="linear"), X[:300], Y[:300], XT, width=20, temperature=0.1, n_threads=nt)),
    "tangent_features": lambda nt: (lambda tf: (tf.f0, tf.kernel(n_threads=nt), ak.AdaptiveTangentFeatures(
        structure="layerwise", reg=1.0, max_iter=30, n_threads=nt).fit(tf, Y[:60]).predict(tf)))(ak.tangent_features(
        ak.MLP(depth=2, activation="relu"), ak.init_params(ak.MLP(depth=2, activation="relu"), width=48,
                                                           n_features=X.shape[1], seed=3), X[:60], width=48,
        n_threads=nt)),
    "forward_backward": lambda nt: (lambda m: (m.kernels_, m.predict(XT, return_std=True)))(ak.ForwardBackwardKernels(
        ak.MLP(depth=2, activation="linear"), width=200, temperature=0.1, n_threads=nt).fit(X[:400], Y[:400])),
    "mean_field_concave": lambda nt: (lambda m: (m.kernels_, m.predict(XS[:20])))(ak.BayesianMeanField(
        ak.MLP(depth=1, activation="relu"), gamma=0.5, temperature=0.1, solver="concave", seed=4, n_threads=nt)
        .fit(XS[:60], YS[:60])),
    "kernel_ridge": lambda nt: ak.KernelRidge(RELU, kernel="ntk", ridge=0.05, n_threads=nt).fit(X, Y).predict(XT),
    "path_averaged_kernel": lambda nt: ak.path_averaged_kernel(
        ak.MLP(depth=2, activation="tanh"), ak.init_params(ak.MLP(depth=2, activation="tanh"), width=32,
                                                           n_features=X.shape[1], seed=1),
        ak.init_params(ak.MLP(depth=2, activation="tanh"), width=32, n_features=X.shape[1], seed=2), X[:300],
        width=32, n_points=3, n_threads=nt),
    "multi_scale": lambda nt: (lambda m: (m.predict(XT), m.kernel_))(ak.MultiScaleAdaptive(
        ak.MLP(depth=1, activation="erf"), width=20, temperature=0.1, chi=5.0, order="tree",
        sampler_options=dict(n_samples=200), n_threads=nt).fit(X[:30], Y[:30])),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bitwise_identical_on_1_2_3_threads(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = {nt: _flat(CASES[case](nt)) for nt in (1, 2, 3)}
    for nt in (2, 3):
        assert len(runs[nt]) == len(runs[1])
        for a, b in zip(runs[nt], runs[1]):
            assert np.array_equal(a, b, equal_nan=True), f"{case}: {nt} threads differ from 1 by {np.nanmax(np.abs(a - b))}"
