"""Bayesian mean-field adaptive kernels: the infinite-width saddle point of feature-learning
Bayesian networks in mean-field / muP scaling (Lauditi, Bordelon, Pehlevan 2025).

Deep *linear* networks: closed form and a general L-BFGS solver. Nonlinear networks: the
tilted preactivation densities are sampled by MCMC and reweighted, and the conjugate fixed
point is found by Newton-Krylov with gamma continuation (``solver="sampled"``).
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import _core, tilted
from .._base import TheoryEstimator
from .._diagnostics import chain_drift
from .._progress import progress_bar
from .._validation import as_matrix, check_float, check_int, check_n_threads, check_options
from ..exceptions import ConvergenceWarning, NumericalJitterWarning
from ..kernels.lazy import nngp_feature_kernel, nngp_predict
from ..networks import MLP, check_net

_SOLVERS = ("auto", "closed_form", "lbfgs", "sampled", "concave")
_LINEAR = _core.mean_field.defaults()
_SAMPLED = tilted.DEFAULTS
_CONCAVE = _core.mean_field.concave_defaults()
# predict(solver="concave") keeps the final draws (S x P floats) for the next call up to this size
_CONCAVE_DRAWS_CACHE_BYTES = 512 * 2 ** 20


class BayesianMeanField(TheoryEstimator):
    """Adaptive feature kernels of a Bayesian MLP at infinite width in mean-field scaling.

    Network and posterior (those of :func:`adaptive_kernels.sample_posterior` with
    ``parameterization="mean_field"``, width N, all parameters standard normal a priori)::

        h^1 = sigma_w W^0 x / sqrt(d) + sigma_b b^0,   h^{l+1} = sigma_w W^l phi(h^l) / sqrt(N) + sigma_b b^l
        f = w . phi(h^L) / (gamma N)
        p(theta | D) ∝ exp(-(N gamma^2 / (2 T)) sum_{mu,c} (f_{mu c} - y_{mu c})^2 - |theta|^2 / 2)

    Feature kernels ``Phi^l = phi(h^l) phi(h^l)^T / N`` on the P training points; the prior
    covariance of layer-l preactivations given layer l-1 is ``C^{l-1} = sigma_w^2 Phi^{l-1} + sigma_b^2``,
    ``C^0 = K^0 = sigma_w^2 X X^T / d + sigma_b^2``. As N -> inf the posterior concentrates on
    the minimiser of (the min-max action with the conjugates eliminated; linear phi)::

        F(Phi) = sum_l KL(N(0, Phi^l) || N(0, C^{l-1})) + (gamma^2 / 2) tr(Y^T (Phi^L + T I)^{-1} Y)

    (several outputs share it). gamma -> 0 gives the NNGP kernels ``Phi^1 = K^0``,
    ``Phi^{l+1} = sigma_w^2 Phi^l + sigma_b^2`` and the GP predictor with kernel ``Phi^L``
    (for linear nets the library's NNGP kernel of depth L-1) and ridge T.

    The conjugate kernels (Lagrange multipliers of the min-max action, the tilt
    ``exp(-h^T hatPhi_l h / 2)`` of the layer-l preactivation density) satisfy
    ``Phi_l^{-1} = C_{l-1}^{-1} + hatPhi_l`` at the saddle, with ``hatPhi_L = -gamma^2 A A^T``,
    ``A = (Phi^L + T I)^{-1} Y``, and ``hatPhi_l = sigma_w^2 C_l^{-1} (C_l - Phi^{l+1}) C_l^{-1}``.

    Predictor: test rows carry no tilt, so ``Phi^l(te, tr) = C^{l-1}(te, tr) C^{l-1}(tr, tr)^{-1} Phi^l``
    layer by layer and ``f(x*) = Phi^L(x*, X) (Phi^L + T I)^{-1} Y`` (posterior mean).

    Parameters
    ----------
    net : MLP
        depth >= 1; any built-in activation (linear, relu, erf, tanh, gelu, softplus).
    gamma : float > 0
        Richness.
    temperature : float > 0
        T (the ridge of the kernel predictor).
    width : int, optional
        Width N, used only by ``predict(..., return_std=True)``.
    solver : {"auto", "closed_form", "lbfgs", "sampled", "concave"}
        ``"closed_form"`` (sigma_b = 0 and one output, or parallel outputs): one
        eigendecomposition of ``K^0`` and a global minimisation over one scalar kappa in (0, 1);
        ``Phi^l = sigma_w^{2(l-1)} [K + ((1-kappa)^{-l} - 1) v v^T / (alpha^T K alpha)]``, ``v = K alpha``,
        and the mean predictor is ridge regression with ridge ``T (1-kappa)^L / sigma_w^{2(L-1)}``.
        For L >= 2 F can have several stationary points; the global minimum is returned and all
        are listed in ``stationary_points_``. ``"lbfgs"``: L-BFGS over whitened Cholesky factors
        of the kernels from the NNGP start (any sigma_b, any outputs); it finds the local minimum
        reached from there (the branch connected to gamma -> 0). ``"sampled"`` (nonlinear
        networks; also accepted for linear ones, as a check): each layer's tilted density
        ``N(h; 0, C^{l-1}) exp(-phi(h)^T hatPhi_l phi(h) / 2)`` is sampled by parallel MALA chains,
        the samples are reweighted (log-domain, common random numbers) to the current conjugates,
        and the fixed point of ``Phi^l = <phi phi^T>``, ``hatPhi_L = -gamma^2 A A^T``,
        ``hatPhi_l = sigma_w^2 C_l^{-1}(C_l - <h h^T>_{l+1}) C_l^{-1}`` is found by Newton-Krylov
        with continuation in gamma from the NNGP; samples are redrawn at the solution until their
        Kish effective fraction is >= ``min_kish``. Results carry Monte-Carlo error of order
        ``1/sqrt(ess_)`` and are fixed by ``seed``. ``"auto"``: the closed form where it
        applies, L-BFGS for other linear nets, ``"sampled"`` for nonlinear ones.
        ``"concave"`` (depth 1, one output, any activation): the saddle point is the unique
        maximiser of the strictly concave ``g(a) = a.y - T|a|^2/2 - gamma^-2 ln E_{N(0,K^0)}
        exp(gamma^2 (a.phi)^2/2)`` (``a`` = ``dual_coef_``, kernel ``<phi phi^T>`` under the tilt
        ``exp(gamma^2 (a.phi)^2/2)``); damped Newton on sample averages over fixed draws (MALA
        draws of the tilt at the previous iterate, redrawn until they agree), no gamma continuation;
        the sample number grows until the kernel's Monte-Carlo error, measured by re-solving on
        ``n_batches`` independent batches, is about ``rtol``. Extra fitted attributes:
        ``kernel_stderr_``, ``kernel_rel_err_``, ``kish_``, ``n_samples_``, and
        :meth:`predict_stderr` (Monte-Carlo standard error of the mean prediction).
    rtol : float in (0, 1), optional
        Target relative Monte-Carlo (Frobenius) error of the kernel for ``solver="concave"``
        (default: the core's, ``_core.mean_field.concave_defaults()``).
    tol : float, optional
        Default: the core's for the chosen solver (``_core.mean_field.defaults()`` /
        ``adaptive_kernels.tilted.DEFAULTS``). L-BFGS stops when ``max_l max |B_l^T G_l B_l| < tol`` (``G_l = dF/dPhi^l``,
        ``B_l B_l^T = Phi^l``): the stationarity condition relative to the current kernel.
    max_iter : int, optional
        Default: the core's for the chosen solver.
    n_chains, n_samples, burn_in, thin, step_size, seed :
        MCMC settings of the sampled solver (per layer and draw: ``S = n_chains * n_samples``
        samples). For L >= 2 each hidden conjugate is a P x P matrix estimated from S samples; its
        noise grows like P / sqrt(S) and, beyond some richness, fixed points of independent draws
        stop agreeing and the continuation stalls: S must grow with P (measurements in
        ``benches/README.md``).
    min_kish : float in (0, 1]
        The sampled solver redraws until the reweighted samples keep this Kish fraction (0.5:
        at low temperature independent draws at the solution give Kish 0.5-0.9 at random, so a
        higher bar mainly costs redraws; ``ess_`` includes the Kish factor).
    solver_options : dict, optional
        Expert settings passed to the core solver (defaults: the core's): L-BFGS ``memory``;
        sampled ``krylov`` (GMRES subspace), ``forcing`` (GMRES relative tolerance),
        ``min_trial_kish``, ``max_refresh`` (redraws per stage), ``max_stages``, ``stall`` (a Newton-Krylov
        solve stops after this many steps in a row that reduce the residual by < 10%; 0 never). Unknown keys raise.
    n_threads : int, optional
    progress : bool, optional

    Fitted attributes
    -----------------
    kernels_ (list of L (P, P)), kernel_ (``Phi^L``), conjugates_ (list of L (P, P)), action_ (F at
    the solution; None for the sampled solver), report_ (with converged_, n_iter_, residual_,
    residual_history_ read from it), n_eval_, solver_, kappa_ (closed form,
    else None), stationary_points_ ((k, 2): kappa and F at every stationary point of the closed
    form), support_rank_ (rank of K^0; with P > d + 1 the kernels live on its support),
    dual_coef_ ((P, C): ``(Phi^L + T I)^{-1} Y``), X_train_, y_train_, n_features_in_.
    Sampled solver also: ess_ (per layer: MCMC effective sample size x Kish fraction), kish_,
    acceptance_ (per layer and chain), stages_ (``report_.stages``: reached gammas, failed
    ones negative), gamma_reached_ (< gamma when the continuation stopped early: converged_ is then
    False and the kernels are those at gamma_reached_), n_draws_, chain_radius_ ((L, 2): mean
    |z|^2 / r of the first and last third of the final chains; a growing pair warns that the MCMC
    is not in equilibrium), samples_ and weights_ (the final
    weighted samples, used by ``predict``).
    """

    _options_param = "solver_options"

    _path_parameters = {"gammas": "gamma"}

    def __init__(self, net: MLP, *, gamma: float = 1.0, temperature: float, width: int | None = None,
                 solver: str = "auto", tol: float | None = None, max_iter: int | None = None,
                 n_chains: int = _SAMPLED["n_chains"], n_samples: int = _SAMPLED["n_samples"],
                 burn_in: int = _SAMPLED["burn_in"], thin: int = _SAMPLED["thin"],
                 step_size: float = _SAMPLED["step_size"], seed: int = _SAMPLED["seed"],
                 min_kish: float = _SAMPLED["min_kish"], rtol: float | None = None,
                 solver_options: dict | None = None,
                 n_threads: int | None = None, progress: bool | None = None):
        self.net = net
        self.gamma = gamma
        self.temperature = temperature
        self.width = width
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.n_chains = n_chains
        self.n_samples = n_samples
        self.burn_in = burn_in
        self.thin = thin
        self.step_size = step_size
        self.seed = seed
        self.min_kish = min_kish
        self.rtol = rtol
        self.solver_options = solver_options
        self.n_threads = n_threads
        self.progress = progress

    # -- validation -----------------------------------------------------------------------------
    def _check_params(self) -> dict:
        net = check_net(self.net)
        if net.depth < 1:
            raise ValueError("net: the Bayesian mean-field saddle point needs at least one hidden layer (depth >= 1)")
        if callable(net.activation):
            raise ValueError("net: the Bayesian mean-field solver supports the built-in activations only "
                             f"(got a callable {net.activation_name!r})")
        if net.sigma_w <= 0:
            raise ValueError(f"net: sigma_w must be > 0, got {net.sigma_w}")
        gamma = check_float("gamma", self.gamma, minimum=0.0, strict=True)
        T = check_float("temperature", self.temperature, minimum=0.0, strict=True)
        if self.width is not None:
            check_int("width", self.width, minimum=1)
        if not isinstance(self.solver, str) or self.solver not in _SOLVERS:
            raise ValueError(f"solver: expected one of {_SOLVERS}, got {self.solver!r}")
        if self.solver == "concave":
            return self._check_concave(net, gamma, T)
        if net.activation != "linear" and self.solver in ("closed_form", "lbfgs"):
            raise ValueError(f"solver: {self.solver!r} needs activation='linear'; use 'sampled' (or 'auto') for "
                             f"{net.activation_name!r}")
        sampled = self.solver == "sampled" or (self.solver == "auto" and net.activation != "linear")
        dflt = _SAMPLED if sampled else _LINEAR
        tol = check_float("tol", dflt["tol"] if self.tol is None else self.tol, minimum=0.0, strict=True)
        max_iter = check_int("max_iter", dflt["max_iter"] if self.max_iter is None else self.max_iter, minimum=1)
        extra = check_options("solver_options", self.solver_options)
        options = dict(extra, tol=tol, max_iter=max_iter)
        if sampled:
            mk = check_float("min_kish", self.min_kish, minimum=0.0, strict=True)
            if mk > 1:
                raise ValueError(f"min_kish: must be in (0, 1], got {mk}")
            options.update(n_chains=check_int("n_chains", self.n_chains, minimum=1),
                           n_samples=check_int("n_samples", self.n_samples, minimum=2),
                           burn_in=check_int("burn_in", self.burn_in, minimum=0),
                           thin=check_int("thin", self.thin, minimum=1),
                           step_size=check_float("step_size", self.step_size, minimum=0.0, strict=True),
                           seed=check_int("seed", self.seed, minimum=0), min_kish=mk)
        else:
            options["solver"] = self.solver if self.solver != "sampled" else "auto"
        return dict(net=net, gamma=gamma, temperature=T, sampled=sampled, options=options,
                    threads=check_n_threads(self.n_threads), progress=self.progress)

    def _check_concave(self, net, gamma, T) -> dict:
        if net.depth != 1:
            raise ValueError(f"solver: 'concave' needs one hidden layer (depth 1), got depth {net.depth}")
        options = check_options("solver_options", self.solver_options)
        rtol = check_float("rtol", _CONCAVE["rtol"] if self.rtol is None else self.rtol, minimum=0.0, strict=True)
        if rtol >= 1:
            raise ValueError(f"rtol: must be in (0, 1), got {rtol}")
        options.update(rtol=rtol, seed=check_int("seed", self.seed, minimum=0),
                       tol=check_float("tol", _CONCAVE["tol"] if self.tol is None else self.tol, minimum=0.0, strict=True),
                       max_iter=check_int("max_iter", _CONCAVE["max_iter"] if self.max_iter is None else self.max_iter,
                                          minimum=1))
        return dict(net=net, gamma=gamma, temperature=T, sampled=False, concave=True, options=options,
                    threads=check_n_threads(self.n_threads), progress=self.progress)

    # -- one core call ----------------------------------------------------------------------------
    def _solve(self, X, Y, points):
        p0 = points[0]
        net, gammas = p0["net"], [p["gamma"] for p in points]
        if p0.get("concave"):
            if Y.shape[1] != 1:
                raise ValueError(f"y: solver='concave' takes one output column, got {Y.shape[1]}")
            sols = []
            for p in points:
                try:
                    sols.append(_core.mean_field.solve_concave(X, Y, net, gamma=p["gamma"], temperature=p["temperature"],
                                                               options=p["options"], n_threads=p["threads"]))
                except KeyboardInterrupt:
                    if not sols:
                        raise
                    return sols, True
            return sols, False
        if p0["sampled"]:
            work = tilted.expected_work(X, net, p0["options"])
            with progress_bar(p0["progress"], "mean-field saddle point (sampled)", work, unit="steps") as cb:
                return tilted.solve(X, Y, net, gammas=gammas, temperature=p0["temperature"], options=p0["options"],
                                    n_threads=p0["threads"], progress=cb)
        work = float(X.shape[0]) ** 3 * net.depth * len(gammas) * 100
        with progress_bar(p0["progress"], "mean-field saddle point", work, unit="iterations") as cb:
            return _core.mean_field.solve(X, Y, net, gammas=gammas, temperatures=[p["temperature"] for p in points],
                                          options=p0["options"], n_threads=p0["threads"], progress=cb)

    def _store(self, s) -> None:
        self.report_ = self._report(s.report)
        if self._params.get("concave"):
            return self._store_concave(s)
        self.solver_ = "sampled" if self._params["sampled"] else self.report_.solver
        self.n_eval_ = self.report_.n_eval
        self.kernels_ = [np.asarray(k) for k in s.kernels]
        self.kernel_ = self.kernels_[-1]
        self.conjugates_ = [np.asarray(k) for k in s.conjugates]
        self.support_rank_ = int(s.rank)
        self.dual_coef_ = np.asarray(s.dual_coef)
        if s.factor_jitter > 0:
            warnings.warn(f"Phi^L + T I was numerically singular; added jitter {s.factor_jitter:.3e}",
                          NumericalJitterWarning, stacklevel=4)
        if self._params["sampled"]:   # no action value (ln Z is not estimated)
            self.action_ = None
            self.kappa_ = None
            self.stationary_points_ = np.zeros((0, 2))
            self.gamma_reached_ = float(s.gamma)
            self.ess_ = np.asarray(s.ess)
            self.kish_ = np.asarray(s.kish)
            self.acceptance_ = [np.asarray(a) for a in s.acceptance]
            self.stages_ = self.report_.stages
            self.n_draws_ = int(s.n_draws)
            self.samples_ = [np.asarray(h) for h in s.samples]
            self.weights_ = [np.asarray(w) for w in s.weights]
            self.chain_radius_ = np.asarray(s.chain_radius, float).reshape(-1, 2)
            drift = chain_drift(self.chain_radius_)
            if drift:
                warnings.warn(
                    "tilted-density MCMC not in equilibrium: the whitened squared radius |z|^2 / r of the chains "
                    "grows from the first to the last third of the chains ("
                    + ", ".join(f"layer {l}: {a:.2f} -> {b:.2f}" for l, a, b in drift)
                    + "); a strong relu readout tilt has a soft direction that MALA crosses slowly (or the tilt "
                    "is not normalizable), so the moments are biased; raise burn_in / n_samples or lower gamma",
                    ConvergenceWarning, stacklevel=4)
        else:
            self.action_ = float(s.action)
            self.kappa_ = None if s.kappa is None else float(s.kappa)
            self.stationary_points_ = np.asarray(s.stationary).reshape(-1, 2)
            self._mean_state = dict(s.mean_predictor)   # the fitted mean (arrays)
            self._variance_state = None                  # built at the first predict(return_std=True)

    def _store_concave(self, s) -> None:
        a = np.asarray(s.a)
        self.solver_ = "concave"
        self.n_eval_ = self.report_.n_eval
        self.kernel_ = np.asarray(s.kernel)
        self.kernels_ = [self.kernel_]
        self.conjugates_ = [-s.gamma ** 2 * np.outer(a, a)]
        self.dual_coef_ = a[:, None]
        self.support_rank_ = int(s.rank)
        self.action_ = None
        self.kappa_ = None
        self.stationary_points_ = np.zeros((0, 2))
        self.gamma_reached_ = float(s.gamma)
        self.stages_ = self.report_.stages
        self.kernel_stderr_ = np.asarray(s.kernel_stderr)
        self.kernel_rel_err_ = float(s.kernel_rel_err)
        self.kish_ = float(s.kish)
        self.n_samples_ = int(s.n_samples)
        self._concave_draws = None
        self._concave_state = dict(
            a=a, kernel=self.kernel_, batch_a=np.asarray(s.batch_a), batch_lse=np.asarray(s.batch_lse), lse=s.lse,
            proposal_dir=np.asarray(s.proposal_dir), proposal_sigma=s.proposal_sigma,
            proposal_stage=s.proposal_stage, proposal_chunks=s.proposal_chunks,
            proposal_a_ref=np.asarray(s.proposal_a_ref), proposal_n_chains=s.proposal_n_chains, seed=s.seed,
            gamma=s.gamma)

    def _predict_concave(self, X, return_var):
        p = self._params
        mean, se, var, draws = _core.mean_field.predict_concave(
            self.X_train_, X, p["net"], temperature=p["temperature"], return_var=return_var,
            draws=self.__dict__.get("_concave_draws"), n_threads=p["threads"], **self._concave_state)
        # the draws are a function of the fitted state: kept (not pickled) so that the next call
        # does not rerun the final sampler
        self._concave_draws = draws if draws.nbytes <= _CONCAVE_DRAWS_CACHE_BYTES else None
        return mean, se, var

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state.pop("_concave_draws", None)
        return state

    def predict_stderr(self, X) -> np.ndarray:
        """Monte-Carlo standard error (n,) of the mean prediction of ``solver="concave"`` (from
        the spread of the batch solutions; the draws are regenerated from the seed)."""
        self._check_fitted()
        if not self._params.get("concave"):
            raise ValueError("predict_stderr: only solver='concave' reports Monte-Carlo error bars")
        return self._predict_concave(self._check_test(X), False)[1]

    def _nonconvergence_message(self) -> str:
        if self._params.get("concave"):
            return (f"mean-field saddle point (concave): the kernel's Monte-Carlo error {self.kernel_rel_err_:.3g} "
                    f"(target rtol {self._params['options']['rtol']:g}), Kish fraction {self.kish_:.2f}, Newton "
                    f"residual {self.residual_:.2e}; raise solver_options['max_samples'] or max_stages")
        if self._params["sampled"] and self.gamma_reached_ < self._params["gamma"]:
            return (f"mean-field saddle point: the gamma continuation stopped at gamma = {self.gamma_reached_:.4g} "
                    f"< {self._params['gamma']:g} (stages {np.round(self.stages_, 4).tolist()}, negative = failed); "
                    "the kernels are those of the last gamma reached (gamma_reached_)"
                    + ("; with L >= 2 the P x P hidden conjugates' Monte-Carlo noise grows like P / sqrt(S): "
                       "raise n_samples" if len(self.kernels_) >= 2 else ""))
        return (f"mean-field saddle point did not converge in {self.n_iter_} iterations "
                f"(residual {self.residual_:.3e} > tol {self._params['options']['tol']:.1e}); the kernels are the "
                "last iterate")

    # -- prediction -----------------------------------------------------------------------------
    def predict(self, X, return_std: bool = False):
        """Posterior mean (n,) or (n, C) ``Phi^L(x*, X)(Phi^L + T I)^{-1} Y``.

        With ``return_std`` also the standard deviation (n,) of f(x*) over the readout weights at
        the saddle-point kernels, ``sqrt(v(x*) / (gamma^2 N))`` with the adapted-kernel GP variance
        ``v = Phi^L(x*,x*) - Phi^L(x*,X)(Phi^L + T I)^{-1}Phi^L(X,x*)`` and N = ``width`` (required).
        This is the exact conditional variance given the hidden features at leading order; the
        fluctuations of the kernels around the saddle add a contribution of the same order 1/N
        that is not included, so it underestimates the finite-width posterior std.

        Deep linear networks: the mean is ``K^0(x*, X) w + b`` with ``w``, ``b`` fixed at fit
        (O(n d) per point); the variance's state (factors of the kernels) is built at the first
        ``return_std=True`` call and kept.
        """
        return super().predict(X, return_std)

    def _predict(self, X, return_std):
        if return_std and self.width is None:
            raise ValueError("width: predict(return_std=True) needs the network width N (the mean-field posterior "
                             "variance is O(1/N)); pass width=N to BayesianMeanField")
        p = self._params
        if p.get("concave"):
            mean, _, var = self._predict_concave(X, return_std)
            mean = mean[:, None]
        elif p["sampled"]:
            mean, var = tilted.predict(
                self.X_train_, self.y_train_, self.kernels_, self.samples_, self.weights_, X, p["net"],
                temperature=p["temperature"], seed=int(p["options"]["seed"]), return_var=return_std,
                n_threads=p["threads"])
        else:
            if return_std and self._variance_state is None:
                self._variance_state = _core.mean_field.variance_predictor(
                    self.X_train_, self.y_train_, self.kernels_, p["net"], temperature=p["temperature"],
                    n_threads=p["threads"])
            mean, var = _core.mean_field.predict(self._mean_state, self.X_train_, X,
                                                 variance_state=self._variance_state if return_std else None,
                                                 n_threads=p["threads"])
        # at the gamma the continuation reached (the requested one unless it stopped early)
        gamma = getattr(self, "gamma_reached_", p["gamma"]) if p["sampled"] else p["gamma"]
        std = np.sqrt(var / (gamma ** 2 * check_int("width", self.width, minimum=1))) if return_std else None
        return mean, std

    def _baseline(self, X, Y, X_test, params):
        return nngp_predict(params["net"], X, Y, X_test, params["temperature"], params["threads"])

    def action(self, kernels) -> tuple[float, list]:
        """``(F, [dF/dPhi^l])`` at the given kernels on the fitted data (to inspect the landscape).
        With a singular ``K^0`` both refer to the problem restricted to its support."""
        self._check_fitted()
        p = self._params
        if p["net"].activation != "linear":
            raise NotImplementedError("action: the action of a nonlinear network needs ln Z of the tilted "
                                      "densities, which the sampled solver does not estimate")
        ks = [as_matrix("kernels", k) for k in kernels]
        return _core.mean_field.action(self.X_train_, self.y_train_, ks, p["net"], gamma=p["gamma"],
                                       temperature=p["temperature"], n_threads=p["threads"])


__all__ = ["BayesianMeanField", "nngp_feature_kernel", "nngp_predict"]
