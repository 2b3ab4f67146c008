"""exact_linear_posterior: Rust core vs the NumPy reference, and independent checks (GP limit,
Monte Carlo over the Gamma prior of the kernel scale, direct quadrature of the evidence,
a measurable feature-learning shift), plus argument validation."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, special

import adaptive_kernels as ak
from adaptive_kernels.reference.finite.exact import exact_linear_posterior as ref_exact

HYP = settings(max_examples=int(os.environ.get("AK_HYP_EXAMPLES", 60)), deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow])


def _net(sigma_w=1.0):
    return ak.MLP(depth=1, activation="linear", sigma_w=sigma_w, sigma_b=0.0)


def _close(a, b, rtol):
    """max |a - b| <= rtol max |b| (entries near 0 are judged on the array's scale)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= rtol * max(np.max(np.abs(b)), 1e-300), (a, b)


def _teacher(seed, P, d, Q, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    Xt = rng.standard_normal((Q, d))
    beta = rng.standard_normal(d)
    y = X @ beta / np.sqrt(d) + noise * rng.standard_normal(P)
    return X, y, Xt


# ---------------------------------------------------------------------------------------
# (a) Rust core == NumPy reference


@HYP
@given(seed=st.integers(0, 2**31), P=st.integers(1, 20), d=st.integers(1, 6), width=st.integers(1, 500),
       log_t=st.floats(-3.0, 0.0), param=st.sampled_from(["standard", "mean_field"]), n_out=st.sampled_from([None, 1, 2]),
       with_test=st.booleans(), gamma=st.floats(0.2, 5.0), sigma_w=st.floats(0.3, 2.5))
def test_matches_reference(seed, P, d, width, log_t, param, n_out, with_test, gamma, sigma_w):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    y = rng.standard_normal(P) if n_out is None else rng.standard_normal((P, n_out))
    Xt = rng.standard_normal((5, d)) if with_test else None
    T = 10.0**log_t
    got = ak.exact_linear_posterior(_net(sigma_w), X, y, Xt, width=width, temperature=T, parameterization=param,
                                    gamma=gamma)
    ref = ref_exact(X, y, Xt, sigma_w=sigma_w, width=width, temperature=T, parameterization=param, gamma=gamma)
    shape = (P,) if n_out is None else (P, n_out)
    assert got.train_mean.shape == got.train_var.shape == shape
    _close(got.train_mean, ref["train_mean"].reshape(shape), 1e-9)
    _close(got.train_var, ref["train_var"].reshape(shape), 1e-9)
    if with_test:
        assert got.mean.shape == got.var.shape == (5,) + shape[1:]
        _close(got.mean, ref["test_mean"].reshape(got.mean.shape), 1e-9)
        _close(got.var, ref["test_var"].reshape(got.var.shape), 1e-9)
    else:
        assert got.mean is None and got.var is None
    _close(got.kernel_scale_mean, ref["kernel_scale_mean"], 1e-9)
    _close(got.kernel_scale_std, ref["kernel_scale_std"], 1e-9)
    assert abs(got.log_evidence - ref["log_evidence"]) <= 1e-9 * max(1.0, abs(ref["log_evidence"]))
    assert np.all(got.train_var > 0)


def test_thread_count_and_result_fields():
    X, y, Xt = _teacher(0, 70, 5, 9)
    a = ak.exact_linear_posterior(_net(), X, y, Xt, width=30, temperature=0.01, n_threads=1)
    b = ak.exact_linear_posterior(_net(), X, y, Xt, width=30, temperature=0.01, n_threads=4)
    for f in ("mean", "var", "train_mean", "train_var"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert a.log_evidence == b.log_evidence
    assert (a.width, a.temperature, a.parameterization) == (30, 0.01, "standard")
    assert a.prior_scale == 1.0 and a.kappa == 0.01 and a.n_grid >= 2001
    with pytest.raises(Exception):
        a.width = 3  # frozen


# ---------------------------------------------------------------------------------------
# (b) independent checks


def test_huge_width_standard_is_the_nngp_gp():
    X, y, Xt = _teacher(1, 15, 4, 6)
    net, T = _net(1.4), 0.1
    post = ak.exact_linear_posterior(net, X, y, Xt, width=10**7, temperature=T)
    gp = ak.GaussianProcess(net, ridge=T).fit(X, y)
    mean, std = gp.predict(Xt, return_std=True)
    np.testing.assert_allclose(post.mean, mean, rtol=1e-5, atol=1e-5 * np.abs(mean).max())
    np.testing.assert_allclose(np.sqrt(post.var), std, rtol=1e-5)
    np.testing.assert_allclose(post.train_mean, gp.predict(X), rtol=1e-5, atol=1e-5 * np.abs(y).max())
    assert abs(post.kernel_scale_mean / net.sigma_w**2 - 1) < 1e-5
    # GP evidence with kernel s_w^2 K0 = nngp_kernel(net, X): log N(y; 0, K + T I)
    K = ak.nngp_kernel(net, X) + T * np.eye(len(y))
    le = -0.5 * (y @ np.linalg.solve(K, y) + np.linalg.slogdet(K)[1] + len(y) * np.log(2 * np.pi))
    assert abs(post.log_evidence - le) < 1e-4


def test_huge_width_mean_field_keeps_feature_learning():
    # At fixed gamma the likelihood is O(N) like the prior: u/c concentrates away from 1.
    X, y, _ = _teacher(2, 12, 3, 1, noise=0.0)
    post = ak.exact_linear_posterior(_net(), X, 3 * y, width=10**7, temperature=0.01, parameterization="mean_field",
                                     gamma=1.0)
    r = post.kernel_scale_mean / post.prior_scale
    assert r > 1.5 and post.kernel_scale_std / post.kernel_scale_mean < 1e-3


def _log_gp_evidence(lam, Ysq, n_out, u, kappa):
    """log prod_c N(y_c; 0, u K0 + kappa I) from the eigenvalues of K0 (vectorised in u)."""
    s = u[:, None] * lam[None, :] + kappa
    return -0.5 * np.sum(n_out * np.log(2 * np.pi * s) + Ysq[None, :] / s, axis=1)


def test_monte_carlo_over_the_gamma_prior():
    # Importance sampling: u ~ Gamma(N/2, scale 2c/N), weights = GP evidence p(y | u).
    X, y, Xt = _teacher(3, 10, 3, 3, noise=0.3)
    N, T, sw = 6, 0.2, 1.2
    post = ak.exact_linear_posterior(_net(sw), X, y, Xt, width=N, temperature=T)
    c = sw**2
    K0 = sw**2 * X @ X.T / X.shape[1]
    lam, V = np.linalg.eigh(K0)
    lam = np.clip(lam, 0, None)
    yk = V.T @ y
    A = (sw**2 * Xt @ X.T / X.shape[1]) @ V
    u = np.random.default_rng(1234).gamma(N / 2, 2 * c / N, size=10**6)
    logw = _log_gp_evidence(lam, yk**2, 1, u, T)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    assert 1 / np.sum(w**2) > 1e4  # effective sample size

    def check(f, exact):
        est = np.sum(w * f)
        se = np.sqrt(np.sum(w**2 * (f - est) ** 2))
        assert abs(est - exact) < 5 * se, (est, exact, se)
        return est, se

    check(u, post.kernel_scale_mean)
    rho = u[:, None] / (u[:, None] * lam[None, :] + T)            # mean at fixed u: A diag(rho) y_k
    for q in range(Xt.shape[0]):
        check(rho @ (A[q] * yk), post.mean[q])


def _brute_force_network(X, y, Xt, sigma_w, N, T, param, gamma, M=10**6, seed=7):
    """Importance sampling over the network's own parameters (prior draws of W and v, weights
    = the likelihood of the posterior's definition): checks the reduction to u, not just the
    u-integral. With several columns, each column gets its own first layer and all share v."""
    rng = np.random.default_rng(seed)
    Z = np.vstack([X, Xt])
    P, d = X.shape
    C = y.shape[1]
    fs, logws = [], []
    for _ in range(M // 250_000):
        m = 250_000
        v = rng.standard_normal((m, N))
        W = rng.standard_normal((m, C, N, d))
        h = sigma_w * np.einsum("mcnd,pd->mcnp", W, Z) / np.sqrt(d)
        f = np.einsum("mn,mcnp->mpc", v, h) * (sigma_w / np.sqrt(N) if param == "standard" else 1 / (gamma * N))
        beta = 1 / T if param == "standard" else N * gamma**2 / T
        logws.append(-0.5 * beta * np.sum((f[:, :P] - y) ** 2, axis=(1, 2)))
        fs.append(f[:, P:])
    logw, f = np.concatenate(logws), np.concatenate(fs)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    est = np.einsum("m,mqc->qc", w, f)
    se = np.sqrt(np.einsum("m,mqc->qc", w**2, (f - est) ** 2))
    return est, se


@pytest.mark.parametrize("param, n_out", [("standard", 1), ("mean_field", 1), ("standard", 2)])
def test_brute_force_over_network_parameters(param, n_out):
    rng = np.random.default_rng(11)
    X, Xt = rng.standard_normal((4, 2)), rng.standard_normal((2, 2))
    y = rng.standard_normal((4, n_out))
    sw, N, T, gamma = 1.3, 3, 0.5, 0.8
    post = ak.exact_linear_posterior(_net(sw), X, y, Xt, width=N, temperature=T, parameterization=param, gamma=gamma)
    est, se = _brute_force_network(X, y, Xt, sw, N, T, param, gamma)
    assert np.all(np.abs(est - post.mean) < 5 * se), ((est - post.mean) / se)


def test_log_evidence_is_the_one_dimensional_integral():
    X, y, _ = _teacher(4, 8, 2, 1)
    Y = np.stack([y, np.roll(y, 1)], axis=1)
    for param, N, T, gamma in [("standard", 3, 0.05, 1.0), ("mean_field", 40, 0.3, 0.5)]:
        post = ak.exact_linear_posterior(_net(0.9), X, Y, width=N, temperature=T, parameterization=param,
                                         gamma=gamma)
        c, kappa = (0.81, T) if param == "standard" else (1 / (gamma**2 * N), T / (N * gamma**2))
        K0 = 0.81 * X @ X.T / 2
        a, scale = N / 2, 2 * c / N

        def log_f(u):  # log[Gamma(u) p(Y | u)] by a dense solve, no eigendecomposition
            S = u * K0 + kappa * np.eye(len(y))
            ll = -0.5 * (np.sum(Y * np.linalg.solve(S, Y)) + 2 * np.linalg.slogdet(S)[1] + 2 * len(y) * np.log(2 * np.pi))
            return (a - 1) * np.log(u) - u / scale - a * np.log(scale) - special.gammaln(a) + ll

        shift = log_f(post.kernel_scale_mean)
        # quad on (0, inf) in pieces split around the bulk (it can miss a sharp peak otherwise)
        m, s = post.kernel_scale_mean, post.kernel_scale_std
        edges = [0.0] + [max(m + k * s, 1e-300) for k in (-8, -3, 3, 8) if m + k * s > 0] + [np.inf]
        val = sum(integrate.quad(lambda u: np.exp(log_f(u) - shift), lo, hi, epsabs=0, epsrel=1e-12, limit=500)[0]
                  for lo, hi in zip(edges[:-1], edges[1:]))
        assert abs(post.log_evidence - (shift + np.log(val))) < 1e-8, (param, post.log_evidence, shift + np.log(val))


def test_finite_width_shifts_the_mean_away_from_the_nngp_gp():
    # Sign-of-linear-teacher labels at P/N = 0.5 (P = 40, d = 80, T = 0.05; the set-up of the
    # theory digest, section 3.4, where the shift is ~7e-3). With d > P and T -> 0 the mean
    # interpolates for every u and the shift vanishes; it is largest for T ~ the eigenvalues of K0.
    X, y, Xt = _teacher(5, 40, 80, 50, noise=0.0)
    y = np.sign(y)
    net, T = _net(), 0.05
    post = ak.exact_linear_posterior(net, X, y, Xt, width=80, temperature=T)
    gp_mean = ak.GaussianProcess(net, ridge=T).fit(X, y).predict(Xt)
    rel = np.linalg.norm(post.mean - gp_mean) / np.linalg.norm(gp_mean)
    assert 1e-3 < rel < 0.5, rel


def test_multiple_outputs_share_the_kernel_scale():
    # Duplicated columns = one column with the likelihood squared (the u posterior sharpens).
    X, y, Xt = _teacher(6, 10, 3, 4)
    one = ak.exact_linear_posterior(_net(), X, y, Xt, width=5, temperature=0.05)
    two = ak.exact_linear_posterior(_net(), X, np.stack([y, y], 1), Xt, width=5, temperature=0.05)
    assert two.mean.shape == two.var.shape == (4, 2)
    np.testing.assert_array_equal(two.mean[:, 0], two.mean[:, 1])
    assert two.kernel_scale_std < one.kernel_scale_std


# ---------------------------------------------------------------------------------------
# (c) validation

X0, Y0 = np.ones((4, 2)), np.zeros(4)


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(net=ak.MLP(depth=2, activation="linear")), ValueError, "net"),
    (dict(net=ak.MLP(depth=1, activation="relu")), ValueError, "net"),
    (dict(net=ak.MLP(depth=1, activation="linear", sigma_b=0.1)), ValueError, "net"),
    (dict(net=ak.MLP(depth=1, activation="linear", sigma_w=0.0)), ValueError, "net"),
    (dict(net="linear"), TypeError, "net"),
    (dict(width=0), ValueError, "width"),
    (dict(width=2.5), TypeError, "width"),
    (dict(width=True), TypeError, "width"),
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(temperature=np.nan), ValueError, "temperature"),
    (dict(temperature=np.inf), ValueError, "temperature"),
    (dict(temperature="hot"), TypeError, "temperature"),
    (dict(gamma=0.0), ValueError, "gamma"),
    (dict(gamma=-2.0, parameterization="mean_field"), ValueError, "gamma"),
    (dict(parameterization="ntk"), ValueError, "parameterization"),
    (dict(X=np.ones(4)), ValueError, "X"),
    (dict(X=np.full((4, 2), np.nan)), ValueError, "X"),
    (dict(X=np.ones((4, 2), dtype=complex)), TypeError, "X"),
    (dict(y=np.zeros(3)), ValueError, "y"),
    (dict(y=np.zeros((4, 2, 1))), ValueError, "y"),
    (dict(y=None), TypeError, "y"),
    (dict(X_test=np.ones((3, 5))), ValueError, "X_test"),
    (dict(X_test=np.ones((0, 2))), ValueError, "X_test"),
    (dict(n_threads=0), ValueError, "n_threads"),
])
def test_bad_arguments_name_the_argument(kwargs, exc, name):
    args = dict(net=_net(), X=X0, y=Y0, X_test=None, width=3, temperature=0.1)
    args.update(kwargs)
    with pytest.raises(exc, match=f"^{name}"):
        ak.exact_linear_posterior(args.pop("net"), args.pop("X"), args.pop("y"), args.pop("X_test"), **args)
