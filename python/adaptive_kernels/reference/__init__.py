"""Small, readable NumPy reference implementations, in a tree that mirrors the package
(``reference.kernels.lazy`` is the reference of ``adaptive_kernels.kernels.lazy``, and so on).

They are used by the tests and benchmarks to check the Rust core of ``adaptive_kernels``; they
favour clarity over speed.
"""
from . import finite, kernels, mcmc, predictors, theories, tilted
from .kernels.alignment import cka, kernel_alignment
from .kernels.input import input_kernel
from .kernels.lazy import activation_functions, empirical_nngp, gaussian_expectations, nngp_kernel, ntk_kernel
from .kernels.quadrature import gauss_laguerre, gauss_legendre, polar_expectation
from .predictors import gp_posterior, kernel_ridge_mean, ntk_flow_mean

__all__ = ["finite", "kernels", "mcmc", "predictors", "theories", "tilted", "gauss_laguerre", "gauss_legendre", "polar_expectation",
           "activation_functions", "gaussian_expectations", "nngp_kernel", "ntk_kernel", "input_kernel",
           "empirical_nngp", "gp_posterior", "kernel_ridge_mean", "ntk_flow_mean", "kernel_alignment", "cka"]
