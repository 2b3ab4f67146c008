"""Criticality (edge of chaos) of the NNGP layer map: the length map's fixed point ``q*``, the
correlation slope ``chi_1``, the depth scale, and the critical ``sigma_w`` at a given ``sigma_b``
(Poole et al. 2016, Schoenholz et al. 2017; equations in ``rust/core/src/kernels/criticality.rs``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from ..networks import MLP, check_net


@dataclass(frozen=True)
class Criticality:
    """``q_star``: attracting fixed point of ``q -> sigma_w^2 E[phi(h)^2] + sigma_b^2`` (0 when the
    origin attracts, inf when there is none); ``chi_1 = sigma_w^2 E[phi'(h)^2]`` at ``q_star`` (the
    correlation map's slope at correlation 1); ``chi_q``: the length map's slope at ``q_star``;
    ``depth_scale = -1 / ln chi_1`` (correlations relax over this many layers; inf at the edge);
    ``phase``: "ordered" (chi_1 < 1), "critical" (|chi_1 - 1| < 1e-9) or "chaotic";
    ``critical_sigma_w`` and ``critical_q_star``: the edge of chaos chi_1 = 1 at this ``sigma_b``."""

    q_star: float
    chi_1: float
    chi_q: float
    depth_scale: float
    phase: str
    critical_sigma_w: float
    critical_q_star: float


def criticality(net: MLP) -> Criticality:
    """Criticality of ``net``'s layer map (its activation, ``sigma_w``, ``sigma_b``; the depth is not
    used). The expectations are those of the lazy kernels (closed forms or the polar quadrature)."""
    net = check_net(net)
    q, chi_1, chi_q, sw, qc = _core.kernels.criticality(net)
    if abs(chi_1 - 1.0) < 1e-9:
        phase, xi = "critical", np.inf
    else:
        phase, xi = ("ordered" if chi_1 < 1 else "chaotic"), -1.0 / np.log(chi_1)
    return Criticality(q_star=q, chi_1=chi_1, chi_q=chi_q, depth_scale=float(xi), phase=phase,
                       critical_sigma_w=sw, critical_q_star=qc)


__all__ = ["criticality", "Criticality"]
