"""The contract every theory follows: :class:`TheoryEstimator`.

A theory turns data and an architecture into adapted kernels by a saddle point or a fixed
point, then predicts with them. Each one is a scikit-learn regressor:

* the constructor stores parameters only (``get_params``/``set_params``/``clone`` work, so
  pipelines, grid searches and sweeps on any executor can use it);
* ``fit(X, y)`` validates the parameters and the data, makes one core call and stores the fitted
  state; ``predict(X, return_std=False)`` reuses that state and never factors the training
  kernel again; ``score`` is R^2 (averaged over outputs);
* fitted attributes common to all theories: ``kernels_`` (per hidden layer, on the training
  points), ``kernel_`` (the readout kernel), ``dual_coef_`` (``(kernel_ + T I)^{-1} Y``),
  ``action_`` (the objective at the solution, None where not estimated), ``report_``
  (:class:`~adaptive_kernels.SolveReport`), and ``converged_``, ``n_iter_``, ``residual_``,
  ``residual_history_`` read from it;
* ``path(X, y, <values>=[...])``: solutions along a continuation in one parameter, each
  warm-started from the previous one, as a :class:`~adaptive_kernels.PathResult`. Ctrl-C during
  a path keeps the points already solved: it returns them (``PathResult.interrupted``, with a
  ``RuntimeWarning``), or raises ``KeyboardInterrupt`` when none was; Ctrl-C during ``fit``
  raises ``KeyboardInterrupt``.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from ._results import PathResult, SolveReport
from ._validation import as_matrix, as_xy, check_same_features, r2_score
from .exceptions import ConvergenceWarning


def fit_data(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Training inputs (P, d) and targets (P, C) as arrays the estimator owns: changing the
    caller's arrays after ``fit`` never changes a fitted model."""
    X, Y = as_xy(X, y)
    return np.array(X, copy=True), np.array(Y, copy=True)


