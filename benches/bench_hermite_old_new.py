"""Time of the lazy kernels and KR for tanh at growing sigma_w, to run in two builds side by side
(benches/README.md, "Large preactivation variances"): python benches/bench_hermite_old_new.py LABEL"""
import os, sys, time, numpy as np
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import adaptive_kernels as ak
rng = np.random.default_rng(0)
P = 1000
base = rng.standard_normal((P // 2, 100))
X = np.vstack([base, base + 0.05 * rng.standard_normal(base.shape)])[rng.permutation(P)]
Z = rng.standard_normal((P, 100)); Z *= 10 / np.linalg.norm(Z, axis=1, keepdims=True)   # normalized rows
out = []
for name, data in (("near-dup", X), ("normalized", Z)):
    for sw in (1.0, 2.0, 4.0):
        net = ak.MLP(depth=2, activation="tanh", sigma_w=sw)
        t0 = time.perf_counter(); ak.lazy_kernels(net, data); t = time.perf_counter() - t0
        out.append(f"{name} sw={sw}: {t:.3f}")
y = np.sign(X[:, 0]); 
for sw in (1.0, 2.0):
    t0 = time.perf_counter()
    m = ak.KernelRenormalization(ak.MLP(depth=2, activation="tanh", sigma_w=sw), width=800, temperature=0.01).fit(X[:300], y[:300])
    out.append(f"KR tanh L=2 P=300 sw={sw}: {time.perf_counter() - t0:.3f}")
print(sys.argv[1], " | ".join(out))
