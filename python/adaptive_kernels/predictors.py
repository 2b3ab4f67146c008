"""Kernel predictors built on the lazy kernels: GP regression, kernel ridge, NTK gradient flow.

All are scikit-learn regressors (``BaseEstimator`` + ``RegressorMixin``): parameters in the
constructor only, ``fit(X, y)`` returns ``self``, fitted attributes end in ``_`` (``dual_coef_``
as in scikit-learn's ``KernelRidge``), ``predict`` returns NumPy arrays, ``score`` is the
coefficient of determination R^2.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from . import _core
from ._base import fit_data
from ._validation import as_matrix, check_float, check_n_threads, check_same_features, r2_score
from .exceptions import NumericalJitterWarning
from .kernels.lazy import lazy_kernels
from .networks import MLP, check_net

_KERNELS = ("nngp", "ntk")


def _check_kernel(kernel: str) -> str:
    if kernel not in _KERNELS:
        raise ValueError(f"kernel: expected one of {_KERNELS}, got {kernel!r}")
    return kernel


def _check_times(time) -> np.ndarray:
    """``time`` as a contiguous 1-D float64 array: a real scalar or a 1-D array-like of reals,
    all ``>= 0`` (``inf`` allowed). Non-numeric values (strings, bools, None, objects) are a
    TypeError, as in ``fit``."""
    if isinstance(time, (bool, np.bool_)):
        raise TypeError(f"time: expected a real number or a 1-D array of them, got {type(time).__name__}")
    if isinstance(time, numbers.Real):
        times = np.array([float(time)])
    else:
        if time is None or isinstance(time, (str, bytes)):
            raise TypeError(f"time: expected a real number or a 1-D array of them, got {type(time).__name__}")
        try:
            arr = np.asarray(time)
        except (TypeError, ValueError) as e:  # ragged nested sequences
            raise ValueError(f"time: must be a scalar or 1-D array of values >= 0 (inf allowed): {e}") from None
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"time: expected real numbers, got an array of dtype {arr.dtype}")
        if arr.ndim > 1:
            raise ValueError(f"time: must be a scalar or 1-D array, got shape {arr.shape}")
        times = np.atleast_1d(arr).astype(np.float64)
    if np.isnan(times).any() or (times < 0).any():
        raise ValueError("time: must be a scalar or 1-D array of values >= 0 (inf allowed)")
    return np.ascontiguousarray(times)


class _KernelPredictor(RegressorMixin, BaseEstimator):
    """Shared fit/predict plumbing: the kernel of ``net`` between training and test inputs."""

    def __init__(self, net: MLP, kernel: str = "nngp", n_threads: int | None = None):
        self.net = net
        self.kernel = kernel
        self.n_threads = n_threads

    def _check_params(self) -> None:
        check_net(self.net)
        _check_kernel(self.kernel)
        self._threads = check_n_threads(self.n_threads)

    def _kernel(self, X1, X2=None) -> np.ndarray:
        K, Th = lazy_kernels(self.net, X1, X2, ntk=self.kernel == "ntk", n_threads=self._threads)
        return Th if self.kernel == "ntk" else K

    def _check_fitted(self) -> None:
        check_is_fitted(self, "X_train_")

    def _check_test(self, X) -> np.ndarray:
        self._check_fitted()
        X = as_matrix("X", X)
        check_same_features("X", X, self.n_features_in_)
        return X

    def _store_train(self, X, y) -> np.ndarray:
        X, Y = fit_data(X, y)
        self.X_train_ = X
        self.y_train_ = Y
        self._y_1d = np.ndim(y) == 1
        self.n_features_in_ = X.shape[1]
        return Y

    def _shape_out(self, M: np.ndarray) -> np.ndarray:
        return M[..., 0] if self._y_1d else M

    def score(self, X, y, sample_weight=None) -> float:
        """Coefficient of determination R^2 of the mean prediction (averaged over outputs)."""
        if sample_weight is not None:
            raise ValueError("sample_weight: not supported")
        X = self._check_test(X)
        Y = as_matrix("y", y, allow_1d=True)
        if Y.shape[0] != X.shape[0]:
            raise ValueError(f"y: has {Y.shape[0]} rows but X has {X.shape[0]} samples")
        n_out = self.y_train_.shape[1]
        if Y.shape[1] != n_out:
            raise ValueError(f"y: has {Y.shape[1]} output columns, the model was fitted with {n_out}")
        return r2_score(Y, self.predict(X))


class GaussianProcess(_KernelPredictor):
    """GP regression with the NNGP kernel or NTK of ``net`` as prior covariance.

    Posterior of ``f ~ GP(0, k)`` given ``y = f(X) + noise``, ``noise ~ N(0, ridge I)``:
    mean ``k(X*, X) (K + ridge I)^{-1} y``, variance ``k(x*, x*) - k(x*, X)(K + ridge I)^{-1}k(X, x*)``.
    The Cholesky factorization adds jitter (``1e-12 .. 1e-4`` times the mean diagonal, with a
    :class:`NumericalJitterWarning`) when ``K + ridge I`` is numerically singular, and raises
    :class:`NotPositiveDefiniteError` when it is not positive definite.

    Fitted attributes: ``X_train_``, ``y_train_``, ``dual_coef_`` ((K + ridge I)^{-1} y), ``L_``
    (lower Cholesky factor), ``jitter_``, ``log_marginal_likelihood_``, ``n_features_in_``.
    """

    def __init__(self, net: MLP, kernel: str = "nngp", ridge: float = 1e-6, n_threads: int | None = None):
        super().__init__(net, kernel, n_threads)
        self.ridge = ridge

    def fit(self, X, y) -> "GaussianProcess":
        self._check_params()
        ridge = check_float("ridge", self.ridge, minimum=0.0)
        if ridge > 1e100:
            raise ValueError(f"ridge: must be <= 1e100 (larger values overflow the kernel's spectrum), got {ridge}")
        Y = self._store_train(X, y)
        K = self._kernel(self.X_train_)
        U, jitter, _ = _core.linalg.cholesky(K, ridge, n_threads=self._threads)
        if jitter > 0:
            warnings.warn(f"K + ridge I was numerically singular; added jitter {jitter:.3e} to its diagonal",
                          NumericalJitterWarning, stacklevel=2)
        self._U = U
        self.L_ = U.T
        self.jitter_ = jitter
        self.dual_coef_ = _core.linalg.cho_solve(U, Y, n_threads=self._threads)
        P = Y.shape[0]
        # log N(y | 0, K + ridge I) summed over output columns
        logdet = 2.0 * np.log(np.diag(U)).sum()
        self.log_marginal_likelihood_ = float(
            -0.5 * np.sum(Y * self.dual_coef_) - Y.shape[1] * (0.5 * logdet + 0.5 * P * np.log(2 * np.pi)))
        return self

    def predict(self, X, return_std: bool = False, return_cov: bool = False):
        """Posterior mean (Q,) or (Q, C); with ``return_std`` also the std (Q,) of f(x*),
        with ``return_cov`` the posterior covariance (Q, Q) of f(X*)."""
        X = self._check_test(X)
        if return_std and return_cov:
            raise ValueError("return_std, return_cov: at most one may be True")
        Kc = self._kernel(self.X_train_, X)
        if return_cov:
            mean, _ = _core.predictors.gp_predict(self._U, self.dual_coef_, Kc, None, n_threads=self._threads)
            Kss = self._kernel(X)
            V = _core.linalg.cho_solve(self._U, Kc, n_threads=self._threads)
            cov = Kss - Kc.T @ V
            return self._shape_out(mean), 0.5 * (cov + cov.T)
        diag = None
        if return_std:
            from .kernels.lazy import kernel_diagonal
            diag = kernel_diagonal(self.net, X, kernel=self.kernel, n_threads=self._threads)
        mean, var = _core.predictors.gp_predict(self._U, self.dual_coef_, Kc, diag, n_threads=self._threads)
        if return_std:
            return self._shape_out(mean), np.sqrt(var)
        return self._shape_out(mean)


class KernelRidge(GaussianProcess):
    """Kernel ridge regression ``f(x*) = k(x*, X) (K + ridge I)^{-1} y`` with a lazy kernel.

    The same solve as the GP posterior mean (``ridge`` plays the noise variance); kept as its
    own estimator for scikit-learn-style code that expects a ridge regressor.
    """

    def __init__(self, net: MLP, kernel: str = "nngp", ridge: float = 1e-3, n_threads: int | None = None):
        super().__init__(net, kernel=kernel, ridge=ridge, n_threads=n_threads)

    def predict(self, X):  # type: ignore[override]
        return super().predict(X)


class NTKGradientFlow(_KernelPredictor):
    """Mean predictor of an infinitely wide network trained by gradient flow (Jacot et al. 2018).

    Gradient flow on ``L = 1/2 sum_mu (f(x_mu) - y_mu)^2`` with learning rate ``lr``, from
    ``f_0 = 0`` (the mean over initializations): ``df/dt = -lr Th (f - y)`` on the training set,
    so ``f_t(x*) = Th(x*, X) Th^{-1} (I - exp(-lr Th t)) y``, evaluated through the
    eigendecomposition of ``Th + ridge I``; ``time=np.inf`` gives kernel regression with the NTK.
    Numerically null modes (eigenvalue below ``P eps max|lambda|``) are dropped (pseudo-inverse).

    Fitted attributes: ``X_train_``, ``y_train_``, ``eigenvalues_``, ``eigenvectors_``.
    """

    def __init__(self, net: MLP, lr: float = 1.0, time: float = np.inf, ridge: float = 0.0,
                 n_threads: int | None = None):
        super().__init__(net, kernel="ntk", n_threads=n_threads)
        self.lr = lr
        self.time = time
        self.ridge = ridge

    def fit(self, X, y) -> "NTKGradientFlow":
        self._check_params()
        check_float("lr", self.lr, minimum=0.0, strict=True)
        check_float("time", self.time, minimum=0.0, allow_inf=True)
        ridge = check_float("ridge", self.ridge, minimum=0.0)
        if ridge > 1e100:
            raise ValueError(f"ridge: must be <= 1e100 (larger values overflow the kernel's spectrum), got {ridge}")
        self._store_train(X, y)
        Th = self._kernel(self.X_train_)
        if ridge:
            Th[np.diag_indices_from(Th)] += ridge
        self.eigenvalues_, self.eigenvectors_ = _core.linalg.symmetric_eigen(Th, n_threads=self._threads)
        return self

    def coefficients(self, time=None) -> np.ndarray:
        """Dual coefficients ``c_t`` (T, P, C) with ``f_t(x*) = Th(X, x*)^T c_t``."""
        self._check_fitted()
        times = _check_times(self.time if time is None else time)
        return _core.predictors.ntk_flow_coefficients(self.eigenvalues_, self.eigenvectors_, self.y_train_,
                                           times, float(self.lr), n_threads=self._threads)

    def predict(self, X, time=None):
        """Mean prediction at ``time`` (default ``self.time``); an array of times gives a
        leading time axis (T, Q[, C])."""
        X = self._check_test(X)
        coef = self.coefficients(time)
        Kc = self._kernel(self.X_train_, X)
        out = np.matmul(Kc.T, coef)  # (T, Q, C)
        out = self._shape_out(out)
        return out[0] if np.ndim(self.time if time is None else time) == 0 else out
