"""Kernel renormalization of Bayesian deep networks in the proportional limit.

Li & Sompolinsky (PRX 2021) for deep linear networks, Pacelli et al. (Nat. Mach. Intell. 2023)
for nonlinear ones: with P, N -> infinity at fixed alpha = P/N, the posterior-mean predictor of a
Bayesian MLP is a GP whose layer kernels are the NNGP ones rescaled by one scalar order
parameter per hidden layer, fixed by a saddle point.
"""
from __future__ import annotations

import numbers
import dataclasses
import warnings

import numpy as np

from .. import _core
from .._base import TheoryEstimator
from .._progress import progress_bar
from .._validation import as_matrix, check_float, check_int, check_n_threads, check_same_features
from ..exceptions import NumericalJitterWarning
from ..kernels.lazy import kernel_diagonal_scaled, lazy_kernels
from ..networks import MLP, check_net
from ..predictors import GaussianProcess

_DEFAULTS = _core.kernel_renormalization.defaults()

_SOLVERS = ("auto", "spectral", "cholesky")

# method="quadrature": the largest variance of a layer map's input (layers 2..L, whose gradient
# in Q holds E[phi''(u) phi(v)] / 2) at which the polar rule of order q still resolves phi'',
# ``factor * q / 32``. phi'' of these activations is concentrated within ~1 of 0, a band of width
# ~1/sqrt(variance) of the standard Gaussian that the rule's q/2 angular x q radial nodes miss
# as the variance grows. Measured (depth 2, P = 6, collinear and generic rows, dS/dQ_1 against
# central differences of S, relative to max |dS/dQ|): at the limit the error is <= 1e-5 (tanh
# q = 32: 3e-7 at 0.85, 3e-5 at 1.27; q = 128: 4e-6 at 4.7, 1e-4 at 9.0, 8e-3 at 22; gelu and
# softplus reach the same error at ~2x and ~4x the tanh variance). Callables: tanh's factor.
_QUADRATURE_FACTOR = {"tanh": 1.0, "gelu": 2.0, "softplus": 4.0}


def _widths(width, depth: int) -> list[float]:
    """Per-layer widths N_1..N_L from an int/float or a sequence (inf allowed: Q_l = 1)."""
    if isinstance(width, (bool, np.bool_, str, bytes)) or width is None:
        raise TypeError(f"width: expected a number or a sequence of numbers, got {type(width).__name__}")
    if isinstance(width, numbers.Real):
        ws = [width] * depth
    else:
        try:
            ws = list(width)
        except TypeError:
            raise TypeError(f"width: expected a number or a sequence of numbers, got {type(width).__name__}") from None
        if len(ws) != depth:
            raise ValueError(f"width: needs one width per hidden layer ({depth}), got {len(ws)}")
    out = []
    for w in ws:
        w = check_float("width", w, allow_inf=True)
        if not w > 0:
            raise ValueError(f"width: widths must be > 0, got {w}")
        out.append(w)
    return out


