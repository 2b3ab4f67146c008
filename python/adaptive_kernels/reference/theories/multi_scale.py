"""Multi-scale adaptive theory of linear networks (one hidden layer; deep ones below): a NumPy reference.

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

__all__ = ["nngp_kernel", "tilted_covariance", "tree_kernel", "solve_tree", "solve_corrected", "fit", "predict",
           "deep_nngp_kernel", "deep_action", "fit_deep", "predict_deep", "exact_deep_linear"]


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


# -- deep linear networks (L >= 2 hidden layers of width N) ----------------------------------------
# Given all weights, f is a GP with kernel U Kn / chi, Kn = sigma_w^(2L+2) X X^T / d, U = Q_1 ... Q_L,
# N Q_l ~ chi-square(N) independently (Li & Sompolinsky); noise T / chi. Written here with one scale
# per layer (no equal-scale shortcut) and dense linear algebra.

def deep_nngp_kernel(X1, X2=None, sigma_w=1.0, depth=1):
    X2 = X1 if X2 is None else X2
    return sigma_w ** (2 * depth + 2) * np.asarray(X1) @ np.asarray(X2).T / np.shape(X1)[1]


def deep_action(qs, Kn, y, width, temperature, chi, order):
    """S(Q_1..Q_L) = sum_l N/2 (Q_l - ln Q_l) + chi/2 y^T G^-1 y [+ 1/2 ln det G], G = U Kn + T I."""
    qs = np.asarray(qs, float)
    G = np.prod(qs) * Kn + temperature * np.eye(len(y))
    s = 0.5 * width * np.sum(qs - np.log(qs)) + 0.5 * chi * y @ np.linalg.solve(G, y)
    return s + (0.5 * np.linalg.slogdet(G)[1] if order == "corrected" else 0.0)


def fit_deep(X, y, *, sigma_w, depth, width, temperature, chi, order="corrected"):
    """Global minimum of the action over the layer scales. Stationarity in Q_l gives the same
    N (Q_l - 1) for every layer, so the minima lie on Q_l = Q: every sign change of dS/dQ on a grid
    in ln Q is refined by brentq and the lowest S wins. The Laplace precision of U is taken from a
    finite-difference Hessian of S in (ln Q_1, ..., ln Q_L) (not the closed form the core uses)."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    P, d = X.shape
    L, N, T = depth, width, temperature
    Kn = deep_nngp_kernel(X, sigma_w=sigma_w, depth=L)

    def grad(q):   # (2 Q / (L N)) dS/dQ along Q_l = Q
        U = q ** L
        G = U * Kn + T * np.eye(P)
        b = np.linalg.solve(G, y)
        r = (q - 1) - chi * U / N * b @ Kn @ b
        return r + (U / N * np.trace(np.linalg.solve(G, Kn)) if order == "corrected" else 0.0)

    xs = np.linspace(-8, 8, 1601)
    gs = np.array([grad(np.exp(x)) for x in xs])
    roots = [optimize.brentq(lambda x: grad(np.exp(x)), xs[j], xs[j + 1], xtol=1e-14, rtol=1e-15)
             for j in range(len(xs) - 1) if gs[j] < 0 <= gs[j + 1]]
    acts = [deep_action([np.exp(x)] * L, Kn, y, N, T, chi, order) for x in roots]
    q = float(np.exp(roots[int(np.argmin(acts))]))
    U = q ** L
    G = U * Kn + T * np.eye(P)
    b = np.linalg.solve(G, y)
    t = T * b
    if order == "tree":
        w = Kn @ t
        K = Kn + (U - 1) * np.outer(w, w) / (t @ Kn @ t)
        M = chi * np.outer(b, b)
    else:
        K = U * Kn
        M = chi * np.outer(b, b) - np.linalg.inv(G)
    S = np.eye(d) + sigma_w ** (2 * L + 2) * U / (width * d) * X.T @ M @ X
    # Var(ln U) from the Hessian of S in ln Q_l (central differences), precision of U = 1 / (U^2 Var)
    h = 1e-4
    f = lambda z: deep_action(np.exp(z), Kn, y, N, T, chi, order)
    z0 = np.full(L, np.log(q))
    H = np.empty((L, L))
    for i in range(L):
        for j in range(L):
            ei, ej = np.eye(L)[i] * h, np.eye(L)[j] * h
            H[i, j] = (f(z0 + ei + ej) - f(z0 + ei - ej) - f(z0 - ei + ej) + f(z0 - ei - ej)) / (4 * h * h)
    var_z = np.ones(L) @ np.linalg.solve(H, np.ones(L))
    return dict(scale=U, layer_scale=q, minima=[(float(np.exp(x)), a) for x, a in zip(roots, acts)], kernel=K,
                discrepancy=t, train_mean=y - t, weight_covariance=S, curvature=1.0 / (U * U * var_z),
                order=order, X=X, y=y, sigma_w=sigma_w, depth=L, width=width, temperature=T, chi=chi)


