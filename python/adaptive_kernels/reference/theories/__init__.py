"""Reference of :mod:`adaptive_kernels.theories`: one module per theory."""
from . import kernel_renormalization, mean_field

__all__ = ["kernel_renormalization", "mean_field"]
