"""Figures of studies (matplotlib, the optional extra ``plot``): learning curves, kernel heatmaps
and spectra, convergence histories, alignment across layers, a ``compare_theories`` summary.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (no global
figure state, nothing is shown; ``fig.savefig(path)`` writes it). Tables may be a
:class:`~adaptive_kernels.studies.Table`, a pandas DataFrame, a list of row dicts, or the path of
a Parquet store / file.

Learning curves: rows are grouped by ``by`` (default ``"model"`` where the table has it); a
group whose rows repeat an x value (seeds) or whose ``kind`` is ``"network"`` is drawn as points
with error bars, mean +- standard error over its rows at each x (``std(ddof=1) / sqrt(n)``, 0
for a single row); every other group is a line through its values sorted by x. Rows with an
``error`` or without a finite value are left out.
"""
from __future__ import annotations

import math
import pathlib

import numpy as np

from ..kernels.alignment import kernel_alignment
from ._table import Table


def _figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'adaptive-kernels[plot]'") from None
    return Figure(**kwargs)


def _rows(table) -> list[dict]:
    if isinstance(table, Table):
        return table.rows()
    if isinstance(table, (str, pathlib.Path)):
        path = pathlib.Path(table)
        if path.is_dir():
            from .sweep import load_store
            return load_store(path).rows()
        if not path.exists():
            raise FileNotFoundError(f"table: no such file or directory: {str(path)!r}")
        try:
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("table: reading Parquet needs pyarrow (pip install 'adaptive-kernels[studies]')") from None
        return pq.read_table(path).to_pylist()
    if hasattr(table, "to_dict") and hasattr(table, "columns"):   # pandas
        return table.to_dict("records")
    if isinstance(table, (list, tuple)) and all(isinstance(r, dict) for r in table):
        return list(table)
    raise ValueError(f"table: expected a Table, a DataFrame, a list of dicts or a Parquet path, "
                     f"got {type(table).__name__}")


def _number(v) -> float | None:
    if v is None or isinstance(v, (bool, str)):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _check_column(rows, name, arg):
    cols = {c for r in rows for c in r}
    if name not in cols:
        raise ValueError(f"{arg}: no column {name!r}; columns: {sorted(cols)}")


def learning_curve_data(table, x: str, y: str = "test_loss", by=None) -> dict:
    """The numbers :func:`plot_learning_curve` draws: ``{label: dict(x, mean, sem, n, points)}``
    (arrays sorted by x; ``points`` whether the group is drawn as error-bar points)."""
    rows = _rows(table)
    if not rows:
        raise ValueError("table: no rows")
    _check_column(rows, x, "x")
    _check_column(rows, y, "y")
    if by is None:
        by = ["model"] if any("model" in r for r in rows) else []
    elif isinstance(by, str):
        by = [by]
    for b in by:
        _check_column(rows, b, "by")
    groups: dict[str, dict] = {}
    for r in rows:
        if r.get("error") is not None:
            continue
        xv, yv = _number(r.get(x)), _number(r.get(y))
        if xv is None or yv is None:
            continue
        label = ", ".join(str(r.get(b)) for b in by) or y
        g = groups.setdefault(label, {"values": {}, "network": False})
        g["values"].setdefault(xv, []).append(yv)
        g["network"] |= r.get("kind") == "network"
    out = {}
    for label, g in groups.items():
        xs = np.array(sorted(g["values"]))
        vals = [np.asarray(g["values"][v]) for v in xs]
        n = np.array([len(v) for v in vals])
        sem = np.array([v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0 for v in vals])
        out[label] = dict(x=xs, mean=np.array([v.mean() for v in vals]), sem=sem, n=n,
                          points=bool(g["network"] or n.max() > 1))
    return out


