"""Adaptive tangent features (LeJeune & Alemohammad, "An adaptive tangent feature perspective of
neural networks", CPAL 2024): a linear model on a network's tangent features whose features may
be transformed linearly, at a cost, while it is fitted.

With tangent features ``Phi`` (rows (sample, output)) at the initial parameters, outputs ``f0``
and residual targets ``r = y - f0``, the model solves

    min_{beta, M}  |beta|^2 + reg sum_k |M_k - I|_F^2    s.t.   Phi M beta = r,

``M = blockdiag(M_k)`` over groups of parameters (``structure="groups"``: one group per dense
layer, weights and bias; ``"full"``: a single unstructured transform). It is equivalent to

    min_theta  sum_k w(|theta_k|)    s.t.   Phi theta = r,
    w(v) = min_{z > 0}  reg (z - 1)^2 + v^2 / z^2        (:func:`one_sided_penalty`)

(``theta = M beta``; at the optimum ``M_k = I + (z_k - 1) u_k u_k^T``, ``u_k = theta_k/|theta_k|``):
ridge-like for updates much smaller than ``sqrt(reg)``, group-lasso-like for larger ones, so
``reg`` is the lazy/rich knob; ``reg -> inf`` is the fixed tangent-feature model (ridgeless
tangent-kernel regression), and with ``structure="full"`` the predictor *is* that model for every
``reg`` (``w`` is increasing), only the kernel changes. Solved by iteratively reweighted least
squares in kernel form (convex; the objective never increases; ``report_.residual`` is the last
relative decrease of the objective).

``structure="layerwise"`` transforms each dense layer's update on both sides,
``Theta_l = M2_l B_l M1_l^T`` (``M1`` on the layer's inputs, with the bias as an extra constant
input, ``M2`` on its backprop vectors), cost ``|B|^2 + reg (|M1 - I|^2 + |M2 - I|^2)``: the
equivalent problem penalises every singular value ``s`` of each layer's update by
:func:`two_sided_penalty` (ridge-like for ``s << sqrt(reg)``, Schatten-2/3-like above: low-rank
updates). Non-convex; solved by exact alternating minimisation (kernel interpolation with the
transformed kernel, then the SVD-aligned transforms) from the identity (the lazy model); the
objective never increases; convergence slows as ``reg -> 0`` (raise ``max_iter``, and check
``report_``).
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from .. import _core
from .._base import TheoryEstimator
from .._results import PathResult, SolveReport
from .._validation import as_matrix, check_bool, check_float, check_int, check_n_threads, check_target_scale, r2_score
from ..exceptions import ConvergenceWarning
from ..finite.tangent import TangentFeatures

__all__ = ["AdaptiveTangentFeatures", "one_sided_penalty", "two_sided_penalty"]

_DEFAULTS = _core.tangent_features.defaults()
_STRUCTURES = ("groups", "full", "layerwise")


def _penalty(fn, name, v, reg):
    reg = check_float("reg", reg, minimum=0.0, strict=True)
    try:
        v = np.asarray(v, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected real numbers ({exc})") from None
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name}: contains NaN or inf")
    w, z = fn(np.abs(v).ravel().tolist(), reg)
    if not np.all(np.isfinite(w)):
        raise FloatingPointError(f"{name}: the penalty or its optimal scale leaves the float64 range at reg = {reg:g} "
                                 f"({name} / sqrt(reg) too large); rescale {name} or reg")
    return np.reshape(w, v.shape), np.reshape(z, v.shape)


def one_sided_penalty(v, reg: float = 1.0, *, return_scale: bool = False):
    """Induced penalty of a one-sided feature transform, ``w(v) = min_{z>0} reg (z-1)^2 + v^2/z^2``
    (stationary at ``reg z^3 (z - 1) = v^2``); ``~ v^2`` for ``v << sqrt(reg)``,
    ``~ 2 sqrt(reg) v`` for ``v >> sqrt(reg)``. With ``return_scale`` also the optimal ``z``."""
    w, z = _penalty(_core.tangent_features.one_sided_penalty, "v", v, reg)
    return (w, z) if return_scale else w


def two_sided_penalty(s, reg: float = 1.0, *, return_scale: bool = False):
    """Induced penalty on a singular value ``s`` of a layer update transformed on both sides
    (``M1 B M2``), ``w(s) = min_{z>0} 2 reg (z-1)^2 + s^2/z^4`` (symmetric optimum, stationary at
    ``reg z^5 (z - 1) = s^2``); ``~ s^2`` small, ``~ 3 reg^(2/3) s^(2/3)`` large (Schatten-2/3).
    With ``return_scale`` also the optimal ``z`` of each transform."""
    w, z = _penalty(_core.tangent_features.two_sided_penalty, "s", s, reg)
    return (w, z) if return_scale else w


def _check_tf(name, tf) -> TangentFeatures:
    if not isinstance(tf, TangentFeatures):
        raise TypeError(f"{name}: expected TangentFeatures (from ak.tangent_features), got {type(tf).__name__}")
    return tf


class AdaptiveTangentFeatures(TheoryEstimator):
    """Adaptive tangent-feature regression (module docs): ``fit(tf, y)`` on the tangent features
    of a network (:func:`~adaptive_kernels.tangent_features`), ``predict(tf_test)``.

    Parameters: ``structure`` (``"groups"``: per-layer transforms, ``"full"``: one unstructured
    transform, ``"layerwise"``: two-sided per-layer transforms), ``reg`` (> 0, ``inf`` allowed: the
    cost of transforming features), ``tol`` and
    ``max_iter`` of the solver (None: the core's defaults), ``anderson`` (layerwise: memory of the
    safeguarded Anderson extrapolation of the alternating minimisation, 0: plain alternating
    steps; an extrapolated update is taken only when its objective beats the plain step's, so the
    objective stays monotone), ``warm_start`` (layerwise: a refit on the
    same tangent features starts from the fitted transforms; ``path`` uses it for a continuation
    in ``reg`` from the lazy end), ``n_threads``.

    Fitted: ``update_`` (the parameter update ``theta``, flat, in the network's layout),
    ``transforms_`` (per group a dict ``scale`` ``z_k``, ``direction`` ``u_k`` (flat, zero outside
    the group), ``groups`` (layer indices): ``M_k = I + (z_k - 1) u_k u_k^T``), ``kernel_``
    (initial tangent kernel ``K0``), ``kernels_`` (its per-layer parts), ``adapted_kernel_``
    (``Phi M M^T Phi^T = K0 + sum_k (z_k^2 - 1) r_k r_k^T / |theta_k|^2``, ``r_k = Phi_k theta_k``),
    ``weighted_kernel_`` (``K_z = sum_k z_k^2 K0_k``, the kernel the predictor uses; it gives the
    same interpolant as ``adapted_kernel_``: only the function is identified, not the kernel),
    ``dual_coef_`` (``K_z^{-1} r``), ``objective_`` / ``action_`` and ``objective_history_``,
    ``feasibility_`` (``|Phi theta - r| / |r|``), ``report_``. Rows of kernels are (sample, output).
    With ``structure="layerwise"``: ``transforms_`` holds per layer ``input_directions`` U
    ((fan_in [+1 bias], k)), ``output_directions`` V ((fan_out, k)), ``scales`` z and
    ``singular_values`` of the update (``M1 = I + U diag(z-1) U^T``, ``M2 = I + V diag(z-1) V^T``),
    ``stable_ranks_`` the stable rank ``|Theta_l|_F^2 / |Theta_l|_2^2`` of each layer's update,
    and ``weighted_kernel_`` is the adapted kernel.
    """

    _path_parameters = {"regs": "reg"}

    def __init__(self, structure: str = "groups", reg: float = 1.0, *, tol: float | None = None,
                 max_iter: int | None = None, anderson: int | None = None, warm_start: bool = False,
                 n_threads: int | None = None):
        self.structure = structure
        self.reg = reg
        self.tol = tol
        self.max_iter = max_iter
        self.anderson = anderson
        self.warm_start = warm_start
        self.n_threads = n_threads

    def _check_params(self) -> dict:
        if self.structure not in _STRUCTURES:
            raise ValueError(f"structure: expected one of {_STRUCTURES}, got {self.structure!r}")
        reg = check_float("reg", self.reg, minimum=0.0, strict=True, allow_inf=True)
        opts = dict(structure=self.structure, reg=reg)
        if self.tol is not None:
            opts["tol"] = check_float("tol", self.tol, minimum=0.0, strict=True)
        if self.max_iter is not None:
            opts["max_iter"] = check_int("max_iter", self.max_iter, minimum=1)
        if self.anderson is not None:
            opts["anderson"] = check_int("anderson", self.anderson, minimum=0)
        return opts

    def fit(self, tf, y):
        """Fit to targets ``y`` ((n,) or (n, C)) on the training tangent features ``tf``."""
        opts = self._check_params()
        tf = _check_tf("tf", tf)
        Y = np.array(check_target_scale("y", as_matrix("y", y, allow_1d=True)), copy=True)
        if Y.shape != tf.f0.shape:
            raise ValueError(f"y: expected shape ({tf.n_samples}, {tf.n_outputs}) (samples, outputs of tf), "
                             f"got {Y.shape}")
        r = np.ascontiguousarray((Y - tf.f0).ravel())
        init = None
        if check_bool("warm_start", self.warm_start) and opts["structure"] == "layerwise" \
                and getattr(self, "tf_train_", None) is tf and self._params.get("structure") == "layerwise":
            init = [(np.ascontiguousarray(t["input_directions"]), np.ascontiguousarray(t["output_directions"]),
                     [float(z) for z in t["scales"]]) for t in self.transforms_]
        s = _core.tangent_features.solve(tf, r, options=opts, init_transforms=init,
                                         n_threads=check_n_threads(self.n_threads))
        self.tf_train_, self.y_train_, self._y_1d = tf, Y, np.ndim(y) == 1
        self._params = opts
        self.report_ = SolveReport.from_core(s.report)
        self.dual_coef_ = np.asarray(s.alpha)
        self.kernel_, self.kernels_ = s.kernel, list(s.layer_kernels)
        self.adapted_kernel_, self.weighted_kernel_ = s.adapted_kernel, s.weighted_kernel
        self.objective_ = self.action_ = float(s.objective)
        self.objective_history_ = np.asarray(s.objective_history)
        self.feasibility_ = float(s.feasibility)
        if opts["structure"] == "layerwise":
            self.update_ = np.asarray(s.update)
            self.transforms_ = [dict(input_directions=u, output_directions=v, scales=np.asarray(z),
                                     singular_values=np.asarray(sv), layer=l)
                                for l, (u, v, z, sv) in enumerate(s.layer_transforms)]
            self.stable_ranks_ = np.array([np.sum(t["singular_values"] ** 2) / t["singular_values"][0] ** 2
                                           if t["singular_values"].size else 0.0 for t in self.transforms_])
            if not self.converged_:
                warnings.warn(self._nonconvergence_message(), ConvergenceWarning, stacklevel=2)
            return self
        groups = [[l] for l in range(len(tf.inputs))] if opts["structure"] == "groups" \
            else [list(range(len(tf.inputs)))]
        self._layer_weights = np.empty(len(tf.inputs))
        for g, w in zip(groups, s.weights):
            self._layer_weights[g] = w
        self.update_ = tf.vjp(self.dual_coef_, self._layer_weights)
        self.transforms_ = []
        for g, z, v in zip(groups, s.scales, s.norms):
            u = np.zeros(tf.n_params)
            for l in g:
                idx = _layer_indices(tf, l)
                u[idx] = self.update_[idx]
            u = u / v if v > 0 else u
            self.transforms_.append(dict(scale=float(z), direction=u, groups=g))
        if not self.converged_:
            warnings.warn(self._nonconvergence_message(), ConvergenceWarning, stacklevel=2)
        return self

    def _check_fitted(self) -> None:
        check_is_fitted(self, "report_")

    def predict(self, tf, return_std: bool = False):
        """Predictions ``f0 + Phi_test theta`` ((n,) or (n, C)) on the test tangent features."""
        self._check_fitted()
        tf = _check_tf("tf", tf)
        if return_std:
            raise ValueError("return_std: the adaptive tangent-feature model is not probabilistic")
        if self._params["structure"] == "layerwise":
            mean = tf.f0 + tf.jvp(self.update_).reshape(tf.f0.shape)
        else:
            ks = tf.layer_kernels(self.tf_train_, n_threads=self.n_threads)
            k = sum(w * kl for w, kl in zip(self._layer_weights, ks))
            mean = tf.f0 + (k @ self.dual_coef_).reshape(tf.f0.shape)
        return mean[:, 0] if self._y_1d else mean

    def score(self, tf, y, sample_weight=None) -> float:
        """R^2 of the predictions on ``tf`` against ``y`` (averaged over outputs)."""
        if sample_weight is not None:
            raise ValueError("sample_weight: not supported")
        Y = as_matrix("y", y, allow_1d=True)
        return r2_score(Y, np.reshape(self.predict(tf), Y.shape))

    def path(self, tf, y, *, tf_test=None, y_test=None, regs) -> PathResult:
        """Fits along ``regs`` (order them from large to small: from the lazy end), each
        layerwise solve warm-started from the previous transforms (``warm_start``); with
        ``tf_test``/``y_test`` also the test loss (mean squared error) and that of the lazy
        fixed tangent-feature model (``nngp_test_loss``)."""
        try:
            regs = [float(r) for r in regs]
        except TypeError:
            raise TypeError(f"regs: expected a sequence of values, got {type(regs).__name__}") from None
        if not regs:
            raise ValueError("regs: the path is empty")
        est = clone(self).set_params(warm_start=True)
        models = []
        for reg in regs:
            est.set_params(reg=reg).fit(tf, y)
            models.append(copy.deepcopy(est))
        test = lazy = None
        if tf_test is not None and y_test is not None:
            Yt = np.reshape(np.asarray(y_test, dtype=float), np.shape(models[0].predict(tf_test)))
            test = np.array([np.mean((m.predict(tf_test) - Yt) ** 2) for m in models])
            lz = clone(self).set_params(reg=np.inf, warm_start=False).fit(tf, y)
            lazy = np.full(len(models), np.mean((lz.predict(tf_test) - Yt) ** 2))
        return PathResult(parameter="reg", values=np.array(regs), models=models,
                          action=np.array([m.action_ for m in models]),
                          converged=np.array([m.converged_ for m in models]),
                          n_iter=np.array([m.n_iter_ for m in models]),
                          residual=np.array([m.residual_ for m in models]), test_loss=test, nngp_test_loss=lazy)


def _layer_indices(tf: TangentFeatures, l: int) -> np.ndarray:
    fi, fo = tf.inputs[l].shape[1], tf.backprop[l].shape[1]
    idx = np.arange(tf.w_offsets[l], tf.w_offsets[l] + fi * fo)
    if tf.b_offsets[l] is not None:
        idx = np.concatenate([idx, np.arange(tf.b_offsets[l], tf.b_offsets[l] + fo)])
    return idx
