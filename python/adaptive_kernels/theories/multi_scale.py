"""Multi-scale adaptive theory (Rubin, Fischer, Lindner, Dahmen, Seroussi, Ringel, Krämer, Helias,
ICML 2025), reconstructed: one theory from standard to mean-field scaling.

One knob ``chi`` spans the continuum: the readout is divided by ``sqrt(chi)`` and the
likelihood multiplied by ``chi``, so ``chi = 1`` is standard scaling, ``chi = N gamma^2`` the
mean-field scaling at richness ``gamma``, and the NNGP predictor is the same for every ``chi``.
Mean-field scaling needs only the saddle point (``order="tree"``); standard scaling needs the
correction (``order="corrected"``). One-hidden-layer networks: linear (both orders, closed
form) and, at tree level, any activation (tilted per-neuron measure sampled by MCMC).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import solve_triangular

from .. import _core, tilted
from .._base import TheoryEstimator
from .._progress import progress_bar
from .._validation import check_float, check_int, check_n_threads, check_options
from ..exceptions import NumericalJitterWarning
from ..kernels.lazy import kernel_diagonal, nngp_kernel
from ..networks import MLP, check_net
from ..predictors import GaussianProcess

_DEFAULTS = _core.multi_scale.defaults()
_ORDERS = ("auto", "corrected", "tree")
_SOLVERS = ("auto", "closed_form", "sampled")
_SAMPLED = tilted.DEFAULTS


class MultiScaleAdaptive(TheoryEstimator):
    """Multi-scale adaptive theory of a Bayesian linear network (any depth; nonlinear: one hidden
    layer, tree level).

    Convention (the ground truth is :func:`adaptive_kernels.exact_linear_posterior` and
    :func:`adaptive_kernels.sample_posterior` with the same ``chi``): first layer
    ``h = sigma_w W x / sqrt(d)``, readout ``f = sigma_w v . h / sqrt(chi N)``, posterior
    ``p(theta | D) ∝ exp(-chi sum_mu (f_mu - y_mu)^2 / (2 T) - |theta|^2 / 2)``. ``chi = 1`` is
    standard scaling; ``chi = N gamma^2`` (``sigma_w = 1``) is the mean-field scaling of
    :class:`BayesianMeanField` at richness ``gamma``. (The theory digest holds the noise fixed
    instead; its ``(chi, kappa)`` is this convention at ``(chi, chi kappa)``.)

    Given the readout, ``f`` is a GP with kernel ``Q Kn / chi`` and noise ``T / chi``, where
    ``Kn`` is the NNGP kernel and ``Q = chi u / sigma_w^2`` the kernel scale. With
    ``G = Q Kn + T I``, the theory fixes ``Q`` by the scalar root ::

        (Q - 1) = (chi Q / N) y^T G^{-1} Kn G^{-1} y  -  [corrected] (Q / N) tr(Kn G^{-1})

    * ``order="tree"``: the tree level (saddle point) of the per-neuron tilted measure
      ``p(w) ∝ N(w; 0, I) exp[(a/2) (t^T X w)^2]``, ``a = sigma_w^4 chi / (N T^2 d)``, with the
      training discrepancy ``t = y - f``. Its adapted kernel is the NNGP kernel plus a rank-one
      term along ``Kn t``; on the mean predictor it acts exactly like the rescaling ``Q Kn``.
      Exact as ``chi / N`` grows; off by O(1) at ``chi = 1``.
    * ``order="corrected"``: adds the trace term (the output fluctuations), exact in the
      proportional limit at any ``chi``; at ``chi = 1`` it is :class:`KernelRenormalization`.

    **Nonlinear networks, tree level** (``solver="sampled"``, the default for a nonlinear
    ``net``): the tilted per-neuron measure is ``p(h) ∝ N(h; 0, K0) exp[(sigma_w^2 chi / (2 N)) (b^T phi(h))^2]``
    on the preactivations ``h`` of one neuron at the training points (``K0 = sigma_w^2 X X^T / d``),
    ``b = (K + T I)^{-1} y``, ``K = sigma_w^2 <phi(h) phi(h)^T>``; the self-consistency in the
    P-vector ``t = T b`` is exactly the one-hidden-layer saddle point of Lauditi et al.'s
    Bayesian mean-field theory at ``gamma = sqrt(chi / N) / sigma_w`` and temperature
    ``T / sigma_w^2`` (substitute ``Phi = K / sigma_w^2``). It is solved by the tilted fixed point
    both theories share (:mod:`adaptive_kernels.tilted`: the tilted-density MCMC with reweighting,
    Newton-Krylov on the conjugate, continuation in ``gamma``, i.e. in ``chi``), with ``sampler_options`` as for
    ``BayesianMeanField(solver="sampled")``; for a linear ``net`` it reproduces the closed
    form (Monte-Carlo error). ``scale_`` is NaN there (the adaptation is no rescaling), and
    ``weight_covariance_`` is ``E[W^T W] / N = I - Pi + X'^+ <h h^T> X'^{+T}`` from the tilted
    samples (``X' = sigma_w X / sqrt(d)``, ``Pi`` the projector on its row space).

    **Deep linear networks** (``depth = L >= 2``, hidden layers ``h^{l+1} = sigma_w W^l h^l / sqrt(N)``):
    given the weights, ``f`` is a GP with kernel ``U Kn / chi``, ``U = Q_1 ... Q_L`` (one scale per
    layer, ``N Q_l`` chi-square a priori, Li & Sompolinsky), ``Kn`` the NNGP kernel; the saddle point
    has ``Q_l = Q`` and solves the scalar equation above with ``Q^L`` in place of the ``Q`` that
    multiplies ``Kn`` (left side still ``Q - 1``). ``scale_`` is the kernel scale ``U``,
    ``layer_scale_`` is ``Q``. The tree level is exactly ``BayesianMeanField``'s deep-linear closed form
    at ``gamma = sqrt(chi / N) / sigma_w``, temperature ``T / sigma_w^2`` (``Q = 1 / (1 - kappa)``); the
    corrected order at ``chi = 1`` is ``KernelRenormalization``. The action can have several minima
    (first-order transitions in ``chi``): each point takes the global minimum (``minima_`` lists
    every minimum ``(Q, S)`` found; ``Q0`` is not used). ``weight_covariance_`` is the first layer's
    (its tree-level spike is ``Q``, not ``U``); deeper layers carry no direction: by the rotation
    symmetry of every hidden layer ``E[W^l^T W^l] / N = (1 + (Q - 1) / N) I``. As ``chi`` grows at
    fixed ``N`` and ``T`` the data term grows like ``chi`` while the trace term saturates at rank / N:
    the two orders merge, with a relative gap in ``Q`` of order ``chi^(-1/(L+1))`` (``Kn`` invertible).

    Algorithm 1 of the paper ("annealing of solutions across scaling regimes") is
    ``path(X, y, chis=[...])``: the first point starts from the NNGP (``Q = 1``), each next one
    from the previous ``Q``. ``width=inf`` gives the NNGP GP exactly. Several output columns
    share one ``Q`` (isotropic ansatz, as :class:`KernelRenormalization`); the directional
    observables (adapted kernel, weight covariance) are for one output.

    Parameters
    ----------
    net : MLP(activation="linear", sigma_b=0) (any depth), or MLP(depth=1, sigma_b=0) with any
        built-in activation (sampled tree level)
    width : float > 0 (``inf`` allowed)
    temperature : float > 0
    chi : float > 0
    order : {"auto", "corrected", "tree"}
        ``"auto"`` (the core's default): ``"corrected"`` where it is implemented (linear nets, closed
        form), ``"tree"`` on the sampled tree level (nonlinear nets, or ``solver="sampled"``).
        ``order_`` is the order solved.
    solver : {"auto", "closed_form", "sampled"}
        ``"auto"``: the closed form for linear nets, the sampled tree level otherwise.
    sampler_options : dict, optional
        Settings of the sampled solver (``adaptive_kernels.tilted.DEFAULTS`` where left out).
    tol, max_iter : scalar-root settings (default: the core's)
    Q0 : float, optional
        Start of the root (default 1, the NNGP; one hidden layer only).
    n_threads : int, optional
    progress : bool, optional

    Fitted attributes
    -----------------
    scale_ (the kernel scale: ``Q``, deep ``U = Q^L``), layer_scale_ (``Q``), minima_ (every minimum
    ``(Q, S)`` of the scale's action found; deep nets), kernel_ (the predictor's readout kernel in NNGP units: ``Q Kn`` corrected,
    the rank-one adapted kernel at tree level; the noise is ``T``), kernels_ (``[kernel_]``),
    dual_coef_ (``(kernel_ + T I)^{-1} y``), discrepancy_ (``y - f`` on the training points),
    train_mean_, train_std_, weight_covariance_ (``E[W^T W] / N``, d x d, prior ``I``: tree
    level the tilted measure's covariance, corrected the exact conditional formula at the
    saddle ``Q``), weight_eigenvalues_ (descending), weight_overlap_ (``|cos|`` of the top
    eigenvector with ``X^T t``), order_ (the order solved: ``order`` with "auto" resolved),
    action_ (the action at ``Q``), curvature_ (its second
    derivative), report_, converged_, n_iter_, residual_, X_train_, y_train_, n_features_in_.
    """

    _options_param = "sampler_options"

    _path_parameters = {"chis": "chi", "widths": "width", "temperatures": "temperature"}

    def __init__(self, net: MLP, *, width, temperature: float, chi: float = 1.0, order: str = _DEFAULTS["order"],
                 solver: str = "auto", tol: float = _DEFAULTS["tol"], max_iter: int = _DEFAULTS["max_iter"], Q0=None,
                 sampler_options: dict | None = None, n_threads: int | None = None, progress: bool | None = None):
        self.net = net
        self.width = width
        self.temperature = temperature
        self.chi = chi
        self.order = order
        self.solver = solver
        self.sampler_options = sampler_options
        self.tol = tol
        self.max_iter = max_iter
        self.Q0 = Q0
        self.n_threads = n_threads
        self.progress = progress

    def _check_params(self) -> dict:
        net = check_net(self.net)
        width = check_float("width", self.width, minimum=0.0, strict=True, allow_inf=True)
        T = check_float("temperature", self.temperature, minimum=0.0, strict=True)
        chi = check_float("chi", self.chi, minimum=0.0, strict=True)
        if not isinstance(self.order, str) or self.order not in _ORDERS:
            raise ValueError(f"order: expected one of {_ORDERS}, got {self.order!r}")
        q0 = None if self.Q0 is None else check_float("Q0", self.Q0, minimum=0.0, strict=True)
        if not isinstance(self.solver, str) or self.solver not in _SOLVERS:
            raise ValueError(f"solver: expected one of {_SOLVERS}, got {self.solver!r}")
        sampled = self.solver == "sampled" or (self.solver == "auto" and net.activation != "linear")
        if self.solver == "closed_form" and net.activation != "linear":
            raise ValueError("solver: 'closed_form' needs activation='linear'; use 'sampled' (or 'auto')")
        order = _core.multi_scale.resolve_order(self.order, sampled)   # "auto": the core's rule
        options = dict(order=order, tol=check_float("tol", self.tol, minimum=0.0, strict=True),
                       max_iter=check_int("max_iter", self.max_iter, minimum=1))
        if sampled:
            if net.depth != 1 or net.sigma_b != 0 or not isinstance(net.activation, str):
                raise ValueError("net: the sampled tree level needs MLP(depth=1, sigma_b=0) with a built-in activation")
            if order != "tree":
                raise ValueError("order: the standard-scaling correction of nonlinear networks is not implemented; "
                                 "use order='tree' or 'auto' (exact as chi / N grows)")
            if not np.isfinite(width):
                raise ValueError("width: the sampled tree level needs a finite width (width=inf is the NNGP)")
            options = dict(_SAMPLED, **check_options("sampler_options", self.sampler_options))
        return dict(net=net, width=width, temperature=T, chi=chi, q0=q0, options=options, sampled=sampled, order=order,
                    threads=check_n_threads(self.n_threads), progress=self.progress)

    def _solve(self, X, Y, points):
        p0 = points[0]
        if p0["sampled"]:
            return self._solve_sampled(X, Y, points)
        with progress_bar(p0["progress"], "multi-scale adaptive", float(len(points)), unit="points") as cb:
            return _core.multi_scale.solve(
                X, Y, p0["net"], widths=[p["width"] for p in points],
                temperatures=[p["temperature"] for p in points], chis=[p["chi"] for p in points],
                q0=p0["q0"], options=p0["options"], n_threads=p0["threads"], progress=cb)

    # -- the sampled tree level (any activation): the mean-field saddle at gamma = sqrt(chi/N)/sigma_w --
    @staticmethod
    def _mean_field_point(p):
        sw = p["net"].sigma_w
        return float(np.sqrt(p["chi"] / p["width"]) / sw), p["temperature"] / sw ** 2

    def _solve_sampled(self, X, Y, points):
        p0 = points[0]
        gammas, temps = zip(*(self._mean_field_point(p) for p in points))
        if len(set(temps)) != 1:
            raise ValueError("temperatures: a sampled path needs one temperature (its points are a continuation in chi)")
        work = tilted.expected_work(X, p0["net"], p0["options"])
        with progress_bar(p0["progress"], "multi-scale adaptive (sampled tree level)", work, unit="steps") as cb:
            return tilted.solve(X, Y, p0["net"], gammas=gammas, temperature=temps[0], options=p0["options"],
                                n_threads=p0["threads"], progress=cb)

    def _store_sampled(self, s) -> None:
        p = self._params
        net, T = p["net"], p["temperature"]
        s2 = net.sigma_w ** 2
        self.report_ = self._report(s.report)
        self.order_ = p["order"]
        self.scale_ = float("nan")
        self.layer_scale_ = float("nan")
        self.minima_ = []
        self.action_ = None
        self.curvature_ = float("nan")
        self._phi = np.asarray(s.kernels[-1])
        self.kernel_ = s2 * self._phi
        self.kernels_ = [self.kernel_]
        self.dual_coef_ = np.asarray(s.dual_coef) / s2
        self._samples = [np.asarray(h) for h in s.samples]
        self._weights = [np.asarray(w) for w in s.weights]
        self._rank_one = 0.0
        self.gamma_reached_ = float(s.gamma)
        out = (lambda a: np.asarray(a)[:, 0]) if self._y_1d else np.asarray
        self.discrepancy_ = out(T * self.dual_coef_)
        self.train_mean_ = out(self.y_train_ - T * self.dual_coef_)
        self.train_std_ = self._predict_sampled(self.X_train_, True)[1]
        if self._y_1d:
            d = self.X_train_.shape[1]
            Xp = net.sigma_w * self.X_train_ / np.sqrt(d)
            pinv = np.linalg.pinv(Xp)   # (d, P)
            h, w = self._samples[0], self._weights[0]
            hh = (h * (w / w.sum())[:, None]).T @ h
            S = np.eye(d) - pinv @ Xp + pinv @ hh @ pinv.T
            self.weight_covariance_ = 0.5 * (S + S.T)
            ev, vec = np.linalg.eigh(self.weight_covariance_)
            self.weight_eigenvalues_ = ev[::-1]
            xt = self.X_train_.T @ self.discrepancy_
            self.weight_overlap_ = float(abs(vec[:, -1] @ xt) / np.linalg.norm(xt))
        else:
            self.weight_covariance_, self.weight_eigenvalues_, self.weight_overlap_ = None, np.zeros(0), float("nan")

    def _predict_sampled(self, X, return_std):
        p = self._params
        net = p["net"]
        mean, var = tilted.predict(
            self.X_train_, self.y_train_, [self._phi], self._samples, self._weights, X, net,
            temperature=p["temperature"] / net.sigma_w ** 2, seed=int(p["options"]["seed"]), return_var=return_std,
            n_threads=p["threads"])
        # the chi the continuation reached (the requested one unless it stopped early)
        chi = p["chi"] if np.isinf(p["width"]) else p["width"] * (self.gamma_reached_ * net.sigma_w) ** 2
        std = np.sqrt(np.maximum(var, 0.0) * net.sigma_w ** 2 / chi) if return_std else None
        return np.asarray(mean), std

    def _store(self, s) -> None:
        if self._params["sampled"]:
            return self._store_sampled(s)
        self.report_ = self._report(s.report)
        self.order_ = self._params["order"]
        self.scale_ = float(s.scale)
        self.layer_scale_ = float(s.layer_scale)
        self.minima_ = [tuple(m) for m in s.minima]
        self.action_ = float(s.action)
        self.curvature_ = float(s.curvature)
        self.kernel_ = np.asarray(s.kernel)
        self.kernels_ = [self.kernel_]
        if s.factor_jitter > 0:
            warnings.warn(f"kernel_ + T I was numerically singular; added jitter {s.factor_jitter:.3e}",
                          NumericalJitterWarning, stacklevel=4)
        self._U = np.asarray(s.factor)
        self.L_ = self._U.T
        self.dual_coef_ = np.asarray(s.dual_coef)
        self._dual2 = np.asarray(s.dual2)
        self._rank_one = float(s.rank_one)
        self._kn = None
        out = (lambda a: np.asarray(a)[:, 0]) if self._y_1d else np.asarray
        self.discrepancy_ = out(s.discrepancy)
        self.train_mean_ = out(s.train_mean)
        self.train_std_ = np.sqrt(np.maximum(out(s.train_var), 0.0))
        wc = np.asarray(s.weight_covariance)
        self.weight_covariance_ = wc if wc.size else None
        self.weight_eigenvalues_ = np.asarray(s.weight_eigenvalues)
        self.weight_overlap_ = float(s.weight_overlap)

    def _nonconvergence_message(self) -> str:
        return (f"MultiScaleAdaptive: the scalar root did not converge in {self.n_iter_} iterations "
                f"(residual {self.residual_:.3e}); scale_ = {self.scale_}")

    def predict(self, X, return_std: bool = False):
        """Posterior mean of f; with ``return_std`` its standard deviation (latent f, noise not
        added): the GP variance on ``kernel_`` divided by ``chi``, plus for ``order="corrected"``
        the Laplace term of the scale mode ``(df/dQ)^2 / S''(Q)``, ``df/dQ = T k*^T G^{-2} y``."""
        return super().predict(X, return_std)

    def _predict(self, X, return_std):
        p = self._params
        if p["sampled"]:
            return self._predict_sampled(X, return_std)
        kc = nngp_kernel(p["net"], self.X_train_, X, n_threads=p["threads"])
        q, T, chi = self.scale_, p["temperature"], p["chi"]
        eff = self._rank_one
        if eff > 0:   # tree level, one output: Kn + eff (Kn t)(Kn t)^T
            r = kc.T @ self.discrepancy_.reshape(-1)
            w = self._nngp_train() @ self.discrepancy_.reshape(-1)
            cross = kc + eff * np.outer(w, r)
        else:
            cross = q * kc
        diag = None
        if return_std:
            dn = kernel_diagonal(p["net"], X, n_threads=p["threads"])
            diag = dn + eff * r * r if eff > 0 else q * dn
        mean, var = _core.predictors.gp_predict(self._U, self.dual_coef_, np.ascontiguousarray(cross),
                                                None if diag is None else np.ascontiguousarray(diag),
                                                n_threads=p["threads"])
        if not return_std:
            return mean, None
        var = np.maximum(var, 0.0) / chi
        if p["order"] == "corrected" and np.isfinite(p["width"]) and self.curvature_ > 0:
            df = T * (kc.T @ self._dual2)   # (Q, C)
            var = var + (df[:, 0] ** 2 if self._y_1d else np.mean(df ** 2, axis=1)) / self.curvature_
        return mean, np.sqrt(var)

    def _nngp_train(self):
        if getattr(self, "_kn", None) is None:
            p = self._params
            self._kn = nngp_kernel(p["net"], self.X_train_, n_threads=p["threads"])
        return self._kn

    def _baseline(self, X, Y, X_test, params):
        return GaussianProcess(params["net"], ridge=params["temperature"], n_threads=params["threads"]).fit(
            X, Y).predict(X_test)


__all__ = ["MultiScaleAdaptive"]
