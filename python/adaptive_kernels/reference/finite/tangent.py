"""Dense tangent features of the finite MLP (NumPy reference of ``adaptive_kernels.finite.tangent``).

``jacobian`` backpropagates each output separately and writes every parameter block's gradient
into a dense (n C, n_params) matrix (rows (sample, output), sample-major; columns in the flat
layout of :mod:`.network`). The tangent kernel is ``J @ J.T``.
"""
import numpy as np

from ..kernels.lazy import activation_functions
from .network import _out_scale, forward, unpack

__all__ = ["jacobian", "kernel", "path_averaged_kernel"]


def jacobian(theta, X, *, n_out, widths, activation, sigma_w, sigma_b, parameterization="standard", gamma=1.0):
    """Outputs f0 (n, C) and the dense Jacobian (n C, n_params)."""
    _, dphi = activation_functions(activation)
    kw = dict(n_out=n_out, widths=widths, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b,
              parameterization=parameterization, gamma=gamma)
    f, hs, acts = forward(theta, X, **kw)
    n, d = X.shape
    p = unpack(theta, d, widths, n_out, sigma_b, parameterization)
    so = _out_scale(widths, sigma_w, parameterization, gamma)
    J = np.zeros((n, n_out, theta.size))
    for c in range(n_out):
        for i in range(n):
            row = np.zeros(theta.size)
            g = unpack(row, d, widths, n_out, sigma_b, parameterization)   # views into row
            g["w_out"][c] = so * acts[-1][i]
            if g["b_out"] is not None:
                g["b_out"][c] = sigma_b
            delta = so * p["w_out"][c]                       # df_c / dphi(h^L)
            for l in reversed(range(len(widths))):
                delta = delta * dphi(hs[l][i])              # df_c / dh^{l+1}
                inp = X[i] if l == 0 else acts[l - 1][i]
                alpha = sigma_w / np.sqrt(inp.size)
                g["W"][l][...] = alpha * np.outer(delta, inp)
                if g["b"][l] is not None:
                    g["b"][l][...] = sigma_b * delta
                delta = alpha * delta @ p["W"][l]
            J[i, c] = row
    return f, J.reshape(n * n_out, theta.size)


def kernel(theta, X, **kw):
    """Tangent kernel ``J J^T`` (n C, n C)."""
    _, J = jacobian(theta, X, **kw)
    return J @ J.T


def path_averaged_kernel(theta0, theta1, X, n_points, **kw):
    """Jbar Jbar^T with Jbar the mean of the dense Jacobians on the straight path."""
    ts = np.linspace(0.0, 1.0, n_points) if n_points > 1 else np.array([0.5])
    Jbar = np.mean([jacobian((1 - t) * theta0 + t * theta1, X, **kw)[1] for t in ts], axis=0)
    return Jbar @ Jbar.T
