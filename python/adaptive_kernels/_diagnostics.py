"""Every threshold at which a result is flagged as unreliable, in one place.

Each is a heuristic of Monte-Carlo practice; the functions return what to warn about (the
callers word the warning for their context).
"""
from __future__ import annotations

import numpy as np

#: Rank-normalized split R-hat (Vehtari et al. 2021, ``PosteriorSamples.rhat``) above which chains
#: are reported as not mixed. Vehtari et al. recommend 1.01 for final inference; 1.1 (the classic
#: bar of Gelman et al.) flags chains that clearly have not mixed without warning on the short
#: runs of the README and the tests.
RHAT_MAX = 1.1
#: MALA acceptance below which the step size is reported as too large.
ACCEPTANCE_MIN = 0.05
#: Tilted-density sampler: effective sample size and per-chain acceptance outside which its moments are flagged.
TILTED_ESS_MIN = 100.0
TILTED_ACCEPTANCE = (0.2, 0.9)
#: Chain drift: the mean whitened radius |z|^2 / r of the last third of the chains above
#: this value and this factor times that of the first third.
DRIFT_LAST_MIN = 1.5
DRIFT_RATIO = 1.3


def chain_drift(chain_radius) -> list[tuple[int, float, float]]:
    """Layers (1-based) whose chains still drift: ``(layer, first third, last third)``."""
    return [(l + 1, float(a), float(b)) for l, (a, b) in enumerate(np.asarray(chain_radius).reshape(-1, 2))
            if b > DRIFT_LAST_MIN and b > DRIFT_RATIO * a]


def tilted_unreliable(ess: float, acceptance) -> bool:
    acc = np.asarray(acceptance)
    return bool(ess < TILTED_ESS_MIN or np.any(acc < TILTED_ACCEPTANCE[0]) or np.any(acc > TILTED_ACCEPTANCE[1]))


def not_mixed(rhat) -> bool:
    """Some R-hat above :data:`RHAT_MAX` (NaN entries, e.g. of one chain, are ignored)."""
    return bool(np.any(np.asarray(rhat) > RHAT_MAX))


def acceptance_too_low(acceptance) -> bool:
    return bool(np.nanmin(acceptance) < ACCEPTANCE_MIN)


__all__ = ["RHAT_MAX", "ACCEPTANCE_MIN", "TILTED_ESS_MIN", "TILTED_ACCEPTANCE", "DRIFT_LAST_MIN", "DRIFT_RATIO",
           "chain_drift", "tilted_unreliable", "not_mixed", "acceptance_too_low"]