def predict_deep(model, X_test):
    """Mean and std of f at ``X_test``: GP on the kernel / chi, plus (corrected) the Laplace term
    ``(df/dU)^2 / curvature``, ``df/dU = T Kn(*, X) G^-2 y``."""
    m = model
    X, y, T, chi, L, sw = m["X"], m["y"], m["temperature"], m["chi"], m["depth"], m["sigma_w"]
    kn = deep_nngp_kernel(X, X_test, sw, L)
    kss = sw ** (2 * L + 2) * np.sum(X_test ** 2, 1) / X.shape[1]
    if m["order"] == "tree":
        t = m["discrepancy"]
        Kn = deep_nngp_kernel(X, sigma_w=sw, depth=L)
        c = (m["scale"] - 1) / (t @ Kn @ t)
        kc = kn + c * np.outer(Kn @ t, kn.T @ t)
        kss = kss + c * (kn.T @ t) ** 2
    else:
        kc, kss = m["scale"] * kn, m["scale"] * kss
    G = m["kernel"] + T * np.eye(len(y))
    mean = kc.T @ np.linalg.solve(G, y)
    var = (kss - np.einsum("ij,ij->j", kc, np.linalg.solve(G, kc))) / chi
    if m["order"] == "corrected":
        Gu = m["scale"] * deep_nngp_kernel(X, sigma_w=sw, depth=L) + T * np.eye(len(y))
        df = T * kn.T @ np.linalg.solve(Gu, np.linalg.solve(Gu, y))
        var = var + df ** 2 / m["curvature"]
    return mean, np.sqrt(np.maximum(var, 0))


def exact_deep_linear(X, y, X_test, *, sigma_w, depth, width, temperature, chi, n_grid=4001):
    """The exact posterior of a deep linear net (one output): a 1-D integral over z = ln U, whose
    prior is the L-fold convolution of the log-Gamma(N/2, rate N/2) density, with the likelihood
    ``N(y; 0, G / chi)``. Returns dict(mean, std (of f at X_test), scale (E[U]),
    weight_covariance (E[W0^T W0] / N, d x d))."""
    X, y, X_test = (np.asarray(a, float) for a in (X, y, X_test))
    P, d = X.shape
    L, N, T = depth, width, temperature
    Kn = deep_nngp_kernel(X, sigma_w=sigma_w, depth=L)
    kn = deep_nngp_kernel(X, X_test, sigma_w, L)
    kss = sigma_w ** (2 * L + 2) * np.sum(X_test ** 2, 1) / d
    half = 12.0 * np.sqrt(2.0 * L / N) + 1.0
    x = np.linspace(-half, half, n_grid)   # ln Q of one layer (symmetric grid: convolutions stay centred)
    dx = x[1] - x[0]
    p1 = np.exp(0.5 * N * (x - np.exp(x)) - 0.5 * N * (-1.0))   # log-Gamma density, up to a constant
    pz = p1.copy()
    for _ in range(L - 1):
        pz = np.convolve(pz, p1) * dx
    z = np.arange(len(pz)) * dx - L * half
    lam, V = np.linalg.eigh(Kn)
    yk = V.T @ y
    logw = np.full(len(z), -np.inf)
    ok = pz > 0
    U = np.exp(z[ok])
    g = U[:, None] * lam[None, :] + T
    logw[ok] = np.log(pz[ok]) - 0.5 * chi * np.sum(yk ** 2 / g, 1) - 0.5 * np.sum(np.log(g), 1)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    keep = w > 1e-300 * 0 + 1e-18
    mean, second, var_gp, EU = 0.0, 0.0, 0.0, 0.0
    Sw = np.zeros((d, d))
    for zi, wi in zip(z[keep], w[keep]):
        Ui = np.exp(zi)
        G = Ui * Kn + T * np.eye(P)
        b = np.linalg.solve(G, y)
        m = Ui * kn.T @ b
        mean = mean + wi * m
        second = second + wi * m * m
        var_gp = var_gp + wi * (Ui * kss - Ui * Ui * np.einsum("ij,ij->j", kn, np.linalg.solve(G, kn))) / chi
        EU += wi * Ui
        Sw += wi * Ui * X.T @ (chi * np.outer(b, b) - np.linalg.inv(G)) @ X
    Sw = np.eye(d) + sigma_w ** (2 * L + 2) / (N * d) * Sw
    return dict(mean=mean, std=np.sqrt(var_gp + second - mean * mean), scale=EU, weight_covariance=Sw)
