"""Exceptions and warnings raised by adaptive_kernels."""
from __future__ import annotations

import numpy as np

LinAlgError = np.linalg.LinAlgError


class NotPositiveDefiniteError(np.linalg.LinAlgError):
    """A kernel that must be positive (semi-)definite is not, even after jitter escalation."""


class InsufficientMemoryError(MemoryError):
    """A problem needs more memory than is available; refused before allocating. The message
    names the estimate, the memory available and the argument to change."""


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped before reaching its tolerance."""


class DeadNetworkWarning(UserWarning):
    """A weight-decay fixed point is the dead state: every neuron decayed and the network
    outputs zero (weight decay too strong for the richness)."""


class NumericalJitterWarning(RuntimeWarning):
    """Jitter had to be added to a kernel's diagonal to factor it."""


__all__ = [
    "LinAlgError",
    "NotPositiveDefiniteError",
    "InsufficientMemoryError",
    "ConvergenceWarning",
    "NumericalJitterWarning",
    "DeadNetworkWarning",
]
