"""ForwardBackwardKernels (Fischer et al. 2024), deep linear networks: the equations against the
NumPy reference, the Stein form, the variational (MAP) form, the first order of Zavatone-Veth
et al., the N -> inf limit, and the relations to KernelRenormalization and to the exact
posterior of a one-hidden-layer linear network."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import adaptive_kernels as ak
from adaptive_kernels.reference.theories import forward_backward as ref


def _data(P, d, seed=0, sign=True):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, d))
    y = X @ rng.standard_normal(d)
    return X, (np.sign(y) if sign else np.tanh(y)), rng.standard_normal((5, d))


def _sym(rng, P, scale):
    A = rng.standard_normal((P, P)) * scale
    return A + A.T


@settings(max_examples=25, deadline=None)
@given(P=st.integers(2, 8), g=st.floats(0.3, 2.0), seed=st.integers(0, 10_000))
def test_stein_form_of_the_backward_step_equals_the_closed_form(P, g, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((P, P + 2))
    C = A @ A.T / P + 0.1 * np.eye(P)
    Ct = _sym(rng, P, 0.05 / np.linalg.norm(C, 2) / g)   # proper tilted measure: 2 g |Ct C| < 1
    np.testing.assert_allclose(ref.backward_stein(C, Ct, g), ref.backward(C, Ct, g), atol=1e-10)


@settings(max_examples=6, deadline=None, database=None)
@given(depth=st.integers(1, 3), sw=st.floats(0.7, 1.3), sb=st.sampled_from([0.0, 0.4]),
       P=st.integers(3, 5), d=st.integers(3, 9), alpha=st.floats(0.1, 1.5), T=st.floats(0.05, 0.5),
       seed=st.integers(0, 1000))
def test_core_agrees_with_the_reference(depth, sw, sb, P, d, alpha, T, seed):
    X, y, Xt = _data(P, d, seed, sign=False)
    net = ak.MLP(depth=depth, activation="linear", sigma_w=sw, sigma_b=sb)
    N = P / alpha
    m = ak.ForwardBackwardKernels(net, width=N, temperature=T, n_threads=1).fit(X, y)
    assert m.converged_
    K0 = ref.input_kernel(X, sw, sb)
    Cs, Cts = ref.solve(K0, y, depth, sw ** 2, sb ** 2, T, N, n_anneal=6, tol=1e-12)
    for a, b in zip(m.kernels_, Cs):
        np.testing.assert_allclose(a, b, atol=1e-7 * np.abs(b).max())
    for a, b in zip(m.conjugates_, Cts):
        np.testing.assert_allclose(a, b, atol=1e-7 * np.abs(b).max() + 1e-12)
    mean, std = m.predict(Xt, return_std=True)
    Xj = np.vstack([X, Xt])
    rm, rv = ref.predict(ref.input_kernel(Xj, sw, sb), Cts, y, sw ** 2, sb ** 2, T)
    np.testing.assert_allclose(mean, rm[:, 0], atol=1e-7)
    np.testing.assert_allclose(std, np.sqrt(np.maximum(rv, 0)), atol=1e-6)
    # the perturbative method, too
    p = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="perturbative").fit(X, y)
    for a, b in zip(p.kernels_, ref.perturbative(K0, y, depth, sw ** 2, sb ** 2, T, N)[0]):
        np.testing.assert_allclose(a, b, atol=1e-12 * np.abs(b).max())


def test_solution_is_a_stationary_point_of_the_map_objective():
    """Eliminating Ct, the equations are the stationarity conditions of
    F = N/2 sum_l [tr(E^-1 D) - ln det(E^-1 D) - P] + data (the Wishart rate function): an
    independent check of the forward, backward and terminal maps and their signs."""
    X, y, _ = _data(6, 9, 3)
    net = ak.MLP(depth=2, activation="linear", sigma_w=1.1, sigma_b=0.3)
    N, T = 8.0, 0.1
    m = ak.ForwardBackwardKernels(net, width=N, temperature=T).fit(X, y)
    K0 = ref.input_kernel(X, 1.1, 0.3)
    args = (K0, y, 1.21, 0.09, T, N)
    rng = np.random.default_rng(0)
    h = 1e-5

    def slope(Cs, layer, E):
        plus = [C + h * E * (l == layer) for l, C in enumerate(Cs)]
        minus = [C - h * E * (l == layer) for l, C in enumerate(Cs)]
        return (ref.objective(plus, *args) - ref.objective(minus, *args)) / (2 * h)

    K = ref.nngp_kernels(K0, 2, 1.21, 0.09)
    for layer in range(2):
        E = _sym(rng, 6, 1.0)
        # the NNGP kernels are not stationary (the data pull on the last layer), the MAP kernels are
        scale = abs(slope(K, 1, E))
        assert scale > 1e-2
        assert abs(slope(m.kernels_, layer, E)) < 1e-6 * scale


def test_perturbative_is_zavatone_veth_first_order_kernel():
    """g = 1, b = 0: C^l = K + (l/N) K Phi K, Phi = G^-1 (y y^T - G) G^-1 (digest §3.2, §5.3)."""
    X, y, _ = _data(10, 7, 1)
    N, T = 30.0, 0.2
    m = ak.ForwardBackwardKernels(ak.MLP(depth=3, activation="linear"), width=N, temperature=T,
                                  method="perturbative").fit(X, y)
    K = X @ X.T / 7
    G = K + T * np.eye(10)
    Gi = np.linalg.inv(G)
    Phi = Gi @ (np.outer(y, y) - G) @ Gi
    for l, C in enumerate(m.kernels_, start=1):
        np.testing.assert_allclose(C, K + l / N * K @ Phi @ K, atol=1e-12)
    assert m.report_.solver == "perturbative" and m.converged_


def test_infinite_width_is_the_nngp_and_large_width_the_first_order():
    X, y, Xt = _data(12, 6, 2)
    net = ak.MLP(depth=2, activation="linear", sigma_w=1.2, sigma_b=0.2)
    T = 0.1
    inf = ak.ForwardBackwardKernels(net, width=np.inf, temperature=T).fit(X, y)
    gp = ak.GaussianProcess(net, ridge=T).fit(X, y)
    for C, K in zip(inf.kernels_, inf.nngp_kernels_):
        np.testing.assert_allclose(C, K, atol=1e-14)
    np.testing.assert_allclose(inf.kernel_, ak.nngp_kernel(net, X), atol=1e-12)
    m, s = inf.predict(Xt, return_std=True)
    gm, gs = gp.predict(Xt, return_std=True)
    np.testing.assert_allclose(m, gm, atol=1e-10)
    np.testing.assert_allclose(s, gs, atol=1e-8)
    # full - NNGP = first order + O(1/N^2): the relative error falls like 1/N
    rel = []
    for N in (1e3, 1e4):
        full = ak.ForwardBackwardKernels(net, width=N, temperature=T).fit(X, y)
        pert = ak.ForwardBackwardKernels(net, width=N, temperature=T, method="perturbative").fit(X, y)
        rel.append(np.abs(full.kernel_ - pert.kernel_).max() / np.abs(pert.kernel_ - inf.kernel_).max())
        np.testing.assert_allclose(full.predict(Xt), pert.predict(Xt), atol=1e-3 * 1e3 / N)
    assert rel[0] < 0.05 and 7 < rel[0] / rel[1] < 13, rel


@pytest.mark.parametrize("alpha, lo, hi", [(0.1, 4.2, 4.5), (0.5, 3.7, 3.95), (1.0, 3.45, 3.75)])
def test_map_predictor_overshoots_the_exact_posterior_mean(alpha, lo, hi):
    """One hidden layer (exact posterior known): the GP on the MAP kernel shifts the prediction
    from the NNGP one in the exact direction but by 3.6-4.4x too much (digest §3.4: 4.35 at
    alpha = 0.1, 3.82 at 0.5; confirmed), so it is further from the exact mean than the NNGP."""
    X, y, Xt = _data(40, 80, 0)
    net = ak.MLP(depth=1, activation="linear")
    N, T = 40 / alpha, 0.05
    ex = ak.exact_linear_posterior(net, X, y, Xt, width=int(round(N)), temperature=T)
    gp = ak.GaussianProcess(net, ridge=T).fit(X, y)
    m = ak.ForwardBackwardKernels(net, width=N, temperature=T).fit(X, y)
    for pred, g, exact in ((m.predict(X), gp.predict(X), ex.train_mean), (m.predict(Xt), gp.predict(Xt), ex.mean)):
        a, b = pred - g, exact - g
        ratio = np.linalg.norm(a) / np.linalg.norm(b)
        assert lo < ratio < hi, ratio
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.999
        assert np.linalg.norm(pred - exact) > np.linalg.norm(g - exact)
    # Kernel renormalization (the saddle point of the exact scale mixture) is closer than either
    kr = ak.KernelRenormalization(net, width=N, temperature=T).fit(X, y)
    assert np.linalg.norm(kr.predict(X) - ex.train_mean) < 0.3 * np.linalg.norm(gp.predict(X) - ex.train_mean)


def test_relation_to_kernel_renormalization():
    """Deep linear, g = 1, b = 0, first order in 1/N: the MAP kernel increment of layer l is
    C^l - C^{l-1} = (1/N) K Phi K, kernel renormalization's is (Q_l - 1) K with
    Q_l - 1 = tr(K Phi) / N = tr(K^{-1} (C^l - C^{l-1})): the same trace, but the MAP kernel puts
    it in the direction K Phi K (aligned with the target) where kernel renormalization rescales
    K as a whole, P times more in the mean. Checked at N = 1e4 P; at finite alpha the two
    predictors' shifts from the NNGP differ by a factor 3.3-4 (measured, L = 1..3)."""
    X, y, _ = _data(8, 12, 4)
    P, T = 8, 0.1
    K = X @ X.T / 12
    for depth in (1, 3):
        net = ak.MLP(depth=depth, activation="linear")
        N = 1e4 * P
        kr = ak.KernelRenormalization(net, width=N, temperature=T).fit(X, y)
        fb = ak.ForwardBackwardKernels(net, width=N, temperature=T).fit(X, y)
        prev = [K] + fb.kernels_[:-1]
        for q, C, Cp in zip(kr.Q_, fb.kernels_, prev):
            tr = np.trace(np.linalg.solve(K, C - Cp))
            np.testing.assert_allclose(q - 1, tr, rtol=1e-3)
        # CKA: a scalar rescaling keeps the NNGP alignment, the MAP kernels gain alignment with depth
        assert np.all(np.diff(fb.alignment_) > 0) and fb.alignment_[0] > fb.nngp_alignment_[0]
        np.testing.assert_allclose(ak.cka(kr.kernel_, np.outer(y, y)), fb.nngp_alignment_[-1], rtol=1e-9)


