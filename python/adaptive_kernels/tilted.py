"""The tilted fixed point shared by theories (core: ``ak_core::tilted``, binding ``_core.tilted``).

Each layer's single-site density over the P training preactivations of one neuron is a Gaussian
prior tilted by the readout, ``p_l(h) ∝ N(h; 0, C^{l-1}) exp(-phi(h)^T hatPhi_l phi(h) / 2)``
with ``hatPhi_L = -gamma^2 A A^T``, ``A = (Phi^L + T I)^{-1} Y``; its moments come from MCMC
samples (reweighted between redraws), the fixed point from Newton-Krylov, and the tilt strength
``gamma`` is reached by continuation from the NNGP. Used by
:class:`~adaptive_kernels.BayesianMeanField` (``solver="sampled"``, any depth) and by the
nonlinear tree level of :class:`~adaptive_kernels.MultiScaleAdaptive` (one hidden layer, at
``gamma = sqrt(chi / N) / sigma_w`` and temperature ``T / sigma_w^2``). Not a public estimator:
the theories validate their own arguments and call these two functions.
"""
from __future__ import annotations

from . import _core

DEFAULTS = _core.tilted.defaults()
"""The core's default settings (sampler and Newton-Krylov); a copy is what the theories extend."""


def expected_work(X, net, options) -> float:
    """A rough count of the MCMC steps of one fit, for the theories' progress bars."""
    o = options
    return float(X.shape[0]) ** 2 * o["n_chains"] * (o["burn_in"] + o["n_samples"] * o["thin"]) * 10 * net.depth * 3


def solve(X, Y, net, *, gammas, temperature, options, n_threads, progress):
    """Fixed points along ``gammas`` (continuation from the NNGP, warm-started along the list) at
    one temperature; ``progress`` is the theory's progress callback (or None). Returns
    ``(solutions, interrupted)`` as every theory's core call."""
    return _core.tilted.solve(X, Y, net, gammas=list(gammas), temperature=temperature, options=options,
                              n_threads=n_threads, progress=progress)


def predict(X_train, Y_train, kernels, samples, weights, X, net, *, temperature, seed, return_var, n_threads):
    """Predictive mean (Q, C) and, with ``return_var``, the adapted-kernel variance (Q,) of one
    fixed point (in the units of ``gamma``; the theory scales it)."""
    return _core.tilted.predict(X_train, Y_train, kernels, samples, weights, X, net, temperature=temperature,
                                seed=seed, return_var=return_var, n_threads=n_threads)


__all__ = ["DEFAULTS", "expected_work", "solve", "predict"]
