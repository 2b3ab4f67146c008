"""Reference of :mod:`adaptive_kernels.finite`: the finite network (forward pass, potential,
Langevin and gradient steps) and the exact posterior of a one-hidden-layer linear network,
and the dense tangent features (Jacobian)."""
from . import exact, network, tangent

__all__ = ["exact", "network", "tangent"]
