"""``compare_theories``: every theory that applies to an architecture, fitted on the same data,
optionally next to finite networks, as one tidy table (one row per model).

Models (``theories=`` names) and what they are built from (the shared scalars ``width``,
``temperature``, ``gamma``, ``weight_decay``; each entry's dict overrides any constructor argument):

==========================  ==========================================================  ===================
name                        estimator (defaults)                                         applies when
==========================  ==========================================================  ===================
``nngp``                    ``GaussianProcess(net, kernel="nngp", ridge=temperature)``   always
``ntk``                     ``KernelRidge(net, kernel="ntk", ridge=temperature)``        always
``kernel_renormalization``  ``KernelRenormalization(net, width=width,                    depth >= 1, width
                            temperature=temperature)``
``bayesian_mean_field``     ``BayesianMeanField(net, gamma=gamma,                        depth >= 1, built-in
                            temperature=temperature)``; nonlinear nets are sampled with  activation
                            ``n_chains=8, n_samples=300`` (Monte-Carlo error ~ 1/sqrt(2400))
``gradient_flow``           ``GradientFlowFixedPoint(net, gamma=gamma,                   depth >= 1, built-in
                            weight_decay=weight_decay, n_particles=256)``               activation
==========================  ==========================================================  ===================

``weight_decay`` defaults to ``temperature``, so every predictor has the same ridge.

Finite networks (``simulate=`` names, each a dict of keyword arguments overriding the defaults):

* ``sample_posterior``: ``ak.sample_posterior(net, X, y, X_test, width=width,
  temperature=temperature, parameterization="standard", n_chains=4, n_samples=500, thin=2,
  seed=0)``: the Bayesian network that kernel renormalization (standard scaling) and, with
  ``parameterization="mean_field", gamma=gamma``, the Bayesian mean-field theory describe;
* ``train_gd``: ``ak.train_gd(net, X, y, X_test, width=width, weight_decay=weight_decay,
  parameterization="mean_field", gamma=gamma, lr=1 / (lambda_max(NTK) + weight_decay),
  steps=20000, tol=1e-6, n_ensemble=2, seed=0)``: the network whose fixed point
  ``gradient_flow`` describes.

Columns: ``model``, ``kind`` (lazy / theory / network), ``test_loss``, ``train_loss`` (mean
squared error), ``alignment`` (``ak.kernel_alignment`` of the model's readout kernel on the
training set with y y^T), ``cka_nngp`` (``ak.cka`` of that kernel and the NNGP kernel), for each
simulated network ``s``: ``cka_<s>`` (to the network's readout kernel) and ``max_dist_<s>``
(max |f_model(x*) - f_network(x*)| over test points and outputs), ``fit_time`` (s),
``converged`` (the solver's; for ``sample_posterior`` every R-hat < 1.1, for ``train_gd`` every
member reached ``tol``), ``error`` (None, or why the model failed; the others still run), ``warnings``.

Readout kernels: the lazy kernels for nngp/ntk; ``kernel_`` for the theories; for networks the
average last hidden layer's ``phi phi^T / N``, as ``sigma_w^2 Phi + sigma_b^2`` in standard
scaling (the convention of ``K^L``) and ``Phi`` in mean-field scaling (that of ``kernel_``).
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from ..finite import sample_posterior, train_gd
from ..kernels.alignment import cka, kernel_alignment
from ..kernels.lazy import lazy_kernels
from .._validation import as_matrix, as_xy, check_same_features
from ..networks import MLP, check_net
from ..predictors import GaussianProcess, KernelRidge
from ..theories import BayesianMeanField, GradientFlowFixedPoint, KernelRenormalization
from ._cells import _warning_text
from ._table import Table

THEORIES = ("nngp", "ntk", "kernel_renormalization", "bayesian_mean_field", "gradient_flow")
SIMULATIONS = ("sample_posterior", "train_gd")


def _applies(name: str, net: MLP, width) -> str | None:
    """None when the theory applies, else why not."""
    if name in ("nngp", "ntk"):
        return None
    if net.depth < 1:
        return "needs a hidden layer (net.depth >= 1)"
    if name == "kernel_renormalization":
        return None if width is not None else "needs width"
    if callable(net.activation):
        return "needs a built-in activation"
    return None


def _estimator(name, net, kwargs, width, temperature, gamma, weight_decay, n_threads):
    if name == "nngp":
        cls, base = GaussianProcess, dict(kernel="nngp", ridge=temperature)
    elif name == "ntk":
        cls, base = KernelRidge, dict(kernel="ntk", ridge=temperature)
    elif name == "kernel_renormalization":
        cls, base = KernelRenormalization, dict(width=width, temperature=temperature)
    elif name == "bayesian_mean_field":
        cls, base = BayesianMeanField, dict(gamma=gamma, temperature=temperature)
        if net.activation != "linear":
            base.update(n_chains=8, n_samples=300)
    else:
        cls, base = GradientFlowFixedPoint, dict(gamma=gamma, weight_decay=weight_decay, n_particles=256)
    base["n_threads"] = n_threads
    base.update(kwargs)
    try:
        return cls(net, **base)
    except TypeError as e:
        raise ValueError(f"theories: {name}: {e}") from None


def _check_names(arg: str, value, known) -> dict[str, dict]:
    if isinstance(value, str):
        value = [value]
    items = value.items() if isinstance(value, dict) else [(n, {}) for n in value]
    out = {}
    for name, kw in items:
        if name not in known:
            raise ValueError(f"{arg}: unknown name {name!r}; expected some of {known}")
        if kw is None:
            kw = {}
        if not isinstance(kw, dict):
            raise ValueError(f"{arg}: {name}: expected a dict of keyword arguments, got {type(kw).__name__}")
        out[name] = dict(kw)
    return out


def _mse(pred, Y) -> float:
    return float(np.mean((np.asarray(pred, dtype=float).reshape(Y.shape) - Y) ** 2))


def _simulate(name, kw, net, X, y, X_test, width, temperature, gamma, weight_decay, n_threads):
    """(train prediction, test prediction, readout kernel, converged) of a finite network."""
    if name == "sample_posterior":
        args = dict(width=width, temperature=temperature, parameterization="standard", n_chains=4,
                    n_samples=500, thin=2, seed=0, n_threads=n_threads)
        args.update(kw)
        if args["width"] is None:
            raise ValueError("simulate: sample_posterior needs a width (give width= or simulate's width)")
        post = sample_posterior(net, X, y, X_test, **args)
        Phi = post.kernels[-1]
        ok = bool(np.all(np.nan_to_num(post.rhat, nan=1.0) < 1.1))
        return post.train_mean, post.mean, Phi, args["parameterization"], ok
    args = dict(width=width, weight_decay=weight_decay, parameterization="mean_field", gamma=gamma,
                steps=20000, tol=1e-6, n_ensemble=2, seed=0, n_threads=n_threads)
    args.update(kw)
    if args["width"] is None:
        raise ValueError("simulate: train_gd needs a width (give width= or simulate's width)")
    if "lr" not in args:
        _, Th = lazy_kernels(net, X, n_threads=n_threads)
        args["lr"] = 1.0 / (float(np.linalg.eigvalsh(Th)[-1]) + args["weight_decay"])
    gd = train_gd(net, X, y, X_test, **args)
    Phi = gd.feature_kernels[-1].mean(0)
    return gd.train_output.mean(0), gd.test_output.mean(0), Phi, args["parameterization"], bool(gd.converged.all())


def _undefined_as_nan(measure, *args) -> float:
    """An alignment measure, NaN where it is undefined (a kernel that is zero or constant after
    centring, e.g. all-zero inputs): a table cell, not a reason to fail the comparison."""
    try:
        return float(measure(*args))
    except ValueError as exc:
        if "undefined" in str(exc):
            return float("nan")
        raise


def compare_theories(net: MLP, X, y, X_test, y_test, *, theories=None, simulate=None, width=None,
                     temperature: float = 1e-2, gamma: float = 1.0, weight_decay: float | None = None,
                     n_threads: int | None = None, plot: bool = False):
    """Fit the theories that apply to ``net`` (and the finite networks in ``simulate``) on the
    same data; one row per model (see the module docstring for the models, their defaults and
    the columns).

    ``theories``: None (every theory that applies given ``width``), a list of names from
    :data:`THEORIES`, or a dict name -> keyword arguments overriding that estimator's defaults.
    ``simulate``: a dict ``{"sample_posterior": {...}, "train_gd": {...}}`` (or a list of names,
    with the defaults). A model that fails has its ``error`` column set; bad arguments raise
    ``ValueError`` naming the argument.

    Returns the :class:`Table`; with ``plot=True`` the pair ``(table, figure)``, the figure
    :func:`~adaptive_kernels.studies.plots.plot_comparison` draws of it (needs matplotlib).
    """
    net = check_net(net)
    if theories is None:
        chosen = {n: {} for n in THEORIES if _applies(n, net, width) is None}
    else:
        chosen = _check_names("theories", theories, THEORIES)
        for n in chosen:
            why = _applies(n, net, width)
            if why is not None and not (n == "kernel_renormalization" and "width" in chosen[n]):
                raise ValueError(f"theories: {n} {why}")
    sims = _check_names("simulate", simulate or {}, SIMULATIONS)
    weight_decay = temperature if weight_decay is None else weight_decay
    X_arr, Y_arr = as_xy(X, y)
    X_test_arr = as_matrix("X_test", X_test)
    check_same_features("X_test", X_test_arr, X_arr.shape[1], "X")
    Y_test_arr = as_matrix("y_test", y_test, allow_1d=True)
    if Y_test_arr.shape[0] != X_test_arr.shape[0]:
        raise ValueError(f"y_test: has {Y_test_arr.shape[0]} rows but X_test has {X_test_arr.shape[0]} samples")
    if Y_test_arr.shape[1] != Y_arr.shape[1] or np.ndim(y_test) != np.ndim(y):
        raise ValueError(f"y_test: shape {np.shape(y_test)} does not match y's outputs (shape {np.shape(y)})")
    X, X_test = np.asarray(X, dtype=float), np.asarray(X_test, dtype=float)
    y, y_test = np.asarray(y, dtype=float), np.asarray(y_test, dtype=float)
    models = {n: _estimator(n, net, kw, width, temperature, gamma, weight_decay, n_threads) for n, kw in chosen.items()}

    K_nngp, Th = lazy_kernels(net, X, n_threads=n_threads)
    sw2, sb2 = net.sigma_w ** 2, net.sigma_b ** 2
    rows, preds, kernels = [], {}, {}

    def record(name, kind, fit):
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                train, test, K, ok = fit()
                err = None
            except Exception as e:  # noqa: BLE001 - a model's failure is a row, the others still run
                train = test = K = ok = None
                err = f"{type(e).__name__}: {e}"
        row = dict(model=name, kind=kind,
                   test_loss=None if test is None else _mse(test, y_test),
                   train_loss=None if train is None else _mse(train, y),
                   alignment=None if K is None else _undefined_as_nan(kernel_alignment, K, y),
                   cka_nngp=None if K is None else _undefined_as_nan(cka, K, K_nngp),
                   fit_time=time.perf_counter() - t0, converged=ok, error=err, warnings=_warning_text(caught))
        rows.append(row)
        preds[name], kernels[name] = test, K

    for name in sims:
        def fit_sim(name=name):
            train, test, Phi, param, ok = _simulate(name, sims[name], net, X, y, X_test, width, temperature, gamma,
                                                    weight_decay, n_threads)
            return train, test, (sw2 * Phi + sb2 if param == "standard" else Phi), ok
        record(name, "network", fit_sim)

    for name, est in models.items():
        def fit_model(name=name, est=est):
            est.fit(X, y)
            K = K_nngp if name == "nngp" else Th if name == "ntk" else est.kernel_
            ok = bool(getattr(est, "converged_", True))
            return est.predict(X), est.predict(X_test), K, ok
        record(name, "lazy" if name in ("nngp", "ntk") else "theory", fit_model)

    # networks first while fitting (their kernels are needed), theories first in the table
    rows = rows[len(sims):] + rows[:len(sims)]
    for row in rows:
        for s in sims:
            K, f = kernels[row["model"]], preds[row["model"]]
            row[f"cka_{s}"] = None if K is None or kernels[s] is None else _undefined_as_nan(cka, K, kernels[s])
            row[f"max_dist_{s}"] = (None if f is None or preds[s] is None else
                                    float(np.max(np.abs(np.asarray(f).reshape(y_test.shape)
                                                        - np.asarray(preds[s]).reshape(y_test.shape)))))
    columns = ["model", "kind", "test_loss", "train_loss", "alignment", "cka_nngp",
               *[c for s in sims for c in (f"cka_{s}", f"max_dist_{s}")], "fit_time", "converged", "error", "warnings"]
    table = Table(rows, columns)
    if plot:
        from .plots import plot_comparison
        return table, plot_comparison(table)
    return table


__all__ = ["compare_theories", "THEORIES", "SIMULATIONS"]
