"""Full-batch gradient descent with weight decay of finite-width MLPs (conventions: :mod:`adaptive_kernels.finite`)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import _core
from .._progress import progress_bar
from .._validation import as_matrix, check_float, check_int, check_n_threads
from ..exceptions import ConvergenceWarning
from ..networks import MLP
from ._common import finite_data, net_args


@dataclass(frozen=True)
class TrainedNetworks:
    """Result of :func:`train_gd`: an ensemble of networks trained by gradient descent.

    Per member (stacked along axis 0): ``theta`` (flat parameters), ``train_output``,
    ``test_output``, ``ntk`` (empirical NTK on the training points, output 0, O(1) units),
    ``feature_kernels`` / ``gradient_kernels`` (lists over layers of (n_ensemble, P, P)),
    ``loss_curves`` (list of (n_records, 3) arrays: step, 1/2 sum (f-y)^2, regularized objective),
    ``n_steps``, ``converged``, ``grad_rms``. ``predict(X)`` is the ensemble-mean output.
    """

    theta: np.ndarray
    train_output: np.ndarray
    test_output: np.ndarray | None
    ntk: np.ndarray
    feature_kernels: list
    gradient_kernels: list
    loss_curves: list
    n_steps: np.ndarray
    converged: np.ndarray
    grad_rms: np.ndarray
    interrupted: bool
    _net_args: dict = field(repr=False)
    _n_out: int = field(repr=False)
    _n_features: int = field(repr=False)
    _squeeze: bool = field(repr=False)

    def predict(self, X, *, members: bool = False) -> np.ndarray:
        """Ensemble-mean output on X ((Q,) or (Q, C)); ``members=True`` returns every member."""
        X = as_matrix("X", X)
        d = self._n_features
        if X.shape[1] != d:
            raise ValueError(f"X: has {X.shape[1]} features, the networks were trained on {d}")
        outs = np.stack([_core.finite.forward(t, X, n_out=self._n_out, **self._net_args)[0] for t in self.theta])
        if self._squeeze:
            outs = outs[..., 0]
        return outs if members else outs.mean(0)


def train_gd(net: MLP, X, y, X_test=None, *, width, weight_decay: float = 0.0, lr: float = 1e-2, steps: int = 10000,
             tol: float = 1e-8, parameterization: str = "standard", gamma: float = 1.0, n_ensemble: int = 1,
             record_every: int = 10, seed: int = 0, n_threads: int | None = None,
             progress: bool | None = None) -> TrainedNetworks:
    """Train finite MLPs by full-batch gradient descent with weight decay to a fixed point.

    ``theta <- theta - lr (beta grad 1/2 sum (f - y)^2 + weight_decay theta)``, ``beta = 1`` in
    standard scaling and ``N_L gamma^2`` in mean-field scaling, from ``theta_0 ~ N(0, I)``;
    stops when the RMS gradient is below ``tol`` (a ``ConvergenceWarning`` otherwise).
    ``n_ensemble`` independent initializations run in parallel.
    """
    args = net_args(net, width, parameterization, gamma)
    X, Y, X_test = finite_data(X, y, X_test)
    weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
    lr = check_float("lr", lr, minimum=0.0, strict=True)
    steps = check_int("steps", steps, minimum=1)
    tol = check_float("tol", tol, minimum=0.0)
    n_ensemble = check_int("n_ensemble", n_ensemble, minimum=1)
    record_every = check_int("record_every", record_every, minimum=1)
    seed = check_int("seed", seed, minimum=0, maximum=2**64 - 1)
    with progress_bar(progress, "training", n_ensemble * steps * X.shape[0] * max(args["widths"]) ** 2 / 1e2,
                      threshold=1e9, unit="steps") as cb:   # gradient-descent steps, summed over the ensemble
        members, interrupted = _core.finite.train_gd(
            X, Y, X_test, args["net"], widths=args["widths"], parameterization=args["parameterization"],
            gamma=args["gamma"], config=dict(weight_decay=weight_decay, lr=lr, max_steps=steps, tol=tol,
                                             record_every=record_every, n_ensemble=n_ensemble, seed=seed),
            n_threads=check_n_threads(n_threads), progress=cb)
    squeeze = np.ndim(y) == 1
    sq = (lambda a: a[..., 0]) if squeeze else (lambda a: a)
    depth = len(args["widths"])
    res = TrainedNetworks(
        theta=np.stack([m.theta for m in members]),
        train_output=sq(np.stack([m.train_output for m in members])),
        test_output=sq(np.stack([m.test_output for m in members])) if X_test is not None else None,
        ntk=np.stack([m.ntk for m in members]),
        feature_kernels=[np.stack([m.feature_kernels[l] for m in members]) for l in range(depth)],
        gradient_kernels=[np.stack([m.gradient_kernels[l] for m in members]) for l in range(depth)],
        loss_curves=[np.asarray(m.loss_curve) for m in members],
        n_steps=np.array([m.n_steps for m in members]),
        converged=np.array([m.converged for m in members]),
        grad_rms=np.array([m.grad_rms for m in members]),
        interrupted=bool(interrupted or any(m.interrupted for m in members)),
        _net_args=args,
        _n_out=Y.shape[1],
        _n_features=X.shape[1],
        _squeeze=squeeze,
    )
    if res.interrupted:
        warnings.warn("training interrupted; returning the current parameters", RuntimeWarning, stacklevel=2)
    elif not res.converged.all():
        warnings.warn(f"gradient descent did not reach tol={tol:g} in {steps} steps "
                      f"(final RMS gradient {res.grad_rms.max():.3e})", ConvergenceWarning, stacklevel=2)
    return res