class KernelRenormalization(TheoryEstimator):
    """Posterior of a Bayesian MLP in the proportional limit (kernel renormalization).

    Model (standard scaling, as :func:`adaptive_kernels.sample_posterior` with
    ``parameterization="standard"``): widths ``N_1..N_L``, Gaussian likelihood of variance
    ``temperature`` ``T``, standard-normal weights with explicit scales ``sigma_w``, ``sigma_b``.
    The theory rescales the NNGP layer kernels of ``net``::

        K^0 = sigma_w^2 X X^T / d + sigma_b^2
        K^l = Q_l (sigma_w^2 E_{(u,v)~N(0,K^{l-1})}[phi(u) phi(v)] + sigma_b^2),   l = 1..L

    and fixes ``Q`` by minimising the action (minus the log evidence at the saddle point,
    constants dropped), with ``A = K^L(Q) + T I`` on the training points and ``C`` outputs::

        S(Q) = 1/2 sum_l N_l (Q_l - ln Q_l) + 1/2 [tr(Y^T A^{-1} Y) + C ln det A]

    For equal widths and one output, ``(2/N) S`` is the action of Pacelli et al. (2023) and of
    their package ``deepbays``; for deep linear networks without bias the stationarity
    conditions ``N_l (Q_l - 1) = tr(A^{-1}YY^TA^{-1} K^L) - C tr(A^{-1} K^L)`` are
    Li & Sompolinsky's back-propagating kernel renormalization. Several outputs share one
    ``Q_l`` per layer (isotropic ansatz; the ``C x C`` "kernel shape" renormalization of
    Pacelli et al. 2024 is not implemented). ``width=inf`` pins ``Q_l = 1``: all-infinite widths
    give the NNGP GP predictor exactly.

    The predictor is the GP with kernel ``K^L(Q)`` and noise variance ``T``; test rows follow the
    same renormalized recursion.

    Parameters
    ----------
    net : MLP (depth >= 1)
    width : int, float or sequence of L of them (``inf`` allowed)
    temperature : float > 0
    tol : float
        Default: the core's. Convergence when ``max_l |(Q_l - 1) + Q_l tr(G dK^L/dQ_l)/N_l| < tol``, the stationarity
        condition of layer l divided by ``N_l/2`` (``G = C A^{-1} - A^{-1}YY^TA^{-1}``).
    max_iter : int
        Default: the core's. Quasi-Newton (BFGS in ``log Q``, backtracking line search) iterations.
    solver : {"auto", "spectral", "cholesky"}
        ``"cholesky"``: one Cholesky per evaluation, any architecture. ``"spectral"``: one
        eigendecomposition, then O(P) per evaluation; only when ``K^L(Q) = (prod Q) K^L(1)``
        (one hidden layer, or linear without bias). ``"auto"``: spectral for paths where it
        applies, Cholesky otherwise.
    Q0 : array (L,), optional
        Starting point (default all ones, the lazy limit).
    n_threads : int, optional
    progress : bool, optional

    Fitted attributes
    -----------------
    Q_ (L,), action_ (S(Q*)), gradient_ (dS/dQ at Q*), report_ (with converged_, n_iter_,
    residual_, residual_history_ read from it), n_eval_, solver_, kernels_ (the renormalized
    ``K^l(Q*)``, l = 1..L, on the training points), kernel_ (``K^L(Q*)``), L_ (Cholesky factor of
    ``K^L + T I``), dual_coef_ (``(K^L + T I)^{-1} y``), X_train_, y_train_, n_features_in_.
    """

    _path_parameters = {"widths": "width", "temperatures": "temperature"}

    def __init__(self, net: MLP, *, width, temperature: float, tol: float = _DEFAULTS["tol"],
                 max_iter: int = _DEFAULTS["max_iter"], solver: str = _DEFAULTS["solver"], Q0=None,
                 n_threads: int | None = None, progress: bool | None = None):
        self.net = net
        self.width = width
        self.temperature = temperature
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.Q0 = Q0
        self.n_threads = n_threads
        self.progress = progress

    # -- validation -----------------------------------------------------------------------------
    def _check_params(self) -> dict:
        net = check_net(self.net)
        if net.depth < 1:
            raise ValueError("net: kernel renormalization needs at least one hidden layer (depth >= 1)")
        widths = _widths(self.width, net.depth)
        T = check_float("temperature", self.temperature, minimum=0.0, strict=True)
        tol = check_float("tol", self.tol, minimum=0.0, strict=True)
        max_iter = check_int("max_iter", self.max_iter, minimum=1)
        if not isinstance(self.solver, str) or self.solver not in _SOLVERS:
            raise ValueError(f"solver: expected one of {_SOLVERS}, got {self.solver!r}")
        q0 = None
        if self.Q0 is not None:
            q0 = np.asarray(self.Q0, dtype=float).ravel()
            if q0.shape != (net.depth,) or not np.all(np.isfinite(q0)) or np.any(q0 <= 0):
                raise ValueError(f"Q0: expected {net.depth} finite values > 0, got {self.Q0!r}")
            q0 = [float(v) for v in q0]
        return dict(net=net, width=widths, temperature=T, q0=q0,
                    options=dict(tol=tol, max_iter=max_iter, solver=self.solver),
                    threads=check_n_threads(self.n_threads), progress=self.progress)

    # -- one core call ----------------------------------------------------------------------------
    def _solve(self, X, Y, points):
        p0 = points[0]
        # the core counts action evaluations (~P^3 flops each with the Cholesky evaluator, about
        # ten per point); their number is not known ahead, so the bar has no total
        with progress_bar(p0["progress"], "kernel renormalization", float(X.shape[0]) ** 3 * len(points) * 10,
                          unit="evaluations") as cb:
            return _core.kernel_renormalization.solve(
                X, Y, p0["net"], widths=[p["width"] for p in points], temperatures=[p["temperature"] for p in points],
                q0=p0["q0"], options=p0["options"], n_threads=p0["threads"], progress=cb)

    def _store(self, s) -> None:
        p = self._params
        self.report_ = self._report(s.report)
        self.solver_ = self.report_.solver
        self.n_eval_ = self.report_.n_eval
        self.Q_ = np.asarray(s.q, dtype=float)
        self.action_ = float(s.action)
        self.gradient_ = np.asarray(s.gradient)
        self.kernel_ = np.asarray(s.kernel)
        self._hidden_kernels = None   # built at the first access of kernels_
        if s.factor_jitter > 0:
            warnings.warn(f"K^L + T I was numerically singular; added jitter {s.factor_jitter:.3e}",
                          NumericalJitterWarning, stacklevel=4)
        self._U = np.asarray(s.factor)
        self.L_ = self._U.T
        self.dual_coef_ = np.asarray(s.dual_coef)
        self._warn_unresolved_quadrature(self.Q_, stacklevel=5)

    def _warn_unresolved_quadrature(self, Q, stacklevel: int) -> None:
        """With ``method="quadrature"`` warn (naming ``method``) when a layer map whose gradient
        needs phi'' gets inputs of larger variance than the polar rule resolves (see
        ``_QUADRATURE_FACTOR``): the gradient in Q, and so the saddle point, is then wrong (tanh,
        sigma_w = 9.6, rank-1 X, order 32: dS/dQ_1 = +68 against -1.5 by finite differences)."""
        net = self._params["net"]
        if net.method != "quadrature" or net.depth < 2:
            return
        act = net.activation
        factor = _QUADRATURE_FACTOR.get(act) if isinstance(act, str) else 1.0
        if factor is None:   # linear, relu, erf: closed forms whatever the method
            return
        limit = factor * net.quadrature_order / 32
        try:
            var = max(float(np.max(kernel_diagonal_scaled(dataclasses.replace(net, depth=l), self.X_train_,
                                                          scales=[float(q) for q in Q[:l]],
                                                          n_threads=self._params["threads"])))
                      for l in range(1, net.depth))
        except (ValueError, ArithmeticError):   # scales the diagonal refuses: nothing to judge
            return
        if not var > limit:
            return
        name = net.activation_name
        warnings.warn(
            f"method: 'quadrature' with quadrature_order={net.quadrature_order} cannot resolve {name}'' at the "
            f"layer-input variance {var:.3g} of this fit (resolved up to about {limit:.3g}): the gradient of the "
            f"action in Q, and so the saddle point Q_, can be wrong (relative errors from 1e-5 to over 100%); use "
            f"method='auto' (Hermite expansions, graded quadrature where they miss), or a higher quadrature_order "
            f"(at most 128), or smaller sigma_w", RuntimeWarning, stacklevel=stacklevel)

    @property
    def kernels_(self) -> list:
        """The renormalized layer kernels ``K^l(Q_)``, l = 1..L, on the training points; the
        hidden layers' (one lazy-kernel call each) are computed at the first access and kept, so
        that ``fit`` and ``path`` (and an interrupted path) do not pay for them."""
        self._check_fitted()
        if self._hidden_kernels is None:
            p = self._params
            self._hidden_kernels = [
                lazy_kernels(dataclasses.replace(p["net"], depth=l), self.X_train_, ntk=False,
                             scales=[float(q) for q in self.Q_[:l]], n_threads=p["threads"])[0]
                for l in range(1, p["net"].depth)]
        return self._hidden_kernels + [self.kernel_]

    def _nonconvergence_message(self) -> str:
        return (f"kernel renormalization did not converge in {self.n_iter_} iterations "
                f"(residual {self.residual_:.3e} > tol {self._params['options']['tol']:.1e}); Q_ = {self.Q_}")

    # -- prediction -----------------------------------------------------------------------------
    def _scales(self) -> list[float]:
        return [float(q) for q in self.Q_]

    def kernels(self, X1, X2=None) -> np.ndarray:
        """The renormalized readout kernel ``K^L(Q_)(X1, X2)``."""
        self._check_fitted()
        X1 = as_matrix("X1", X1)
        check_same_features("X1", X1, self.n_features_in_)
        if X2 is not None:
            X2 = as_matrix("X2", X2)
            check_same_features("X2", X2, self.n_features_in_)
        return lazy_kernels(self._params["net"], X1, X2, ntk=False, scales=self._scales(),
                            n_threads=self._params["threads"])[0]

    def predict(self, X, return_std: bool = False):
        """Posterior mean (n,) or (n, C) of the renormalized GP; with ``return_std`` also the
        standard deviation (n,) of f(x*) (latent function, noise ``T`` not added)."""
        return super().predict(X, return_std)

    def _predict(self, X, return_std):
        p = self._params
        Kc = lazy_kernels(p["net"], self.X_train_, X, ntk=False, scales=self._scales(), n_threads=p["threads"])[0]
        diag = kernel_diagonal_scaled(p["net"], X, scales=self._scales(), n_threads=p["threads"]) if return_std else None
        mean, var = _core.predictors.gp_predict(self._U, self.dual_coef_, Kc, diag, n_threads=p["threads"])
        return mean, (np.sqrt(var) if return_std else None)

    def _baseline(self, X, Y, X_test, params):
        return GaussianProcess(params["net"], ridge=params["temperature"], n_threads=params["threads"]).fit(
            X, Y).predict(X_test)

    def action(self, Q) -> tuple[float, np.ndarray]:
        """``(S(Q), dS/dQ)`` on the fitted data (Cholesky evaluator), to inspect the landscape."""
        self._check_fitted()
        p = self._params
        q = [float(v) for v in np.asarray(Q, dtype=float).ravel()]
        out = _core.kernel_renormalization.action(self.X_train_, self.y_train_, q, p["net"], widths=p["width"],
                                                   temperature=p["temperature"], n_threads=p["threads"])
        self._warn_unresolved_quadrature(q, stacklevel=3)
        return out


__all__ = ["KernelRenormalization"]
