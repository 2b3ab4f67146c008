"""Markov chain Monte Carlo: the tilted single-site preactivation density of mean-field
theories, sampled by MALA, and convergence diagnostics of any chains.

* :func:`tilted_moments`: ``p(h) ∝ N(h; 0, C) exp(-phi(h)^T hat_phi phi(h) / 2)`` on the P
  training points, the building block of the sampled Bayesian mean-field solver (and of any
  theory with such a density).
* :func:`chain_diagnostics`: the rank-normalized split R-hat and the bulk and tail effective
  sample sizes of Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), computed in the Rust
  core exactly as ArviZ computes them (``arviz.rhat(method="rank")``,
  ``arviz.ess(method="bulk")``, ``arviz.ess(method="tail")``). With ``m`` chains split in
  halves and ``z`` the normal scores ``Phi^-1((r - 3/8) / (S + 1/4))`` of the ranks ``r`` of
  all ``S`` draws (ties averaged): ``rhat = max(Rhat(z(x)), Rhat(z(|x - median x|)))`` with
  ``Rhat = sqrt((B / W + N - 1) / N)``; ``ess_bulk`` = ESS of ``z(x)``; ``ess_tail`` = the
  smaller ESS of the indicators ``x <= q_0.05`` and ``x <= q_0.95``; ESS by Geyer's initial
  monotone sequence over the pooled chains. The same numbers are reported per trace by
  :func:`~adaptive_kernels.sample_posterior`.
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


@dataclass(frozen=True)
class ChainDiagnostics:
    """Result of :func:`chain_diagnostics`: floats for draws ``(n_chains, n_draws)``, arrays
    ``(n_params,)`` for draws ``(n_chains, n_draws, n_params)``.

    ``rhat``: rank-normalized split R-hat (values near 1 mean mixed chains; Vehtari et al.
    recommend < 1.01, :data:`adaptive_kernels._diagnostics.RHAT_MAX` is what this package
    warns at); ``ess_bulk`` / ``ess_tail``: bulk and tail effective sample sizes of all chains
    together (Vehtari et al. recommend at least ~100 per chain). NaN where ArviZ gives NaN:
    ``rhat`` with one chain, all three with fewer than 4 draws per chain; also (unlike ArviZ,
    which computes some of them) for a parameter with a NaN or inf draw.
    """

    rhat: np.ndarray | float
    ess_bulk: np.ndarray | float
    ess_tail: np.ndarray | float


def chain_diagnostics(chains, *, n_threads: int | None = None) -> ChainDiagnostics:
    """Rank-normalized split R-hat, bulk ESS and tail ESS (Vehtari et al. 2021) of MCMC draws.

    ``chains``: array ``(n_chains, n_draws)`` (one quantity) or ``(n_chains, n_draws, n_params)``
    (each parameter separately), chains of equal length. Equal to ArviZ's values (to rounding,
    about 1e-14 relative) without needing ArviZ; see the module docstring for the formulas.
    Deterministic and independent of ``n_threads`` (parameters run in parallel).

    >>> d = chain_diagnostics(np.random.default_rng(0).standard_normal((4, 1000)))
    >>> round(d.rhat, 2), d.ess_bulk > 3000
    (1.0, True)
    """
    if chains is None:
        raise TypeError("chains: expected an array, got None")
    arr = np.asarray(chains)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"chains: expected a real numeric array, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3):
        raise ValueError(f"chains: expected a 2-D (n_chains, n_draws) or 3-D (n_chains, n_draws, n_params) "
                         f"array, got shape {arr.shape}")
    scalar = arr.ndim == 2
    arr = np.ascontiguousarray(arr[:, :, None] if scalar else arr, dtype=np.float64)
    r = _core.mcmc.chain_diagnostics(arr, n_threads=check_n_threads(n_threads))
    out = [np.asarray(v) for v in (r.rhat, r.ess_bulk, r.ess_tail)]
    if scalar:
        out = [float(v[0]) for v in out]
    return ChainDiagnostics(*out)


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
    candidates, for a nonsingular ``C`` their mixed-sign completions of least prior cost, and the
    sign-pattern and face directions along the most negative eigenvectors of ``hat_phi``, which
    decide the rank-one readout tilt ``-gamma^2 a a^T`` at ``rho = gamma^2 sup (a.relu(h))^2 /
    h^T C^-1 h >= 1`` whenever they find the supremum). Warns (:class:`ConvergenceWarning`) when the
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
    with progress_bar(progress, "tilted density", work, unit="steps") as cb:
        r = _core.mcmc.tilted_moments(C, H, activation=activation, options=kw, n_threads=threads, progress=cb)
    out = TiltedMoments(phi2=np.asarray(r.phi2), h2=np.asarray(r.h2), acceptance=np.asarray(r.acceptance),
                        step_size=np.asarray(r.step_size), ess=float(r.ess))
    if tilted_unreliable(out.ess, out.acceptance):
        warnings.warn(f"tilted-density sampler: effective sample size {out.ess:.0f}, acceptance "
                      f"{np.round(out.acceptance, 3).tolist()}; the moments may be unreliable",
                      ConvergenceWarning, stacklevel=2)
    return out


__all__ = ["TiltedMoments", "tilted_moments", "ChainDiagnostics", "chain_diagnostics"]
