"""Bench: the concave one-hidden-layer mean-field solver (``solver="concave"``) on the bundled
MNIST 5k subset, digits 0-4 (+1) vs 5-9 (-1), L = 1, T = 0.05: time per gamma and the kernel's
relative Monte-Carlo error measured across independent seeds (|K_s0 - K_s1|_F / (sqrt 2 |K|_F)),
next to the error the solver reports; the current sampled solver at a smaller P with a time cap.

    python benches/bench_mean_field_concave.py --P 1000 --acts relu tanh --gammas 0.5 1 2 4 \
        --sampled-P 100 --sampled-cap 300 --out benches/results/mean_field_concave.json

``--relu-samplers``: instead, the samplers of the relu readout tilt
``N(h; 0, K^0) exp(gamma^2 (a.relu(h))^2 / 2)`` side by side at a fixed ``a`` (the
Gaussian-equivalent saddle point, the concave solver's start; pulled back along its ray to
``rho <= --max-rho`` if outside; rho is the larger of the pattern witness ``rank_one_ratio`` and
the random-start ascent ``reference.mcmc.relu_ray_sup``, since the former alone can be far below
the supremum): ``--samplers`` among ``smc`` (tempered SMC, ``mcmc::tilted::smc``), ``mala`` (MALA
on ``h``, the solvers' sampler) and ``radial`` (``mcmc::tilted::radial``). Per sampler: time,
kernel relative MC error between two seeds, the error scaled to the first sampler's time
(``err * sqrt(t / t_first)``), and the difference between the samplers' kernels.

    python benches/bench_mean_field_concave.py --relu-samplers --P 100 200 --gammas 0.5 1 2 \
        --n-samples 2000 --out benches/results/relu_samplers.json
"""
import argparse
import gzip
import json
import multiprocessing as mp
import time

import numpy as np

import adaptive_kernels as ak
from adaptive_kernels.datasets import _mnist5k_path


def mnist_split(P, seed=0):
    with gzip.open(_mnist5k_path(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",")
    X, labels = table[:, :-1], table[:, -1].astype(int)
    idx = np.random.default_rng(seed).permutation(len(X))[:P]
    X, labels = X[idx], labels[idx]
    X = X - X.mean(0)
    X /= np.linalg.norm(X, axis=1, keepdims=True) / np.sqrt(X.shape[1])   # |x|^2 = d: K^0_ii = 1
    return X, np.where(labels <= 4, 1.0, -1.0)


def concave(act, X, y, gamma, T, rtol, seed):
    m = ak.BayesianMeanField(ak.MLP(depth=1, activation=act), gamma=gamma, temperature=T, solver="concave",
                             rtol=rtol, seed=seed)
    t = time.perf_counter()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X, y)
    return time.perf_counter() - t, m


def _sampled(q, act, X, y, gamma, T):
    import warnings
    m = ak.BayesianMeanField(ak.MLP(depth=1, activation=act), gamma=gamma, temperature=T, solver="sampled")
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X, y)
    q.put(dict(time_s=time.perf_counter() - t, converged=bool(m.converged_), gamma_reached=m.gamma_reached_,
               kernel=m.kernel_.tolist()))


def sampled_capped(act, X, y, gamma, T, cap):
    q = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=_sampled, args=(q, act, X, y, gamma, T))
    p.start()
    p.join(cap)
    if p.is_alive():
        p.terminate()
        p.join()
        return dict(time_s=cap, converged=False, gamma_reached=None, timed_out=True)
    return q.get()


def relu_nngp(k0):
    """Arc-cosine kernel ``E relu(h) relu(h)^T`` under ``h ~ N(0, k0)``."""
    d = np.sqrt(np.clip(np.diag(k0), 1e-300, None))
    cos = np.clip(k0 / np.outer(d, d), -1, 1)
    th = np.arccos(cos)
    return np.outer(d, d) * (np.sin(th) + (np.pi - th) * cos) / (2 * np.pi)


def gaussian_equivalent(phi0, y, gamma, T):
    """The linear closed form with ``K -> Phi0`` (core ``concave::gaussian_equivalent``)."""
    from scipy.optimize import brentq
    from adaptive_kernels.reference.theories.mean_field import closed_form_action
    lam, U = np.linalg.eigh(phi0)
    lam = np.maximum(lam, 0)
    yt = U.T @ y
    kw = dict(depth=1, sigma_w=1.0, gamma=gamma, temperature=T)
    f = lambda k: closed_form_action(k, lam, yt ** 2, **kw)[1]
    kappa = brentq(f, 1e-12, 1 - 1e-12) if f(1e-12) < 0 else 0.0
    return U @ (yt / (lam / (1 - kappa) + T))


