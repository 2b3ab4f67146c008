"""Reference of :mod:`adaptive_kernels.theories`: one module per theory."""
from . import dmft, forward_backward, kernel_renormalization, mean_field, multi_scale, tangent_features

__all__ = ["dmft", "forward_backward", "kernel_renormalization", "mean_field", "multi_scale", "tangent_features"]
