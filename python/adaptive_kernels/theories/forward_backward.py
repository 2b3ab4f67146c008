"""Forward-backward MAP kernels of all layers in the proportional limit (Fischer et al., ICML 2024).

The prior of a Bayesian MLP's layer kernels is a superposition of Gaussian processes whose
kernels fluctuate by O(1/sqrt(N)); a large-deviation (saddle-point) treatment at fixed
alpha = P/N gives forward-backward equations for the maximum-a-posteriori kernels of every
layer at once. Implemented for deep linear networks (closed-form maps, full and first order) and
for nonlinear activations (tilted expectations sampled, full; or first order in 1/N).
"""
from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from .. import _core
from .._base import TheoryEstimator
from .._progress import progress_bar
from .._validation import check_float, check_int, check_n_threads
from ..exceptions import NumericalJitterWarning
from ..kernels.alignment import cka
from ..kernels.lazy import kernel_diagonal, nngp_kernel
from ..networks import MLP, check_net
from ..predictors import GaussianProcess

_DEFAULTS = _core.forward_backward.defaults()
_METHODS = ("full", "perturbative")


def _alignment(K, target, layer) -> float:
    """CKA of a layer kernel with Y Y^T; NaN (with a warning) where it is undefined: a kernel
    constant after centring (e.g. constant inputs)."""
    try:
        return cka(K, target)
    except ValueError as exc:
        warnings.warn(f"X: the CKA of layer {layer}'s kernel with Y Y^T is undefined ({exc}); alignment_ is NaN there",
                      RuntimeWarning, stacklevel=3)
        return float("nan")


