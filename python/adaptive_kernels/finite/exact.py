"""Exact finite-width Bayesian posteriors (ground truth for the adaptive-kernel theories).

:func:`exact_linear_posterior`: a one-hidden-layer *linear* network at any width N, where the
posterior is a one-dimensional mixture of Gaussian processes over the readout scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._progress import progress_bar
from .._validation import check_float, check_int, check_n_threads
from ..networks import MLP, check_net

from ._common import PARAMETERIZATIONS, check_chi, finite_data


@dataclass(frozen=True)
class ExactLinearPosterior:
    """Result of :func:`exact_linear_posterior`.

    ``mean``/``var``: posterior mean and variance of f on the test points ((Q,) for 1-D ``y``,
    (Q, C) for 2-D ``y``; None without ``X_test``); ``train_mean``/``train_var`` the same on the
    training points. ``var`` has the shape of ``mean``: with several outputs, the part of the
    variance that comes from the uncertainty of the kernel scale differs between columns.
    ``kernel_scale_mean``/``kernel_scale_std``: ``E[u | y]``, ``Std[u | y]`` of the kernel scale
    ``u`` (prior mean ``prior_scale``); ``log_evidence``: ``log p(y)``; ``kappa``: the observation
    noise variance; ``log_u_mode``/``log_u_sd``: mode and curvature width of the posterior of
    ``log u``; ``n_grid``: trapezoid nodes used.
    """

    mean: np.ndarray | None
    var: np.ndarray | None
    train_mean: np.ndarray
    train_var: np.ndarray
    kernel_scale_mean: float
    kernel_scale_std: float
    log_evidence: float
    width: int
    temperature: float
    parameterization: str
    gamma: float = 1.0
    chi: float = 1.0
    prior_scale: float = float("nan")
    kappa: float = float("nan")
    log_u_mode: float = float("nan")
    log_u_sd: float = float("nan")
    n_grid: int = 0


def _check_linear_net(net) -> MLP:
    net = check_net(net)
    if net.depth != 1 or net.activation != "linear" or net.sigma_b != 0:
        raise ValueError("net: the exact posterior needs MLP(depth=1, activation='linear', sigma_b=0), got "
                         f"depth={net.depth}, activation={net.activation_name!r}, sigma_b={net.sigma_b}")
    if net.method != "auto":
        raise ValueError(f"net: method must be 'auto' for the exact posterior, got {net.method!r}")
    if net.sigma_w <= 0:
        raise ValueError(f"net: sigma_w must be > 0, got {net.sigma_w}")
    return net


def exact_linear_posterior(net: MLP, X, y, X_test=None, *, width: int, temperature: float,
                           parameterization: str = "standard", gamma: float = 1.0, chi: float = 1.0,
                           n_threads: int | None = None, progress: bool | None = None) -> ExactLinearPosterior:
    """Exact Bayesian posterior of a one-hidden-layer linear network of finite width N.

    Network (no biases; all parameters standard normal a priori; input dimension d):
    ``h_i(x) = sigma_w w_i . x / sqrt(d)`` for i = 1..N, readout ``v`` in R^N, and

    * ``parameterization="standard"`` (scaling knob ``chi``, default 1):
      ``f(x) = sigma_w v . h(x) / sqrt(chi N)``, posterior
      ``p(theta | D) ∝ exp(-chi sum_mu (f_mu - y_mu)^2 / (2 T) - |theta|^2 / 2)``;
    * ``parameterization="mean_field"`` (richness ``gamma``): ``f(x) = v . h(x) / (gamma N)``,
      posterior ``∝ exp(-(N gamma^2 / (2 T)) sum_mu (f_mu - y_mu)^2 - |theta|^2 / 2)``

    (the conventions of :func:`sample_posterior`). Given ``v``, ``f ~ GP(0, u K0)`` with
    ``K0(x, x') = sigma_w^2 x . x' / d`` and kernel scale ``u = c |v|^2 / N``, ``c = sigma_w^2 / chi``
    (standard) or ``c = 1 / (gamma^2 N)`` (mean field), so a priori
    ``u ~ Gamma(shape N/2, scale 2c/N)``, and the noise variance is ``kappa = T / chi`` (standard) or
    ``kappa = T / (N gamma^2)`` (mean field). So ``chi = N gamma^2`` at ``sigma_w = 1`` is exactly
    the mean-field parameterization at richness ``gamma``, and the NNGP limit is the same for every ``chi``. The posterior is a Gamma scale mixture of GPs:

    * ``p(u | y) ∝ Gamma(u) prod_c N(y_c; 0, u K0 + kappa I)`` (the output columns share u);
    * ``mean(x*) = E_{u|y}[u k*^T (u K0 + kappa I)^{-1} y]``;
    * ``var(x*) = E_{u|y}[u k** - u^2 k*^T (u K0 + kappa I)^{-1} k*] + Var_{u|y}[mean_u(x*)]``.

    As N -> inf in standard scaling, u -> sigma_w^2 and this is the NNGP GP posterior
    (:class:`GaussianProcess` with ``ridge=T``); in mean-field scaling u concentrates at a
    data-dependent saddle point instead (feature learning survives the limit).

    Computed in the Rust core from one eigendecomposition of ``K0``; the u-integral is a
    trapezoid rule in ``log u`` around the posterior mode (±20 curvature widths, 2001 nodes,
    widened until the tail weights are below 1e-16 of the peak), which is accurate to rounding.

    Parameters
    ----------
    net : MLP
        ``MLP(depth=1, activation="linear", sigma_w=s_w, sigma_b=0)``.
    X : array (P, d)
    y : array (P,) or (P, C)
        With several columns the likelihood is a product over columns with one shared u: the
        exact posterior of C outputs that share the readout ``v`` and have independent first
        layers. It is *not* that of a network with a (N, C) readout matrix ``V`` (as in
        :func:`sample_posterior`), whose kernel scale is the C x C Wishart matrix ``c V^T V / N``;
        at N = 3 the two differ by several percent, at large N by O(1/N).
    X_test : array (Q, d), optional
    width : int >= 1
        Hidden width N.
    temperature : float > 0
        T (the likelihood variance in standard scaling).
    parameterization : {"standard", "mean_field"}
    gamma : float > 0
        Richness of the mean-field parameterization (ignored in standard scaling).
    chi : float > 0
        Scaling knob of the standard parameterization (1: standard scaling; ``N gamma^2``:
        mean-field scaling at richness ``gamma``). Other parameterizations need ``chi=1``.
    n_threads : int, optional
        Threads of the Rust core; results do not depend on it.
    progress : bool, optional
        Show a progress bar (default: only for large jobs on a terminal). Ctrl-C interrupts.

    Returns
    -------
    ExactLinearPosterior
    """
    net = _check_linear_net(net)
    width = check_int("width", width, minimum=1, maximum=2**53)
    temperature = check_float("temperature", temperature, minimum=0.0, strict=True)
    if not isinstance(parameterization, str) or parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization: expected one of {PARAMETERIZATIONS}, got {parameterization!r}")
    gamma = check_float("gamma", gamma, minimum=0.0, strict=True)
    chi = check_chi(chi, parameterization)
    X, Y, X_test = finite_data(X, y, X_test)
    n_threads = check_n_threads(n_threads)
    n = X.shape[0] + (0 if X_test is None else X_test.shape[0])
    with progress_bar(progress, "exact posterior", 2000.0 * n * X.shape[0] * Y.shape[1], threshold=1e10,
                      unit="points") as cb:   # training and test points predicted
        r = _core.finite.exact_linear_posterior(X, Y, X_test, sigma_w=net.sigma_w, width=width, temperature=temperature,
                                         parameterization=parameterization, gamma=gamma, chi=chi, n_threads=n_threads,
                                         progress=cb)
    if X_test is not None and not (np.all(np.isfinite(r.test_mean)) and np.all(np.isfinite(r.test_var))):
        raise FloatingPointError("X_test: the test predictions overflow float64; rescale X_test (and X)")
    squeeze = (lambda a: np.asarray(a)[:, 0]) if np.ndim(y) == 1 else np.asarray
    return ExactLinearPosterior(
        mean=squeeze(r.test_mean) if X_test is not None else None,
        var=squeeze(r.test_var) if X_test is not None else None,
        train_mean=squeeze(r.train_mean),
        train_var=squeeze(r.train_var),
        kernel_scale_mean=float(r.kernel_scale_mean),
        kernel_scale_std=float(r.kernel_scale_std),
        log_evidence=float(r.log_evidence),
        width=width,
        temperature=temperature,
        parameterization=parameterization,
        gamma=gamma,
        chi=chi,
        prior_scale=float(r.prior_scale),
        kappa=float(r.kappa),
        log_u_mode=float(r.log_u_mode),
        log_u_sd=float(r.log_u_sd),
        n_grid=int(r.n_grid),
    )


__all__ = ["ExactLinearPosterior", "exact_linear_posterior"]
