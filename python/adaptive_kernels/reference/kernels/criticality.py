"""Criticality of the NNGP layer map: NumPy/SciPy reference (adaptive quadrature, brentq).

``g = sigma_w^2``, ``b = sigma_b^2``; length map ``q -> g E_{N(0,q)}[phi^2] + b`` with attracting
fixed point ``q*``; ``chi_1 = g E_{N(0,q*)}[phi'^2]``; the edge of chaos is ``chi_1 = 1``.
Smooth activations only. (A 201-point Gauss-Hermite rule is not enough: for tanh at q ~ 3.4 it
is off by 3e-7 in E[phi'^2]; ``scipy.integrate.quad`` is used instead.)
"""
import numpy as np
from scipy import integrate, optimize

from .lazy import activation_functions

__all__ = ["gaussian_moments", "fixed_point", "chi_1", "critical_sigma_w"]

def gaussian_moments(activation, q):
    """``(E[phi(h)^2], E[phi'(h)^2])`` for ``h ~ N(0, q)``."""
    phi, dphi = activation_functions(activation)
    s = np.sqrt(q)
    dens = lambda z: np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)  # noqa: E731
    m2 = integrate.quad(lambda z: phi(s * z) ** 2 * dens(z), -40, 40, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
    d2 = integrate.quad(lambda z: dphi(s * z) ** 2 * dens(z), -40, 40, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
    return m2, d2


def fixed_point(activation, sigma_w, sigma_b):
    """``q*``: brentq on ``g E[phi^2](q) + b - q`` between the last grid point where it is positive
    and the first where it is negative, on a geometric grid from 1e-12 (inf when none up to 1e8)."""
    g, b = sigma_w**2, sigma_b**2

    def F(q):
        return g * gaussian_moments(activation, q)[0] + b - q

    grid = np.geomspace(1e-12, 1e8, 61)
    vals = np.array([F(q) for q in grid])
    if vals[0] <= 0:
        return 0.0
    neg = np.flatnonzero(vals < 0)
    if neg.size == 0:
        return np.inf
    k = neg[0]
    return optimize.brentq(F, grid[k - 1], grid[k], xtol=1e-15, rtol=1e-15)


def chi_1(activation, sigma_w, sigma_b):
    return sigma_w**2 * gaussian_moments(activation, fixed_point(activation, sigma_w, sigma_b))[1]


def critical_sigma_w(activation, sigma_b, lo=0.5, hi=4.0):
    """``sigma_w`` with ``chi_1 = 1`` (brentq on ``[lo, hi]``)."""
    return optimize.brentq(lambda s: chi_1(activation, s, sigma_b) - 1.0, lo, hi, xtol=1e-13)