def test_alignment_attribute_is_cka_with_the_target():
    X, y, _ = _data(20, 10, 5)
    m = ak.ForwardBackwardKernels(ak.MLP(depth=2, activation="linear"), width=10, temperature=0.05).fit(X, y)
    for a, C in zip(m.alignment_, m.kernels_):
        assert a == pytest.approx(ak.cka(C, np.outer(y, y)), rel=1e-12)
    assert np.all(m.alignment_ > m.nngp_alignment_)


def test_annealing_at_large_alpha_stays_psd_and_reports_stages():
    X, y, _ = _data(30, 40, 6)
    m = ak.ForwardBackwardKernels(ak.MLP(depth=3, activation="linear"), width=5, temperature=0.05).fit(X, y)
    assert m.converged_ and m.residual_ < 1e-10
    st_ = m.report_.stages
    assert st_[-1] == pytest.approx(5.0) and np.all(np.abs(st_) >= 5.0 - 1e-9)
    for C in m.kernels_:
        assert np.linalg.eigvalsh(C).min() > 0
    # the residual of the equations at the solution, by the reference
    K0 = ref.input_kernel(X)
    for r in ref.residual(m.kernels_, K0, y, 1.0, 0.0, 0.05, 5.0):
        assert np.abs(r).max() < 1e-8


