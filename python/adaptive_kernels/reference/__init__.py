"""Small, readable NumPy reference implementations.

They are used by the tests and benchmarks to check the Rust core of
``adaptive_kernels``; they favour clarity over speed.
"""
from .alignment import cka, kernel_alignment
from .lazy_kernels import (activation_functions, empirical_nngp, gaussian_expectations,
                           linear_kernel, nngp_kernel, ntk_kernel)
from .predictors import gp_posterior, kernel_ridge_mean, ntk_flow_mean
from .quadrature import gauss_laguerre, gauss_legendre, polar_expectation

__all__ = ["gauss_laguerre", "gauss_legendre", "polar_expectation", "activation_functions",
           "gaussian_expectations", "nngp_kernel", "ntk_kernel", "linear_kernel",
           "empirical_nngp", "gp_posterior", "kernel_ridge_mean", "ntk_flow_mean",
           "kernel_alignment", "cka"]
from .exact_posteriors import exact_linear_posterior  # noqa: E402
__all__ += ["exact_linear_posterior"]
from . import kernel_renormalization  # noqa: E402
__all__ += ["kernel_renormalization"]
from . import bayesian_mean_field  # noqa: E402
__all__ += ["bayesian_mean_field"]
