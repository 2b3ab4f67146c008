"""Argument checks shared by the finite-width simulations."""
from __future__ import annotations

import numpy as np

from .._validation import as_matrix, check_float, check_int, check_same_features, check_target_scale
from ..networks import ACTIVATIONS, MLP, check_net

PARAMETERIZATIONS = ("standard", "mean_field")


def check_chi(chi, parameterization: str) -> float:
    """The scaling knob ``chi`` (> 0; only the standard parameterization takes chi != 1)."""
    chi = check_float("chi", chi, minimum=0.0, strict=True)
    if chi != 1.0 and parameterization != "standard":
        raise ValueError(f"chi: only parameterization='standard' takes chi (mean field is chi = width * gamma**2), "
                         f"got chi={chi} with parameterization={parameterization!r}")
    return chi


def net_args(net: MLP, width, parameterization: str, gamma: float) -> dict:
    net = check_net(net)
    if net.depth < 1:
        raise ValueError("net: finite-width simulations need depth >= 1")
    if not isinstance(net.activation, str) or net.activation not in ACTIVATIONS:
        raise ValueError("net: finite-width simulations need a built-in activation (a string)")
    if net.sigma_w <= 0:
        raise ValueError("net: sigma_w must be > 0 for finite-width simulations")
    if isinstance(width, (list, tuple, np.ndarray)):
        widths = [check_int("width", w, minimum=1) for w in width]
        if len(widths) != net.depth:
            raise ValueError(f"width: got {len(widths)} widths for a network of depth {net.depth}")
    else:
        widths = [check_int("width", width, minimum=1)] * net.depth
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization: expected one of {PARAMETERIZATIONS}, got {parameterization!r}")
    gamma = check_float("gamma", gamma, minimum=0.0, strict=True)
    return dict(net=net, widths=widths, parameterization=parameterization, gamma=gamma)


def finite_data(X, y, X_test):
    X = as_matrix("X", X)
    Y = check_target_scale("y", as_matrix("y", y, allow_1d=True))
    if Y.shape[0] != X.shape[0]:
        raise ValueError(f"y: has {Y.shape[0]} rows but X has {X.shape[0]} samples")
    if X_test is not None:
        X_test = as_matrix("X_test", X_test)
        check_same_features("X_test", X_test, X.shape[1], "X")
    return X, Y, X_test

