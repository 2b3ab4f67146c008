"""Forward-backward MAP kernels (Fischer et al., ICML 2024): a NumPy reference (deep linear nets; nonlinear to first order at the end).

Conventions (standard scaling, as ``ak.sample_posterior(parameterization="standard")``; depth L
hidden layers of width N, noise variance T, ``g = sigma_w^2``, ``b = sigma_b^2``, targets Y (P, C)):

    C^0 = g X X^T / d + b                                    (input kernel, fixed)
    C^l = (g / N) sum_i h^l_i h^l_i^T + b,  h^l_i ~ N(0, C^{l-1}) i.i.d.     (l = 1..L, random)
    W_l(Ct | C) = b 1^T Ct 1 - 1/2 ln det(I - 2 g Ct C)      (cumulant generating function / N)

MAP of the kernels in the large-deviation form of the prior, ``-ln p({C} | Y) =
N sum_l [tr(Ct^l C^l) - W_l(Ct^l | C^{l-1})]_{saddle in Ct} + 1/2 tr(Y^T G^{-1} Y) + C/2 ln det G``,
``G = C^L + T I``; its stationarity conditions are

    forward   C^l    = d W_l / d Ct^l   = g C^{l-1} (I - 2 g Ct^l C^{l-1})^{-1} + b            (F)
    backward  Ct^{l-1} = d W_l / d C^{l-1} = g Ct^l (I - 2 g C^{l-1} Ct^l)^{-1}   (l = L..2)   (B)
              (Stein form: 1/2 C^{-1} (<h h^T>_tilt - C) C^{-1}, <h h^T>_tilt = C (I - 2 g Ct C)^{-1})
    terminal  Ct^L   = (Z Z^T - C G^{-1}) / (2 N),  Z = G^{-1} Y                               (T)

Eliminating Ct, the MAP minimises (C^l - b 11^T = D_l, gC^{l-1} = E_l)
``F = N/2 sum_l [tr(E_l^{-1} D_l) - ln det(E_l^{-1} D_l) - P] + 1/2 tr(Y^T G^{-1} Y) + C/2 ln det G``
(the Legendre transform of W is the Wishart rate function), see :func:`objective`.

The solve is width annealing: hybrid Powell (``scipy.optimize.root``) on the residual of
(F) with Ct from (T) and (B), at widths from ``N * start`` down to ``N``, each warm-started from the last.
"""
import numpy as np
from scipy import linalg, optimize, special

from ..kernels.hermite import hermite_or_quadrature

__all__ = ["input_kernel", "nngp_kernels", "terminal", "backward", "backward_stein", "forward", "residual",
           "objective", "solve", "perturbative", "joint_kernels", "predict", "alignment",
           "nl_layer_map", "nl_jvp", "nl_vjp", "nl_fluctuation", "nl_perturbative"]


def input_kernel(X, sigma_w=1.0, sigma_b=0.0):
    X = np.asarray(X, float)
    return sigma_w ** 2 * X @ X.T / X.shape[1] + sigma_b ** 2


def nngp_kernels(K0, depth, g, b):
    out, C = [], K0
    for _ in range(depth):
        C = g * C + b
        out.append(C)
    return out


def terminal(CL, Y, T, N):
    """(T): ``(Z Z^T - C G^{-1}) / (2N)``."""
    Y = np.asarray(Y, float).reshape(len(CL), -1)
    Gi = linalg.inv(CL + T * np.eye(len(CL)))
    Z = Gi @ Y
    return (Z @ Z.T - Y.shape[1] * Gi) / (2 * N)


def backward(C_prev, Ct, g):
    """(B), closed form."""
    return g * Ct @ linalg.inv(np.eye(len(Ct)) - 2 * g * C_prev @ Ct)


def backward_stein(C_prev, Ct, g):
    """(B), Stein form ``1/2 C^{-1} (<h h^T>_tilt - C) C^{-1}`` (needs an invertible ``C_prev``)."""
    tilt = C_prev @ linalg.inv(np.eye(len(Ct)) - 2 * g * Ct @ C_prev)
    Ci = linalg.inv(C_prev)
    return 0.5 * Ci @ (tilt - C_prev) @ Ci


def forward(C_prev, Ct, g, b):
    """(F)."""
    return g * C_prev @ linalg.inv(np.eye(len(Ct)) - 2 * g * Ct @ C_prev) + b


def conjugates(Cs, K0, Y, g, T, N):
    """Ct^1..Ct^L from the kernels C^1..C^L by (T) then (B)."""
    L = len(Cs)
    Ct = [None] * L
    Ct[-1] = terminal(Cs[-1], Y, T, N)
    for l in range(L - 1, 0, -1):
        Ct[l - 1] = backward(Cs[l - 1], Ct[l], g)
    return Ct


