"""Fit and predict times of the theories, this code next to an earlier build, side by side.

    python benches/bench_predict.py --before-python /tmp/oldenv/bin/python

runs the same timing script in this interpreter ("after") and in ``--before-python`` (an
environment with another build of the package, e.g. main before the restructuring of #13:
``git worktree add --detach /tmp/old 4240376 && python -m venv /tmp/oldenv &&
/tmp/oldenv/bin/pip install /tmp/old``), one after the other on the same machine, and prints
the times, their ratio and the largest difference between the two builds' predictions. Cases
(the issue's): ``BayesianMeanField`` (linear, L = 2, closed form, P = 1000, Gaussian inputs with
d = 2000 so that K^0 is nonsingular; ``--d-mf 64`` for a singular one) predicting 2000 test points;
``KernelRenormalization`` (erf, L = 2, P = 2000, d = 100) predicting 2000 test points with
``return_std=True``. Times are the best of ``--repeat`` runs (fits too: single fits vary by
~15% from run to run on a 2-core machine).

The hardware limit is printed next to each predict time: its dominant flops (KR: the triangular
solve ``L^{-1} K(X, X*)``, P^2 Q, plus the Gram product 2 P Q d; mean field: the mean
``X* (X^T w)``, 2 (P + Q) d C, and nothing else) at the GEMM rate measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

SCRIPT = r"""
import json, sys, time, warnings
import numpy as np
import adaptive_kernels as ak

cfg = json.loads(sys.argv[1])
out = {}
rng = np.random.default_rng(0)

def best(f, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); r = f(); ts.append(time.perf_counter() - t0)
    return min(ts), r

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    # Bayesian mean field, deep linear, closed form
    P, d, Q = cfg["p_mf"], cfg["d_mf"], cfg["q"]
    X = rng.standard_normal((P, d)); y = np.tanh(X[:, 0] + X[:, 1]); Xt = rng.standard_normal((Q, d))
    net = ak.MLP(depth=2, activation="linear")
    out["mean_field_fit"], m = best(lambda: ak.BayesianMeanField(net, gamma=1.0, temperature=0.1).fit(X, y),
                                    cfg["repeat"])
    out["mean_field_predict"], pred = best(lambda: m.predict(Xt), cfg["repeat"])
    np.save(cfg["dir"] + "/mf.npy", pred)
    # Kernel renormalization, erf L = 2, predict with the std
    P, d = cfg["p_kr"], cfg["d_kr"]
    X = rng.standard_normal((P, d)); y = np.tanh(X[:, 0] - X[:, 1]); Xt = rng.standard_normal((Q, d))
    net = ak.MLP(depth=2, activation="erf", sigma_w=1.2)
    out["kernel_renormalization_fit"], k = best(
        lambda: ak.KernelRenormalization(net, width=P // 2, temperature=0.05).fit(X, y), cfg["repeat"])
    out["kernel_renormalization_predict_std"], (mean, std) = best(lambda: k.predict(Xt, return_std=True),
                                                                  cfg["repeat"])
    np.save(cfg["dir"] + "/kr_mean.npy", mean); np.save(cfg["dir"] + "/kr_std.npy", std)
A = rng.standard_normal((2000, 2000))
out["gemm_gflops"], _ = best(lambda: A @ A, 3)
out["gemm_gflops"] = 2 * 2000**3 / out["gemm_gflops"] / 1e9
print("RESULT " + json.dumps(out))
"""


def run(python: str, cfg: dict) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    r = subprocess.run([python, "-c", SCRIPT, json.dumps(cfg)], capture_output=True, text=True, env=env,
                       cwd=tempfile.gettempdir())
    if r.returncode != 0:
        raise SystemExit(f"{python} failed:\n{r.stderr[-3000:]}")
    line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before-python", help="interpreter of the build to compare with")
    ap.add_argument("--p-mf", type=int, default=1000)
    ap.add_argument("--d-mf", type=int, default=2000)
    ap.add_argument("--p-kr", type=int, default=2000)
    ap.add_argument("--d-kr", type=int, default=100)
    ap.add_argument("--q", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import numpy as np

    dirs = {"after": tempfile.mkdtemp()}
    if args.before_python:
        dirs["before"] = tempfile.mkdtemp()
    res = {}
    for name, d in dirs.items():
        cfg = dict(p_mf=args.p_mf, d_mf=args.d_mf, p_kr=args.p_kr, d_kr=args.d_kr, q=args.q, repeat=args.repeat,
                   dir=d)
        res[name] = run(sys.executable if name == "after" else args.before_python, cfg)
    print(f"P_mf = {args.p_mf} (d = {args.d_mf}), P_kr = {args.p_kr} (d = {args.d_kr}), {args.q} test points, "
          f"{os.cpu_count()} cores")
    print(f"{'':38s} {'after s':>9s}" + (f" {'before s':>9s} {'before/after':>12s}" if "before" in res else ""))
    rate = res["after"]["gemm_gflops"]
    flops = {"kernel_renormalization_predict_std": args.p_kr ** 2 * args.q + 2 * args.p_kr * args.q * args.d_kr,
             "mean_field_predict": 2 * (args.p_mf + args.q) * args.d_mf}
    print(f"GEMM rate of this machine (NumPy, 2000^2): {rate:.1f} GFLOP/s")
    for key in res["after"]:
        if key == "gemm_gflops":
            continue
        a = res["after"][key]
        line = f"{key:38s} {a:9.3f}"
        if "before" in res:
            b = res["before"][key]
            line += f" {b:9.3f} {b / a:12.2f}"
        if key in flops:
            line += f"   limit {flops[key] / rate / 1e9:.4f} s ({flops[key] / 1e9:.2f} GFLOP)"
        print(line)
    if "before" in res:
        for f in ("mf.npy", "kr_mean.npy", "kr_std.npy"):
            a, b = np.load(f"{dirs['after']}/{f}"), np.load(f"{dirs['before']}/{f}")
            print(f"max |after - before| / max |before| of {f[:-4]}: {np.abs(a - b).max() / np.abs(b).max():.2e}")


if __name__ == "__main__":
    main()
