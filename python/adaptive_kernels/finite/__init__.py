"""Finite-width ground truth: Bayesian posterior sampling and gradient descent of real MLPs.

Every theory in this library is a statement about networks at infinite width or in the
proportional limit; these functions simulate the finite networks themselves (in the Rust core)
so that the theories can be checked against them.

Network (all parameters ``theta ~ N(0, 1)`` a priori, scales explicit; widths ``N_1..N_L``):
``h^1 = sigma_w W^0 x / sqrt(d) + sigma_b b^0``, ``h^{l+1} = sigma_w W^l phi(h^l) / sqrt(N_l) + sigma_b b^l``.

* ``parameterization="standard"`` (NNGP/NTK scaling, the kernel-renormalization papers), with
  the scaling knob ``chi`` (default 1):
  ``f = (sigma_w w . phi(h^L) / sqrt(N_L) + sigma_b b) / sqrt(chi)``, posterior
  ``p(theta | D) ∝ exp(-chi sum_mu (f_mu - y_mu)^2 / (2 T) - |theta|^2 / 2)``. As N -> inf the
  posterior-mean predictor tends to the NNGP GP predictor with ridge T, for every ``chi``;
  ``chi = 1`` is standard scaling, ``chi = N_L gamma^2`` (``sigma_w = 1``, no biases) is the
  mean-field scaling below at richness ``gamma``.
* ``parameterization="mean_field"`` (muP, richness ``gamma``; Lauditi, Bordelon, Pehlevan 2025):
  ``f = w . phi(h^L) / (gamma N_L)``, posterior
  ``p(theta | D) ∝ exp(-(N_L gamma^2 / (2 T)) sum_mu (f_mu - y_mu)^2 - |theta|^2 / 2)``.

Biases are simulated only when ``sigma_b > 0``. ``init_params`` draws the initial flat parameter
vector, ``tangent_features`` gives the network's Jacobian in structured form (empirical NTK).
"""
from __future__ import annotations

from ._common import PARAMETERIZATIONS
from .exact import ExactLinearPosterior, exact_linear_posterior
from .sampling import PosteriorSamples, sample_posterior
from .tangent import TangentFeatures, init_params, path_averaged_kernel, tangent_features
from .training import TrainedNetworks, train_gd

__all__ = ["PARAMETERIZATIONS", "ExactLinearPosterior", "exact_linear_posterior", "PosteriorSamples",
           "sample_posterior", "TrainedNetworks", "train_gd", "init_params", "TangentFeatures", "tangent_features",
           "path_averaged_kernel"]
