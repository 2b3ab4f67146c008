"""The weight-decay fixed point of mean-field gradient flow at infinite width: the dynamical
mean-field theory's stationary state and its adaptive kernel predictors (Lauditi, Bordelon,
Pehlevan 2025, the aNTK family).
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import _core
from .._base import TheoryEstimator
from .._progress import progress_bar
from .._validation import check_float, check_int, check_n_threads
from ..exceptions import DeadNetworkWarning
from ..kernels.lazy import nngp_predict
from ..networks import MLP, check_net

_DEFAULTS = _core.dmft.defaults()
_FORMS = ("readout", "ntk")


class GradientFlowFixedPoint(TheoryEstimator):
    """Kernels and predictors of a network trained by gradient flow with weight decay to its
    fixed point, at infinite width in mean-field (muP) scaling.

    Convention (exactly that of :func:`adaptive_kernels.train_gd` with
    ``parameterization="mean_field"``, width N, ``theta(0) ~ N(0, I)``)::

        h^1 = sigma_w W^0 x / sqrt(d) + sigma_b b^0,   h^{l+1} = sigma_w W^l phi(h^l) / sqrt(N) + sigma_b b^l
        f = w . phi(h^L) / (gamma N)
        d theta / dt = -(N gamma^2 grad 1/2 sum_mu (f_mu - y_mu)^2 + weight_decay theta)

    (``train_gd``'s step ``lr`` is the Euler step of this flow). Weight decay erases the memory of
    the initial weights, so at the fixed point each neuron satisfies
    ``lambda h^{l+1}_i = gamma K^l (Delta * g^{l+1}_i)``, ``lambda w_i = gamma phi(h^L_i) . Delta``
    (``K^0`` the input kernel, ``K^l = sigma_w^2 Phi^l + sigma_b^2``, ``Delta = y - f``,
    ``g = gamma N df/dh``); which of the many solutions is reached is selected by the dynamics, so
    the flow is integrated, not solved for directly. The initial output is O(1/sqrt N) and
    vanishes at infinite width; it is not subtracted (the authors centre it; nothing changes).

    Infinite width is represented by ``n_particles`` = M neurons per hidden layer. One hidden
    layer: the neurons interact only through the output, and the particle system is exactly the
    authors' DMFT solver (each particle is a neuron's preactivations on the P training points
    and its readout weight); with d > P the inputs are replaced by coordinates of their span,
    which changes no preactivation. Deeper nets couple the layers through M x M mean-field
    weights, so a deep solve is the flow of the width-M network (cost ~ M^2 P per step and
    layer). Kernels carry Monte-Carlo error ~ 1/sqrt(M); with ``n_particles = width`` and the
    same ``seed`` the flow is ``train_gd`` itself, step by step (``dt=lr, adaptive=False``).

    The flow takes Euler steps (``dt`` fixed or adaptive) until the stationarity residual
    ``rms(grad J)`` (``J = M gamma^2 / 2 |f - y|^2 + weight_decay / 2 |theta|^2``, the
    Lyapunov function; the measure of ``train_gd``'s ``grad_rms``) is below ``switch_tol``, then
    L-BFGS on J polishes the fixed point to ``tol``. ReLU has no smooth fixed point: neurons whose
    preactivation sits at the kink on some training point make the gradient chatter (a sliding,
    Filippov-type equilibrium), the residual stalls at the chatter level and ``converged_`` is
    False; the flow (the network's own GD) is what is returned, and ``readout_gap_`` measures how
    far it is from self-consistent.

    Predictors (``predict(X, form=...)``): ``"readout"``, any activation:
    ``f(x*) = Phi^L(x*, X)(Phi^L + weight_decay I)^{-1} y``; ``"ntk"``, positively homogeneous
    nets (relu or linear with ``sigma_b = 0``, degree L + 1; Euler's theorem at stationarity):
    ``f(x*) = K(x*, X)(K + (L+1) weight_decay I)^{-1} y`` with the fixed point's NTK
    ``K = sum_l G^{l+1} * K^l`` (``G^{L+1} = 1``). Test preactivations come from the final
    particles (exact at the fixed point).

    If ``weight_decay / gamma`` is large every neuron decays (for linear nets when it exceeds
    ``sqrt(y^T K^0 y)``): the dead state f = 0 is reported by ``dead_`` and a
    :class:`~adaptive_kernels.DeadNetworkWarning`.

    Parameters
    ----------
    net : MLP
        depth >= 1, built-in activation.
    gamma : float > 0
        Richness.
    weight_decay : float > 0
        lambda.
    n_particles : int
        M (neurons per hidden layer).
    seed : int
        Initial draw (the stream of ``train_gd``'s member 0 with this seed).
    dt : float, optional
        Euler step; default ``1 / (lambda_max(K_NTK) + weight_decay)`` at the start.
    adaptive : bool
        Adapt the step (halve when J rises above its recent maximum, grow after 20 accepted steps).
    max_steps, stall_steps, switch_tol, tol, polish_iter, record_every :
        Flow steps at most; stop when the residual has not fallen by 10% in ``stall_steps`` steps
        (0: never; relu's chatter stalls it); residual at which L-BFGS takes over; final tolerance;
        L-BFGS iterations (0: none); loss-curve spacing.
    n_threads, progress : as elsewhere.

    Fitted attributes
    -----------------
    feature_kernels_ (= kernels_, list of L (P, P)), kernel_ (Phi^L), gradient_kernels_ (list of L,
    each (P, P), or (C, P, P) for C outputs), ntk_ ((P, P) or (C, P, P)), dual_coef_
    ((Phi^L + lambda I)^{-1} Y), dual_coef_ntk_ (None unless homogeneous), train_output_,
    dead_, readout_gap_ (max |Phi^L dual_coef_ - train_output_|: zero at an exact fixed point),
    flow_time_, n_steps_, dt_ (final step), loss_curve_ ((n, 3): step, 1/2 sum (f - y)^2, J),
    theta_ (the particles), input_map_, report_ (converged_, n_iter_ = Euler steps + L-BFGS
    iterations, residual_, residual_history_), action_ (None).
    """

    _path_parameters = {"gammas": "gamma", "weight_decays": "weight_decay"}

    def __init__(self, net: MLP, *, gamma: float = 1.0, weight_decay: float, n_particles: int = _DEFAULTS["n_particles"],
                 seed: int = _DEFAULTS["seed"], dt: float | None = None, adaptive: bool = _DEFAULTS["adaptive"],
                 max_steps: int = _DEFAULTS["max_steps"], stall_steps: int = _DEFAULTS["stall_steps"], switch_tol: float = _DEFAULTS["switch_tol"],
                 tol: float = _DEFAULTS["tol"], polish_iter: int = _DEFAULTS["polish_iter"],
                 record_every: int = _DEFAULTS["record_every"], n_threads: int | None = None,
                 progress: bool | None = None):
        self.net = net
        self.gamma = gamma
        self.weight_decay = weight_decay
        self.n_particles = n_particles
        self.seed = seed
        self.dt = dt
        self.adaptive = adaptive
        self.max_steps = max_steps
        self.stall_steps = stall_steps
        self.switch_tol = switch_tol
        self.tol = tol
        self.polish_iter = polish_iter
        self.record_every = record_every
        self.n_threads = n_threads
        self.progress = progress

    def _check_params(self) -> dict:
        net = check_net(self.net)
        if net.depth < 1:
            raise ValueError("net: the gradient-flow fixed point needs at least one hidden layer (depth >= 1)")
        if callable(net.activation):
            raise ValueError(f"net: built-in activations only (got a callable {net.activation_name!r})")
        if net.sigma_w <= 0:
            raise ValueError(f"net: sigma_w must be > 0, got {net.sigma_w}")
        if not isinstance(self.adaptive, (bool, np.bool_)):
            raise TypeError(f"adaptive: expected a bool, got {type(self.adaptive).__name__}")
        options = dict(
            n_particles=check_int("n_particles", self.n_particles, minimum=1),
            seed=check_int("seed", self.seed, minimum=0),
            dt=0.0 if self.dt is None else check_float("dt", self.dt, minimum=0.0, strict=True),
            adaptive=bool(self.adaptive),
            max_steps=check_int("max_steps", self.max_steps, minimum=1),
            stall_steps=check_int("stall_steps", self.stall_steps, minimum=0),
            switch_tol=check_float("switch_tol", self.switch_tol, minimum=0.0),
            tol=check_float("tol", self.tol, minimum=0.0, strict=True),
            polish_iter=check_int("polish_iter", self.polish_iter, minimum=0),
            record_every=check_int("record_every", self.record_every, minimum=1))
        return dict(net=net, gamma=check_float("gamma", self.gamma, minimum=0.0, strict=True),
                    weight_decay=check_float("weight_decay", self.weight_decay, minimum=0.0, strict=True),
                    options=options, threads=check_n_threads(self.n_threads), progress=self.progress)

    def _solve(self, X, Y, points):
        p0 = points[0]
        steps = p0["options"]["max_steps"] * len(points)
        work = float(steps) * X.shape[0] * p0["options"]["n_particles"] * min(X.shape[1], X.shape[0]) * 8
        # the core counts flow steps, then the polish's L-BFGS iterations (no total: the flow stops
        # at its tolerance or when it stalls)
        with progress_bar(p0["progress"], "gradient-flow fixed point", work, unit="steps") as cb:
            vmap, fps, interrupted = _core.dmft.solve(
                X, Y, p0["net"], points=[(p["gamma"], p["weight_decay"]) for p in points], options=p0["options"],
                n_threads=p0["threads"], progress=cb)
        return [(vmap, fp) for fp in fps], interrupted

    def _store(self, state) -> None:
        vmap, s = state
        single = self.y_train_.shape[1] == 1
        per_output = (lambda ms: np.asarray(ms[0])) if single else (lambda ms: np.stack([np.asarray(m) for m in ms]))
        self.report_ = self._report(s.report)
        self.feature_kernels_ = [np.asarray(k) for k in s.feature_kernels]
        self.kernels_ = self.feature_kernels_
        self.kernel_ = self.feature_kernels_[-1]
        self.gradient_kernels_ = [per_output([g[l] for g in s.gradient_kernels]) for l in range(len(self.kernels_))]
        self.ntk_ = per_output(s.ntk)
        self.dual_coef_ = np.asarray(s.dual_readout)
        self.dual_coef_ntk_ = None if s.dual_ntk is None else np.asarray(s.dual_ntk)
        self.train_output_ = np.asarray(s.train_output)
        self.readout_gap_ = float(np.abs(self.kernel_ @ self.dual_coef_ - self.train_output_).max())
        self.dead_ = bool(s.dead)
        self.flow_time_ = float(s.time)
        self.n_steps_ = int(s.n_steps)
        self.dt_ = float(s.dt)
        self.loss_curve_ = np.asarray(s.loss_curve)
        self.theta_ = np.asarray(s.theta)
        self.input_map_ = None if vmap is None else np.asarray(vmap)
        self.action_ = None
        if self.dead_:
            warnings.warn(
                f"GradientFlowFixedPoint: every neuron decayed (weight_decay / gamma = "
                f"{self._params['weight_decay'] / self._params['gamma']:.4g} is above the largest growth rate of a "
                "small neuron): the fixed point is the dead state f = 0; lower weight_decay or raise gamma",
                DeadNetworkWarning, stacklevel=4)

    def _nonconvergence_message(self) -> str:
        msg = super()._nonconvergence_message()
        if self._params["net"].activation == "relu":
            msg += ("; relu fixed points are non-smooth (neurons at the kink make the gradient chatter), so the "
                    f"residual stalls; the readout predictor's self-consistency gap is {self.readout_gap_:.2e}")
        return msg

    def predict(self, X, return_std: bool = False, form: str = "readout"):
        """Predictions (n,) or (n, C) of the ``form`` predictor (``"readout"`` or ``"ntk"``; see the
        class docs). Gradient flow is deterministic given the initialization: there is no
        predictive variance, and ``return_std=True`` raises."""
        if return_std:
            raise ValueError("return_std: the gradient-flow fixed point is deterministic; it has no predictive "
                             "variance (use an ensemble of train_gd runs for the finite-width spread)")
        if not isinstance(form, str) or form not in _FORMS:
            raise ValueError(f"form: expected one of {_FORMS}, got {form!r}")
        self._form = form
        return super().predict(X, False)

    def _predict(self, X, return_std):
        p = self._params
        form = getattr(self, "_form", "readout")
        dual = self.dual_coef_ if form == "readout" else self.dual_coef_ntk_
        if dual is None:
            raise ValueError("form: the NTK form needs a positively homogeneous network (relu or linear, "
                             "sigma_b = 0); use form='readout'")
        mean = _core.dmft.predict(self.X_train_, X, p["net"], theta=self.theta_, dual=dual, input_map=self.input_map_,
                                  gamma=p["gamma"], n_particles=p["options"]["n_particles"], form=form,
                                  n_threads=p["threads"])
        return mean, None

    def _baseline_key(self, params) -> float:
        return params["weight_decay"]

    def _baseline(self, X, Y, X_test, params):
        """The lazy readout: the initial (NNGP) feature kernel with ridge weight_decay."""
        return nngp_predict(params["net"], X, Y, X_test, params["weight_decay"], params["threads"])


__all__ = ["GradientFlowFixedPoint"]
