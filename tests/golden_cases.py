"""Fixed, seeded calls of every public function and estimator, for the no-behaviour-change test.

``tests/data/golden.npz`` holds their outputs as computed by main at 4240376 (before the
restructuring of issue #13, with that version's API: the calls below were renamed since, not
changed: ``free_energy_``/``alpha_`` are ``action_``/``dual_coef_``, ``objective`` is ``action``,
``path`` is an instance method, ``tilted_moments`` got the core's sampler defaults so the old
``thin=1, step_size=0.1`` are passed explicitly). ``test_golden.py`` recomputes them with the
current API. Each case returns a flat dict of arrays (or scalars); keys are stored as
``case/field``.
"""
from __future__ import annotations

import warnings

import numpy as np


def _data(P=8, d=5, Q=5, C=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    Xt = rng.standard_normal((Q, d))
    y = np.tanh(X[:, 0] + 0.5 * X[:, 1]) if C == 1 else np.tanh(X[:, :C])
    return X, y, Xt


def lazy_kernels(ak):
    X, _, Xt = _data()
    out = {}
    nets = {
        "relu2": ak.MLP(depth=2, activation="relu", sigma_w=1.3, sigma_b=0.2),
        "erf2": ak.MLP(depth=2, activation="erf", sigma_w=1.5, sigma_b=0.1),
        "tanh1": ak.MLP(depth=1, activation="tanh", sigma_w=1.2, sigma_b=0.3),
        "gelu1": ak.MLP(depth=1, activation="gelu"),
        "softplus2": ak.MLP(depth=2, activation="softplus", sigma_b=0.1),
        "linear3": ak.MLP(depth=3, activation="linear", sigma_w=0.9, sigma_b=0.5),
        "sin1": ak.MLP(depth=1, activation=np.sin, activation_derivative=np.cos),
        "relu2q": ak.MLP(depth=2, activation="relu", method="quadrature"),
    }
    for name, net in nets.items():
        K, Th = ak.lazy_kernels(net, X, Xt)
        out[f"{name}_K"], out[f"{name}_Th"] = K, Th
        out[f"{name}_Kxx"] = ak.nngp_kernel(net, X)
        out[f"{name}_diag_nngp"] = ak.kernel_diagonal(net, Xt, kernel="nngp")
        out[f"{name}_diag_ntk"] = ak.kernel_diagonal(net, Xt, kernel="ntk")
    return out


def predictors(ak):
    X, y, Xt = _data(P=12)
    net = ak.MLP(depth=2, activation="relu", sigma_b=0.1)
    out = {}
    gp = ak.GaussianProcess(net, ridge=0.05).fit(X, y)
    out["gp_mean"], out["gp_std"] = gp.predict(Xt, return_std=True)
    out["gp_cov"] = gp.predict(Xt, return_cov=True)[1]
    out["gp_lml"] = gp.log_marginal_likelihood_
    out["gp_ntk_mean"] = ak.GaussianProcess(net, kernel="ntk", ridge=0.1).fit(X, y).predict(Xt)
    out["kr_mean"] = ak.KernelRidge(net, ridge=0.01).fit(X, y).predict(Xt)
    flow = ak.NTKGradientFlow(net, lr=0.5, time=3.0).fit(X, np.stack([y, -y], 1))
    out["flow_mean"] = flow.predict(Xt)
    out["flow_times"] = flow.predict(Xt, time=[0.0, 1.0, np.inf])
    return out


def alignment(ak):
    X, y, Xt = _data(P=10)
    net = ak.MLP(depth=1, activation="erf")
    K = ak.nngp_kernel(net, X)
    K2 = ak.ntk_kernel(net, X)
    return {"ka": ak.kernel_alignment(K, y), "cka": ak.cka(K, K2)}


def exact_linear(ak):
    X, y, Xt = _data(P=6, d=4)
    net = ak.MLP(depth=1, activation="linear", sigma_w=1.1)
    out = {}
    for par in ("standard", "mean_field"):
        r = ak.exact_linear_posterior(net, X, y, Xt, width=7, temperature=0.2, parameterization=par, gamma=0.7)
        for f in ("mean", "var", "train_mean", "train_var", "kernel_scale_mean", "kernel_scale_std", "log_evidence"):
            out[f"{par}_{f}"] = getattr(r, f)
    return out


def finite(ak):
    X, y, Xt = _data(P=6, d=3)
    net = ak.MLP(depth=1, activation="tanh")
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = ak.sample_posterior(net, X, y, Xt, width=6, temperature=0.1, n_chains=2, n_samples=40, burn_in=20,
                                step_size=1e-2, seed=3, n_threads=2)
        g = ak.train_gd(net, X, y, Xt, width=6, weight_decay=1e-2, lr=0.05, steps=300, n_ensemble=2, seed=1,
                        n_threads=2)
        gm = ak.train_gd(net, X, y, Xt, width=6, weight_decay=1e-2, lr=0.02, steps=200, parameterization="mean_field",
                         gamma=0.5, seed=2, n_threads=1)
    for f in ("mean", "var", "train_mean", "train_var", "readout_spectrum", "input_spectrum", "acceptance_rate",
              "step_size", "final_theta"):
        out[f"sample_{f}"] = getattr(s, f)
    out["sample_kernel0"] = s.kernels[0]
    for f in ("theta", "train_output", "test_output", "ntk", "grad_rms"):
        out[f"gd_{f}"] = getattr(g, f)
        out[f"gdmf_{f}"] = getattr(gm, f)
    out["gd_feature0"] = g.feature_kernels[0]
    out["gd_gradient0"] = g.gradient_kernels[0]
    return out


def kernel_renormalization(ak):
    X, y, Xt = _data(P=10, d=4)
    out = {}
    cases = {
        "relu2": (ak.MLP(depth=2, activation="relu", sigma_b=0.1), 5.0, 0.1, "auto"),
        "erf1": (ak.MLP(depth=1, activation="erf", sigma_w=1.2), 4.0, 0.05, "auto"),
        "erf1_chol": (ak.MLP(depth=1, activation="erf", sigma_w=1.2), 4.0, 0.05, "cholesky"),
        "lin2": (ak.MLP(depth=2, activation="linear"), [3.0, 6.0], 0.2, "auto"),
    }
    for name, (net, width, T, solver) in cases.items():
        m = ak.KernelRenormalization(net, width=width, temperature=T, solver=solver).fit(X, y)
        out[f"{name}_Q"] = m.Q_
        out[f"{name}_action"] = m.action_
        out[f"{name}_n_iter"] = m.n_iter_
        out[f"{name}_mean"], out[f"{name}_std"] = m.predict(Xt, return_std=True)
        out[f"{name}_dual"] = m.dual_coef_
        a, g = m.action(np.asarray(m.Q_) * 1.1)
        out[f"{name}_action_at"], out[f"{name}_grad_at"] = a, g
    net = cases["relu2"][0]
    p = ak.KernelRenormalization(net, width=50.0, temperature=0.1).path(X, y, widths=[50.0, 20.0, 5.0], X_test=Xt,
                                                                        y_test=np.tanh(Xt[:, 0]))
    out["path_Q"], out["path_action"], out["path_test_loss"] = p.attribute("Q_"), p.action, p.test_loss
    out["path_nngp_test_loss"] = p.nngp_test_loss
    return out


def mean_field(ak):
    X, y, Xt = _data(P=6, d=4)
    out = {}
    lin1 = ak.MLP(depth=1, activation="linear")
    lin2 = ak.MLP(depth=2, activation="linear", sigma_w=1.1)
    linb = ak.MLP(depth=2, activation="linear", sigma_b=0.3)
    for name, net, solver in (("cf1", lin1, "closed_form"), ("cf2", lin2, "closed_form"),
                              ("lb1", lin1, "lbfgs"), ("lbb", linb, "lbfgs")):
        m = ak.BayesianMeanField(net, gamma=1.5, temperature=0.1, width=20, solver=solver).fit(X, y)
        for l, k in enumerate(m.kernels_):
            out[f"{name}_kernel{l}"] = k
            out[f"{name}_conj{l}"] = m.conjugates_[l]
        out[f"{name}_action"] = m.action_
        out[f"{name}_dual"] = m.dual_coef_
        out[f"{name}_mean"], out[f"{name}_std"] = m.predict(Xt, return_std=True)
        F, G = m.action(m.kernels_)
        out[f"{name}_F"] = F
        out[f"{name}_G0"] = G[0]
    p = ak.BayesianMeanField(lin2, temperature=0.1).path(X, y, gammas=[0.5, 1.0, 2.0], X_test=Xt,
                                                         y_test=np.tanh(Xt[:, 0]))
    assert np.all(p.nngp_test_loss == p.nngp_test_loss[0])   # one temperature: one lazy baseline
    out["path_action"], out["path_test_loss"], out["path_nngp"] = p.action, p.test_loss, p.nngp_test_loss[0]
    return out


def mean_field_sampled(ak):
    X, y, Xt = _data(P=5, d=3)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, net, g in (("tanh1", ak.MLP(depth=1, activation="tanh"), 1.0),
                             ("relu2", ak.MLP(depth=2, activation="relu"), 0.5)):
            m = ak.BayesianMeanField(net, gamma=g, temperature=0.1, width=30, n_chains=4, n_samples=200, burn_in=100,
                                     seed=5, n_threads=2).fit(X, y)
            for l, k in enumerate(m.kernels_):
                out[f"{name}_kernel{l}"] = k
                out[f"{name}_conj{l}"] = m.conjugates_[l]
            out[f"{name}_dual"] = m.dual_coef_
            out[f"{name}_n_iter"] = m.n_iter_
            out[f"{name}_mean"], out[f"{name}_std"] = m.predict(Xt, return_std=True)
            out[f"{name}_ess"] = m.ess_
            out[f"{name}_chain_radius"] = m.chain_radius_
        t = ak.tilted_moments(np.eye(3) + 0.3, -0.5 * np.outer([1.0, -0.5, 0.2], [1.0, -0.5, 0.2]), activation="tanh",
                              n_chains=2, n_samples=300, burn_in=100, thin=1, step_size=0.1, seed=2, n_threads=2)
    out["tilt_phi2"], out["tilt_h2"], out["tilt_acc"], out["tilt_ess"] = t.phi2, t.h2, t.acceptance, t.ess
    return out


def datasets(ak):
    d = ak.datasets.load_digits(classes=(3, 8), n_train=20, n_test=10, seed=1)
    t = ak.datasets.teacher_student("single_index", n_train=10, n_test=5, dim=4, seed=2)
    return {"digits_X": d.X_train, "digits_y": d.y_train, "digits_Xt": d.X_test, "ts_X": t.X_train,
            "ts_y": t.y_train, "ts_yt": t.y_test}


CASES = {f.__name__: f for f in (lazy_kernels, predictors, alignment, exact_linear, finite, kernel_renormalization,
                                 mean_field, mean_field_sampled, datasets)}


def run_all(ak) -> dict:
    out = {}
    for cname, fn in CASES.items():
        for k, v in fn(ak).items():
            out[f"{cname}/{k}"] = np.asarray(v, dtype=float)
    return out


if __name__ == "__main__":   # record: python tests/golden_cases.py tests/data/golden.npz
    import sys

    import adaptive_kernels as ak
    np.savez_compressed(sys.argv[1], **run_all(ak))
