"""``sweep``: a grid of independent fits on any ``concurrent.futures.Executor``, resumable.

Each cell is ``sklearn.base.clone(estimator).set_params(**cell)`` fitted on the same data. The
cells run on a local process pool by default (one Rayon thread per worker, ``max_workers``
processes), or on any executor passed in: :class:`SerialExecutor` in this process, or a Dask
cluster through ``dask.distributed.Client(...).get_executor()``. The table is the same whatever
runs it: rows come back in grid order, and every solver is seeded.

With ``store`` every finished cell is written at once (one Parquet part per cell, see
:mod:`._store`), so a killed sweep loses at most the cells that were running; re-running the
same call reads the store, skips the finished cells and retries the failed ones.

``chain="gamma"`` makes ``gamma`` a continuation axis: the cells that differ only in gamma run
in the order of the grid's values, as one task, through ``estimator.path(X, y, gammas=[...])``,
each warm-started from the previous one.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import threading
import warnings

import numpy as np
from sklearn.base import clone

from ._cells import (EMPTY_FIT, VERSION, canonical, cell_key, display, expand_grid, fingerprint, run_cells,
                     worker_init)
from .._validation import as_matrix
from ._store import ParquetStore
from ._table import Table

RESULT_COLUMNS = ("converged", "n_iter", "residual", "action", "alignment", "train_loss", "test_loss",
                  "fit_time", "error", "warnings", "version")


class SerialExecutor(cf.Executor):
    """Runs each submitted call at once in the calling process (debugging, small grids, tests)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        f = cf.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - delivered through the future, as other executors do
            f.set_exception(e)
        return f

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._lock:
            self._shutdown = True


def _default_executor(max_workers: int | None, n_tasks: int) -> cf.Executor:
    n = max_workers if max_workers is not None else (os.cpu_count() or 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"max_workers: expected a positive integer, got {max_workers!r}")
    # fork where the platform has it: workers start in milliseconds instead of importing the
    # package again (seconds); the core drops its thread pools in a forked child.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    return cf.ProcessPoolExecutor(max_workers=max(1, min(n, n_tasks)), mp_context=ctx,
                                  initializer=worker_init, initargs=(1,))


def _as_data(name, a, required=False):
    """Data as a finite C-contiguous float64 array, 1-D targets kept 1-D (cells refit on it)."""
    if a is None:
        if required:
            raise TypeError(f"{name}: expected an array, got None")
        return None
    checked = as_matrix(name, a, allow_1d=name.startswith("y"))
    return checked[:, 0].copy() if np.ndim(a) == 1 else checked


def _chain_parameter(estimator, chain: str, names: set) -> str:
    paths = getattr(estimator, "_path_parameters", None) or {}
    plural = {v: k for k, v in paths.items()}.get(chain)
    if plural is None:
        raise ValueError(f"chain: {type(estimator).__name__} has no continuation in {chain!r} "
                         f"(its path parameters: {sorted(paths.values()) or 'none'})")
    if chain not in names:
        raise ValueError(f"chain: {chain!r} is not a parameter of the grid")
    return plural


def _column_types(rows: list[dict], names: list[str]) -> None:
    """Parameters that mix ints and floats across cells become floats (one type per column)."""
    for n in names:
        vals = [r[n] for r in rows]
        if any(isinstance(v, float) for v in vals) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                           for v in vals):
            for r in rows:
                r[n] = float(r[n])


