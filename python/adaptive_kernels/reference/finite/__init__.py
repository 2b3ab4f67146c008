"""Reference of :mod:`adaptive_kernels.finite`: the finite network (forward pass, potential,
Langevin and gradient steps) and the exact posterior of a one-hidden-layer linear network."""
from . import exact, network

__all__ = ["exact", "network"]