class ForwardBackwardKernels(TheoryEstimator):
    """MAP kernels of every layer of a Bayesian deep network (Fischer et al. 2024).

    Model (standard scaling, as :func:`adaptive_kernels.sample_posterior` with
    ``parameterization="standard"``): L hidden layers of width ``N``, Gaussian likelihood of
    variance ``temperature`` ``T``, ``g = sigma_w^2``, ``b = sigma_b^2``. Given layer l-1, the
    kernel ``C^l = (g/N) sum_i h_i h_i^T + b`` of layer l is random, with ``h_i ~ N(0, C^{l-1})``
    (``C^0 = g X X^T / d + b``); its mean is the NNGP kernel ``K^l`` and it fluctuates by
    O(1/sqrt(N)). With ``G = C^L + T I``, ``Z = G^{-1} Y`` (``C`` output columns), the MAP of
    the kernels in the large-deviation form of their prior solves

    * forward  ``C^l = g C^{l-1} (I - 2 g Ct^l C^{l-1})^{-1} + b``   (l = 1..L)
    * backward ``Ct^{l-1} = g Ct^l (I - 2 g C^{l-1} Ct^l)^{-1}``     (l = L..2; the closed
      form of the Stein form ``1/2 C^{-1} (<hh^T>_tilt - C) C^{-1}``)
    * terminal ``Ct^L = (Z Z^T - C G^{-1}) / (2N)``

    (``Ct^l`` the conjugate kernels). ``method="full"`` solves them by width annealing: from
    the NNGP kernels at width ``N * start``, geometric steps in width down to ``N``
    (adaptive: the step doubles after a converged stage, halves after a failed one),
    Newton-Krylov at each stage, iterates with a non-PSD kernel or an improper tilted measure
    rejected. ``method="perturbative"``: first order in ``1/N`` around the NNGP,
    ``Ct^{l-1} = g Ct^l``, ``C^l = g C^{l-1} + b + 2 g^2 K^{l-1} Ct^l K^{l-1}``; for
    ``g = 1, b = 0`` it is Zavatone-Veth et al.'s ``K + (l/N) K Phi K``,
    ``Phi = Z Z^T - C G^{-1}``. ``width=inf`` gives the NNGP kernels exactly.

    **Nonlinear activations**: with
    ``W_l(Ct | C) = b 1^T Ct 1 + ln E_{h ~ N(0, C)} exp(g phi^T Ct phi)`` the forward map is the
    tilted expectation ``g <phi phi^T> + b`` under ``N(h; 0, C) exp(+g phi^T Ct phi)``. To first
    order around the NNGP kernels ``K^l = F(K^{l-1})``, ``F(C) = g E[phi phi^T] + b``:
    ``Ct^L`` from the terminal map at ``K^L``, ``Ct^{l-1} = J_l^T[Ct^l]`` (adjoint Jacobian of
    ``F`` at ``K^{l-1}``, Price's theorem), ``C^l = K^l + dC^l`` with
    ``dC^l = J_l[dC^{l-1}] + g^2 V_l[Ct^l]``, ``V[A]_ab = Cov(phi_a phi_b, phi^T A phi)`` under
    ``N(0, K^{l-1})``: the prior's kernel covariance applied to the log-likelihood gradient.
    ``V`` is estimated by Monte Carlo (``n_samples`` Gaussian samples, ``seed``; common random
    numbers, so the result is a deterministic function of the seed); its relative error is
    ``O(1/sqrt(n_samples))``. ``report_.residual`` is NaN there (the full nonlinear equations
    are not solved). ``method="full"`` solves the full equations with the tilted expectations
    sampled: forward ``C^l = g <phi phi^T>_tilt + b``, backward in the Stein form
    ``Ct^{l-1} = g sym(C^{-1} <h (phi' * Ct^l phi)^T>_tilt)``, terminal as above; ``n_samples``
    fixed draws per layer (whitened, so they move with ``C``; the tilt reweighted with
    self-normalised weights; the exact untilted map as control variate, so the Monte-Carlo error
    is proportional to the shift from the NNGP), the first draw shared with the first-order
    solution, redrawn by MALA at the solution when a layer's Kish fraction falls below
    ``min_kish`` (``kish_``, ``n_draws_``). Width annealing and Newton-Krylov as for linear nets.
    ``predict`` there: the test rows of each layer's kernel under the tilted measure, from the
    fit's final sample sets (kept, reweighted as the training block) with the test points
    carried along: given the training preactivations the test ones are Gaussian (the tilt acts
    on training points only, ``Ct`` zero on test rows as in the linear closed form), and that
    conditional is integrated out by Gauss-Hermite, so the rows are deterministic given the fit.

    ``predict`` is GP regression with the MAP readout kernel ``C^L`` and noise ``T`` (test rows
    from the forward equations on train + test with ``Ct`` zero on test rows). **It is not the
    posterior mean**: for one hidden layer, where the exact posterior is known
    (:func:`adaptive_kernels.exact_linear_posterior`), the shift of this predictor from the
    NNGP predictor points the same way as the exact shift but is about 3.6-4.4 times larger
    (alpha = 1 to 0.1; ``tests/theories/test_forward_backward.py``), so it is *worse* than the
    NNGP predictor. The kernels are representations: ``alignment_`` (centred kernel
    alignment with ``Y Y^T``, the paper's measure) is what to compare with sampled networks.

    Parameters
    ----------
    net : MLP (depth >= 1; any activation; "full" for nonlinear nets: built-in activations only)
    width : float > 0 (``inf`` allowed)
    temperature : float > 0
    method : {"full", "perturbative"}
    tol, max_iter, krylov, forcing : Newton-Krylov settings (default: the core's); converged
        when ``max_l |C^l - F_l|_F / |C^l|_F < tol`` at the target width.
    start, n_anneal, max_stages : annealing from width ``N * start`` with ``n_anneal`` initial
        steps in log width, at most ``max_stages`` stages.
    n_samples, seed : Monte-Carlo samples and seed of the 4-point covariance (nonlinear
        activations, first order) or of each layer's sample set (nonlinear, full).
    min_kish, max_refresh : nonlinear ``method="full"``: redraw a stage's samples (MALA at its
        solution) while some layer's Kish fraction is below ``min_kish``, at most
        ``max_refresh`` times a stage.
    n_threads : int, optional
    progress : bool, optional

    Fitted attributes
    -----------------
    kernels_ (``C^1..C^L`` on the training points), kernel_ (``C^L``), conjugates_
    (``Ct^1..Ct^L``), nngp_kernels_ (``K^1..K^L``), alignment_ (CKA of each ``C^l`` with
    ``Y Y^T``), nngp_alignment_ (the same for ``K^l``), report_ (``stages``: widths of the
    annealing, failed ones negative), converged_, n_iter_, residual_, dual_coef_, L_ (Cholesky
    factor of ``C^L + T I``), action_ (None), X_train_, y_train_, n_features_in_.
    """

    _path_parameters = {"widths": "width", "temperatures": "temperature"}

    def __init__(self, net: MLP, *, width, temperature: float, method: str = _DEFAULTS["method"],
                 tol: float = _DEFAULTS["tol"], max_iter: int = _DEFAULTS["max_iter"],
                 krylov: int = _DEFAULTS["krylov"], forcing: float = _DEFAULTS["forcing"],
                 start: float = _DEFAULTS["start"], n_anneal: int = _DEFAULTS["n_anneal"],
                 max_stages: int = _DEFAULTS["max_stages"], n_samples: int = _DEFAULTS["n_samples"],
                 seed: int = _DEFAULTS["seed"], min_kish: float = _DEFAULTS["min_kish"],
                 max_refresh: int = _DEFAULTS["max_refresh"], n_threads: int | None = None,
                 progress: bool | None = None):
        self.net = net
        self.width = width
        self.temperature = temperature
        self.method = method
        self.tol = tol
        self.max_iter = max_iter
        self.krylov = krylov
        self.forcing = forcing
        self.start = start
        self.n_anneal = n_anneal
        self.max_stages = max_stages
        self.n_samples = n_samples
        self.seed = seed
        self.min_kish = min_kish
        self.max_refresh = max_refresh
        self.n_threads = n_threads
        self.progress = progress

    def _check_params(self) -> dict:
        net = check_net(self.net)
        if net.depth < 1:
            raise ValueError("net: the forward-backward kernels need at least one hidden layer (depth >= 1)")
        width = check_float("width", self.width, minimum=0.0, strict=True, allow_inf=True)
        T = check_float("temperature", self.temperature, minimum=0.0, strict=True)
        if not isinstance(self.method, str) or self.method not in _METHODS:
            raise ValueError(f"method: expected one of {_METHODS}, got {self.method!r}")
        options = dict(method=self.method,
                       tol=check_float("tol", self.tol, minimum=0.0, strict=True),
                       max_iter=check_int("max_iter", self.max_iter, minimum=1),
                       krylov=check_int("krylov", self.krylov, minimum=1),
                       forcing=check_float("forcing", self.forcing, minimum=0.0, strict=True),
                       start=check_float("start", self.start, minimum=1.0),
                       n_anneal=check_int("n_anneal", self.n_anneal, minimum=1),
                       max_stages=check_int("max_stages", self.max_stages, minimum=1),
                       n_samples=check_int("n_samples", self.n_samples, minimum=2),
                       seed=check_int("seed", self.seed, minimum=0),
                       min_kish=check_float("min_kish", self.min_kish, minimum=0.0, strict=True),
                       max_refresh=check_int("max_refresh", self.max_refresh, minimum=0))
        if options["min_kish"] > 1:
            raise ValueError(f"min_kish: must be in (0, 1], got {self.min_kish}")
        return dict(net=net, width=width, temperature=T, options=options,
                    threads=check_n_threads(self.n_threads), progress=self.progress)

    def _solve(self, X, Y, points):
        p0 = points[0]
        with progress_bar(p0["progress"], "forward-backward kernels", float(len(points) * p0["options"]["n_anneal"]),
                          unit="stages") as cb:
            return _core.forward_backward.solve(
                X, Y, p0["net"], widths=[p["width"] for p in points],
                temperatures=[p["temperature"] for p in points], options=p0["options"],
                n_threads=p0["threads"], progress=cb)

    def _store(self, s) -> None:
        p = self._params
        net = p["net"]
        self.report_ = self._report(s.report)
        self.kernels_ = [np.asarray(k) for k in s.kernels]
        self.kernel_ = self.kernels_[-1]
        self.conjugates_ = [np.asarray(k) for k in s.conjugates]
        self._input_conjugate = np.asarray(s.input_conjugate)
        self.kish_ = np.asarray(s.kish, dtype=float)
        self.n_draws_ = int(s.n_draws)
        self._draws_z = [np.asarray(z) for z in s.draws_z]
        self._draws_e = [list(e) for e in s.draws_e]
        self.action_ = None
        if s.factor_jitter > 0:
            warnings.warn(f"C^L + T I was numerically singular; added jitter {s.factor_jitter:.3e}",
                          NumericalJitterWarning, stacklevel=4)
        self._U = np.asarray(s.factor)
        self.L_ = self._U.T
        self.dual_coef_ = np.asarray(s.dual_coef)
        self._K0 = self._lazy(0, self.X_train_)
        self.nngp_kernels_ = [self._lazy(depth, self.X_train_) for depth in range(1, net.depth + 1)]
        Yc = self.y_train_ - self.y_train_.mean(axis=0)
        if np.max(np.abs(Yc)) > 0:
            Yc = Yc / np.max(np.abs(Yc))   # CKA is scale invariant; this keeps Y Y^T finite for huge y
            target = Yc @ Yc.T
            self.alignment_ = np.array([_alignment(k, target, l) for l, k in enumerate(self.kernels_, 1)])
            self.nngp_alignment_ = np.array([_alignment(k, target, l) for l, k in enumerate(self.nngp_kernels_, 1)])
        else:
            warnings.warn("y: constant targets; the alignment with Y Y^T is undefined (alignment_ is NaN)",
                          RuntimeWarning, stacklevel=2)
            self.alignment_ = np.full(len(self.kernels_), np.nan)
            self.nngp_alignment_ = np.full(len(self.nngp_kernels_), np.nan)

    def _lazy(self, depth, A, B=None):
        """The library's NNGP kernel of the linear net truncated to ``depth`` layers (``K^0`` at 0)."""
        return nngp_kernel(replace(self._params["net"], depth=depth), A, B, n_threads=self._params["threads"])

    def _nonconvergence_message(self) -> str:
        r = self.report_
        return (f"ForwardBackwardKernels: width annealing did not reach width {self._params['width']} "
                f"(residual {r.residual:.3e}, stages {r.stages.tolist()}); the fitted state is the last accepted one")

    # -- prediction ---------------------------------------------------------------------------
    def joint_kernels(self, X):
        """``(cross, diag)`` of every layer: ``C^l(X_train, X)`` (P, Q) and the diagonal
        ``C^l(x, x)`` (Q,), l = 1..L, from the forward equations with ``Ct`` zero on the rows of
        ``X``: ``C^l(., X) = g (I + 2 C^{l-1} Ct^{l-1}) C^{l-1}(., X) + b``,
        ``C^l(x, x) = g C^{l-1}(x, x) + 2 g C^{l-1}(., x)^T Ct^{l-1} C^{l-1}(., x) + b``
        (``Ct^0 = g Ct^1 (I - 2 g C^0 Ct^1)^{-1}``). With ``method="perturbative"`` the same
        equations to first order: ``C^l(., X) = g C^{l-1}(., X) + b + 2 g^2 K^{l-1} Ct^l K^{l-1}(., X)``
        and likewise the diagonal, with the NNGP kernels ``K``."""
        X = self._check_test(X)
        net = self._params["net"]
        g, b = net.sigma_w ** 2, net.sigma_b ** 2
        cross = self._lazy(0, self.X_train_, X)
        diag = kernel_diagonal(replace(net, depth=0), X, n_threads=self._params["threads"])
        K0 = self._K0
        out = []
        if net.activation != "linear" and self.report_.solver == "newton_krylov_sampled":
            # the fit's final sample sets reweighted, test points carried along given the
            # training preactivations (the conditional Gaussian integrated out)
            rows = _core.forward_backward.sampled_forward(
                np.ascontiguousarray(self.X_train_, dtype=float),
                np.ascontiguousarray(np.asarray(self.y_train_, dtype=float).reshape(len(self.X_train_), -1)),
                np.ascontiguousarray(X, dtype=float), net,
                [np.ascontiguousarray(c) for c in self.kernels_], [np.ascontiguousarray(c) for c in self.conjugates_],
                self._draws_z, self._draws_e, n_threads=self._params["threads"])
            return [(np.asarray(c).T.copy(), np.asarray(d)) for c, d in rows]
        if net.activation != "linear":
            # first order on train + test (Ct zero on the test rows; same samples on the train block)
            Xj = np.ascontiguousarray(np.vstack([self.X_train_, X]))
            P = len(self.X_train_)
            Cs = _core.forward_backward.perturbative_forward(
                Xj, [np.ascontiguousarray(c) for c in self.conjugates_], net,
                options=self._params["options"], n_threads=self._params["threads"])
            return [(np.asarray(C)[:P, P:], np.diag(np.asarray(C))[P:].copy()) for C in Cs]
        if self.report_.solver == "perturbative":
            kc = cross
            for K, Ct in zip([K0] + self.nngp_kernels_[:-1], self.conjugates_):
                tc = Ct @ kc
                cross = g * cross + b + 2 * g * g * K @ tc
                diag = g * diag + b + 2 * g * g * np.einsum("ij,ij->j", kc, tc)
                kc = g * kc + b
                out.append((cross, diag))
            return out
        for C, Ct in zip([K0] + self.kernels_[:-1], [self._input_conjugate] + self.conjugates_[:-1]):
            tc = Ct @ cross
            diag = g * diag + 2 * g * np.einsum("ij,ij->j", cross, tc) + b
            cross = g * (cross + 2 * C @ tc) + b
            out.append((cross, diag))
        return out

    def predict(self, X, return_std: bool = False):
        """GP regression with the MAP readout kernel (see the class docstring: not the posterior
        mean); with ``return_std`` the GP's standard deviation of f(x*) (noise not added)."""
        return super().predict(X, return_std)

    def _predict(self, X, return_std):
        cross, diag = self.joint_kernels(X)[-1]
        mean, var = _core.predictors.gp_predict(self._U, self.dual_coef_, np.ascontiguousarray(cross),
                                                np.ascontiguousarray(diag) if return_std else None,
                                                n_threads=self._params["threads"])
        return mean, (np.sqrt(np.maximum(var, 0.0)) if return_std else None)

    def _baseline(self, X, Y, X_test, params):
        return GaussianProcess(params["net"], ridge=params["temperature"], n_threads=params["threads"]).fit(
            X, Y).predict(X_test)


__all__ = ["ForwardBackwardKernels"]
