"""Adaptive-kernel theories: each one a :class:`~adaptive_kernels.TheoryEstimator`.

Rule: a theory module imports only what lies below it (kernels, predictors, networks, the
shared base); no theory imports another (checked by ``tests/test_structure.py``).
"""
from __future__ import annotations

from .dmft import GradientFlowFixedPoint
from .forward_backward import ForwardBackwardKernels
from .kernel_renormalization import KernelRenormalization
from .mean_field import BayesianMeanField
from .multi_scale import MultiScaleAdaptive
from .tangent_features import AdaptiveTangentFeatures, one_sided_penalty, two_sided_penalty

__all__ = ["KernelRenormalization", "BayesianMeanField", "GradientFlowFixedPoint", "ForwardBackwardKernels",
           "MultiScaleAdaptive", "AdaptiveTangentFeatures", "one_sided_penalty", "two_sided_penalty"]
