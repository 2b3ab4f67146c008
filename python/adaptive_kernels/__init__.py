"""adaptive-kernels: solvers for adaptive-kernel theories of feature learning.

The lazy baselines (NNGP, NTK), their GP / kernel-ridge / gradient-flow predictors and kernel
alignment metrics, with the numerics in a Rust core (``adaptive_kernels._core``) and small
NumPy reference implementations in :mod:`adaptive_kernels.reference`.

>>> import adaptive_kernels as ak
>>> net = ak.MLP(depth=3, activation="relu", sigma_w=1.0, sigma_b=0.0)
>>> K = ak.nngp_kernel(net, X)                     # doctest: +SKIP
"""
from __future__ import annotations

from . import _core, datasets, exceptions
from .alignment import cka, kernel_alignment
from .bayesian_mean_field import BayesianMeanField, MeanFieldPath, TiltedMoments, tilted_moments
from .exceptions import (
    ConvergenceError,
    ConvergenceWarning,
    NotPositiveDefiniteError,
    NumericalJitterWarning,
)
from .exact_posteriors import ExactLinearPosterior, exact_linear_posterior
from .finite_width import PosteriorSamples, TrainedNetworks, sample_posterior, train_gd
from .kernel_renormalization import KernelRenormalization, RenormalizationPath
from .lazy_kernels import kernel_diagonal, lazy_kernels, nngp_kernel, ntk_kernel
from .networks import MLP
from .predictors import GaussianProcess, KernelRidge, NTKGradientFlow

__version__ = _core.__version__

__all__ = [
    "MLP",
    "nngp_kernel",
    "ntk_kernel",
    "lazy_kernels",
    "kernel_diagonal",
    "GaussianProcess",
    "KernelRidge",
    "NTKGradientFlow",
    "kernel_alignment",
    "exact_linear_posterior",
    "ExactLinearPosterior",
    "sample_posterior",
    "train_gd",
    "PosteriorSamples",
    "TrainedNetworks",
    "KernelRenormalization",
    "tilted_moments",
    "TiltedMoments",
    "RenormalizationPath",
    "BayesianMeanField",
    "MeanFieldPath",
    "cka",
    "datasets",
    "exceptions",
    "NotPositiveDefiniteError",
    "ConvergenceError",
    "ConvergenceWarning",
    "NumericalJitterWarning",
]
