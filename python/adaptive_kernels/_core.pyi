"""Type stubs of the Rust extension (thin binding over adaptive-kernels-core).

The extension has one submodule per Python module (``kernels``, ``linalg``, ``predictors``,
``finite``, ``kernel_renormalization``, ``forward_backward``, ``tangent_features``, ``mean_field``, ``tilted``, ``mcmc``) and the test-only ``_testing``;
their functions are documented in their docstrings (``help(_core.kernels.lazy_kernels)``).
"""
from types import ModuleType

import numpy as np
from numpy.typing import NDArray

__version__: str

def default_threads() -> int: ...

class SolveReport:
    converged: bool
    n_iter: int
    n_eval: int | None
    residual: float
    residual_history: NDArray[np.float64]
    stages: NDArray[np.float64]
    solver: str

kernels: ModuleType
linalg: ModuleType
predictors: ModuleType
finite: ModuleType
kernel_renormalization: ModuleType
forward_backward: ModuleType
multi_scale: ModuleType
tangent_features: ModuleType
mean_field: ModuleType
tilted: ModuleType
mcmc: ModuleType
_testing: ModuleType
