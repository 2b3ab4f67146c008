"""Probe (issue #18, brief fbk-large item 1): is every deep-linear forward-backward matrix
`f(K0) + W S W^T` (W of small rank) in K0's eigenbasis?  Measured on the dense core solution.

For a matrix M = D + low rank (D diagonal) every off-diagonal block M[I, J] (I, J disjoint) has
rank <= r; we print the singular values of the block M[:P/2, P/2:] of Q^T C Q (eigenvalues
sorted, interleaved split so the two halves' spectra overlap) relative to the largest, and the
singular values of the displacement Lambda M - M Lambda (rank <= 2r for diag + rank r; small
also for the Cauchy-like class that the equations actually close on)."""
import sys
import numpy as np
import adaptive_kernels as ak


def run(P=40, d=80, depth=1, sb=0.0, T=0.05, alpha=1.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    y = np.sign(X[:, :1] + 0.3 * rng.standard_normal((P, 1)))
    net = ak.MLP(depth=depth, activation="linear", sigma_w=1.0, sigma_b=sb)
    m = ak.ForwardBackwardKernels(net, width=P / alpha, temperature=T, tol=1e-13).fit(X, y)
    K0 = 1.0 * X @ X.T / d + sb ** 2
    lam, Q = np.linalg.eigh(K0)
    ev = np.arange(P) % 2 == 0        # interleaved halves: spectra not separated
    out = {}
    for name, mats in (("C", m.kernels_), ("Ct", m.conjugates_)):
        for l, M in enumerate(mats, 1):
            Mq = Q.T @ M @ Q
            blk = np.linalg.svd(Mq[np.ix_(ev, ~ev)], compute_uv=False)
            disp = np.linalg.svd(lam[:, None] * Mq - Mq * lam[None, :], compute_uv=False)
            out[f"{name}{l}"] = (blk / np.abs(Mq).max(), disp / max(disp[0], 1e-300))
    if sb == 0.0:
        # b = 0 closes: Ct^{l-1} C^{l-1} = Ct^l C^l (= Psi) and C^l = g^l K0 (I + 2 Psi)^l
        Cs, Cts = m.kernels_, m.conjugates_
        psi = Cts[-1] @ Cs[-1]
        dev = max(np.abs(Ct @ C - psi).max() for C, Ct in zip(Cs, Cts)) / np.abs(psi).max()
        dev2 = max(np.abs(C - K0 @ np.linalg.matrix_power(np.eye(P) + 2 * psi, l)).max() / np.abs(C).max()
                   for l, C in enumerate(Cs, 1))
        out["b0_identities"] = (dev, dev2)
    return m, out


if __name__ == "__main__":
    np.set_printoptions(precision=1, linewidth=150)
    for kw in (dict(depth=1, sb=0.0), dict(depth=1, sb=0.0, T=1e-9), dict(depth=3, sb=0.0),
               dict(depth=3, sb=0.1), dict(depth=2, sb=0.3, T=1e-9)):
        m, out = run(**kw)
        print(kw, "converged", m.converged_, "residual %.1e" % m.residual_)
        for k, v in out.items():
            if k == "b0_identities":
                print("   b = 0: max|Ct^l C^l - Psi|/|Psi| = %.1e, max|C^l - K0 (I+2Psi)^l|/|C^l| = %.1e" % v)
                continue
            blk, disp = v
            print(f"   {k:4s} off-diag block sv: {blk[:8]}  ... #>1e-10: {np.sum(blk > 1e-10)}/{len(blk)}")
            print(f"        displacement sv:   {disp[:8]}  #>1e-10: {np.sum(disp > 1e-10)}")
