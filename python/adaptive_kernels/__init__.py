"""adaptive-kernels: solvers for adaptive-kernel theories of feature learning.

The numerics live in a Rust core (``adaptive_kernels._core``); this package is the API:

* :mod:`~adaptive_kernels.kernels`: the lazy NNGP kernel and NTK of an :class:`MLP`, alignment metrics;
* :mod:`~adaptive_kernels.predictors`: GP / kernel ridge / NTK gradient-flow predictors;
* :mod:`~adaptive_kernels.finite`: the finite-width ground truth (posterior sampling, gradient
  descent, exact linear posteriors);
* :mod:`~adaptive_kernels.theories`: the adaptive-kernel theories, each a :class:`TheoryEstimator`;
* :mod:`~adaptive_kernels.mcmc`: the tilted single-site density of mean-field theories, and
  rank-normalized convergence diagnostics of any chains (``mcmc.chain_diagnostics``);
* :mod:`~adaptive_kernels.studies`: sweeps on any executor (resumable Parquet stores) and
  side-by-side comparisons of theories and finite networks (``ak.sweep``, ``ak.compare_theories``);
* :mod:`~adaptive_kernels.reference`: small NumPy reference implementations of every equation.

>>> import adaptive_kernels as ak
>>> net = ak.MLP(depth=3, activation="relu", sigma_w=1.0, sigma_b=0.0)
>>> K = ak.nngp_kernel(net, X)                     # doctest: +SKIP
"""
from __future__ import annotations

from . import _core, datasets, exceptions
from ._base import TheoryEstimator
from ._results import PathResult, SolveReport
from .exceptions import (
    ConvergenceWarning,
    InsufficientMemoryError,
    NotPositiveDefiniteError,
    NumericalJitterWarning,
    DeadNetworkWarning,
)
from .finite import (ExactLinearPosterior, PosteriorSamples, TangentFeatures, TrainedNetworks,
                     exact_linear_posterior, init_params, path_averaged_kernel, sample_posterior, tangent_features,
                     train_gd)
from .kernels import (KernelDecomposition, cka, criticality, kernel_alignment, kernel_decomposition, kernel_diagonal,
                      lazy_kernels, nngp_kernel, ntk_kernel)
from .mcmc import TiltedMoments, tilted_moments
from .networks import MLP
from .predictors import GaussianProcess, KernelRidge, NTKGradientFlow
from .theories import (AdaptiveTangentFeatures, BayesianMeanField, ForwardBackwardKernels, GradientFlowFixedPoint,
                       KernelRenormalization, MultiScaleAdaptive, one_sided_penalty, two_sided_penalty)
from . import studies
from .studies import SerialExecutor, Table, compare_theories, sweep

__version__ = _core.__version__

__all__ = [
    "init_params",
    "TangentFeatures",
    "tangent_features",
    "path_averaged_kernel",
    "AdaptiveTangentFeatures",
    "one_sided_penalty",
    "two_sided_penalty",
    "kernel_decomposition",
    "KernelDecomposition",
    "MLP",
    "nngp_kernel",
    "ntk_kernel",
    "lazy_kernels",
    "kernel_diagonal",
    "kernel_alignment",
    "cka",
    "criticality",
    "GaussianProcess",
    "KernelRidge",
    "NTKGradientFlow",
    "TheoryEstimator",
    "SolveReport",
    "PathResult",
    "KernelRenormalization",
    "ForwardBackwardKernels",
    "MultiScaleAdaptive",
    "BayesianMeanField",
    "GradientFlowFixedPoint",
    "tilted_moments",
    "TiltedMoments",
    "exact_linear_posterior",
    "ExactLinearPosterior",
    "sample_posterior",
    "train_gd",
    "PosteriorSamples",
    "TrainedNetworks",
    "datasets",
    "exceptions",
    "studies",
    "sweep",
    "compare_theories",
    "Table",
    "SerialExecutor",
    "NotPositiveDefiniteError",
    "InsufficientMemoryError",
    "ConvergenceWarning",
    "NumericalJitterWarning",
    "DeadNetworkWarning",
]
