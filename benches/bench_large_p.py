"""Large P on one machine: peak resident memory and time of kernel renormalization (linear and a
closed-form nonlinear activation) and the linear Bayesian mean-field theory, against P^2 doubles.

Each (model, P) runs in a fresh subprocess (so the peak belongs to that fit alone) which records
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after the fit, and the resident size before it
(the interpreter, the package and the data). Printed per run: peak / (P^2 * 8 bytes), the
increment over the baseline in the same unit, and the library's own estimate of the solve's
dense memory (the figure its ``InsufficientMemoryError`` would name, read from that message in a
second subprocess whose address space is capped so that the check refuses), in the same unit.

The largest P for the budget: the largest P whose library estimate fits ``--memory`` (the
estimate is a fixed multiple of P^2, so this is a square root), next to the largest P whose
*measured* peak ratio (at the largest P run) fits it. Sizes whose expected time exceeds
``--max-seconds`` (extrapolated as P^3 from the previous size) are skipped; one kernel
renormalization evaluation costs ~3 P^3 flops, so P = 30000 takes hours on 2 cores.

    nice -n 10 python benches/bench_large_p.py --memory 16G --sizes 2000 4000 8000 --max-seconds 180
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

CASES = {
    "kr_linear": "ak.KernelRenormalization(ak.MLP(depth=1, activation='linear'), width=P // 4, temperature=0.1)",
    "kr_relu": "ak.KernelRenormalization(ak.MLP(depth=1, activation='relu', sigma_w=2 ** 0.5), width=P // 4, "
               "temperature=0.1)",
    "mf_linear": "ak.BayesianMeanField(ak.MLP(depth=1, activation='linear'), gamma=1.0, temperature=0.1)",
}

CHILD = """
import json, resource, sys, time, warnings
import numpy as np
import adaptive_kernels as ak
warnings.simplefilter("ignore")
P, D = {P}, 20
rng = np.random.default_rng(0)
X = rng.standard_normal((P, D))
y = X @ rng.standard_normal(D) / np.sqrt(D) + 0.1 * rng.standard_normal(P)
est = {est}
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
base = rss()
t0 = time.perf_counter()
est.fit(X, y)
t = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("RESULT", json.dumps(dict(base=base, peak=peak, time=t, converged=bool(est.converged_),
                              n_iter=int(est.n_iter_))))
"""

ESTIMATE = """
import re, resource, warnings
import numpy as np
import adaptive_kernels as ak
warnings.simplefilter("ignore")
P = {P}
X = np.random.default_rng(0).standard_normal((P, 20)); y = X[:, 0].copy()
vm = int(re.search(r"VmSize:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 2**29, vm + 2**29))
try:
    {est}.fit(X, y)
    print("NOT REFUSED")
except ak.InsufficientMemoryError as e:
    print("REFUSED", e)
"""

UNITS = {"B": 1, "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30, "TiB": 2 ** 40}


def parse_bytes(s: str) -> float:
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(i?B?)\s*", s)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a size like 16G or 512M, got {s!r}")
    return float(m.group(1)) * 1024 ** " KMGT".index(m.group(2) or " ")


def run(code: str, timeout: float) -> str:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return proc.stdout


def library_estimate(case: str, P: int) -> float | None:
    """Bytes the library's memory check names for this solve (None if it could not be read)."""
    out = run(ESTIMATE.format(P=P, est=CASES[case].replace("P // 4", str(max(1, P // 4)))), 120)
    m = re.search(r"needs about ([\d.]+) (B|KiB|MiB|GiB|TiB)", out)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--memory", type=parse_bytes, default=parse_bytes("16G"), help="memory budget (e.g. 16G)")
    ap.add_argument("--max-seconds", type=float, default=180.0, help="skip sizes expected to take longer")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000, 8000])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    budget = args.memory
    print(f"budget {budget / 2**30:.1f} GiB; machine: {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB RAM\n")
    head = (f"{'case':>9} {'P':>6} {'time s':>8} {'iters':>5} {'peak GiB':>8} {'peak/P^2d':>9} "
            f"{'(peak-base)/P^2d':>16} {'estimate/P^2d':>13}")
    print(head)
    print("-" * len(head))
    rows = []
    for case in args.cases:
        last = None
        for P in sorted(args.sizes):
            unit = 8.0 * P * P
            if last is not None and last[1] * (P / last[0]) ** 3 > args.max_seconds:
                print(f"{case:>9} {P:>6}  skipped: ~{last[1] * (P / last[0]) ** 3:.0f} s expected > --max-seconds")
                continue
            est = library_estimate(case, P)
            t0 = time.perf_counter()
            try:
                out = run(CHILD.format(P=P, est=CASES[case]), timeout=max(60.0, 3 * args.max_seconds))
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"{case:>9} {P:>6}  failed after {time.perf_counter() - t0:.0f} s: {e}")
                continue
            r = json.loads(out.split("RESULT", 1)[1])
            r.update(case=case, P=P, estimate=est)
            rows.append(r)
            last = (P, r["time"])
            print(f"{case:>9} {P:>6} {r['time']:8.1f} {r['n_iter']:5d} {r['peak'] / 2**30:8.2f} "
                  f"{r['peak'] / unit:9.2f} {(r['peak'] - r['base']) / unit:16.2f} "
                  f"{(est / unit if est else float('nan')):13.2f}", flush=True)
    print()
    for case in args.cases:
        rs = [r for r in rows if r["case"] == case]
        if not rs:
            continue
        top = rs[-1]
        ratio_est = top["estimate"] / (8.0 * top["P"] ** 2) if top["estimate"] else None
        ratio_meas = top["peak"] / (8.0 * top["P"] ** 2)
        p_est = int(math.sqrt(budget / (8 * ratio_est))) if ratio_est else None
        p_meas = int(math.sqrt(budget / (8 * ratio_meas)))
        print(f"{case}: largest P within {budget / 2**30:.0f} GiB: {p_est} by the library's estimate "
              f"({ratio_est:.1f} P^2 doubles), {p_meas} by the measured peak at P = {top['P']} "
              f"({ratio_meas:.2f} P^2 doubles)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