def residual(Cs, K0, Y, g, b, T, N):
    """``C^l - F_l(C^{l-1}, Ct^l)`` for l = 1..L, with the Ct of :func:`conjugates`."""
    Ct = conjugates(Cs, K0, Y, g, T, N)
    prev = [K0] + list(Cs[:-1])
    return [C - forward(Cp, t, g, b) for C, Cp, t in zip(Cs, prev, Ct)]


def objective(Cs, K0, Y, g, b, T, N):
    """The MAP objective F (needs invertible ``C^0`` and ``C^l - b``)."""
    Y = np.asarray(Y, float).reshape(len(K0), -1)
    P = len(K0)
    f, prev = 0.0, K0
    for C in Cs:
        M = linalg.solve(g * prev, C - b)
        f += 0.5 * N * (np.trace(M) - np.linalg.slogdet(M)[1] - P)
        prev = C
    G = Cs[-1] + T * np.eye(P)
    return f + 0.5 * np.trace(Y.T @ linalg.solve(G, Y)) + 0.5 * Y.shape[1] * np.linalg.slogdet(G)[1]


def _sym(A):
    return 0.5 * (A + A.T)


def solve(K0, Y, depth, g, b, T, N, start=1e3, n_anneal=12, tol=1e-13):
    """Width annealing from ``N * start`` to ``N`` (``n_anneal`` geometric steps, a failed step
    halved in log width), each step solved by MINPACK's hybrid Powell method
    (``scipy.optimize.root``, dense Jacobian: small P only); returns (C, Ct)."""
    P = len(K0)
    iu = np.triu_indices(P)

    def unpack(x):
        Cs = []
        for v in x.reshape(depth, -1):
            C = np.zeros((P, P))
            C[iu] = v
            Cs.append(C + np.triu(C, 1).T)
        return Cs

    Cs = nngp_kernels(K0, depth, g, b)
    x = np.concatenate([C[iu] for C in Cs])
    done, todo = N * start, list(N * start ** (1.0 - np.arange(1, n_anneal + 1) / n_anneal))
    while todo:
        n = todo[0]
        fun = lambda x, n=n: np.concatenate([_sym(r)[iu] for r in residual(unpack(x), K0, Y, g, b, T, n)])
        sol = optimize.root(fun, x, method="hybr", tol=tol)
        if sol.success or np.abs(sol.fun).max() < 1e-11:
            x, done = sol.x, todo.pop(0)
        elif done / n < 1.0 + 1e-6:
            raise RuntimeError(f"reference solve failed at width {n}: {sol.message}")
        else:
            todo.insert(0, np.sqrt(done * n))   # halve the step in log width
    Cs = unpack(x)
    return Cs, conjugates(Cs, K0, Y, g, T, N)


def perturbative(K0, Y, depth, g, b, T, N):
    """First order in 1/N around the NNGP: Ct^L from (T) at the NNGP kernel, (B) and (F)
    linearised: ``Ct^{l-1} = g Ct^l``, ``C^l = g C^{l-1} + b + 2 g^2 K^{l-1} Ct^l K^{l-1}``."""
    K = [K0] + nngp_kernels(K0, depth, g, b)
    Ct = [None] * depth
    Ct[-1] = terminal(K[-1], Y, T, N)
    for l in range(depth - 1, 0, -1):
        Ct[l - 1] = g * Ct[l]
    Cs, prev = [], K0
    for l in range(depth):
        C = g * prev + b + 2 * g * g * K[l] @ Ct[l] @ K[l]
        Cs.append(C)
        prev = C
    return Cs, Ct


def joint_kernels(Kj, Ct, g, b):
    """Forward pass on train + test (train rows first): Ct zero-padded on test rows/columns."""
    P = len(Ct[0])
    out, prev = [], Kj
    for t in Ct:
        tp = np.zeros_like(Kj)
        tp[:P, :P] = t
        prev = forward(prev, tp, g, b)
        out.append(_sym(prev))
    return out


def predict(K0j, Ct, Y, g, b, T):
    """GP regression with the MAP readout kernel: mean (Q, C) and variance (Q,) of f at the test rows."""
    P = len(Ct[0])
    Y = np.asarray(Y, float).reshape(P, -1)
    C = joint_kernels(K0j, Ct, g, b)[-1]
    G = C[:P, :P] + T * np.eye(P)
    Kc = C[:P, P:]
    mean = Kc.T @ linalg.solve(G, Y)
    var = np.diag(C[P:, P:]) - np.einsum("ij,ij->j", Kc, linalg.solve(G, Kc))
    return mean, var


def alignment(K, Y):
    """Centred kernel alignment of K with Y Y^T."""
    P = len(K)
    Y = np.asarray(Y, float).reshape(P, -1)
    H = np.eye(P) - 1.0 / P
    A, B = H @ K @ H, H @ Y @ Y.T @ H
    return float(np.sum(A * B) / np.sqrt(np.sum(A * A) * np.sum(B * B)))