def test_width_path_matches_separate_fits():
    X, y, Xt = _data(15, 8, 7)
    base = ak.ForwardBackwardKernels(ak.MLP(depth=2, activation="linear", sigma_b=0.1), width=10, temperature=0.1)
    p = base.path(X, y, widths=[np.inf, 100, 30, 10])
    assert p.converged.all() and list(p.values) == [np.inf, 100, 30, 10]
    for m, w in zip(p.models, p.values):
        one = ak.ForwardBackwardKernels(base.net, width=w, temperature=0.1).fit(X, y)
        np.testing.assert_allclose(m.kernel_, one.kernel_, atol=1e-9)
        np.testing.assert_allclose(m.predict(Xt), one.predict(Xt), atol=1e-9)


def test_bad_arguments_are_named():
    X, y, _ = _data(6, 3, 0)
    with pytest.raises(ValueError, match="^activation: "):   # full nonlinear: built-in activations only
        ak.ForwardBackwardKernels(ak.MLP(depth=1, activation=np.tanh), width=5, temperature=0.1).fit(X, y)
    with pytest.raises(ValueError, match="^net: "):
        ak.ForwardBackwardKernels(ak.MLP(depth=0, activation="linear"), width=5, temperature=0.1).fit(X, y)
    with pytest.raises(ValueError, match="^method: "):
        ak.ForwardBackwardKernels(ak.MLP(depth=1, activation="linear"), width=5, temperature=0.1, method="exact").fit(X, y)
    with pytest.raises(ValueError, match="^width: "):
        ak.ForwardBackwardKernels(ak.MLP(depth=1, activation="linear"), width=0, temperature=0.1).fit(X, y)
    with pytest.raises(ValueError, match="^start: "):
        ak.ForwardBackwardKernels(ak.MLP(depth=1, activation="linear"), width=5, temperature=0.1, start=0.5).fit(X, y)


