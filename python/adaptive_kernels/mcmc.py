"""The tilted single-site preactivation density of mean-field theories, sampled by MALA.

``p(h) ∝ N(h; 0, C) exp(-phi(h)^T hat_phi phi(h) / 2)`` on the P training points: the building
block of the sampled Bayesian mean-field solver (and of any theory with such a density).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from . import _core
from ._diagnostics import tilted_unreliable
from ._progress import progress_bar
from ._validation import as_matrix, check_float, check_int, check_n_threads
from .exceptions import ConvergenceWarning


@dataclass
class TiltedMoments:
    """Monte-Carlo moments of the tilted preactivation density (:func:`tilted_moments`).

    ``phi2`` = ``<phi(h) phi(h)^T>``, ``h2`` = ``<h h^T>`` (P, P); ``acceptance`` and
    ``step_size`` per chain; ``ess``: effective sample size of the tilt energy, summed over chains.
    """

    phi2: np.ndarray
    h2: np.ndarray
    acceptance: np.ndarray
    step_size: np.ndarray
    ess: float


_TILT_ACTIVATIONS = ("linear", "relu", "erf", "tanh", "gelu", "softplus")


_DEFAULTS = _core.mcmc.defaults()


def tilted_moments(C, hat_phi, *, activation: str = "tanh", n_chains: int = _DEFAULTS["n_chains"],
                   n_samples: int = _DEFAULTS["n_samples"], burn_in: int = _DEFAULTS["burn_in"],
                   thin: int = _DEFAULTS["thin"], step_size: float = _DEFAULTS["step_size"],
                   seed: int = _DEFAULTS["seed"], n_threads: int | None = None,
                   progress: bool | None = None) -> TiltedMoments:
    """Moments of ``p(h) ∝ N(h; 0, C) exp(-phi(h)^T hat_phi phi(h) / 2)``, ``h ∈ R^P``.

    The single-site density of one hidden layer at the Bayesian mean-field saddle point
    (Lauditi, Bordelon, Pehlevan 2025): ``C`` is the prior covariance of the layer's
    preactivations on the P training points and ``hat_phi`` its conjugate kernel (the last layer
    has ``hat_phi = -gamma^2 a a^T``, which *raises* the density along the dual coefficients).
    Sampled by Metropolis-adjusted Langevin chains in whitened coordinates ``h = L z``
    (``C = L L^T``), in parallel, with the step size adapted during burn-in; results depend
    only on ``seed``. The building block of the sampled (nonlinear) saddle-point solver.

    Raises ``ValueError`` naming ``hat_phi`` when the tilt makes the density non-normalizable
    (exact test for linear phi; for relu, gelu and softplus a sufficient condition plus a search
    for a violating direction ``h``, along which ``|L^-1 h|^2 + h_+^T hat_phi h_+ <= 0``: ``h >= 0``
    candidates and, for a nonsingular ``C``, their mixed-sign completions of least prior cost). Warns (:class:`ConvergenceWarning`) when the
    effective sample size or a chain's acceptance is outside the bounds of
    :mod:`adaptive_kernels._diagnostics`. Defaults of the sampler settings: the core's.
    """
    C = as_matrix("C", C)
    H = as_matrix("hat_phi", hat_phi)
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"C: expected a square matrix, got shape {C.shape}")
    if H.shape != C.shape:
        raise ValueError(f"hat_phi: expected shape {C.shape} like C, got {H.shape}")
    if not isinstance(activation, str) or activation not in _TILT_ACTIVATIONS:
        raise ValueError(f"activation: expected one of {_TILT_ACTIVATIONS}, got {activation!r}")
    kw = dict(n_chains=check_int("n_chains", n_chains, minimum=1), n_samples=check_int("n_samples", n_samples, minimum=1),
              burn_in=check_int("burn_in", burn_in, minimum=0), thin=check_int("thin", thin, minimum=1),
              step_size=check_float("step_size", step_size, minimum=0.0, strict=True),
              seed=check_int("seed", seed, minimum=0))
    threads = check_n_threads(n_threads)
    work = float(C.shape[0]) ** 2 * kw["n_chains"] * (kw["burn_in"] + kw["n_samples"] * kw["thin"]) * 10
    with progress_bar(progress, "tilted density", work) as cb:
        r = _core.mcmc.tilted_moments(C, H, activation=activation, options=kw, n_threads=threads, progress=cb)
    out = TiltedMoments(phi2=np.asarray(r.phi2), h2=np.asarray(r.h2), acceptance=np.asarray(r.acceptance),
                        step_size=np.asarray(r.step_size), ess=float(r.ess))
    if tilted_unreliable(out.ess, out.acceptance):
        warnings.warn(f"tilted-density sampler: effective sample size {out.ess:.0f}, acceptance "
                      f"{np.round(out.acceptance, 3).tolist()}; the moments may be unreliable",
                      ConvergenceWarning, stacklevel=2)
    return out


__all__ = ["TiltedMoments", "tilted_moments"]
