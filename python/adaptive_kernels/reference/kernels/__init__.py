"""Reference of :mod:`adaptive_kernels.kernels`: the input kernel, Gaussian expectations by
quadrature, the NNGP/NTK recursions and the alignment metrics."""
from . import alignment, input, lazy, quadrature

__all__ = ["alignment", "input", "lazy", "quadrature"]
