"""Finite-width ground truth: Bayesian posterior sampling and gradient descent of real MLPs.

Every theory in this library is a statement about networks at infinite width or in the
proportional limit; these functions simulate the finite networks themselves (in the Rust core)
so that the theories can be checked against them.

Network (all parameters ``theta ~ N(0, 1)`` a priori, scales explicit; widths ``N_1..N_L``):
``h^1 = sigma_w W^0 x / sqrt(d) + sigma_b b^0``, ``h^{l+1} = sigma_w W^l phi(h^l) / sqrt(N_l) + sigma_b b^l``.

* ``parameterization="standard"`` (NNGP/NTK scaling, the kernel-renormalization papers):
  ``f = sigma_w w . phi(h^L) / sqrt(N_L) + sigma_b b``, posterior
  ``p(theta | D) ∝ exp(-sum_mu (f_mu - y_mu)^2 / (2 T) - |theta|^2 / 2)``. As N -> inf the
  posterior-mean predictor tends to the NNGP GP predictor with ridge T.
* ``parameterization="mean_field"`` (muP, richness ``gamma``; Lauditi, Bordelon, Pehlevan 2025):
  ``f = w . phi(h^L) / (gamma N_L)``, posterior
  ``p(theta | D) ∝ exp(-(N_L gamma^2 / (2 T)) sum_mu (f_mu - y_mu)^2 - |theta|^2 / 2)``.

Biases are simulated only when ``sigma_b > 0``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _core
from ._progress import progress_bar
from ._validation import as_matrix, check_float, check_int, check_n_threads, check_same_features
from .exceptions import ConvergenceWarning
from .networks import ACTIVATIONS, MLP, check_net

PARAMETERIZATIONS = ("standard", "mean_field")


def _net_args(net: MLP, width, parameterization: str, gamma: float) -> dict:
    net = check_net(net)
    if net.depth < 1:
        raise ValueError("net: finite-width simulations need depth >= 1")
    if not isinstance(net.activation, str) or net.activation not in ACTIVATIONS:
        raise ValueError("net: finite-width simulations need a built-in activation (a string)")
    if net.sigma_w <= 0:
        raise ValueError("net: sigma_w must be > 0 for finite-width simulations")
    if isinstance(width, (list, tuple, np.ndarray)):
        widths = [check_int("width", w, minimum=1) for w in width]
        if len(widths) != net.depth:
            raise ValueError(f"width: got {len(widths)} widths for a network of depth {net.depth}")
    else:
        widths = [check_int("width", width, minimum=1)] * net.depth
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization: expected one of {PARAMETERIZATIONS}, got {parameterization!r}")
    gamma = check_float("gamma", gamma, minimum=0.0, strict=True)
    return dict(widths=widths, activation=net.activation, sigma_w=net.sigma_w, sigma_b=net.sigma_b,
                parameterization=parameterization, gamma=gamma)


def _data(X, y, X_test):
    X = as_matrix("X", X)
    Y = as_matrix("y", y, allow_1d=True)
    if Y.shape[0] != X.shape[0]:
        raise ValueError(f"y: has {Y.shape[0]} rows but X has {X.shape[0]} samples")
    if X_test is not None:
        X_test = as_matrix("X_test", X_test)
        check_same_features("X_test", X_test, X.shape[1])
    return X, Y, X_test


@dataclass(frozen=True)
class PosteriorSamples:
    """Result of :func:`sample_posterior` (posterior averages over all chains' kept samples).

    ``mean``/``var``: posterior mean and variance of f on the test points ((Q,) or (Q, C); None
    without ``X_test``); ``mean_se``: Monte-Carlo standard error of ``mean`` (per point, from
    each chain's integrated autocorrelation time); ``train_mean``/``train_var``/``train_mean_se``
    on the training points; ``kernels``: per
    hidden layer the posterior average of ``phi(h^l) phi(h^l)^T / N_l`` on the training points;
    ``readout_spectrum``: eigenvalues (descending) of ``E[w w^T]`` of the readout weights;
    ``input_spectrum``: of ``E[W^0^T W^0] / N_1`` (d x d, first-layer weight covariance);
    ``acceptance_rate``, ``step_size``, ``n_kept`` per chain; ``ess`` (n_chains, n_traces) effective
    sample sizes of the traces ``trace_names`` (from the integrated autocorrelation time);
    ``rhat`` split-R-hat per trace; ``traces`` per chain (n_traces, n_kept); ``final_theta``
    (n_chains, n_params) last state of each chain (flat layout of the Rust core); ``interrupted``.
    """

    mean: np.ndarray | None
    var: np.ndarray | None
    mean_se: np.ndarray | None
    train_mean: np.ndarray
    train_var: np.ndarray
    train_mean_se: np.ndarray
    kernels: list
    readout_spectrum: np.ndarray
    input_spectrum: np.ndarray
    acceptance_rate: np.ndarray
    step_size: np.ndarray
    n_kept: np.ndarray
    ess: np.ndarray
    rhat: np.ndarray
    trace_names: tuple
    traces: list = field(repr=False)
    final_theta: np.ndarray = field(repr=False, default=None)
    interrupted: bool = False

    @property
    def n_samples(self) -> int:
        return int(np.sum(self.n_kept))

    @property
    def autocorrelation_time(self) -> float:
        """Largest integrated autocorrelation time (in kept samples) over chains and traces
        (conservative: the potential and the readout scale mix slowest)."""
        return float(np.max(self.n_kept[:, None] / np.maximum(self.ess, 1e-300)))

    def trace_autocorrelation_time(self, trace: str = "mean_train_output") -> float:
        """Largest integrated autocorrelation time over chains of one trace."""
        k = self.trace_names.index(trace)
        return float(np.max(self.n_kept / np.maximum(self.ess[:, k], 1e-300)))

    def standard_error(self, variance: np.ndarray, trace: str | None = None) -> np.ndarray:
        """Monte-Carlo standard error ``sqrt(variance tau / n)`` of a posterior mean whose
        posterior variance is ``variance``; ``tau`` is the autocorrelation time of ``trace``
        (default: the largest over all traces, conservative). For output means, the
        ``"mean_train_output"`` trace is the natural proxy."""
        tau = self.autocorrelation_time if trace is None else self.trace_autocorrelation_time(trace)
        return np.sqrt(np.asarray(variance) * tau / max(self.n_samples, 1))


def sample_posterior(net: MLP, X, y, X_test=None, *, width, temperature: float, parameterization: str = "standard",
                     gamma: float = 1.0, n_chains: int = 4, n_samples: int = 1000, burn_in: int | None = None,
                     thin: int = 1, step_size: float = 1e-3, metropolis: bool = True, adapt_step_size: bool = True,
                     target_accept: float = 0.574, seed: int = 0, store_kernels: bool = True,
                     store_weights: bool = True, train_hidden: bool = True, n_threads: int | None = None,
                     progress: bool | None = None) -> PosteriorSamples:
    """Sample the Bayesian posterior of a finite-width MLP by Langevin dynamics.

    Metropolis-adjusted Langevin (MALA, the default) is exact for any step size; unadjusted
    Langevin (``metropolis=False``) is biased by O(step_size). With ``adapt_step_size`` the step
    size is tuned during ``burn_in`` towards acceptance ``target_accept`` and then frozen.
    Chains run in parallel on ``n_threads`` threads; ``seed`` fixes every result, whatever the
    number of threads. Ctrl-C stops sampling and returns what was sampled (``interrupted``).

    Parameters
    ----------
    net : MLP (depth >= 1, built-in activation)
    X, y : training inputs (P, d) and targets (P,) or (P, C)
    X_test : optional test inputs (Q, d)
    width : int or list of int (one per hidden layer)
    temperature : float > 0 (the likelihood variance T; see the module docstring for the scalings)
    parameterization : "standard" or "mean_field" (with richness ``gamma``)
    n_chains, n_samples, burn_in, thin : chains, kept samples per chain, burn-in steps (default
        ``n_samples * thin // 2``), steps between kept samples
    step_size : initial Langevin step size eta
    train_hidden : False freezes the hidden layers at their prior draw (seeded) and samples only
        the readout: a linear model on random features, whose posterior is exactly Gaussian.
    """
    args = _net_args(net, width, parameterization, gamma)
    X, Y, X_test = _data(X, y, X_test)
    temperature = check_float("temperature", temperature, minimum=0.0, strict=True)
    step_size = check_float("step_size", step_size, minimum=0.0, strict=True)
    target_accept = check_float("target_accept", target_accept, minimum=0.0, strict=True)
    if target_accept >= 1:
        raise ValueError("target_accept: must be < 1")
    n_chains = check_int("n_chains", n_chains, minimum=1)
    n_samples = check_int("n_samples", n_samples, minimum=1)
    thin = check_int("thin", thin, minimum=1)
    burn_in = n_samples * thin // 2 if burn_in is None else check_int("burn_in", burn_in, minimum=0)
    seed = check_int("seed", seed, minimum=0, maximum=2**64 - 1)
    steps = n_chains * (burn_in + n_samples * thin)
    with progress_bar(progress, "sampling", steps * X.shape[0] * max(args["widths"]) ** 2 / 1e2, threshold=1e9) as cb:
        r = _core.sample_posterior(
            X, Y, X_test, temperature=temperature, n_chains=n_chains, n_samples=n_samples, burn_in=burn_in,
            thin=thin, step_size=step_size, metropolis=bool(metropolis), adapt_step_size=bool(adapt_step_size),
            target_accept=target_accept, seed=seed, store_kernels=bool(store_kernels),
            store_weights=bool(store_weights), train_hidden=bool(train_hidden), n_threads=check_n_threads(n_threads), progress=cb, **args)
    squeeze = (lambda a: a[:, 0]) if np.ndim(y) == 1 else (lambda a: a)
    res = PosteriorSamples(
        mean=squeeze(r["test_mean"]) if X_test is not None else None,
        var=squeeze(r["test_var"]) if X_test is not None else None,
        mean_se=squeeze(r["test_se"]) if X_test is not None else None,
        train_mean=squeeze(r["train_mean"]),
        train_var=squeeze(r["train_var"]),
        train_mean_se=squeeze(r["train_se"]),
        kernels=r["kernels"],
        readout_spectrum=r["readout_spectrum"],
        input_spectrum=r["input_spectrum"],
        acceptance_rate=np.asarray(r["acceptance_rate"]),
        step_size=np.asarray(r["step_size"]),
        n_kept=np.asarray(r["n_kept"]),
        ess=np.asarray(r["ess"]).reshape(n_chains, -1),
        rhat=r["rhat"],
        trace_names=tuple(r["trace_names"]),
        traces=r["traces"],
        final_theta=np.stack(r["final_theta"]),
        interrupted=bool(r["interrupted"]),
    )
    if res.interrupted:
        warnings.warn(f"sampling interrupted; returning the {res.n_samples} samples drawn so far", RuntimeWarning,
                      stacklevel=2)
    elif n_chains > 1 and np.nanmax(res.rhat) > 1.1:
        warnings.warn(f"chains have not mixed: split-R-hat {np.nanmax(res.rhat):.3f} > 1.1 "
                      f"({dict(zip(res.trace_names, np.round(res.rhat, 3)))}); sample longer", ConvergenceWarning,
                      stacklevel=2)
    if metropolis and np.nanmin(res.acceptance_rate) < 0.05:
        warnings.warn(f"MALA acceptance rate {np.nanmin(res.acceptance_rate):.3f} is very low; reduce step_size",
                      ConvergenceWarning, stacklevel=2)
    return res


@dataclass(frozen=True)
class TrainedNetworks:
    """Result of :func:`train_gd`: an ensemble of networks trained by gradient descent.

    Per member (stacked along axis 0): ``theta`` (flat parameters), ``train_output``,
    ``test_output``, ``ntk`` (empirical NTK on the training points, output 0, O(1) units),
    ``feature_kernels`` / ``gradient_kernels`` (lists over layers of (n_ensemble, P, P)),
    ``loss_curves`` (list of (n_records, 3) arrays: step, 1/2 sum (f-y)^2, regularized objective),
    ``n_steps``, ``converged``, ``grad_rms``. ``predict(X)`` is the ensemble-mean output.
    """

    theta: np.ndarray
    train_output: np.ndarray
    test_output: np.ndarray | None
    ntk: np.ndarray
    feature_kernels: list
    gradient_kernels: list
    loss_curves: list
    n_steps: np.ndarray
    converged: np.ndarray
    grad_rms: np.ndarray
    interrupted: bool
    _net_args: dict = field(repr=False)
    _n_out: int = field(repr=False)
    _squeeze: bool = field(repr=False)

    def predict(self, X, *, members: bool = False) -> np.ndarray:
        """Ensemble-mean output on X ((Q,) or (Q, C)); ``members=True`` returns every member."""
        X = as_matrix("X", X)
        outs = np.stack([_core.finite_forward(t, X, n_out=self._n_out, **self._net_args)[0] for t in self.theta])
        if self._squeeze:
            outs = outs[..., 0]
        return outs if members else outs.mean(0)


def train_gd(net: MLP, X, y, X_test=None, *, width, weight_decay: float = 0.0, lr: float = 1e-2, steps: int = 10000,
             tol: float = 1e-8, parameterization: str = "standard", gamma: float = 1.0, n_ensemble: int = 1,
             record_every: int = 10, seed: int = 0, n_threads: int | None = None,
             progress: bool | None = None) -> TrainedNetworks:
    """Train finite MLPs by full-batch gradient descent with weight decay to a fixed point.

    ``theta <- theta - lr (beta grad 1/2 sum (f - y)^2 + weight_decay theta)``, ``beta = 1`` in
    standard scaling and ``N_L gamma^2`` in mean-field scaling, from ``theta_0 ~ N(0, I)``;
    stops when the RMS gradient is below ``tol`` (a ``ConvergenceWarning`` otherwise).
    ``n_ensemble`` independent initializations run in parallel.
    """
    args = _net_args(net, width, parameterization, gamma)
    X, Y, X_test = _data(X, y, X_test)
    weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
    lr = check_float("lr", lr, minimum=0.0, strict=True)
    steps = check_int("steps", steps, minimum=1)
    tol = check_float("tol", tol, minimum=0.0)
    n_ensemble = check_int("n_ensemble", n_ensemble, minimum=1)
    record_every = check_int("record_every", record_every, minimum=1)
    seed = check_int("seed", seed, minimum=0, maximum=2**64 - 1)
    with progress_bar(progress, "training", n_ensemble * steps * X.shape[0] * max(args["widths"]) ** 2 / 1e2,
                      threshold=1e9) as cb:
        members, interrupted = _core.train_gd(
            X, Y, X_test, weight_decay=weight_decay, lr=lr, max_steps=steps, tol=tol, record_every=record_every,
            n_ensemble=n_ensemble, seed=seed, n_threads=check_n_threads(n_threads), progress=cb, **args)
    squeeze = np.ndim(y) == 1
    sq = (lambda a: a[..., 0]) if squeeze else (lambda a: a)
    depth = len(args["widths"])
    res = TrainedNetworks(
        theta=np.stack([m["theta"] for m in members]),
        train_output=sq(np.stack([m["train_output"] for m in members])),
        test_output=sq(np.stack([m["test_output"] for m in members])) if X_test is not None else None,
        ntk=np.stack([m["ntk"] for m in members]),
        feature_kernels=[np.stack([m["feature_kernels"][l] for m in members]) for l in range(depth)],
        gradient_kernels=[np.stack([m["gradient_kernels"][l] for m in members]) for l in range(depth)],
        loss_curves=[m["loss_curve"] for m in members],
        n_steps=np.array([m["n_steps"] for m in members]),
        converged=np.array([m["converged"] for m in members]),
        grad_rms=np.array([m["grad_rms"] for m in members]),
        interrupted=bool(interrupted or any(m["interrupted"] for m in members)),
        _net_args=args,
        _n_out=Y.shape[1],
        _squeeze=squeeze,
    )
    if res.interrupted:
        warnings.warn("training interrupted; returning the current parameters", RuntimeWarning, stacklevel=2)
    elif not res.converged.all():
        warnings.warn(f"gradient descent did not reach tol={tol:g} in {steps} steps "
                      f"(final RMS gradient {res.grad_rms.max():.3e})", ConvergenceWarning, stacklevel=2)
    return res
