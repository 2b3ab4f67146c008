"""Network architectures whose kernels and finite-width behaviour the library computes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from ._validation import check_float, check_int

ACTIVATIONS = ("linear", "relu", "erf", "tanh", "gelu", "softplus")
METHODS = ("auto", "quadrature", "hermite")
MAX_QUADRATURE_ORDER = 128

ActivationLike = Union[str, Callable]


@dataclass(frozen=True)
class MLP:
    """A fully connected network with ``depth`` hidden layers.

    Parameters
    ----------
    depth : int
        Number of hidden layers L >= 0 (``depth=0`` is a linear model on the inputs).
    activation : str or callable
        ``"linear"``, ``"relu"``, ``"erf"``, ``"tanh"``, ``"gelu"`` (x Phi(x)), ``"softplus"``,
        or a NumPy-vectorised callable ``phi(x) -> array`` of the same shape.
    sigma_w, sigma_b : float
        Weight and bias scales (>= 0).
    activation_derivative : callable, optional
        ``phi'`` for a callable activation (used by the NTK). If omitted, a central difference
        with step ``1e-5 max(1, |x|)`` is used (about 1e-10 relative error for smooth phi).
    method : {"auto", "quadrature", "hermite"}
        ``"auto"`` uses closed forms for linear, relu (arc-cosine) and erf, and for every other
        activation (tanh, gelu, softplus, callables) the Hermite (Mehler) expansion in the lazy
        kernels (``nngp_kernel``, ``ntk_kernel``, ``lazy_kernels``, ``kernel_diagonal``) and, for
        tanh, gelu and softplus, in kernel renormalization's layer maps on the training set; the
        polar quadrature elsewhere (callables in kernel renormalization, mean-field theories,
        criticality). ``"quadrature"`` forces quadrature everywhere (to check the closed forms).
        ``"hermite"`` uses the expansion also for relu, erf and linear. Slow where many entries
        miss the expansion's bound (large layer variances, |rho| near 1 with slowly decaying
        coefficients): those entries use the order-128 quadrature.
        The expansion uses per-point Hermite coefficients (no transcendental functions per entry;
        for tanh at P = 4000 three orders of magnitude faster than quadrature,
        benches/bench_hermite.py): an entry's truncation error is bounded by ``1e-12`` relative to
        ``sqrt(E[phi(u)^2] E[phi(v)^2])``; entries that miss this bound (|rho| near 1 with slowly
        decaying coefficients, kinks, large variances) use the polar quadrature, at order
        ``max(quadrature_order, 128)`` for the named activations and ``quadrature_order`` for
        callables.
    quadrature_order : int
        Order q of the polar product Gauss rule for bivariate Gaussian expectations: q
        Gauss-Laguerre radial nodes times q/2 Gauss-Legendre angular nodes on each of the (at
        most 2) angular pieces between the kinks. For relu/linear the radial rule is exact and
        the angular one reaches ~1e-14 at the default q; for smooth activations the error
        decreases spectrally with q, e.g. erf ~1e-6 at q=32, ~1e-9 at 64, ~1e-11 at 96; large
        pre-activation variances need larger q (see tests/kernels/test_lazy.py).

    Kernel conventions (infinite width, NNGP/NTK parameterization)
    --------------------------------------------------------------
    ``K^0(x, x') = sigma_w^2 x.x'/d + sigma_b^2``;
    ``K^l = sigma_w^2 E_{(u,v)~N(0, K^{l-1})}[phi(u) phi(v)] + sigma_b^2`` for l = 1..L;
    ``Th^0 = K^0``, ``Th^l = K^l + sigma_w^2 Th^{l-1} E[phi'(u) phi'(v)]``.
    ``nngp_kernel`` returns ``K^L`` (the readout covariance), ``ntk_kernel`` returns ``Th^L``.
    """

    depth: int
    activation: ActivationLike = "relu"
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    activation_derivative: Callable | None = None
    method: str = "auto"
    quadrature_order: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "depth", check_int("depth", self.depth, minimum=0))
        act = self.activation
        if isinstance(act, str):
            if act not in ACTIVATIONS:
                raise ValueError(f"activation: unknown activation {act!r}; expected one of {ACTIVATIONS} or a callable")
            if self.activation_derivative is not None:
                raise ValueError("activation_derivative: only allowed with a callable activation")
        elif not callable(act):
            raise TypeError(f"activation: expected a string or a callable, got {type(act).__name__}")
        if self.activation_derivative is not None and not callable(self.activation_derivative):
            raise TypeError("activation_derivative: expected a callable")
        object.__setattr__(self, "sigma_w", check_float("sigma_w", self.sigma_w, minimum=0.0))
        object.__setattr__(self, "sigma_b", check_float("sigma_b", self.sigma_b, minimum=0.0))
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {self.method!r}")
        object.__setattr__(self, "quadrature_order",
                           check_int("quadrature_order", self.quadrature_order, minimum=2, maximum=MAX_QUADRATURE_ORDER))

    @property
    def activation_name(self) -> str:
        return self.activation if isinstance(self.activation, str) else getattr(self.activation, "__name__", "custom")

    def _kernel_args(self) -> dict:
        return dict(
            depth=self.depth,
            activation=self.activation,
            derivative=self.activation_derivative,
            sigma_w=self.sigma_w,
            sigma_b=self.sigma_b,
            method=self.method,
            quadrature_order=self.quadrature_order,
        )


def check_net(net) -> MLP:
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected an adaptive_kernels.MLP, got {type(net).__name__}")
    return net