def sweep(estimator, grid, X, y, X_test=None, y_test=None, *, executor: cf.Executor | None = None,
          store=None, chain: str | None = None, seeds=None, max_workers: int | None = None,
          n_threads: int | None = None) -> Table:
    """Fit ``clone(estimator).set_params(**cell)`` for every cell of ``grid``; one row per cell.

    Parameters
    ----------
    estimator : a scikit-learn estimator (any theory, ``ak.GaussianProcess``, ...); not modified.
    grid : dict of parameter -> list of values (Cartesian product), or a list of such dicts.
    X, y, X_test, y_test : the data every cell is fitted (and tested) on.
    executor : concurrent.futures.Executor, optional
        Default: a local process pool of ``max_workers`` processes (default: the number of
        cores) with one core thread each. Pass :class:`SerialExecutor` to run here, or
        ``dask.distributed.Client(...).get_executor()`` for a cluster. An executor passed in is
        not shut down.
    store : path, optional
        A directory of Parquet parts (needs pyarrow), written as cells finish; re-running with
        the same store skips finished cells and retries failed ones. Rows of other cells already
        in the store are kept there but not returned.
    chain : str, optional
        A continuation parameter of the estimator (``"gamma"``, ``"width"``, ``"temperature"``,
        ``"weight_decay"``): the cells that differ only in it run in grid order with warm starts
        as one task (``fit_time`` is then the chain's time divided by its cells).
    seeds : list of int, optional
        Adds a ``seed`` axis (the estimator must have a ``seed`` parameter).
    n_threads : int, optional
        Core threads per cell (set on estimators with an ``n_threads`` parameter). Default: 1 on
        the default process pool, else the estimator's own setting.

    Returns
    -------
    Table with, per cell in grid order: ``key`` (hash of the estimator's class, its
    result-changing parameters and the data), ``estimator``, the grid's parameters, ``converged``,
    ``n_iter``, ``residual``, ``action`` (None where the model has none), ``alignment``
    (``ak.kernel_alignment`` of the fitted readout kernel ``kernel_`` with y y^T, theories only),
    ``train_loss``, ``test_loss`` (mean squared error), ``fit_time`` (s), ``error`` (None, or the
    exception of a failed cell), ``warnings``, ``version`` (``ak.__version__``). ``to_pandas()``
    converts it.
    """
    if not (hasattr(estimator, "get_params") and hasattr(estimator, "set_params")):
        raise ValueError(f"estimator: expected a scikit-learn estimator, got {type(estimator).__name__}")
    cells = expand_grid(grid)
    if seeds is not None:
        seeds = [int(s) for s in (seeds if isinstance(seeds, (list, tuple, range, np.ndarray)) else [seeds])]
        if not seeds:
            raise ValueError("seeds: empty")
        if "seed" not in estimator.get_params(deep=False):
            raise ValueError(f"seeds: {type(estimator).__name__} has no 'seed' parameter")
        if any("seed" in c for c in cells):
            raise ValueError("seeds: 'seed' is also a grid parameter; give it in one place")
        cells = [{**c, "seed": s} for c in cells for s in seeds]
    valid = estimator.get_params(deep=False)
    names: list[str] = []
    for c in cells:
        for k in c:
            if k not in valid:
                raise ValueError(f"grid: unknown parameter {k!r} of {type(estimator).__name__}; "
                                 f"valid parameters: {sorted(valid)}")
            if k not in names:
                names.append(k)
    X, y, X_test, y_test = (_as_data(n, a, n in ("X", "y"))
                            for n, a in (("X", X), ("y", y), ("X_test", X_test), ("y_test", y_test)))
    if (X_test is None) != (y_test is None):
        raise ValueError("y_test: give X_test and y_test together")
    plural = _chain_parameter(estimator, chain, set(names)) if chain is not None else None
    if chain is not None and any(chain not in c for c in cells):
        raise ValueError(f"chain: {chain!r} must be set in every cell of the grid")

    fp = fingerprint(X, y, X_test, y_test)
    keys = []
    for c in cells:
        keys.append(cell_key(clone(estimator).set_params(**c), fp))
    if len(set(keys)) != len(keys):
        dup = next(c for c, k in zip(cells, keys) if keys.count(k) > 1)
        raise ValueError(f"grid: the cell {dup} appears more than once")
    rows_meta = [{"key": k, "estimator": type(estimator).__name__, **{n: display(c.get(n, valid[n])) for n in names}}
                 for c, k in zip(cells, keys)]

    db = ParquetStore(store) if store is not None else None
    results: dict[str, dict] = {}
    if db is not None:
        stored = db.load()
        results = {k: stored[k] for k in keys if k in stored and stored[k].get("error") is None}

    # tasks: (cell indices to run in order, indices whose rows are new)
    if chain is None:
        tasks = [([i], [i]) for i, k in enumerate(keys) if k not in results]
    else:
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(cells):
            g = json.dumps(canonical({k: v for k, v in c.items() if k != chain}), sort_keys=True)
            groups.setdefault(g, []).append(i)
        tasks = []
        for idx in groups.values():
            todo = [i for i in idx if keys[i] not in results]
            if todo:
                last = idx.index(todo[-1])
                tasks.append((idx[: last + 1], todo))

    failures = 0
    if tasks:
        own = executor is None
        ex = _default_executor(max_workers, len(tasks)) if own else executor
        threads = n_threads if n_threads is not None else (1 if own else None)
        futures, handled = {}, set()

        def handle(f):
            nonlocal failures
            handled.add(f)
            run, new = futures[f]
            try:
                out = f.result()
            except Exception as e:  # noqa: BLE001 - the executor failed (a worker died, ...)
                out = [{**EMPTY_FIT, "fit_time": None, "error": f"{type(e).__name__}: {e}", "warnings": None}
                       for _ in run]
            for i, r in zip(run, out):
                if i not in new:
                    continue
                row = {**rows_meta[i], **r, "version": VERSION}
                failures += row["error"] is not None
                if db is not None:
                    db.write(row)
                results[keys[i]] = row

        try:
            for run, new in tasks:
                f = ex.submit(run_cells, estimator, [cells[i] for i in run], chain, plural,
                              X, y, X_test, y_test, threads)
                futures[f] = (run, new)
                for g in [g for g in futures if g not in handled and g.done()]:   # serial executors
                    handle(g)
            for f in cf.as_completed([f for f in futures if f not in handled]):
                handle(f)
        except BaseException:
            for f in futures:
                f.cancel()
            if own:
                ex.shutdown(wait=False, cancel_futures=True)
                own = False
            raise
        finally:
            if own:
                ex.shutdown(wait=True)
    if failures:
        warnings.warn(f"sweep: {failures} of {len(cells)} cells failed (see the 'error' column); "
                      "re-running with the same store retries them", UserWarning, stacklevel=2)
    columns = ["key", "estimator", *names, *RESULT_COLUMNS]
    rows = [{c: {**rows_meta[i], **results[k]}.get(c) for c in columns} for i, k in enumerate(keys)]
    _column_types(rows, names)
    return Table(rows, columns)


def load_store(store) -> Table:
    """Every row in a store (any sweep), as a Table."""
    return Table(ParquetStore(store).load().values())


__all__ = ["sweep", "SerialExecutor", "load_store"]