def plot_learning_curve(table, x: str, y: str = "test_loss", *, by=None, ax=None, logx: bool = False,
                        logy: bool = False, title: str | None = None):
    """Learning curve ``y`` against the numeric column ``x`` (alpha, P, width, gamma,
    temperature, ...): one line per theory, error-bar points (mean +- standard error over seeds)
    per simulated network (see the module docstring for the grouping)."""
    data = learning_curve_data(table, x, y, by)
    if not data:
        raise ValueError(f"table: no row has finite {x!r} and {y!r} values")
    if ax is None:
        fig = _figure(figsize=(6.4, 4.4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    for label, d in data.items():
        if d["points"]:
            ax.errorbar(d["x"], d["mean"], yerr=d["sem"], fmt="o", capsize=3, label=label)
        else:
            ax.plot(d["x"], d["mean"], "-", marker=".", label=label)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return fig


def plot_comparison(table, columns=("test_loss", "alignment")):
    """A ``compare_theories`` table as horizontal bars, one panel per column, one bar per model
    (colored by ``kind``: lazy, theory, network); models that failed are left out."""
    rows = [r for r in _rows(table) if r.get("error") is None]
    if not rows:
        raise ValueError("table: no rows without an error")
    columns = [c for c in ([columns] if isinstance(columns, str) else columns) if any(c in r for r in rows)]
    if not columns:
        raise ValueError("columns: none of them is in the table")
    colors = {"lazy": "tab:gray", "theory": "tab:blue", "network": "tab:orange"}
    fig = _figure(figsize=(4.0 * len(columns), 0.45 * len(rows) + 1.4), layout="constrained")
    axes = fig.subplots(1, len(columns), sharey=True, squeeze=False)[0]
    names = [str(r["model"]) for r in rows]
    for ax, c in zip(axes, columns):
        vals = [_number(r.get(c)) for r in rows]
        ax.barh(np.arange(len(rows)), [np.nan if v is None else v for v in vals],
                color=[colors.get(r.get("kind"), "tab:green") for r in rows])
        ax.set_xlabel(c)
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(np.arange(len(rows)), names)
    axes[0].invert_yaxis()
    return fig


def _kernel_of(K):
    if hasattr(K, "kernel_"):
        K = K.kernel_
    K = np.asarray(K, dtype=float)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K: expected a square matrix or a fitted estimator, got shape {K.shape}")
    return K


def plot_kernel(K, *, title: str | None = None):
    """Heatmap of a kernel (an array, or a fitted estimator's ``kernel_``) and its eigenvalue
    spectrum (descending, log scale; eigenvalues <= 0 are not drawn)."""
    K = _kernel_of(K)
    fig = _figure(figsize=(10, 4.2), layout="constrained")
    ax_h, ax_s = fig.subplots(1, 2)
    im = ax_h.imshow(K, cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax_h)
    ax_h.set_title(title or "kernel")
    ax_h.set_xlabel("j")
    ax_h.set_ylabel("i")
    lam = np.linalg.eigvalsh(0.5 * (K + K.T))[::-1]
    idx = np.arange(1, len(lam) + 1)
    pos = lam > 0
    ax_s.plot(idx[pos], lam[pos], ".-")
    ax_s.set_xscale("log")
    ax_s.set_yscale("log")
    ax_s.set_xlabel("index k")
    ax_s.set_ylabel("eigenvalue")
    ax_s.set_title("spectrum")
    ax_s.grid(True, alpha=0.3)
    return fig


def _history(r):
    if hasattr(r, "report_"):
        r = r.report_
    if not hasattr(r, "residual_history"):
        raise ValueError(f"reports: expected fitted estimators or SolveReports, got {type(r).__name__}")
    return np.asarray(r.residual_history, dtype=float)


def plot_convergence(reports, *, title: str | None = None):
    """Residual against iteration (log scale) of fitted estimators or ``SolveReport`` objects:
    one, a list, or a dict label -> estimator/report."""
    if not isinstance(reports, dict):
        reports = list(reports) if isinstance(reports, (list, tuple)) else [reports]
        def name(r):
            return type(r).__name__ if hasattr(r, "report_") else str(getattr(r, "solver", type(r).__name__))
        reports = {name(r) + (f" #{i}" if len(reports) > 1 else ""): r for i, r in enumerate(reports)}
    fig = _figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for label, r in reports.items():
        h = _history(r)
        ax.plot(np.arange(1, len(h) + 1), h, ".-", label=str(label))
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("residual")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return fig


def alignment_by_layer(kernels, y) -> np.ndarray:
    """``ak.kernel_alignment(K_l, y)`` for each layer's kernel (a list of arrays or a fitted
    estimator's ``kernels_``)."""
    if hasattr(kernels, "kernels_"):
        kernels = kernels.kernels_
    return np.array([kernel_alignment(np.asarray(K, dtype=float), y) for K in kernels])


def plot_alignment(kernels, y, *, title: str | None = None):
    """Kernel-target alignment across hidden layers 1..L: one line per model (a fitted
    estimator, a list of per-layer kernels, or a dict label -> either)."""
    if not isinstance(kernels, dict):
        kernels = {type(kernels).__name__ if hasattr(kernels, "kernels_") else "kernels": kernels}
    fig = _figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for label, ks in kernels.items():
        a = alignment_by_layer(ks, y)
        ax.plot(np.arange(1, len(a) + 1), a, "o-", label=str(label))
    ax.set_xlabel("layer")
    ax.set_ylabel("alignment(K, y y^T)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return fig


__all__ = ["plot_learning_curve", "learning_curve_data", "plot_comparison", "plot_kernel", "plot_convergence",
           "plot_alignment", "alignment_by_layer"]
