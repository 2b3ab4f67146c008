"""Figure: the penalties induced by adaptive tangent features (``ak.one_sided_penalty``: a group's
transform, ``ak.two_sided_penalty``: a singular value of a layer update transformed on both
sides), reg = 1, against their small-v limit v^2 and large-v limits 2 sqrt(reg) v and
3 reg^(2/3) v^(2/3). Writes ``benches/figures/tangent_penalties.png``.

    python benches/tangent_penalties.py
"""
from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import adaptive_kernels as ak  # noqa: E402


def main():
    reg = 1.0
    v = np.logspace(-2, 3, 400)
    w1, z1 = ak.one_sided_penalty(v, reg, return_scale=True)
    w2, z2 = ak.two_sided_penalty(v, reg, return_scale=True)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.loglog(v, w1, label="one-sided (groups)")
    a.loglog(v, w2, label="two-sided (layerwise)")
    a.loglog(v, v**2, "k:", lw=0.8, label="$v^2$ (ridge)")
    a.loglog(v, 2 * np.sqrt(reg) * v, "C0--", lw=0.8, label=r"$2\sqrt{\lambda} v$")
    a.loglog(v, 3 * reg ** (2 / 3) * v ** (2 / 3), "C1--", lw=0.8, label=r"$3\lambda^{2/3} v^{2/3}$")
    a.set_ylim(1e-4, 1e4)
    a.set_xlabel("v (group norm / singular value)")
    a.set_ylabel(r"induced penalty $\tilde w(v)$, $\lambda = 1$")
    a.legend(fontsize=8)
    b.semilogx(v, z1, label="one-sided")
    b.semilogx(v, z2, label="two-sided (each transform)")
    b.set_xlabel("v")
    b.set_ylabel("optimal transform scale z*")
    b.legend(fontsize=8)
    fig.tight_layout()
    out = pathlib.Path(__file__).parent / "figures" / "tangent_penalties.png"
    fig.savefig(out, dpi=120)
    print(out)


if __name__ == "__main__":
    main()
