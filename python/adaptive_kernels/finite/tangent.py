"""Tangent features of finite MLPs: the Jacobian of the outputs with respect to the flat
parameter vector (conventions: :mod:`adaptive_kernels.finite`), kept in structured form.

Every dense layer ``l`` (hidden layers, then the readout) is stored as its inputs ``A_l``
(n, fan_in), already multiplied by the layer's weight scale (``sigma_w / sqrt(fan_in)``, or the
readout scale), its bias scale ``s_l`` (``sigma_b`` when the layer has a bias, else 0) and its
backprop vectors ``G_l`` (n C, fan_out), row ``i C + c`` being ``d f_c(x_i) / d h_l`` (for the
readout the unit vector ``e_c``). Rows of kernels and Jacobians are (sample, output) pairs,
sample-major. Then ``d f_c(x_i) / d W_l[r, k] = G_l[(i, c), r] A_l[i, k]`` and the tangent
kernel is ``K0 = J J^T = sum_l (A_l A_l^T + s_l^2) ∘ (G_l G_l^T)`` (each ``A``-Gram entry
repeated over the C x C output pairs), computed without forming ``J``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._validation import as_matrix, check_int, check_n_threads
from ..networks import MLP
from ._common import check_chi, net_args

__all__ = ["init_params", "TangentFeatures", "tangent_features", "path_averaged_kernel"]


def init_params(net: MLP, *, width, n_features: int, n_out: int = 1, seed: int = 0,
                parameterization: str = "standard", gamma: float = 1.0) -> np.ndarray:
    """Initial parameters ``theta_0 ~ N(0, I)``: the flat vector (float64, length n_params) in the
    layout that :func:`~adaptive_kernels.train_gd` and :func:`~adaptive_kernels.sample_posterior`
    use (``TrainedNetworks.theta[m]``): blocks ``W^0, [b^0], ..., w_out, [b_out]``, each matrix
    column-major. It is the initial point of ``train_gd(..., seed=seed)``'s member 0.
    ``n_features`` is the input dimension d (the network object does not carry it)."""
    args = net_args(net, width, parameterization, gamma)
    d = check_int("n_features", n_features, minimum=1)
    n_out = check_int("n_out", n_out, minimum=1)
    seed = check_int("seed", seed, minimum=0, maximum=2**64 - 1)
    return _core.finite.init_params(args["net"], d=d, n_out=n_out, widths=args["widths"],
                                    parameterization=args["parameterization"], gamma=args["gamma"], seed=seed)


@dataclass(frozen=True, eq=False)
class TangentFeatures:
    """Structured tangent features on n points (module docs). ``f0`` (n, C): the outputs;
    ``inputs`` / ``backprop``: per layer ``A_l`` (n, fan_in) and ``G_l`` (n C, fan_out);
    ``bias_scales``, ``w_offsets``, ``b_offsets`` (None without a bias): per layer;
    ``n_params``: length of the flat parameter vector."""

    f0: np.ndarray
    inputs: list
    backprop: list
    bias_scales: list
    w_offsets: list
    b_offsets: list
    n_params: int

    @property
    def n_samples(self) -> int:
        return self.f0.shape[0]

    @property
    def n_outputs(self) -> int:
        return self.f0.shape[1]

    def _other(self, other):
        if other is None:
            return self
        if not isinstance(other, TangentFeatures):
            raise TypeError(f"other: expected TangentFeatures, got {type(other).__name__}")
        return other

    def layer_kernels(self, other: "TangentFeatures | None" = None, *, n_threads: int | None = None) -> list:
        """Per-layer tangent kernels ``J_l J_l'^T``, each (n C, n' C) (``other``: the second point
        set; default these points)."""
        ks = _core.finite.tangent_kernels(self, self._other(other), n_threads=check_n_threads(n_threads))
        if not all(np.all(np.isfinite(k)) for k in ks):
            raise FloatingPointError("X: the tangent kernel overflows float64; rescale X or the parameters")
        return ks

    def kernel(self, other: "TangentFeatures | None" = None, *, n_threads: int | None = None) -> np.ndarray:
        """Tangent kernel (empirical NTK) ``K0 = J J'^T``, (n C, n' C), from the structure."""
        return sum(self.layer_kernels(other, n_threads=n_threads))

    def jacobian(self) -> np.ndarray:
        """Dense Jacobian (n C, n_params), columns in the layout of the flat parameter vector
        (refused with ``InsufficientMemoryError`` when it does not fit)."""
        return _core.finite.tangent_jacobian(self)

    def vjp(self, v, layer_weights=None) -> np.ndarray:
        """``J^T v`` (length n_params) for ``v`` of length n C, optionally with layer ``l``'s
        block multiplied by ``layer_weights[l]``."""
        v = np.ascontiguousarray(np.asarray(v, dtype=float).ravel())
        w = [1.0] * len(self.inputs) if layer_weights is None else [float(x) for x in layer_weights]
        return _core.finite.tangent_vjp(self, v, w)


    def jvp(self, theta) -> np.ndarray:
        """``J theta`` (length n C) for a flat parameter vector ``theta`` (e.g. an update)."""
        theta = np.ascontiguousarray(np.asarray(theta, dtype=float))
        if theta.ndim != 1:
            raise ValueError(f"theta: expected a flat parameter vector, got shape {theta.shape}")
        return _core.finite.tangent_jvp(self, theta)


def _as_params(name: str, params) -> np.ndarray:
    """A finite flat float64 parameter vector (the layout of :func:`init_params`)."""
    if params is None:
        raise TypeError(f"{name}: expected a flat parameter vector (ak.init_params), got None")
    try:
        theta = np.ascontiguousarray(np.asarray(params, dtype=float))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected a flat numeric parameter vector ({exc})") from None
    if theta.ndim != 1:
        raise ValueError(f"{name}: expected a flat parameter vector, got shape {theta.shape}")
    if not np.all(np.isfinite(theta)):
        raise ValueError(f"{name}: contains NaN or inf")
    return theta


def tangent_features(net: MLP, params, X, *, width, n_out: int = 1, parameterization: str = "standard",
                     gamma: float = 1.0, chi: float = 1.0, n_threads: int | None = None) -> TangentFeatures:
    """Tangent features of the finite MLP with parameters ``params`` (the flat vector of
    :func:`init_params` / ``TrainedNetworks.theta[m]`` / ``PosteriorSamples.final_theta[c]``) on
    the rows of ``X``: one forward pass storing each layer's inputs and one backward pass per
    output (module docs). ``chi``: the scaling knob of :func:`sample_posterior` and
    :func:`exact_linear_posterior` (standard parameterization only: readout and its bias divided
    by ``sqrt(chi)``); parameters sampled at ``chi != 1`` need the same ``chi`` here."""
    args = net_args(net, width, parameterization, gamma)
    chi = check_chi(chi, parameterization)
    X = as_matrix("X", X)
    n_out = check_int("n_out", n_out, minimum=1)
    theta = _as_params("params", params)
    try:
        f0, blocks, n_params = _core.finite.tangent_features(
            theta, X, args["net"], n_out=n_out, widths=args["widths"], parameterization=args["parameterization"],
            gamma=args["gamma"], chi=chi, n_threads=check_n_threads(n_threads))
    except ValueError as e:   # the binding calls the parameter vector theta
        msg = str(e)
        if msg.startswith("theta:"):
            raise ValueError("params:" + msg[len("theta:"):]) from None
        raise
    if not (np.all(np.isfinite(f0)) and all(np.all(np.isfinite(b[0])) and np.all(np.isfinite(b[1])) for b in blocks)):
        raise FloatingPointError("X: the network's outputs or tangent features overflow float64; rescale X or params")
    return TangentFeatures(f0=f0, inputs=[b[0] for b in blocks], backprop=[b[1] for b in blocks],
                           bias_scales=[b[2] for b in blocks], w_offsets=[b[3] for b in blocks],
                           b_offsets=[b[4] for b in blocks], n_params=n_params)


def path_averaged_kernel(net: MLP, params0, params1, X, X2=None, *, width, n_out: int = 1, n_points: int = 10,
                         parameterization: str = "standard", gamma: float = 1.0, chi: float = 1.0,
                         n_threads: int | None = None) -> np.ndarray:
    """Path-averaged tangent kernel ``Jbar Jbar'^T`` with ``Jbar = mean_t J(theta_t)``,
    ``theta_t = (1 - t) params0 + t params1`` on ``t = linspace(0, 1, n_points)`` (LeJeune &
    Alemohammad's choice, 50 points there): since ``f(params1) - f(params0) = int_0^1 J(theta_t)
    dt (params1 - params0)``, the change of the network is linear in the averaged features.
    Computed as ``mean_{t,s} J(theta_t) J'(theta_s)^T`` from the structured features
    (``n_points^2 / 2`` cross kernels, no dense Jacobian); ``X2``: second point set (default X);
    ``chi`` as in :func:`tangent_features`."""
    n_points = check_int("n_points", n_points, minimum=1, maximum=100_000)
    t0 = _as_params("params0", params0)
    t1 = _as_params("params1", params1)
    if t0.shape != t1.shape:
        raise ValueError(f"params1: shape {t1.shape} does not match params0 {t0.shape}")
    ts = np.linspace(0.0, 1.0, n_points) if n_points > 1 else np.array([0.5])
    kw = dict(width=width, n_out=n_out, parameterization=parameterization, gamma=gamma, chi=chi, n_threads=n_threads)
    tfa = [tangent_features(net, (1 - t) * t0 + t * t1, X, **kw) for t in ts]
    same = X2 is None
    tfb = tfa if same else [tangent_features(net, (1 - t) * t0 + t * t1, X2, **kw) for t in ts]
    K = 0.0
    for i, a in enumerate(tfa):
        for j in range(i if same else 0, len(tfb)):
            k = a.kernel(tfb[j], n_threads=n_threads)
            K = K + (k + k.T if same and j > i else k)
    return K / len(ts) ** 2
