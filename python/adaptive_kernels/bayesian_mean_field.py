"""Bayesian mean-field adaptive kernels: the infinite-width saddle point of feature-learning
Bayesian networks in mean-field / muP scaling (Lauditi, Bordelon, Pehlevan 2025).

Deep *linear* networks: closed form and a general L-BFGS solver. Nonlinear networks: the
tilted preactivation densities are sampled by MCMC and reweighted, and the conjugate fixed
point is found by Newton-Krylov with gamma continuation (``solver="sampled"``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _core
from ._progress import progress_bar
from ._validation import as_matrix, check_float, check_int, check_n_threads, check_same_features, as_xy, r2_score
from .exceptions import ConvergenceWarning, NumericalJitterWarning
from .lazy_kernels import nngp_kernel
from .networks import MLP, check_net

_SOLVERS = ("auto", "closed_form", "lbfgs", "sampled")


@dataclass
class MeanFieldPath:
    """Saddle points along a path in gamma (one entry per gamma), from
    :meth:`BayesianMeanField.path`.

    ``gammas`` (n,), ``temperature``, ``action`` (n,), ``converged`` (n,), ``n_iter`` (n,),
    ``residual`` (n,), ``kappa`` (n,) (closed form; NaN for L-BFGS), ``models`` (the fitted
    estimators), and with test data ``test_loss`` (n,) (mean squared error of the mean
    predictor) and ``nngp_test_loss`` (the gamma -> 0 predictor, a float).
    """

    gammas: np.ndarray
    temperature: float
    action: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    residual: np.ndarray
    kappa: np.ndarray
    models: list = field(repr=False)
    test_loss: np.ndarray | None = None
    nngp_test_loss: float | None = None


class BayesianMeanField:
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
    solver : {"auto", "closed_form", "lbfgs"}
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
    tol : float
        L-BFGS stops when ``max_l max |B_l^T G_l B_l| < tol`` (``G_l = dF/dPhi^l``,
        ``B_l B_l^T = Phi^l``): the stationarity condition relative to the current kernel.
    max_iter : int
    n_chains, n_samples, burn_in, thin, step_size, seed :
        MCMC settings of the sampled solver (per layer and draw: ``S = n_chains * n_samples``
        samples). For L >= 2 each hidden conjugate is a P x P matrix estimated from S samples; its
        noise grows like P / sqrt(S) and, beyond some richness, fixed points of independent draws
        stop agreeing and the continuation stalls (relu L = 2, MNIST 0 vs 1, T = 0.1, S = 8000:
        P = 250 reaches gamma = 0.1, P = 500 had not got past 0.06 after 10 min). S must grow
        with P.
    min_kish : float in (0, 1]
        The sampled solver redraws until the reweighted samples keep this Kish fraction (0.5:
        at low temperature independent draws at the solution give Kish 0.5-0.9 at random, so a
        higher bar mainly costs redraws; ``ess_`` includes the Kish factor).
    n_threads : int, optional
    progress : bool, optional

    Fitted attributes
    -----------------
    kernels_ (list of L (P, P)), conjugates_ (list of L (P, P)), action_ (F at the solution),
    converged_, n_iter_, n_eval_, residual_, residual_history_, solver_, kappa_ (closed form,
    else None), stationary_points_ ((k, 2): kappa and F at every stationary point of the closed
    form), support_rank_ (rank of K^0; with P > d + 1 the kernels live on its support),
    dual_coef_ ((P, C): ``(Phi^L + T I)^{-1} Y``), X_train_, y_train_, n_features_in_.
    Sampled solver also: ess_ (per layer: MCMC effective sample size x Kish fraction), kish_,
    acceptance_ (per layer and chain), stages_ (continuation: reached gammas, failed ones
    negative), gamma_reached_ (< gamma when the continuation stopped early: converged_ is then
    False and the kernels are those at gamma_reached_), n_draws_, chain_radius_ ((L, 2): mean
    |z|^2 / r of the first and last third of the final chains; a growing pair warns that the MCMC
    is not in equilibrium), samples_ and weights_ (the final
    weighted samples, used by ``predict``).
    """

    def __init__(self, net: MLP, gamma: float = 1.0, *, temperature: float, width: int | None = None,
                 solver: str = "auto", tol: float | None = None, max_iter: int | None = None,
                 n_chains: int = 16, n_samples: int = 1000, burn_in: int = 300, thin: int = 2,
                 step_size: float = 0.2, seed: int = 0, min_kish: float = 0.5, n_threads: int | None = None,
                 progress: bool | None = None):
        self.net = net
        self.n_chains = n_chains
        self.n_samples = n_samples
        self.burn_in = burn_in
        self.thin = thin
        self.step_size = step_size
        self.seed = seed
        self.min_kish = min_kish
        self.gamma = gamma
        self.temperature = temperature
        self.width = width
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.n_threads = n_threads
        self.progress = progress

    # -- validation -----------------------------------------------------------------------
    @staticmethod
    def _check_net(net) -> MLP:
        net = check_net(net)
        if net.depth < 1:
            raise ValueError("net: the Bayesian mean-field saddle point needs at least one hidden layer (depth >= 1)")
        if callable(net.activation):
            raise ValueError("net: the Bayesian mean-field solver supports the built-in activations only "
                             f"(got a callable {net.activation_name!r})")
        if net.sigma_w <= 0:
            raise ValueError(f"net: sigma_w must be > 0, got {net.sigma_w}")
        return net

    def _validate(self):
        net = self._check_net(self.net)
        gamma = check_float("gamma", self.gamma, minimum=0.0, strict=True)
        T = check_float("temperature", self.temperature, minimum=0.0, strict=True)
        if self.width is not None:
            check_int("width", self.width, minimum=1)
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver: expected one of {_SOLVERS}, got {self.solver!r}")
        if net.activation != "linear" and self.solver in ("closed_form", "lbfgs"):
            raise ValueError(f"solver: {self.solver!r} needs activation='linear'; use 'sampled' (or 'auto') for "
                             f"{net.activation_name!r}")
        sampled = self._sampled(net, self.solver)
        tol = check_float("tol", (1e-8 if sampled else 1e-10) if self.tol is None else self.tol, minimum=0.0,
                          strict=True)
        max_iter = check_int("max_iter", (50 if sampled else 5000) if self.max_iter is None else self.max_iter,
                             minimum=1)
        return net, gamma, T, tol, max_iter, check_n_threads(self.n_threads)

    @staticmethod
    def _sampled(net, solver) -> bool:
        return solver == "sampled" or (solver == "auto" and net.activation != "linear")

    def _sampler_args(self) -> dict:
        mk = check_float("min_kish", self.min_kish, minimum=0.0, strict=True)
        if mk > 1:
            raise ValueError(f"min_kish: must be in (0, 1], got {mk}")
        return dict(n_chains=check_int("n_chains", self.n_chains, minimum=1),
                    n_samples=check_int("n_samples", self.n_samples, minimum=2),
                    burn_in=check_int("burn_in", self.burn_in, minimum=0), thin=check_int("thin", self.thin, minimum=1),
                    step_size=check_float("step_size", self.step_size, minimum=0.0, strict=True),
                    seed=check_int("seed", self.seed, minimum=0), min_kish=mk)

    def _solve_sampled(self, net, X, Y, gammas, T, tol, max_iter, threads, progress):
        kw = self._sampler_args()
        work = float(X.shape[0]) ** 2 * kw["n_chains"] * (kw["burn_in"] + kw["n_samples"] * kw["thin"]) * 10
        with progress_bar(progress, "mean-field saddle point (sampled)", work * net.depth * 3) as cb:
            return _core.bmf_tilted_solve(X, Y, gammas=[float(g) for g in gammas], temperature=float(T), tol=tol,
                                          max_iter=max_iter, n_threads=threads, progress=cb,
                                          **kw, **net._kernel_args())

    _data = staticmethod(as_xy)

    @staticmethod
    def _solve(net, X, Y, gammas, temps, tol, max_iter, solver, threads, progress, init=None):
        P = X.shape[0]
        with progress_bar(progress, "mean-field saddle point", float(P) ** 3 * net.depth * len(gammas) * 100) as cb:
            return _core.bmf_solve(X, Y, gammas=[float(g) for g in gammas], temperatures=[float(t) for t in temps],
                                   init=init, tol=tol, max_iter=max_iter, solver=solver, n_threads=threads,
                                   progress=cb, **net._kernel_args())

    # -- sklearn API ----------------------------------------------------------------------
    def fit(self, X, y) -> "BayesianMeanField":
        net, gamma, T, tol, max_iter, threads = self._validate()
        X, Y = self._data(X, y)
        if self._sampled(net, self.solver):
            sol = self._solve_sampled(net, X, Y, [gamma], T, tol, max_iter, threads, self.progress)[0]
        else:
            sol = self._solve(net, X, Y, [gamma], [T], tol, max_iter, self.solver, threads, self.progress)[0]
        self._set_solution(net, X, Y, np.ndim(y) == 1, gamma, T, threads, sol)
        if not self.converged_:
            warnings.warn(self._nonconvergence_message(tol), ConvergenceWarning, stacklevel=2)
        return self

    def _nonconvergence_message(self, tol) -> str:
        if getattr(self, "samples_", None) is not None and self.gamma_reached_ < self._gamma:
            return (f"mean-field saddle point: the gamma continuation stopped at gamma = {self.gamma_reached_:.4g} "
                    f"< {self._gamma:g} (stages {np.round(self.stages_, 4).tolist()}, negative = failed); the "
                    "kernels are those of the last gamma reached (gamma_reached_)"
                    + ("; with L >= 2 the P x P hidden conjugates' Monte-Carlo noise grows like P / sqrt(S): "
                       "raise n_samples" if len(self.kernels_) >= 2 else ""))
        return (f"mean-field saddle point did not converge in {self.n_iter_} iterations "
                f"(residual {self.residual_:.3e} > tol {tol:.1e}); the kernels are the last iterate")

    def _set_solution(self, net, X, Y, y_1d, gamma, T, threads, sol) -> None:
        self.X_train_, self.y_train_, self._y_1d = X, Y, y_1d
        self.n_features_in_ = X.shape[1]
        self.kernels_ = [np.asarray(k) for k in sol["kernels"]]
        self.conjugates_ = [np.asarray(k) for k in sol["conjugates"]]
        self.converged_ = bool(sol["converged"])
        self.n_iter_ = int(sol["n_iter"])
        self.residual_ = float(sol["residual"])
        self.residual_history_ = np.asarray(sol["residual_history"])
        if "samples" in sol:   # sampled solver: no action value (ln Z is not estimated)
            self.action_ = None
            self.n_eval_ = None
            self.solver_ = "sampled"
            self.kappa_ = None
            self.stationary_points_ = np.zeros((0, 2))
            self.support_rank_ = int(sol["rank"])
            self.gamma_reached_ = float(sol["gamma"])
            self.ess_ = np.asarray(sol["ess"])
            self.kish_ = np.asarray(sol["kish"])
            self.acceptance_ = [np.asarray(a) for a in sol["acceptance"]]
            self.stages_ = np.asarray(sol["stages"])
            self.n_draws_ = int(sol["n_draws"])
            self.samples_ = [np.asarray(h) for h in sol["samples"]]
            self.weights_ = [np.asarray(w) for w in sol["weights"]]
            self.chain_radius_ = np.asarray(sol["chain_radius"], float).reshape(-1, 2)
            drift = [(l + 1, a, b) for l, (a, b) in enumerate(self.chain_radius_) if b > 1.5 and b > 1.3 * a]
            if drift:
                warnings.warn(
                    "tilted-density MCMC not in equilibrium: the whitened squared radius |z|^2 / r of the chains "
                    "grows from the first to the last third of the chains ("
                    + ", ".join(f"layer {l}: {a:.2f} -> {b:.2f}" for l, a, b in drift)
                    + "); a strong relu readout tilt has a soft direction that MALA crosses slowly (or the tilt "
                    "is not normalizable), so the moments are biased; raise burn_in / n_samples or lower gamma",
                    ConvergenceWarning, stacklevel=3)
        else:
            self.action_ = float(sol["action"])
            self.n_eval_ = int(sol["n_eval"])
            self.solver_ = sol["solver"]
            self.kappa_ = None if sol["kappa"] is None else float(sol["kappa"])
            self.stationary_points_ = np.asarray(sol["stationary"]).reshape(-1, 2)
            self.support_rank_ = int(sol["rank"])
            for a in ("samples_", "weights_", "chain_radius_"):
                self.__dict__.pop(a, None)
        self._net, self._gamma, self._T, self._threads = net, gamma, T, threads
        U, jitter, _ = _core.cholesky(self.kernels_[-1], T, n_threads=threads)
        if jitter > 0:
            warnings.warn(f"Phi^L + T I was numerically singular; added jitter {jitter:.3e}",
                          NumericalJitterWarning, stacklevel=3)
        self.dual_coef_ = _core.cho_solve(U, Y, n_threads=threads)

    def _check_fitted(self) -> None:
        if not hasattr(self, "kernels_"):
            raise RuntimeError("BayesianMeanField is not fitted; call fit(X, y) first")

    def predict(self, X, return_std: bool = False):
        """Posterior mean (n,) or (n, C) ``Phi^L(x*, X)(Phi^L + T I)^{-1} Y``.

        With ``return_std`` also the standard deviation (n,) of f(x*) over the readout weights at
        the saddle-point kernels, ``sqrt(v(x*) / (gamma^2 N))`` with the adapted-kernel GP variance
        ``v = Phi^L(x*,x*) - Phi^L(x*,X)(Phi^L + T I)^{-1}Phi^L(X,x*)`` and N = ``width`` (required).
        This is the exact conditional variance given the hidden features at leading order; the
        fluctuations of the kernels around the saddle add a contribution of the same order 1/N
        that is not included, so it underestimates the finite-width posterior std.
        """
        self._check_fitted()
        X = as_matrix("X", X)
        check_same_features("X", X, self.n_features_in_)
        if return_std and self.width is None:
            raise ValueError("width: predict(return_std=True) needs the network width N (the mean-field posterior "
                             "variance is O(1/N)); pass width=N to BayesianMeanField")
        if hasattr(self, "samples_"):
            mean, var = _core.bmf_tilted_predict(self.X_train_, self.y_train_, self.kernels_, self.samples_,
                                                 self.weights_, X, temperature=self._T, seed=int(self.seed),
                                                 return_var=bool(return_std), n_threads=self._threads,
                                                 **self._net._kernel_args())
        else:
            mean, var = _core.bmf_predict(self.X_train_, self.y_train_, self.kernels_, X, temperature=self._T,
                                          return_var=bool(return_std), n_threads=self._threads,
                                          **self._net._kernel_args())
        mean = mean[:, 0] if self._y_1d else mean
        if return_std:
            return mean, np.sqrt(var / (self._gamma**2 * check_int("width", self.width, minimum=1)))
        return mean

    def score(self, X, y) -> float:
        """Coefficient of determination R^2 of the mean prediction (averaged over outputs)."""
        X, Y = self._data(X, y)
        return r2_score(Y, self.predict(X))

    def objective(self, kernels) -> tuple[float, list]:
        """``(F, [dF/dPhi^l])`` at the given kernels on the fitted data (to inspect the landscape).
        With a singular ``K^0`` both refer to the problem restricted to its support."""
        self._check_fitted()
        if self._net.activation != "linear":
            raise NotImplementedError("objective: the action of a nonlinear network needs ln Z of the tilted "
                                      "densities, which the sampled solver does not estimate")
        ks = [as_matrix("kernels", k) for k in kernels]
        return _core.bmf_objective(self.X_train_, self.y_train_, ks, gamma=self._gamma, temperature=self._T,
                                   n_threads=self._threads, **self._net._kernel_args())

    # -- continuation -----------------------------------------------------------------------
    @classmethod
    def path(cls, net: MLP, X, y, gammas, *, temperature: float, X_test=None, y_test=None, width: int | None = None,
             solver: str = "auto", tol: float | None = None, max_iter: int | None = None,
             n_threads: int | None = None, progress: bool | None = None, **sampler) -> MeanFieldPath:
        """Saddle points for each gamma in ``gammas`` (in the given order), each L-BFGS solve
        warm-started from the previous solution (continuation: order them from small to large
        gamma to follow the branch connected to the NNGP). With ``X_test``/``y_test`` also the
        test loss of the mean predictor along the path and that of the gamma -> 0 predictor.
        ``sampler``: the MCMC settings of the sampled solver (``n_chains``, ``n_samples``, ...).
        """
        gl = [check_float("gammas", g, minimum=0.0, strict=True) for g in np.atleast_1d(np.asarray(gammas, float))]
        if not gl:
            raise ValueError("gammas: the path is empty")
        m0 = cls(net, gl[0], temperature=temperature, width=width, solver=solver, tol=tol, max_iter=max_iter,
                 n_threads=n_threads, **sampler)
        net, _, T, tol, max_iter, threads = m0._validate()
        X, Y = cls._data(X, y)
        if cls._sampled(net, solver):
            sols = m0._solve_sampled(net, X, Y, gl, T, tol, max_iter, threads, progress)
        else:
            sols = cls._solve(net, X, Y, gl, [T] * len(gl), tol, max_iter, solver, threads, progress)
        models = []
        for g, s in zip(gl, sols):
            m = cls(net, g, temperature=T, width=width, solver=solver, tol=tol, max_iter=max_iter, n_threads=n_threads,
                    **sampler)
            m._set_solution(net, X, Y, np.ndim(y) == 1, g, T, threads, s)
            models.append(m)
        out = MeanFieldPath(
            gammas=np.array(gl), temperature=T, action=np.array([m.action_ for m in models]),
            converged=np.array([m.converged_ for m in models]), n_iter=np.array([m.n_iter_ for m in models]),
            residual=np.array([m.residual_ for m in models]),
            kappa=np.array([np.nan if m.kappa_ is None else m.kappa_ for m in models]), models=models)
        if not out.converged.all():
            bad = np.flatnonzero(~out.converged)
            warnings.warn(f"mean-field saddle point did not converge at path points {bad.tolist()}: "
                          + "; ".join(models[i]._nonconvergence_message(tol) for i in bad), ConvergenceWarning,
                          stacklevel=2)
        if X_test is not None:
            if y_test is None:
                raise ValueError("y_test: required with X_test")
            Xt, Yt = cls._data(X_test, y_test)
            check_same_features("X_test", Xt, X.shape[1])
            out.test_loss = np.array([float(np.mean((np.asarray(m.predict(Xt)).reshape(Yt.shape) - Yt) ** 2))
                                      for m in models])
            mean = nngp_predict(net, X, Y, Xt, T, threads)
            out.nngp_test_loss = float(np.mean((mean.reshape(Yt.shape) - Yt) ** 2))
        return out



