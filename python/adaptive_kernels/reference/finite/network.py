"""Finite-width MLP: forward pass, potential/gradient, one Langevin step, one GD step (NumPy).

Same conventions and flat parameter layout as the Rust core (``finite_networks.rs``): blocks in
order W^0, [b^0], W^1, [b^1], ..., w_out, [b_out], each matrix stored column-major (Fortran
order); biases only when sigma_b > 0, and no readout bias in mean-field scaling.

    h^1 = sigma_w W^0 x / sqrt(d) + sigma_b b^0,  h^{l+1} = sigma_w W^l phi(h^l) / sqrt(N_l) + sigma_b b^l
    standard:   f = sigma_w w_out phi(h^L) / sqrt(N_L) + sigma_b b_out
    mean field: f = w_out phi(h^L) / (gamma N_L)
    U = beta/2 sum (f - y)^2 + decay/2 |theta|^2
"""
import numpy as np

from ..kernels.lazy import activation_functions

__all__ = ["unpack", "forward", "potential_and_gradient", "langevin_step", "gd_step", "loss_scale", "param_count"]


def _blocks(d, widths, n_out, sigma_b, parameterization):
    """List of (name, layer, shape) in storage order."""
    blocks, fan = [], d
    for l, n in enumerate(widths):
        blocks.append(("W", l, (n, fan)))
        if sigma_b > 0:
            blocks.append(("b", l, (n,)))
        fan = n
    blocks.append(("w_out", None, (n_out, widths[-1])))
    if sigma_b > 0 and parameterization == "standard":
        blocks.append(("b_out", None, (n_out,)))
    return blocks


def param_count(d, widths, n_out, sigma_b, parameterization):
    return sum(int(np.prod(s)) for _, _, s in _blocks(d, widths, n_out, sigma_b, parameterization))


def unpack(theta, d, widths, n_out, sigma_b, parameterization):
    """Dict of views: W[l], b[l] (or None), w_out, b_out (or None)."""
    out = {"W": [None] * len(widths), "b": [None] * len(widths), "w_out": None, "b_out": None}
    off = 0
    for name, l, shape in _blocks(d, widths, n_out, sigma_b, parameterization):
        size = int(np.prod(shape))
        block = theta[off:off + size].reshape(shape, order="F")
        off += size
        if l is None:
            out[name] = block
        else:
            out[name][l] = block
    return out


def _out_scale(widths, sigma_w, parameterization, gamma):
    n = widths[-1]
    return sigma_w / np.sqrt(n) if parameterization == "standard" else 1.0 / (gamma * n)


def loss_scale(widths, temperature, parameterization, gamma):
    """beta of the Bayesian posterior: 1/T (standard) or N_L gamma^2 / T (mean field)."""
    return 1.0 / temperature if parameterization == "standard" else widths[-1] * gamma**2 / temperature


def forward(theta, X, *, n_out, widths, activation, sigma_w, sigma_b, parameterization="standard", gamma=1.0):
    """Outputs f (P, C), pre-activations hs and activations acts (lists over layers)."""
    phi, _ = activation_functions(activation)
    p = unpack(theta, X.shape[1], widths, n_out, sigma_b, parameterization)
    hs, acts, a = [], [], X
    for l in range(len(widths)):
        h = sigma_w * a @ p["W"][l].T / np.sqrt(a.shape[1])
        if p["b"][l] is not None:
            h = h + sigma_b * p["b"][l]
        a = phi(h)
        hs.append(h), acts.append(a)
    f = _out_scale(widths, sigma_w, parameterization, gamma) * a @ p["w_out"].T
    if p["b_out"] is not None:
        f = f + sigma_b * p["b_out"]
    return f, hs, acts


def potential_and_gradient(theta, X, Y, *, beta, decay, widths, activation, sigma_w, sigma_b,
                           parameterization="standard", gamma=1.0):
    """U = beta/2 |f - Y|^2 + decay/2 |theta|^2 and dU/dtheta (flat), by backpropagation."""
    _, dphi = activation_functions(activation)
    n_out = Y.shape[1]
    kw = dict(n_out=n_out, widths=widths, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b,
              parameterization=parameterization, gamma=gamma)
    f, hs, acts = forward(theta, X, **kw)
    r = beta * (f - Y)
    U = 0.5 * beta * np.sum((f - Y) ** 2) + 0.5 * decay * theta @ theta
    grad = decay * theta.copy()
    g = unpack(grad, X.shape[1], widths, n_out, sigma_b, parameterization)  # views into grad
    p = unpack(theta, X.shape[1], widths, n_out, sigma_b, parameterization)
    so = _out_scale(widths, sigma_w, parameterization, gamma)
    g["w_out"] += so * r.T @ acts[-1]
    if g["b_out"] is not None:
        g["b_out"] += sigma_b * r.sum(0)
    delta = so * r @ p["w_out"]                      # dU/dphi(h^L)
    for l in reversed(range(len(widths))):
        delta = delta * dphi(hs[l])                   # dU/dh^{l+1}
        inp = X if l == 0 else acts[l - 1]
        alpha = sigma_w / np.sqrt(inp.shape[1])
        g["W"][l] += alpha * delta.T @ inp
        if g["b"][l] is not None:
            g["b"][l] += sigma_b * delta.sum(0)
        delta = alpha * delta @ p["W"][l]
    return U, grad


def langevin_step(theta, X, Y, xi, *, temperature, step_size, widths, activation, sigma_w, sigma_b,
                  parameterization="standard", gamma=1.0):
    """Unadjusted Langevin proposal theta - eta grad U + sqrt(2 eta) xi, and the MALA log ratio
    U - U' + (|theta' - theta + eta g|^2 - |theta - theta' + eta g'|^2) / (4 eta)."""
    kw = dict(widths=widths, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b,
              parameterization=parameterization, gamma=gamma)
    beta = loss_scale(widths, temperature, parameterization, gamma)
    U, g = potential_and_gradient(theta, X, Y, beta=beta, decay=1.0, **kw)
    prop = theta - step_size * g + np.sqrt(2 * step_size) * xi
    Up, gp = potential_and_gradient(prop, X, Y, beta=beta, decay=1.0, **kw)
    fwd = np.sum((prop - theta + step_size * g) ** 2)
    bwd = np.sum((theta - prop + step_size * gp) ** 2)
    return prop, (U - Up) + (fwd - bwd) / (4 * step_size)


def gd_step(theta, X, Y, *, lr, weight_decay, widths, activation, sigma_w, sigma_b, parameterization="standard",
            gamma=1.0):
    """theta - lr (beta grad 1/2 |f - Y|^2 + weight_decay theta), beta = 1 or N_L gamma^2."""
    beta = 1.0 if parameterization == "standard" else widths[-1] * gamma**2
    _, g = potential_and_gradient(theta, X, Y, beta=beta, decay=weight_decay, widths=widths, activation=activation,
                                  sigma_w=sigma_w, sigma_b=sigma_b, parameterization=parameterization, gamma=gamma)
    return theta - lr * g