class TheoryEstimator(RegressorMixin, BaseEstimator):
    """Base class of every adaptive-kernel theory (see the module docstring for the contract).

    Subclasses implement ``_check_params() -> dict`` (validated parameters), ``_solve(X, Y,
    points) -> (list, bool)`` (one core call for a list of validated parameter dicts,
    warm-started along the list: the states of the points solved, all of them unless a Ctrl-C
    stopped the path early, which the bool says; an interrupt before the first point raises
    ``KeyboardInterrupt``), ``_store(state)`` (set the fitted attributes from one core result),
    ``_predict(X, return_std) -> (mean (Q, C), std or None)`` and ``_baseline(X, Y, X_test,
    params) -> mean (Q, C)`` (the lazy predictor the theory reduces to), and declare
    ``_path_parameters`` (path keyword -> parameter, e.g. ``{"gammas": "gamma"}``).
    """

    _path_parameters: dict[str, str] = {}

    # -- fitted attributes read from the report ---------------------------------------------
    @property
    def converged_(self) -> bool:
        return self.report_.converged

    @property
    def n_iter_(self) -> int:
        return self.report_.n_iter

    @property
    def residual_(self) -> float:
        return self.report_.residual

    @property
    def residual_history_(self) -> np.ndarray:
        return self.report_.residual_history

    #: The constructor argument holding a dict of expert options for the core (its errors say
    #: "options: ..."; re-raised under this name).
    _options_param: str | None = None

    def _solve_named(self, X, Y, points):
        try:
            return self._solve(X, Y, points)
        except ValueError as exc:
            msg = str(exc)
            if self._options_param is None or not msg.startswith("options:"):
                raise
            raise ValueError(self._options_param + msg[len("options"):]) from None

    # -- scikit-learn API -----------------------------------------------------------------------
    def fit(self, X, y):
        params = self._check_params()
        X, Y = fit_data(X, y)
        states, interrupted = self._solve_named(X, Y, [params])
        if interrupted:   # Ctrl-C after the solve, while its predictor was built: still a stop
            raise KeyboardInterrupt(f"{type(self).__name__}.fit interrupted")
        state = states[0]
        self._set_fitted(X, Y, np.ndim(y) == 1, params, state)
        if not self.converged_:
            warnings.warn(self._nonconvergence_message(), ConvergenceWarning, stacklevel=2)
        return self

    def _set_fitted(self, X, Y, y_1d, params, state) -> None:
        self.X_train_, self.y_train_, self._y_1d = X, Y, bool(y_1d)
        self.n_features_in_ = X.shape[1]
        self._params = params
        self._store(state)

    def _check_fitted(self) -> None:
        check_is_fitted(self, "report_")

    def _check_test(self, X) -> np.ndarray:
        self._check_fitted()
        X = as_matrix("X", X)
        check_same_features("X", X, self.n_features_in_)
        return X

    def predict(self, X, return_std: bool = False):
        """Mean prediction (Q,) or (Q, C); with ``return_std`` also the standard deviation (Q,)
        of f(x*) (latent function, noise not added; see each theory for its meaning)."""
        X = self._check_test(X)
        mean, std = self._predict(X, bool(return_std))
        mean = mean[:, 0] if self._y_1d else mean
        return (mean, std) if return_std else mean

    def score(self, X, y, sample_weight=None) -> float:
        """Coefficient of determination R^2 of the mean prediction (averaged over outputs)."""
        if sample_weight is not None:
            raise ValueError("sample_weight: not supported")
        X, Y = as_xy(X, y)
        self._check_fitted()
        if Y.shape[1] != self.y_train_.shape[1]:
            raise ValueError(f"y: has {Y.shape[1]} output columns, the model was fitted with {self.y_train_.shape[1]}")
        return r2_score(Y, self.predict(X))

    def _nonconvergence_message(self) -> str:
        r = self.report_
        return (f"{type(self).__name__}: the {r.solver} solver did not converge in {r.n_iter} iterations "
                f"(residual {r.residual:.3e}); the fitted state is the last iterate")

    # -- continuation ---------------------------------------------------------------------------
    def path(self, X, y, *, X_test=None, y_test=None, **values) -> PathResult:
        """Solutions at each value of one parameter, in the given order, each warm-started from
        the previous one (order them from easy to hard: small gamma, large width, high
        temperature). The path keyword is the plural of the parameter (see
        ``_path_parameters``); every other parameter is this estimator's. With
        ``X_test``/``y_test`` also the test loss along the path and that of the lazy baseline.

        Ctrl-C stops the solver within a fraction of a second and returns the points solved
        before it (``interrupted=True``, a ``RuntimeWarning`` saying how many; their test losses
        are still computed, a second Ctrl-C stops that); with no point solved it raises
        ``KeyboardInterrupt``.
        """
        if len(values) != 1 or next(iter(values)) not in self._path_parameters:
            names = ", ".join(self._path_parameters)
            raise ValueError(f"{names}: give exactly one of them (the path variable), got {sorted(values)}")
        key, vals = next(iter(values.items()))
        name = self._path_parameters[key]
        try:
            vals = list(vals)
        except TypeError:
            raise TypeError(f"{key}: expected a sequence of values, got {type(vals).__name__}") from None
        if not vals:
            raise ValueError(f"{key}: the path is empty")
        models = [clone(self).set_params(**{name: v}) for v in vals]
        points = [m._check_params() for m in models]
        X, Y = fit_data(X, y)
        states, interrupted = self._solve_named(X, Y, points)
        models, points = models[:len(states)], points[:len(states)]
        for m, p, s in zip(models, points, states):
            m._set_fitted(X, Y, np.ndim(y) == 1, p, s)
        if interrupted:
            warnings.warn(f"{type(self).__name__}.path interrupted: returning the {len(states)} of {len(vals)} points "
                          f"solved before it ({key} {[p[name] for p in points]})", RuntimeWarning, stacklevel=2)
        out = PathResult(interrupted=bool(interrupted),
            parameter=name, values=np.array([p[name] for p in points]), models=models,
            action=np.array([np.nan if m.action_ is None else m.action_ for m in models], dtype=float),
            converged=np.array([m.converged_ for m in models]), n_iter=np.array([m.n_iter_ for m in models]),
            residual=np.array([m.residual_ for m in models]))
        if not out.converged.all():
            bad = np.flatnonzero(~out.converged)
            warnings.warn(f"{type(self).__name__}: no convergence at path points {bad.tolist()}: "
                          + "; ".join(models[i]._nonconvergence_message() for i in bad),
                          ConvergenceWarning, stacklevel=2)
        if X_test is not None:
            if y_test is None:
                raise ValueError("y_test: required with X_test")
            Xt, Yt = as_xy(X_test, y_test)
            check_same_features("X_test", Xt, X.shape[1], "X")
            out.test_loss = np.array([float(np.mean((np.asarray(m.predict(Xt)).reshape(Yt.shape) - Yt) ** 2))
                                      for m in models])
            lazy = {}
            for p in points:
                k = self._baseline_key(p)
                if k not in lazy:   # the lazy baseline depends on few parameters (the temperature)
                    lazy[k] = float(np.mean((self._baseline(X, Y, Xt, p).reshape(Yt.shape) - Yt) ** 2))
            out.nngp_test_loss = np.array([lazy[self._baseline_key(p)] for p in points])
        return out

    def _baseline_key(self, params) -> float:
        return params["temperature"]

    @staticmethod
    def _report(core_report) -> SolveReport:
        return SolveReport.from_core(core_report)


__all__ = ["TheoryEstimator", "fit_data"]