def test_against_sampled_networks_deep_linear():
    """Deep linear net (L = 2, alpha = P/N = 1), posterior sampled by MALA in standard scaling:
    the posterior-mean layer kernels ``E[C^l | y]`` gain alignment with y y^T; the first-order
    (perturbative, = Zavatone-Veth) kernels reproduce the gain, the full MAP kernels point the
    same way but have about half to two thirds of it (measured: benches/README.md)."""
    P, d, T = 20, 30, 0.05
    rng = np.random.default_rng(0)
    X = rng.standard_normal((P, d))
    y = np.sign(X @ rng.standard_normal(d))
    Y = np.outer(y, y)
    net = ak.MLP(depth=2, activation="linear")
    s = ak.sample_posterior(net, X, y, width=20, temperature=T, n_chains=4, n_samples=1500, thin=5, seed=1,
                            n_threads=1)
    full = ak.ForwardBackwardKernels(net, width=20, temperature=T).fit(X, y)
    pert = ak.ForwardBackwardKernels(net, width=20, temperature=T, method="perturbative").fit(X, y)
    for l in range(2):
        K, S = full.nngp_kernels_[l], s.kernels[l]   # g = 1, b = 0: C^l = phi phi^T / N
        gain = ak.cka(S, Y) - full.nngp_alignment_[l]
        assert gain > 0.1
        assert abs(pert.alignment_[l] - full.nngp_alignment_[l] - gain) < 0.15 * gain
        assert 0.3 * gain < full.alignment_[l] - full.nngp_alignment_[l] < 0.85 * gain
        dS, dF = S - K, full.kernels_[l] - K
        assert np.sum(dS * dF) / np.linalg.norm(dS) / np.linalg.norm(dF) > 0.8


def test_damped_iteration_finds_a_spurious_non_psd_fixed_point_annealing_does_not():
    """Digest §3.4 (confirmed, P = N = 60): plain damped iteration of the equations converges to
    a fixed point with a negative kernel eigenvalue (about -0.0023) and an improper tilted
    measure; width annealing with non-PSD iterates rejected finds the PSD solution."""
    rng = np.random.default_rng(0)
    P, d, T, N = 60, 80, 0.05, 60.0
    X = rng.standard_normal((P, d))
    y = np.sign(X @ rng.standard_normal(d))
    K0 = ref.input_kernel(X)
    m = ak.ForwardBackwardKernels(ak.MLP(depth=1, activation="linear"), width=N, temperature=T).fit(X, y)
    assert m.converged_ and np.linalg.eigvalsh(m.kernel_).min() > 0.01
    C = K0.copy()
    for _ in range(3000):
        F = ref.forward(K0, ref.terminal(C, y, T, N), 1.0, 0.0)
        if np.abs(F - C).max() < 1e-11:
            break
        C = 0.5 * C + 0.25 * (F + F.T)
    assert np.abs(F - C).max() < 1e-10                      # a fixed point of the equations ...
    assert np.linalg.eigvalsh(C).min() < -1e-3              # ... that is not PSD
    tilt = np.eye(P) - 2 * K0 @ ref.terminal(C, y, T, N)     # improper tilted measure
    assert np.linalg.eigvals(tilt).real.min() < 0
