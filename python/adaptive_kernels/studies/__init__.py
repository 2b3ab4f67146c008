"""Studies: many fits at once, theories side by side, results as tables.

* :func:`sweep`: a grid of independent fits of one estimator on any ``concurrent.futures``
  executor (local processes by default, Dask through ``Client.get_executor()``), resumable
  through a Parquet store, with warm-started chains along a continuation parameter;
* :func:`compare_theories`: every theory that applies to an architecture (and optionally the
  finite networks) fitted on the same data, one row per model;
* :class:`Table`: the result type of both (``to_pandas()``, ``to_arrow()``);
* :mod:`.plots` (matplotlib, the extra ``plot``): learning curves with error bars over seeds,
  kernel heatmaps and spectra, convergence histories, alignment across layers.

Studies use the theories; nothing below them imports this package.
"""
from ._table import Table
from .compare import THEORIES, compare_theories
from .plots import (plot_alignment, plot_comparison, plot_convergence, plot_kernel,
                    plot_learning_curve)
from .sweep import SerialExecutor, load_store, sweep

__all__ = ["sweep", "compare_theories", "THEORIES", "Table", "SerialExecutor", "load_store",
           "plot_learning_curve", "plot_comparison", "plot_kernel", "plot_convergence", "plot_alignment"]
