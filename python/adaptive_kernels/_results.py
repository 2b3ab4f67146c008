"""Result types shared by every theory: the solver report and the continuation path."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SolveReport:
    """How a solve went, the same fields for every theory (the core's ``SolveReport``).

    ``converged``; ``n_iter`` (outer iterations); ``n_eval`` (objective or map evaluations, None
    where not counted); ``residual`` (the solver's stationarity measure at the end, documented
    per theory); ``residual_history`` (one value per iteration); ``stages`` (the reached values of
    a continuation, failed stages negative; empty without one); ``solver`` (the algorithm used).
    """

    converged: bool
    n_iter: int
    n_eval: int | None
    residual: float
    residual_history: np.ndarray
    stages: np.ndarray
    solver: str

    @classmethod
    def from_core(cls, r) -> "SolveReport":
        """From the binding's typed ``SolveReport``."""
        return cls(converged=bool(r.converged), n_iter=int(r.n_iter),
                   n_eval=None if r.n_eval is None else int(r.n_eval), residual=float(r.residual),
                   residual_history=np.asarray(r.residual_history, dtype=float),
                   stages=np.asarray(r.stages, dtype=float), solver=str(r.solver))


@dataclass
class PathResult:
    """Solutions along a continuation path, one entry per point (from ``TheoryEstimator.path``).

    ``parameter``: the estimator parameter varied (``"gamma"``, ``"width"``, ``"temperature"``);
    ``values``: its value at each point (an array whose first axis runs over the points);
    ``models``: the fitted estimators; ``action``, ``converged``, ``n_iter``, ``residual``: per
    point, from each model; with test data also ``test_loss`` (mean squared error of the mean
    predictor) and ``nngp_test_loss`` (the lazy baseline of the same architecture at each
    point's temperature), both arrays of the path's length. ``interrupted``: a Ctrl-C stopped
    the path early; every per-point field then covers the points solved before it (a prefix of
    the requested values), each complete; the point in progress is dropped.
    """

    parameter: str
    values: np.ndarray
    models: list = field(repr=False)
    action: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    residual: np.ndarray
    test_loss: np.ndarray | None = None
    nngp_test_loss: np.ndarray | None = None
    interrupted: bool = False

    def __len__(self) -> int:
        return len(self.models)

    def attribute(self, name: str) -> np.ndarray:
        """A fitted attribute of every model stacked along a first axis, e.g. ``path.attribute("Q_")``."""
        return np.array([getattr(m, name) for m in self.models])

    def rows(self) -> list[dict]:
        """One dict per point (parameter value, action, convergence, losses): a tidy table."""
        out = []
        for i in range(len(self)):
            v = self.values[i]
            row = {self.parameter: v.tolist() if np.ndim(v) else float(v), "action": float(self.action[i]),
                   "converged": bool(self.converged[i]), "n_iter": int(self.n_iter[i]),
                   "residual": float(self.residual[i])}
            if self.test_loss is not None:
                row["test_loss"] = float(self.test_loss[i])
                row["nngp_test_loss"] = float(self.nngp_test_loss[i])
            out.append(row)
        return out


__all__ = ["SolveReport", "PathResult"]
