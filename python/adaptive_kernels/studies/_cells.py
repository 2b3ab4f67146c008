"""Grids, stable cell keys and the work one cell (or one warm-started chain of cells) does.

Everything here runs in the worker as well as in the driver: the functions are top-level and
their arguments picklable, so any ``concurrent.futures.Executor`` (a process pool, Dask's
``Client.get_executor()``) can run them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import time
import warnings

import numpy as np
from sklearn.base import clone

from .. import _core
from ..kernels.alignment import kernel_alignment

# parameters that change how a cell runs, not what it computes: not part of the cell key
RUNTIME_PARAMETERS = ("n_threads", "progress")


# -- grids ----------------------------------------------------------------------------------------
def expand_grid(grid) -> list[dict]:
    """A dict of parameter -> list of values (the Cartesian product, last key fastest) or a list of
    such dicts (their cells concatenated; a plain dict of scalars in the list is one cell)."""
    if isinstance(grid, dict):
        grid = [grid]
    if not isinstance(grid, (list, tuple)) or not grid:
        raise ValueError(f"grid: expected a dict of parameter -> list of values or a non-empty list of dicts, got {grid!r}")
    cells = []
    for g in grid:
        if not isinstance(g, dict):
            raise ValueError(f"grid: expected dicts, got {type(g).__name__}")
        names, values = [], []
        for k, v in g.items():
            if not isinstance(k, str):
                raise ValueError(f"grid: parameter names must be strings, got {k!r}")
            vals = list(v) if isinstance(v, (list, tuple, np.ndarray, range)) else [v]
            if not vals:
                raise ValueError(f"grid: parameter {k!r} has no values")
            names.append(k)
            values.append(vals)
        cells.extend(dict(zip(names, combo)) for combo in itertools.product(*values))
    return cells


# -- stable keys ----------------------------------------------------------------------------------
def canonical(value):
    """A JSON-able form of a parameter value that is the same in every process and session."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return repr(v) if not math.isfinite(v) else v
    if isinstance(value, np.ndarray):
        return {"ndarray": value.shape, "data": [canonical(v) for v in value.ravel().tolist()]}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__,
                **{f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if callable(value):
        return f"callable:{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
    if hasattr(value, "get_params"):
        return {"type": type(value).__name__, **canonical(value.get_params(deep=False))}
    return repr(value)


def display(value):
    """A parameter value as a table cell (a scalar Parquet can store)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        c = canonical(value)
        return f"{c.pop('type')}(" + ", ".join(f"{k}={v}" for k, v in c.items()) + ")"
    return json.dumps(canonical(value))


def fingerprint(*arrays) -> str:
    """sha256 of the data (shapes, dtypes and bytes); None entries count as absent."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(f"{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cell_key(estimator, data_fingerprint: str) -> str:
    """Hash of the estimator's class, every parameter that changes results, and the data."""
    params = {k: v for k, v in estimator.get_params(deep=False).items() if k not in RUNTIME_PARAMETERS}
    blob = json.dumps({"estimator": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
                       "params": canonical(params), "data": data_fingerprint}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# -- running cells --------------------------------------------------------------------------------
def worker_init(n_threads: int) -> None:
    """Process-pool initializer: ``n_threads`` Rayon threads per worker process."""
    os.environ["AK_NUM_THREADS"] = str(n_threads)


def _loss(pred, Y) -> float:
    pred = np.asarray(pred, dtype=float).reshape(np.shape(Y))
    return float(np.mean((pred - Y) ** 2))


def _fitted_row(model, X, y, X_test, y_test) -> dict:
    """The fitted scalars, losses and alignment of one fitted model."""
    row = {}
    for attr in ("converged_", "n_iter_", "residual_", "action_"):
        try:
            v = getattr(model, attr)
        except AttributeError:
            v = None
        if isinstance(v, (bool, np.bool_)):
            v = bool(v)
        elif isinstance(v, (int, np.integer)):
            v = int(v)
        elif isinstance(v, (float, np.floating)):
            v = float(v)
        elif v is not None:
            v = None
        row[attr.rstrip("_")] = v
    K = getattr(model, "kernel_", None)
    row["alignment"] = float(kernel_alignment(K, y)) if isinstance(K, np.ndarray) and K.ndim == 2 else None
    row["train_loss"] = _loss(model.predict(X), y)
    row["test_loss"] = _loss(model.predict(X_test), y_test) if X_test is not None else None
    return row


EMPTY_FIT = {"converged": None, "n_iter": None, "residual": None, "action": None, "alignment": None,
             "train_loss": None, "test_loss": None}


def _warning_text(caught) -> str | None:
    msgs = []
    for w in caught:
        m = f"{w.category.__name__}: {w.message}"
        if m not in msgs:
            msgs.append(m)
    return " | ".join(msgs) if msgs else None


def run_cells(estimator, cells: list[dict], chain: str | None, plural: str | None, X, y, X_test, y_test,
              n_threads: int | None) -> list[dict]:
    """Fit one cell, or the cells of one chain in order with warm starts (``estimator.path``).

    Returns one dict per cell: the fitted scalars (``EMPTY_FIT`` keys), ``fit_time``, ``error``
    (None or ``"ExceptionType: message"``) and ``warnings``."""
    # own, aligned, writeable copies: arrays unpickled from a Dask message can be read-only views
    # of unaligned buffers, which the core rejects ("must be a C-contiguous float64 array")
    X, y, X_test, y_test = (None if a is None else np.array(a, dtype=np.float64, order="C", copy=True)
                            for a in (X, y, X_test, y_test))
    models = [clone(estimator).set_params(**c) for c in cells]
    if n_threads is not None:
        for m in models:
            if "n_threads" in m.get_params(deep=False):
                m.set_params(n_threads=n_threads)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if chain is None:
                fitted = [models[0].fit(X, y)]
            else:
                path = models[0].path(X, y, **{plural: [c[chain] for c in cells]})
                if path.interrupted:   # Ctrl-C stops the study (one row per cell, never a short chain)
                    raise KeyboardInterrupt(f"study interrupted after {len(path)} of the {len(cells)} cells of a chain")
                fitted = path.models
            dt = (time.perf_counter() - t0) / len(cells)
            out = []
            for m in fitted:
                try:
                    row = _fitted_row(m, X, y, X_test, y_test)
                    err = None
                except Exception as e:  # noqa: BLE001 - a cell's failure is data
                    row, err = dict(EMPTY_FIT), f"{type(e).__name__}: {e}"
                out.append({**row, "fit_time": dt, "error": err})
        except Exception as e:  # noqa: BLE001
            dt = (time.perf_counter() - t0) / len(cells)
            out = [{**EMPTY_FIT, "fit_time": dt, "error": f"{type(e).__name__}: {e}"} for _ in cells]
    text = _warning_text(caught)
    for r in out:
        r["warnings"] = text
    return out


VERSION = _core.__version__

__all__ = ["expand_grid", "canonical", "display", "fingerprint", "cell_key", "run_cells", "worker_init",
           "EMPTY_FIT", "RUNTIME_PARAMETERS", "VERSION"]