def relu_samplers(a):
    from adaptive_kernels import _core
    from adaptive_kernels.reference.mcmc import relu_ray_sup
    rows = []
    for P in a.P_list:
        X, y = mnist_split(P)
        k0 = X @ X.T / X.shape[1]
        for g in a.gammas:
            av = gaussian_equivalent(relu_nngp(k0), y, g, a.T)
            rho_pattern = _core._testing.mean_field_concave_domain_ratio(k0, av, gamma=g)
            # the pattern witness is a lower bound that can be far off at P ~ 100: also ascend
            # the ratio from random starts (every value is attained, so it is still a lower bound)
            rho_ascent = relu_ray_sup(k0, av, g, n_starts=a.sup_starts)
            rho0 = max(rho_pattern, rho_ascent)
            if rho0 > a.max_rho:
                av = av * np.sqrt(a.max_rho / rho0)
            rho = a.max_rho if rho0 > a.max_rho else rho0
            row = dict(P=P, gamma=g, T=a.T, rho_gaussian_equivalent=float(rho0), rho=float(rho),
                       rho_pattern_witness=float(rho_pattern * rho / rho0), samplers={})
            ks = {}
            for name in a.samplers:
                runs = []
                for seed in range(2):
                    t = time.perf_counter()
                    if name == "smc":
                        p2, _, log_z, betas, acc = _core._testing.tilted_smc(
                            k0, -g * g * np.outer(av, av), activation="relu", n_particles=a.smc_particles,
                            n_moves=a.smc_moves, seed=seed, n_threads=a.threads)
                        extra = dict(rungs=len(betas), log_z=float(log_z))
                    else:
                        p2, _, acc = _core._testing.rank_one_tilt_moments(
                            k0, av, gamma=g, sampler=name, n_chains=16, n_samples=a.n_samples, burn_in=300, thin=2,
                            seed=seed, n_threads=a.threads)
                        extra = {}
                    runs.append((time.perf_counter() - t, p2, float(np.mean(acc)), extra))
                k1, k2 = runs[0][1], runs[1][1]
                err = float(np.linalg.norm(k1 - k2) / (np.sqrt(2) * np.linalg.norm(k1)))
                ks[name] = (k1 + k2) / 2
                row["samplers"][name] = dict(time_s=float(np.mean([r[0] for r in runs])), rel_err=err,
                                             acceptance=runs[0][2], **{k: [r[3][k] for r in runs] for k in runs[0][3]})
            ref_name = a.samplers[0]
            tr = row["samplers"][ref_name]["time_s"]
            for v in row["samplers"].values():
                v[f"rel_err_at_{ref_name}_time"] = v["rel_err"] * np.sqrt(v["time_s"] / tr)
            names = list(ks)
            for n2 in names[1:]:
                row[f"rel_diff_{names[0]}_vs_{n2}"] = float(np.linalg.norm(ks[names[0]] - ks[n2]) / np.linalg.norm(ks[names[0]]))
            print(json.dumps(row), flush=True)
            rows.append(row)
            if a.out:
                with open(a.out, "w") as fh:
                    json.dump(dict(machine="2 shared cores (other helpers running)", n_samples=a.n_samples,
                                   n_chains=16, smc_particles=a.smc_particles, smc_moves=a.smc_moves, rows=rows), fh, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relu-samplers", action="store_true")
    ap.add_argument("--n-samples", type=int, default=2000)
    ap.add_argument("--max-rho", type=float, default=0.9)
    ap.add_argument("--samplers", nargs="+", default=["smc", "mala"], help="first one sets the reference time")
    ap.add_argument("--smc-particles", type=int, default=4096)
    ap.add_argument("--smc-moves", type=int, default=10)
    ap.add_argument("--sup-starts", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--P", type=int, nargs="+", default=[1000])
    ap.add_argument("--acts", nargs="+", default=["relu", "tanh"])
    ap.add_argument("--gammas", nargs="+", type=float, default=[0.5, 1, 2, 4])
    ap.add_argument("--T", type=float, default=0.05)
    ap.add_argument("--rtol", type=float, default=0.01)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--sampled-P", type=int, default=100)
    ap.add_argument("--sampled-cap", type=float, default=300)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    a.P_list, a.P = a.P, a.P[0]
    if a.relu_samplers:
        return relu_samplers(a)
    X, y = mnist_split(a.P)
    rows = []
    for act in a.acts:
        for g in a.gammas:
            ks, row = [], dict(act=act, gamma=g, P=a.P, T=a.T, rtol=a.rtol, runs=[])
            for s in range(a.seeds):
                dt, m = concave(act, X, y, g, a.T, a.rtol, s)
                ks.append(m.kernel_)
                row["runs"].append(dict(seed=s, time_s=dt, converged=bool(m.converged_), reported_rel_err=m.kernel_rel_err_,
                                        n_samples=m.n_samples_, kish=m.kish_, stages=list(map(int, m.stages_))))
                print(act, g, "seed", s, f"{dt:.1f}s", row["runs"][-1], flush=True)
            if len(ks) >= 2:
                row["measured_rel_err"] = float(np.linalg.norm(ks[0] - ks[1]) / (np.sqrt(2) * np.linalg.norm(ks[0])))
                print(act, g, "measured rel err (2 seeds)", row["measured_rel_err"], flush=True)
            if a.sampled_P:
                Xs, ys = X[:a.sampled_P], y[:a.sampled_P]
                sm = sampled_capped(act, Xs, ys, g, a.T, a.sampled_cap)
                dt, mc = concave(act, Xs, ys, g, a.T, a.rtol, 0)
                k = sm.pop("kernel", None)
                if k is not None:
                    sm["rel_diff_to_concave"] = float(np.linalg.norm(np.asarray(k) - mc.kernel_) / np.linalg.norm(mc.kernel_))
                row["small"] = dict(P=a.sampled_P, sampled=sm, concave=dict(time_s=dt, converged=bool(mc.converged_),
                                                                           reported_rel_err=mc.kernel_rel_err_))
                print(act, g, "small P", row["small"], flush=True)
            rows.append(row)
            if a.out:
                with open(a.out, "w") as fh:
                    json.dump(dict(machine="2 shared cores (other helpers running)", rows=rows), fh, indent=1)


if __name__ == "__main__":
    main()