# -- nonlinear activations, first order in 1/N ------------------------------------------------
#
#   W_l(Ct | C) = b 1^T Ct 1 + ln E_{h ~ N(0, C)} exp(g phi(h)^T Ct phi(h))
#   F(C) = g E[phi phi^T] + b                      (NNGP map; K^l = F(K^{l-1}))
#   Ct^L = terminal(K^L),  Ct^{l-1} = J_l^T[Ct^l]  (gradient of tr(Ct F(C)) in C at K^{l-1})
#   C^l = K^l + dC^l,  dC^l = J_l[dC^{l-1}] + g^2 V_l[Ct^l],  V[A] = Cov(phi phi^T, phi^T A phi)
#
# Here F by tensor Gauss-Hermite on each 2x2 block, J and J^T by central differences of F
# (an independent route from the core's Price-theorem coefficients), V by Monte Carlo.

def nl_layer_map(C, phi, g, b, n=128):
    """``F(C) = g E[phi(u) phi(v)] + b`` entrywise, ``(u, v) ~ N(0, C[[a, b]][:, [a, b]])``: the
    arcsine closed form for ``scipy.special.erf`` (Gauss-Hermite converges only algebraically for
    erf once a variance exceeds 1/2: 1.6e-5 off at 1.19 with n = 128), the core's Hermite path for
    ``np.tanh`` (an n x n Gauss-Hermite rule under-resolves tanh's transition at large variance:
    7.9e-5 off at 8), else an n x n Gauss-Hermite rule."""
    if phi is special.erf:
        d = 1.0 + 2.0 * np.diag(C)
        return g * (2.0 / np.pi) * np.arcsin(np.clip(2.0 * C / np.sqrt(np.outer(d, d)), -1.0, 1.0)) + b
    if phi is np.tanh:
        d = np.diag(C)
        a, bb = np.broadcast_to(d[:, None], C.shape), np.broadcast_to(d[None, :], C.shape)
        return g * _sym(hermite_or_quadrature(np.tanh, a, bb, C, 128, builtin=True)) + b
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    d = np.sqrt(np.maximum(np.diag(C), 0.0))
    rho = np.clip(C / np.maximum(np.outer(d, d), 1e-300), -1.0, 1.0)
    u = d[:, None, None, None] * x[None, None, :, None]                       # (P, 1, n, 1)
    v = d[None, :, None, None] * (rho[:, :, None, None] * x[None, None, :, None]
                                  + np.sqrt(1 - rho ** 2)[:, :, None, None] * x[None, None, None, :])
    E = np.einsum("i,j,abij->ab", w, w, phi(u) * phi(v))
    return g * _sym(E) + b


def nl_jvp(C, dC, phi, g, b, eps=1e-5):
    """``J[dC]``: central difference of :func:`nl_layer_map`."""
    return (nl_layer_map(C + eps * dC, phi, g, b) - nl_layer_map(C - eps * dC, phi, g, b)) / (2 * eps)


def nl_vjp(C, M, phi, g, b, eps=1e-5):
    """``J^T[M]``: the gradient of ``tr(M F(C))`` over symmetric ``C`` (entrywise differences)."""
    P = len(C)
    G = np.zeros_like(C)
    for i in range(P):
        for j in range(i, P):
            E = np.zeros_like(C)
            E[i, j] = E[j, i] = 1.0
            d = np.sum(M * nl_jvp(C, E, phi, g, b, eps))
            G[i, j] = G[j, i] = d if i == j else d / 2
    return G


def nl_fluctuation(C, A, phi, n_samples=100_000, seed=0):
    """Monte-Carlo ``V[A] = Cov(phi phi^T, phi^T A phi)``, ``h ~ N(0, C)``."""
    rng = np.random.default_rng(seed)
    w, U = np.linalg.eigh(C)
    h = rng.standard_normal((n_samples, len(C))) * np.sqrt(np.maximum(w, 0.0)) @ U.T
    f = phi(h)
    u = np.einsum("si,ij,sj->s", f, A, f)
    return _sym(f.T @ (f * (u - u.mean())[:, None]) / n_samples)


def nl_perturbative(K0, Y, depth, phi, g, b, T, N, n_samples=100_000, seed=0):
    """First-order kernels ``C^1..C^L`` and conjugates ``Ct^1..Ct^L`` for any activation."""
    K = [K0]
    for _ in range(depth):
        K.append(nl_layer_map(K[-1], phi, g, b))
    Ct = [None] * depth
    Ct[-1] = terminal(K[-1], Y, T, N)
    for l in range(depth - 1, 0, -1):
        Ct[l - 1] = nl_vjp(K[l], Ct[l], phi, g, b)
    Cs, dC = [], np.zeros_like(K0)
    for l in range(depth):
        dC = nl_jvp(K[l], dC, phi, g, b) + g * g * nl_fluctuation(K[l], Ct[l], phi, n_samples, seed + l)
        Cs.append(K[l + 1] + dC)
    return Cs, Ct


