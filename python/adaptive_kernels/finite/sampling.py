"""Bayesian posterior sampling of finite-width MLPs by Langevin dynamics (conventions: :mod:`adaptive_kernels.finite`)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import _core
from .._progress import progress_bar
from .._diagnostics import RHAT_MAX, acceptance_too_low, not_mixed
from .._validation import check_float, check_int, check_n_threads
from ..exceptions import ConvergenceWarning
from ..networks import MLP
from ._common import check_chi, finite_data, net_args


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
    ``acceptance_rate``, ``step_size``, ``n_kept`` per chain; ``traces`` per chain
    (n_traces, n_kept) of the scalar traces ``trace_names``; ``final_theta`` (n_chains, n_params)
    last state of each chain (flat layout of the Rust core); ``interrupted``.

    Convergence diagnostics of the traces:

    * ``rhat`` (n_traces,): the **rank-normalized** split R-hat of Vehtari et al. (2021), the
      larger of the bulk and the folded (tail) R-hat, over all chains, as
      ``arviz.rhat(method="rank")`` (earlier versions reported the classic split-R-hat here; it
      is now ``rhat_classic``). NaN with one chain (as ArviZ) or fewer than 4 draws per chain.
      Above :data:`adaptive_kernels._diagnostics.RHAT_MAX` :func:`sample_posterior` warns that
      the chains have not mixed.
    * ``ess_bulk``, ``ess_tail`` (n_traces,): bulk and tail effective sample sizes of all chains
      together, as ``arviz.ess(method="bulk")`` / ``"tail"`` (see :mod:`adaptive_kernels.mcmc`).
    * ``rhat_classic`` (n_traces,): the classic split-R-hat (Gelman et al., BDA3), also
      defined for one chain.
    * ``ess`` (n_chains, n_traces): each chain's own effective sample size (from its integrated
      autocorrelation time), unchanged in meaning; :attr:`autocorrelation_time`,
      :meth:`standard_error` and ``mean_se`` use it.

    The pooled diagnostics use the chains cut to the shortest one (chains differ in length only
    after an interrupt). :meth:`to_inference_data` hands the traces to ArviZ.
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
    ess_bulk: np.ndarray
    ess_tail: np.ndarray
    rhat_classic: np.ndarray
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

    def to_inference_data(self):
        """The traces as an ``arviz.InferenceData``: group ``posterior`` with one variable per
        trace (``trace_names``), dims ``(chain, draw)`` (chains cut to the shortest); group
        ``sample_stats`` with ``acceptance_rate`` and ``step_size`` per chain (dim ``chain``).
        Needs ArviZ (the ``arviz`` extra: ``pip install "adaptive-kernels[arviz]"``)."""
        try:
            import arviz as az
            import xarray as xr
        except ImportError as e:
            raise ImportError("PosteriorSamples.to_inference_data needs ArviZ: install the 'arviz' extra "
                              "(pip install \"adaptive-kernels[arviz]\") or pip install arviz") from e
        n = min((t.shape[1] for t in self.traces), default=0)
        posterior = {name: np.stack([t[k, :n] for t in self.traces]) for k, name in enumerate(self.trace_names)}
        idata = az.from_dict(posterior=posterior)
        chain = idata.posterior["chain"].values
        idata.add_groups(sample_stats=xr.Dataset(
            {"acceptance_rate": ("chain", np.asarray(self.acceptance_rate, float)),
             "step_size": ("chain", np.asarray(self.step_size, float))}, coords={"chain": chain}))
        return idata

    def standard_error(self, variance: np.ndarray, trace: str | None = None) -> np.ndarray:
        """Monte-Carlo standard error ``sqrt(variance tau / n)`` of a posterior mean whose
        posterior variance is ``variance``; ``tau`` is the autocorrelation time of ``trace``
        (default: the largest over all traces, conservative). For output means, the
        ``"mean_train_output"`` trace is the natural proxy."""
        tau = self.autocorrelation_time if trace is None else self.trace_autocorrelation_time(trace)
        return np.sqrt(np.asarray(variance) * tau / max(self.n_samples, 1))


def sample_posterior(net: MLP, X, y, X_test=None, *, width, temperature: float, parameterization: str = "standard",
                     gamma: float = 1.0, chi: float = 1.0, n_chains: int = 4, n_samples: int = 1000, burn_in: int | None = None,
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
    chi : float > 0
        Scaling knob of the standard parameterization (readout divided by ``sqrt(chi)``,
        likelihood multiplied by ``chi``; see :mod:`adaptive_kernels.finite`): 1 is standard
        scaling, ``N gamma^2`` mean-field scaling at richness ``gamma``.
    n_chains, n_samples, burn_in, thin : chains, kept samples per chain, burn-in steps (default
        ``n_samples * thin // 2``), steps between kept samples
    step_size : initial Langevin step size eta
    train_hidden : False freezes the hidden layers at their prior draw (seeded) and samples only
        the readout: a linear model on random features, whose posterior is exactly Gaussian.
    """
    args = net_args(net, width, parameterization, gamma)
    chi = check_chi(chi, parameterization)
    X, Y, X_test = finite_data(X, y, X_test)
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
    with progress_bar(progress, "sampling", steps * X.shape[0] * max(args["widths"]) ** 2 / 1e2, threshold=1e9,
                      unit="steps") as cb:   # MALA steps, summed over chains
        r = _core.finite.sample_posterior(
            X, Y, X_test, args["net"], widths=args["widths"], parameterization=args["parameterization"],
            gamma=args["gamma"], chi=chi, config=dict(
                temperature=temperature, n_chains=n_chains, n_samples=n_samples, burn_in=burn_in, thin=thin,
                step_size=step_size, metropolis=bool(metropolis), adapt_step_size=bool(adapt_step_size),
                target_accept=target_accept, seed=seed, store_kernels=bool(store_kernels),
                store_weights=bool(store_weights), train_hidden=bool(train_hidden)),
            n_threads=check_n_threads(n_threads), progress=cb)
    squeeze = (lambda a: np.asarray(a)[:, 0]) if np.ndim(y) == 1 else np.asarray
    res = PosteriorSamples(
        mean=squeeze(r.test_mean) if X_test is not None else None,
        var=squeeze(r.test_var) if X_test is not None else None,
        mean_se=squeeze(r.test_se) if X_test is not None else None,
        train_mean=squeeze(r.train_mean),
        train_var=squeeze(r.train_var),
        train_mean_se=squeeze(r.train_se),
        kernels=[np.asarray(k) for k in r.kernels],
        readout_spectrum=np.asarray(r.readout_spectrum),
        input_spectrum=np.asarray(r.input_spectrum),
        acceptance_rate=np.asarray(r.acceptance_rate),
        step_size=np.asarray(r.step_size),
        n_kept=np.asarray(r.n_kept),
        ess=np.asarray(r.ess),
        rhat=np.asarray(r.rhat),
        ess_bulk=np.asarray(r.ess_bulk),
        ess_tail=np.asarray(r.ess_tail),
        rhat_classic=np.asarray(r.rhat_classic),
        trace_names=tuple(r.trace_names),
        traces=[np.asarray(t) for t in r.traces],
        final_theta=np.asarray(r.final_theta),
        interrupted=bool(r.interrupted),
    )
    if res.interrupted and res.n_samples == 0:
        raise KeyboardInterrupt("sampling interrupted during burn-in: no samples were kept")
    if res.interrupted:
        warnings.warn(f"sampling interrupted; returning the {res.n_samples} samples drawn so far", RuntimeWarning,
                      stacklevel=2)
    elif n_chains > 1 and not_mixed(res.rhat):
        warnings.warn(f"chains have not mixed: rank-normalized R-hat {np.nanmax(res.rhat):.3f} > {RHAT_MAX} "
                      f"({dict(zip(res.trace_names, np.round(res.rhat, 3)))}); sample longer", ConvergenceWarning,
                      stacklevel=2)
    if metropolis and acceptance_too_low(res.acceptance_rate):
        warnings.warn(f"MALA acceptance rate {np.nanmin(res.acceptance_rate):.3f} is very low; reduce step_size",
                      ConvergenceWarning, stacklevel=2)
    return res

