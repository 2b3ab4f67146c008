"""Multi-scale adaptive theory of one-hidden-layer linear networks: a NumPy reference.

Convention (``ak.exact_linear_posterior(..., chi=chi)``): ``h = sigma_w W x / sqrt(d)``,
``f = sigma_w v . h / sqrt(chi N)``, posterior ``∝ exp(-chi sum (f - y)^2 / (2T) - |theta|^2 / 2)``.
NNGP units: ``Kn = sigma_w^4 X X^T / d``, scale ``Q = chi u / sigma_w^2``, ``G = Q Kn + T I``.

Tree level, straight from the per-neuron tilted measure (not the closed forms the core uses):
the first-layer weights of one neuron, ``w ~ N(0, I)`` tilted by ``exp[(a/2) (t^T X w)^2]``,
``a = sigma_w^4 chi / (N T^2 d)``, are Gaussian with covariance ``S = (I - a X^T t t^T X)^{-1}``;
the adapted kernel is ``K = (sigma_w^4 / d) X S X^T`` and the training discrepancy solves
``t = y - K (K + T I)^{-1} y``, a fixed point in the P-vector ``t`` (solved here by
``scipy.optimize.root`` on ``t``, Algorithm 1's unknown, annealed in chi). Corrected: the scalar equation
``Q - 1 = (chi Q / N) y^T G^{-1} Kn G^{-1} y - (Q / N) tr(Kn G^{-1})`` by ``brentq``.
"""
import numpy as np
from scipy import optimize

__all__ = ["nngp_kernel", "tilted_covariance", "tree_kernel", "solve_tree", "solve_corrected", "fit", "predict"]


def nngp_kernel(X1, X2=None, sigma_w=1.0):
    X2 = X1 if X2 is None else X2
    return sigma_w ** 4 * np.asarray(X1) @ np.asarray(X2).T / np.shape(X1)[1]


def tilted_covariance(X, t, sigma_w, width, temperature, chi):
    """Covariance ``S`` of the tilted per-neuron measure (d x d); raises if it is improper."""
    d = X.shape[1]
    a = sigma_w ** 4 * chi / (width * temperature ** 2 * d)
    xt = X.T @ t
    prec = np.eye(d) - a * np.outer(xt, xt)
    if np.linalg.eigvalsh(prec)[0] <= 0:
        raise FloatingPointError("the tilted measure is not normalizable")
    return np.linalg.inv(prec)


def tree_kernel(X, t, sigma_w, width, temperature, chi, X2=None):
    S = tilted_covariance(X, t, sigma_w, width, temperature, chi)
    X2 = X if X2 is None else X2
    return sigma_w ** 4 * X @ S @ X2.T / X.shape[1]


def solve_tree(X, y, sigma_w, width, temperature, chi, n_anneal=80):
    """The tree-level discrepancy ``t`` (fixed point in the P-vector) by Algorithm 1: annealed
    in chi from ``chi / 100`` (where the NNGP's ``t`` is a good start) up to ``chi``, each step
    warm-started. (From the NNGP ``t`` directly, the tilted measure is improper already at
    chi = 10 in the tests' set-up: the annealing is needed, not an optimisation.)"""
    P = len(y)
    Kn = nngp_kernel(X, sigma_w=sigma_w)
    t = temperature * np.linalg.solve(Kn + temperature * np.eye(P), y)
    for c in np.geomspace(chi / 100, chi, n_anneal):
        def residual(t, c=c):
            try:
                K = tree_kernel(X, t, sigma_w, width, temperature, c)
            except FloatingPointError:   # outside the domain: a large residual shrinks hybr's step
                return 1e6 * np.ones_like(t)
            return t - temperature * np.linalg.solve(K + temperature * np.eye(P), y)
        t = optimize.root(residual, t, method="hybr", tol=1e-13).x
    return t


def _corrected_residual(Q, Kn, y, width, temperature, chi):
    G = Q * Kn + temperature * np.eye(len(y))
    b = np.linalg.solve(G, y)
    return (Q - 1) - chi * Q / width * b @ Kn @ b + Q / width * np.trace(np.linalg.solve(G, Kn))


def solve_corrected(X, y, sigma_w, width, temperature, chi):
    Kn = nngp_kernel(X, sigma_w=sigma_w)
    f = lambda q: _corrected_residual(q, Kn, y, width, temperature, chi)
    hi = 2.0
    while f(hi) < 0:
        hi *= 2
    return optimize.brentq(f, 1e-12, hi, xtol=1e-15, rtol=1e-15)


def fit(X, y, *, sigma_w, width, temperature, chi, order="corrected"):
    """dict: scale, kernel (NNGP units), discrepancy, train_mean, weight_covariance, curvature."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    P, d = X.shape
    Kn = nngp_kernel(X, sigma_w=sigma_w)
    if order == "tree":
        t = solve_tree(X, y, sigma_w, width, temperature, chi)
        S = tilted_covariance(X, t, sigma_w, width, temperature, chi)
        K = sigma_w ** 4 * X @ S @ X.T / d
        xt = X.T @ t
        Q = 1.0 / (1.0 - sigma_w ** 4 * chi / (width * temperature ** 2 * d) * xt @ xt)
        G = Q * Kn + temperature * np.eye(P)
        curv = width / (2 * Q ** 2) + chi * y @ np.linalg.solve(G, Kn @ np.linalg.solve(G, Kn @ np.linalg.solve(G, y)))
    else:
        Q = solve_corrected(X, y, sigma_w, width, temperature, chi)
        K = Q * Kn
        G = K + temperature * np.eye(P)
        b = np.linalg.solve(G, y)
        t = temperature * b
        Gi = np.linalg.inv(G)
        S = np.eye(d) + sigma_w ** 4 * Q / (width * d) * X.T @ (chi * np.outer(b, b) - Gi) @ X
        A = Gi @ Kn
        curv = width / (2 * Q ** 2) + chi * y @ A @ A @ Gi @ y - 0.5 * np.trace(A @ A)
    return dict(scale=Q, kernel=K, discrepancy=t, train_mean=y - t, weight_covariance=S, curvature=curv,
                order=order, X=X, y=y, sigma_w=sigma_w, width=width, temperature=temperature, chi=chi)


def predict(model, X_test):
    """Mean and standard deviation of f at ``X_test`` (module docstring of the package's
    estimator: GP on the kernel / chi, plus the Laplace term of the scale when corrected)."""
    m = model
    X, y, T, chi = m["X"], m["y"], m["temperature"], m["chi"]
    if m["order"] == "tree":
        kc = tree_kernel(X, m["discrepancy"], m["sigma_w"], m["width"], T, chi, X_test)
        S = tilted_covariance(X, m["discrepancy"], m["sigma_w"], m["width"], T, chi)
        kss = m["sigma_w"] ** 4 * np.einsum("ij,jk,ik->i", X_test, S, X_test) / X.shape[1]
    else:
        kc = m["scale"] * nngp_kernel(X, X_test, m["sigma_w"])
        kss = m["scale"] * np.sum(X_test ** 2, 1) * m["sigma_w"] ** 4 / X.shape[1]
    G = m["kernel"] + T * np.eye(len(y))
    mean = kc.T @ np.linalg.solve(G, y)
    var = (kss - np.einsum("ij,ij->j", kc, np.linalg.solve(G, kc))) / chi
    if m["order"] == "corrected":
        Gi = np.linalg.inv(G)
        df = T * nngp_kernel(X, X_test, m["sigma_w"]).T @ Gi @ Gi @ y
        var = var + df ** 2 / m["curvature"]
    return mean, np.sqrt(np.maximum(var, 0))