def nngp_feature_kernel(net: MLP, X, X2=None, n_threads=None) -> np.ndarray:
    """gamma -> 0 limit of the last feature kernel ``Phi^L`` (no readout sigma_w):
    ``(K^L_NNGP - sigma_b^2) / sigma_w^2`` with the library's NNGP kernel of depth L."""
    K = nngp_kernel(net, X, X2, n_threads=n_threads)
    return (K - net.sigma_b**2) / net.sigma_w**2


def nngp_predict(net: MLP, X, Y, X_test, temperature, n_threads=None) -> np.ndarray:
    """The gamma -> 0 (NNGP) mean predictor ``Phi^L(*, X)(Phi^L + T I)^{-1} Y`` of the mean-field network."""
    K = nngp_feature_kernel(net, X, n_threads=n_threads)
    Kx = nngp_feature_kernel(net, X_test, X, n_threads=n_threads)
    return Kx @ np.linalg.solve(K + temperature * np.eye(len(K)), np.asarray(Y, float).reshape(len(K), -1))


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


def tilted_moments(C, hat_phi, *, activation: str = "tanh", n_chains: int = 4, n_samples: int = 2000,
                   burn_in: int = 500, thin: int = 1, step_size: float = 0.1, seed: int = 0,
                   n_threads: int | None = None, progress: bool | None = None) -> TiltedMoments:
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
    effective sample size is below 100 or a chain's acceptance is outside [0.2, 0.9].
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
        r = _core.tilted_moments(C, H, activation=activation, n_threads=threads, progress=cb, **kw)
    out = TiltedMoments(phi2=r["phi2"], h2=r["h2"], acceptance=np.asarray(r["acceptance"]),
                        step_size=np.asarray(r["step_size"]), ess=float(r["ess"]))
    if out.ess < 100 or np.any(out.acceptance < 0.2) or np.any(out.acceptance > 0.9):
        warnings.warn(f"tilted-density sampler: effective sample size {out.ess:.0f}, acceptance "
                      f"{np.round(out.acceptance, 3).tolist()}; the moments may be unreliable",
                      ConvergenceWarning, stacklevel=2)
    return out


__all__ = ["BayesianMeanField", "MeanFieldPath", "TiltedMoments", "tilted_moments", "nngp_feature_kernel", "nngp_predict"]
