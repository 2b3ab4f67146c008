"""Kernel renormalization of Bayesian deep networks in the proportional limit.

Li & Sompolinsky (PRX 2021) for deep linear networks, Pacelli et al. (Nat. Mach. Intell. 2023)
for nonlinear ones: with P, N -> infinity at fixed alpha = P/N, the posterior-mean predictor of a
Bayesian MLP is a GP whose layer kernels are the NNGP ones rescaled by one scalar order
parameter per hidden layer, fixed by a saddle point.
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np

from . import _core
from ._progress import progress_bar
from ._validation import as_matrix, check_float, check_int, check_n_threads, check_same_features, as_xy, r2_score
from .exceptions import ConvergenceWarning, NumericalJitterWarning
from .lazy_kernels import diagonal_blocks
from .networks import MLP, check_net
from .predictors import GaussianProcess

_SOLVERS = ("auto", "spectral", "cholesky")


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


@dataclass
class RenormalizationPath:
    """Saddle points along a continuation path (one row per point).

    ``widths`` (n, L), ``temperatures`` (n,), ``Q`` (n, L), ``free_energy`` (n,), ``converged``,
    ``n_iter``, ``residual`` (n,), and when test data were given ``test_loss`` (n,) (mean squared
    error of the renormalized-GP mean) and ``nngp_test_loss`` (the lazy baseline at each
    temperature).
    """

    widths: np.ndarray
    temperatures: np.ndarray
    Q: np.ndarray
    free_energy: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    residual: np.ndarray
    test_loss: np.ndarray | None = None
    nngp_test_loss: np.ndarray | None = None


class KernelRenormalization:
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
        Convergence when ``max_l |(Q_l - 1) + Q_l tr(G dK^L/dQ_l)/N_l| < tol``, the stationarity
        condition of layer l divided by ``N_l/2`` (``G = C A^{-1} - A^{-1}YY^TA^{-1}``).
    max_iter : int
        Quasi-Newton (BFGS in ``log Q``, backtracking line search) iterations.
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
    Q_ (L,), converged_, n_iter_, n_eval_, residual_, residual_history_, free_energy_ (S(Q*)),
    gradient_ (dS/dQ at Q*), solver_, kernel_ (K^L(Q*) on the training points), L_ (Cholesky
    factor of K^L + T I), alpha_ ((K^L + T I)^{-1} y), X_train_, y_train_, n_features_in_.
    """

    def __init__(self, net: MLP, width, temperature: float, *, tol: float = 1e-10, max_iter: int = 200,
                 solver: str = "auto", Q0=None, n_threads: int | None = None, progress: bool | None = None):
        self.net = net
        self.width = width
        self.temperature = temperature
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.Q0 = Q0
        self.n_threads = n_threads
        self.progress = progress

    # -- validation -----------------------------------------------------------------------
    def _validate(self):
        net = check_net(self.net)
        if net.depth < 1:
            raise ValueError("net: kernel renormalization needs at least one hidden layer (depth >= 1)")
        widths = _widths(self.width, net.depth)
        T = check_float("temperature", self.temperature, minimum=0.0, strict=True)
        tol = check_float("tol", self.tol, minimum=0.0, strict=True)
        max_iter = check_int("max_iter", self.max_iter, minimum=1)
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver: expected one of {_SOLVERS}, got {self.solver!r}")
        q0 = None
        if self.Q0 is not None:
            q0 = np.asarray(self.Q0, dtype=float).ravel()
            if q0.shape != (net.depth,) or not np.all(np.isfinite(q0)) or np.any(q0 <= 0):
                raise ValueError(f"Q0: expected {net.depth} finite values > 0, got {self.Q0!r}")
            q0 = [float(v) for v in q0]
        return net, widths, T, tol, max_iter, q0, check_n_threads(self.n_threads)

    _data = staticmethod(as_xy)

    @staticmethod
    def _solve(net, X, Y, widths_list, temps, q0, tol, max_iter, solver, threads, progress):
        P = X.shape[0]
        # progress unit: one action evaluation, ~P^3 flops (Cholesky) per iteration and point
        with progress_bar(progress, "kernel renormalization", float(P) ** 3 * len(temps) * 10) as cb:
            return _core.kr_solve(X, Y, widths=widths_list, temperatures=temps, q0=q0, tol=tol,
                                  max_iter=max_iter, solver=solver, n_threads=threads, progress=cb,
                                  **net._kernel_args())

    # -- sklearn API ----------------------------------------------------------------------
    def fit(self, X, y) -> "KernelRenormalization":
        net, widths, T, tol, max_iter, q0, threads = self._validate()
        X, Y = self._data(X, y)
        sol = self._solve(net, X, Y, [widths], [T], q0, tol, max_iter, self.solver, threads, self.progress)[0]
        self._set_solution(net, X, Y, np.ndim(y) == 1, T, threads, sol)
        if not self.converged_:
            warnings.warn(
                f"kernel renormalization did not converge in {self.n_iter_} iterations "
                f"(residual {self.residual_:.3e} > tol {tol:.1e}); Q_ = {self.Q_}",
                ConvergenceWarning, stacklevel=2)
        return self

    def _set_solution(self, net, X, Y, y_1d, T, threads, sol) -> None:
        self.X_train_, self.y_train_, self._y_1d = X, Y, y_1d
        self.n_features_in_ = X.shape[1]
        self.Q_ = np.asarray(sol["Q"], dtype=float)
        self.converged_ = bool(sol["converged"])
        self.n_iter_ = int(sol["n_iter"])
        self.n_eval_ = int(sol["n_eval"])
        self.residual_ = float(sol["residual"])
        self.residual_history_ = np.asarray(sol["residual_history"])
        self.free_energy_ = float(sol["action"])
        self.gradient_ = np.asarray(sol["gradient"])
        self.solver_ = sol["solver"]
        self._T, self._threads = T, threads
        self.kernel_ = self._kernel(X)
        U, jitter, _ = _core.cholesky(self.kernel_, T, n_threads=threads)
        if jitter > 0:
            warnings.warn(f"K^L + T I was numerically singular; added jitter {jitter:.3e}",
                          NumericalJitterWarning, stacklevel=3)
        self._U = U
        self.L_ = U.T
        self.alpha_ = _core.cho_solve(U, Y, n_threads=threads)

    def _kernel(self, X1, X2=None) -> np.ndarray:
        K, _ = _core.lazy_kernels(X1, X2, ntk=False, scales=[float(q) for q in self.Q_],
                                  n_threads=self._threads, **self.net._kernel_args())
        return K

    def _check_fitted(self) -> None:
        if not hasattr(self, "Q_"):
            raise RuntimeError("KernelRenormalization is not fitted; call fit(X, y) first")

    def kernels(self, X1, X2=None) -> np.ndarray:
        """The renormalized readout kernel ``K^L(Q_)(X1, X2)``."""
        self._check_fitted()
        X1 = as_matrix("X1", X1)
        check_same_features("X1", X1, self.n_features_in_)
        if X2 is not None:
            X2 = as_matrix("X2", X2)
            check_same_features("X2", X2, self.n_features_in_)
        return self._kernel(X1, X2)

    def predict(self, X, return_std: bool = False):
        """Posterior mean (n,) or (n, C) of the renormalized GP; with ``return_std`` also the
        standard deviation (n,) of f(x*) (latent function, noise ``T`` not added)."""
        self._check_fitted()
        X = as_matrix("X", X)
        check_same_features("X", X, self.n_features_in_)
        Kc = self._kernel(self.X_train_, X)
        diag = None
        if return_std:
            diag = diagonal_blocks(self.net, X, ntk=False, scales=[float(q) for q in self.Q_], n_threads=self._threads)
        mean, var = _core.gp_predict(self._U, self.alpha_, Kc, diag, n_threads=self._threads)
        mean = mean[:, 0] if self._y_1d else mean
        return (mean, np.sqrt(var)) if return_std else mean

    def score(self, X, y) -> float:
        """Coefficient of determination R^2 of the mean prediction (averaged over outputs)."""
        X, Y = self._data(X, y)
        return r2_score(Y, self.predict(X))

    def action(self, Q) -> tuple[float, np.ndarray]:
        """``(S(Q), dS/dQ)`` on the fitted data (Cholesky evaluator), to inspect the landscape."""
        self._check_fitted()
        net, widths, T, *_ = self._validate()
        q = [float(v) for v in np.asarray(Q, dtype=float).ravel()]
        return _core.kr_action(self.X_train_, self.y_train_, q, widths=widths, temperature=T,
                               n_threads=self._threads, **net._kernel_args())

    # -- continuation -----------------------------------------------------------------------
    @classmethod
    def path(cls, net: MLP, X, y, *, widths=None, temperatures=None, width=None, temperature=None,
             X_test=None, y_test=None, tol: float = 1e-10, max_iter: int = 200, solver: str = "auto",
             n_threads: int | None = None, progress: bool | None = None) -> RenormalizationPath:
        """Saddle points along a path in width (``widths=[...]`` at fixed ``temperature``) or in
        temperature (``temperatures=[...]`` at fixed ``width``), each warm-started from the
        previous solution; order the path from easy (large width / high temperature) to hard.
        With ``X_test``/``y_test`` also the test loss along the path.
        """
        net = check_net(net)
        if (widths is None) == (temperatures is None):
            raise ValueError("widths, temperatures: give exactly one of them (the path variable)")
        if widths is not None:
            if temperature is None:
                raise ValueError("temperature: required for a path in width")
            ws = [_widths(w, net.depth) for w in widths]
            ts = [check_float("temperature", temperature, minimum=0.0, strict=True)] * len(ws)
        else:
            if width is None:
                raise ValueError("width: required for a path in temperature")
            ts = [check_float("temperatures", t, minimum=0.0, strict=True) for t in temperatures]
            ws = [_widths(width, net.depth)] * len(ts)
        if not ws:
            raise ValueError("widths/temperatures: the path is empty")
        m = cls(net, ws[0], ts[0], tol=tol, max_iter=max_iter, solver=solver, n_threads=n_threads)
        _, _, _, tol, max_iter, _, threads = m._validate()
        X, Y = cls._data(X, y)
        sols = cls._solve(net, X, Y, ws, ts, None, tol, max_iter, solver, threads, progress)
        out = RenormalizationPath(
            widths=np.array(ws), temperatures=np.array(ts), Q=np.array([s["Q"] for s in sols]),
            free_energy=np.array([s["action"] for s in sols]),
            converged=np.array([s["converged"] for s in sols]),
            n_iter=np.array([s["n_iter"] for s in sols]), residual=np.array([s["residual"] for s in sols]))
        if not out.converged.all():
            bad = np.flatnonzero(~out.converged)
            warnings.warn(f"kernel renormalization did not converge at path points {bad.tolist()}",
                          ConvergenceWarning, stacklevel=2)
        if X_test is not None:
            if y_test is None:
                raise ValueError("y_test: required with X_test")
            Xt, Yt = cls._data(X_test, y_test)
            check_same_features("X_test", Xt, X.shape[1])
            losses, lazy = [], {}
            for w, t, s in zip(ws, ts, sols):
                m = cls(net, w, t, n_threads=n_threads)
                m._set_solution(net, X, Y, False, t, threads, s)
                losses.append(float(np.mean((m.predict(Xt) - Yt) ** 2)))
                if t not in lazy:  # the NNGP baseline (Q = 1) depends on the temperature only
                    lazy[t] = float(np.mean((GaussianProcess(net, ridge=t, n_threads=n_threads)
                                             .fit(X, Y).predict(Xt) - Yt) ** 2))
            out.test_loss, out.nngp_test_loss = np.array(losses), np.array([lazy[t] for t in ts])
        return out
