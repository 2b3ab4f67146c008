"""Reference of :mod:`adaptive_kernels.kernels`: the input kernel, Gaussian expectations by
quadrature, the NNGP/NTK recursions and the alignment metrics and the kernel decomposition."""
from . import alignment, decomposition, input, lazy, quadrature

__all__ = ["alignment", "decomposition", "input", "lazy", "quadrature"]