# ---- nonlinear activations, full solution: one evaluation of the sampled map ----------------
#
# Layer l's density p_l(h) ∝ N(h; 0, C^{l-1}) exp(g phi^T Ct^l phi); fixed whitened samples z
# (h = F z, F F^T = C^{l-1}) drawn with reference tilt energies e_ref; weights
# w ∝ exp(g phi^T Ct phi - e_ref), w0 ∝ exp(-e_ref) (zero tilt). Then
#   C^l      = F(C^{l-1}) + g sum_s (w - w0)_s phi_s phi_s^T          (untilted map exact)
#   Ct^{l-1} = J^T[Ct^l] + g sym(C^{-1} sum_s (w - w0)_s h_s (phi'_s * Ct^l phi_s)^T)   (Stein)
#   Ct^L     = terminal(C^L).

def nl_sampled_map(K0, Y, Cs, zs, e_refs, phi, dphi, g, b, T, N):
    """``(F_1..F_L, Ct^1..Ct^L, kish)`` at kernels ``Cs`` on samples ``zs`` (S x P each)."""
    L = len(Cs)
    Ct = [None] * L
    F = [None] * L
    kish = np.zeros(L)
    Ct[-1] = terminal(Cs[-1], Y, T, N)
    for l in range(L - 1, -1, -1):
        C = K0 if l == 0 else Cs[l - 1]
        Lc = np.linalg.cholesky(C)
        h = zs[l] @ Lc.T
        f = phi(h)
        e = np.einsum("si,ij,sj->s", f, Ct[l], f)

        def normalise(lw):
            w = np.exp(lw - lw.max())
            return w / w.sum()
        w = normalise(g * e - e_refs[l])
        w0 = normalise(-np.asarray(e_refs[l]))
        kish[l] = 1.0 / (len(w) * np.sum(w * w))
        dw = w - w0
        F[l] = nl_layer_map(C, phi, g, b) + g * _sym(f.T @ (f * dw[:, None]))
        if l > 0:
            v = dphi(h) * (f @ Ct[l])
            Ct[l - 1] = nl_vjp(C, Ct[l], phi, g, b) + g * _sym(np.linalg.solve(C, h.T @ (v * dw[:, None])))
    return F, Ct, kish


def nl_sampled_test_rows(K0, K0x, k0d, Cs, Ct, zs, e_refs, phi, g, b, n_gh=40):
    """Test rows ``[(C^l(*, X) (n x P), C^l(*, *) (n,))]`` of a sampled full fit (full-rank
    ``K0``; ``K0x`` = ``K^0(*, X)``, ``k0d`` its test diagonal): the fit's samples
    ``h = z chol(C^{l-1})^T`` reweighted (``w - w0``) as the training block, test points
    ``h_* | h ~ N(m, sd^2)`` (``m = C(*, X) C^{-1} h``) integrated by Gauss-Hermite, plus the
    exact untilted map of the joint kernel (test-test covariances 0: only the diagonal is used)."""
    x, wq = np.polynomial.hermite_e.hermegauss(n_gh)
    wq = wq / wq.sum()
    cx, cd = np.array(K0x, float), np.array(k0d, float)
    P, out = len(K0), []
    for l in range(len(Cs)):
        C = K0 if l == 0 else Cs[l - 1]
        h = zs[l] @ np.linalg.cholesky(C).T
        f = phi(h)
        e = np.einsum("si,ij,sj->s", f, Ct[l], f)
        lw, l0 = g * e - e_refs[l], -np.asarray(e_refs[l])
        w, w0 = np.exp(lw - lw.max()), np.exp(l0 - l0.max())
        dw = w / w.sum() - w0 / w0.sum()
        M = np.linalg.solve(C, cx.T)                                  # P x n
        m = h @ M                                                     # S x n
        sd = np.sqrt(np.maximum(cd - np.einsum("ik,ki->i", cx, M), 0.0))
        u = phi(m[:, :, None] + sd[None, :, None] * x[None, None, :])  # S x n x q
        e1, e2 = u @ wq, (u * u) @ wq
        J = np.zeros((P + len(cd),) * 2)
        J[:P, :P], J[P:, :P], J[:P, P:] = C, cx, cx.T
        J[P:, P:] = np.diag(cd)
        F = nl_layer_map(J, phi, g, b)
        cx = F[P:, :P] + g * (e1 * dw[:, None]).T @ f
        cd = np.diag(F)[P:] + g * dw @ e2
        out.append((cx, cd))
    return out
