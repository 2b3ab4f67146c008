"""NumPy reference of the concave one-hidden-layer mean-field objective (core
``theories::mean_field::concave``): on fixed draws ``phi`` (S x P) with log prior/proposal ratios
``log_r``, ``s = phi a``, ``w ∝ exp(log_r + gamma^2 s^2 / 2)``,

    g(a)    = a.y - T|a|^2/2 - gamma^-2 ln((1/S) sum exp(log_r + gamma^2 s^2 / 2))
    grad g  = y - T a - Phi a,          Phi = sum_i w_i phi_i phi_i^T
    -Hess g = T I + sum_i w_i (1 + gamma^2 s_i^2) phi_i phi_i^T - gamma^2 m m^T,  m = Phi a.
"""
import numpy as np


def objective(phi, log_r, a, y, temperature, gamma):
    """``(g, grad g, Phi, -Hess g)``."""
    g2 = gamma ** 2
    s = phi @ a
    lw = log_r + 0.5 * g2 * s ** 2
    mx = lw.max()
    lse = mx + np.log(np.exp(lw - mx).sum())
    w = np.exp(lw - lse)
    g = a @ y - 0.5 * temperature * a @ a - (lse - np.log(len(s))) / g2
    K = (phi * w[:, None]).T @ phi
    m = K @ a
    H = temperature * np.eye(len(a)) + (phi * (w * (1 + g2 * s ** 2))[:, None]).T @ phi - g2 * np.outer(m, m)
    return g, y - temperature * a - m, K, H


def domain_ratio(k0, a, gamma):
    """Lower bound on ``rho = gamma^2 sup_h (a.relu(h))^2 / h^T K0^+ h`` (relu tilt at ``a``
    normalizable iff ``rho < 1``; core ``concave::domain::ratio``): for ``b = +-a``, iterate the
    stationarity condition ``v <- b * [K0 v > 0]`` from ``b``, ``b_+`` and the unit vector of the
    largest ``|b_i|``, and keep the best evaluated ``(b.relu(K0 v))^2 / v^T K0 v``."""
    k0, a = np.asarray(k0, float), np.asarray(a, float)

    def one_side(b):
        i = int(np.argmax(np.abs(b)))
        e = np.zeros_like(b)
        e[i] = np.sign(b[i])
        best = 0.0
        for v in (b.copy(), np.maximum(b, 0.0), e):
            last = None
            for _ in range(60):
                h = k0 @ v
                q, n = v @ h, b[h > 0] @ h[h > 0]
                best = max(best, n * n / q if q > 0 and n > 0 else 0.0)
                pat = h > 0
                if last is not None and np.array_equal(pat, last):
                    break
                v, last = np.where(pat, b, 0.0), pat
        return best

    return gamma ** 2 * max(one_side(a), one_side(-a))
