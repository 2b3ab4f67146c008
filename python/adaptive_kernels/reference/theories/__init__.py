"""Reference of :mod:`adaptive_kernels.theories`: one module per theory."""
from . import dmft, kernel_renormalization, mean_field

__all__ = ["dmft", "kernel_renormalization", "mean_field"]
