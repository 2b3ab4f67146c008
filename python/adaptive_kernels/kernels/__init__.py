"""Lazy (infinite-width) kernels of MLPs and kernel alignment metrics."""
from __future__ import annotations

from .alignment import cka, kernel_alignment
from .criticality import Criticality, criticality
from .decomposition import KernelDecomposition, kernel_decomposition
from .lazy import kernel_diagonal, lazy_kernels, nngp_kernel, ntk_kernel

__all__ = ["lazy_kernels", "nngp_kernel", "ntk_kernel", "kernel_diagonal", "kernel_alignment", "cka", "criticality", "Criticality",
           "kernel_decomposition", "KernelDecomposition"]
