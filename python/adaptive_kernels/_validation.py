"""Argument checks shared by the public API: every error names the offending argument."""
from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np


def as_matrix(name: str, x: Any, *, allow_1d: bool = False) -> np.ndarray:
    """Return `x` as a non-empty, finite, C-contiguous float64 2-D array (no copy if already so).

    With ``allow_1d`` a 1-D input becomes a column (used for targets ``y``).
    """
    if x is None:
        raise TypeError(f"{name}: expected an array, got None")
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:   # ragged nested lists, objects numpy cannot stack
        raise TypeError(f"{name}: expected a rectangular numeric array ({exc})") from None
    # bool, signed/unsigned integer and real floating dtypes only: object, strings, bytes,
    # void/structured, datetime64 and timedelta64 (which numpy counts as integer) are refused.
    if arr.dtype.kind == "c":
        raise TypeError(f"{name}: complex values are not supported")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 1 and allow_1d:
        arr = arr[:, None]
    if arr.ndim != 2:
        want = "1-D or 2-D" if allow_1d else "2-D (n_samples, n_features)"
        raise ValueError(f"{name}: expected a {want} array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: empty array of shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return arr


def check_target_scale(name: str, Y: np.ndarray) -> np.ndarray:
    """Targets whose squared losses and quadratic forms ``y^T A^-1 y`` stay in float64's range."""
    scale = float(np.max(np.abs(Y)))
    if not np.isfinite(scale * scale * Y.size):
        raise ValueError(f"{name}: values up to {scale:.3g} overflow float64 in squared losses and quadratic "
                         f"forms; rescale {name}")
    return Y


def as_square(name: str, k: Any) -> np.ndarray:
    arr = as_matrix(name, k)
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name}: expected a square matrix, got shape {arr.shape}")
    return arr


#: The largest integer the core takes (its counts and seeds are 64-bit unsigned).
INT_MAX = 2**64 - 1


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = INT_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {value}")
    return value


def check_float(name: str, value: Any, *, minimum: float | None = None, strict: bool = False,
                allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if np.isnan(value) or (np.isinf(value) and not allow_inf):
        raise ValueError(f"{name}: must be finite, got {value}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        op = ">" if strict else ">="
        raise ValueError(f"{name}: must be {op} {minimum}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """A flag: ``bool`` or ``numpy.bool_`` only (0/1, strings and None are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__}")
    return bool(value)


def check_options(name: str, value: Any) -> dict:
    """A dict of expert solver options (None: empty) with string keys; the core checks the keys."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"{name}: expected a dict of option names to values, got {type(value).__name__}")
    return dict(value)


def check_n_threads(n_threads: Any) -> int | None:
    """`None` means the default (env var AK_NUM_THREADS, else all cores)."""
    if n_threads is None:
        env = os.environ.get("AK_NUM_THREADS")
        if env is None:
            return None
        try:
            n_threads = int(env)
        except ValueError:
            raise ValueError(f"AK_NUM_THREADS: expected a positive integer, got {env!r}") from None
        name = "AK_NUM_THREADS"
    else:
        name = "n_threads"
    return check_int(name, n_threads, minimum=1, maximum=4096)


def check_same_features(name: str, x: np.ndarray, n_features: int, other: str = "the training inputs") -> None:
    if x.shape[1] != n_features:
        raise ValueError(f"{name}: has {x.shape[1]} features, expected {n_features} like {other}")


def as_xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (P, d) and targets as a (P, C) matrix (a 1-D ``y`` becomes one column)."""
    X = as_matrix("X", X)
    Y = check_target_scale("y", as_matrix("y", y, allow_1d=True))
    if Y.shape[0] != X.shape[0]:
        raise ValueError(f"y: has {Y.shape[0]} rows but X has {X.shape[0]} samples")
    return X, Y


def r2_score(Y: np.ndarray, pred: Any) -> float:
    """Coefficient of determination R^2 of ``pred`` for ``Y`` (P, C), averaged over outputs."""
    P = np.asarray(pred).reshape(Y.shape)
    ss_res = ((Y - P) ** 2).sum(axis=0)
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0)))
