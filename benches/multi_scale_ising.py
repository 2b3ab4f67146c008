"""Paper B's Fig. 2 set-up, reconstructed: linear one-hidden-layer networks on a linearly
separable Ising-type task (binary spin inputs, labels = sign of a linear teacher). Train and
test discrepancies (mean squared y - f) across chi of the exact finite-width posterior (the
ground truth, `ak.exact_linear_posterior(chi=...)`), the NNGP, and the multi-scale theory at
tree level and corrected, solved along Algorithm 1's annealing path in chi.

    python benches/multi_scale_ising.py [--P 60] [--d 120] [--N 30] [--T 0.1] [--plot]

Writes benches/figures/multi_scale_ising.png with --plot (needs matplotlib).
"""
from __future__ import annotations

import argparse

import numpy as np

import adaptive_kernels as ak

LIN = ak.MLP(depth=1, activation="linear")


def main(P, d, N, T, n_test=500, seed=0, plot=False):
    rng = np.random.default_rng(seed)
    teacher = rng.standard_normal(d)
    X = rng.choice([-1.0, 1.0], size=(P, d))
    Xt = rng.choice([-1.0, 1.0], size=(n_test, d))
    y, yt = np.sign(X @ teacher), np.sign(Xt @ teacher)
    chis = np.geomspace(1, 10 * N, 13)
    disc = lambda f, t: float(np.mean((t - f) ** 2))
    gp = ak.GaussianProcess(LIN, ridge=T).fit(X, y)
    paths = {o: ak.MultiScaleAdaptive(LIN, width=N, temperature=T, order=o).path(X, y, chis=chis)
             for o in ("tree", "corrected")}
    rows = []
    print("| chi | train exact | NNGP | tree | corrected | test exact | NNGP | tree | corrected |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, chi in enumerate(chis):
        ex = ak.exact_linear_posterior(LIN, X, y, Xt, width=N, temperature=T, chi=chi)
        r = [disc(ex.train_mean, y), disc(gp.predict(X), y), disc(paths["tree"].models[i].train_mean_, y),
             disc(paths["corrected"].models[i].train_mean_, y), disc(ex.mean, yt), disc(gp.predict(Xt), yt),
             disc(paths["tree"].models[i].predict(Xt), yt), disc(paths["corrected"].models[i].predict(Xt), yt)]
        rows.append(r)
        print(f"| {chi:.3g} | " + " | ".join(f"{v:.4f}" for v in r) + " |")
    if plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        rows = np.array(rows)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        for ax, off, title in ((axes[0], 0, "train"), (axes[1], 4, "test")):
            for j, (lab, st) in enumerate((("exact posterior", "ko"), ("NNGP", "C0--"), ("tree level", "C1-"),
                                           ("corrected", "C2:"))):
                ax.plot(chis, rows[:, off + j], st, label=lab)
            ax.set_xscale("log"), ax.set_xlabel("chi"), ax.set_title(f"{title} discrepancy <(y - f)^2>")
        axes[0].axvline(N, color="gray", lw=0.5), axes[1].axvline(N, color="gray", lw=0.5)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"linear 1HL, Ising task: P={P}, d={d}, N={N}, T={T}", fontsize=9)
        fig.tight_layout()
        fig.savefig("benches/figures/multi_scale_ising.png", dpi=120)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--P", type=int, default=60)
    ap.add_argument("--d", type=int, default=120)
    ap.add_argument("--N", type=int, default=30)
    ap.add_argument("--T", type=float, default=0.1)
    ap.add_argument("--plot", action="store_true")
    a = ap.parse_args()
    main(a.P, a.d, a.N, a.T, plot=a.plot)
