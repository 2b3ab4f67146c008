"""NNGP / NTK kernels of the Rust core: agreement with the NumPy reference, closed forms vs
quadrature, known limits, finite-width Monte Carlo, symmetry/PSD, thread independence."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import adaptive_kernels as ak
from adaptive_kernels.reference.kernels import lazy as ref

ACTS = ["linear", "relu", "erf", "tanh", "gelu", "softplus"]


def sin_deriv(x):
    return np.cos(x)


# A custom callable activation, with and without an explicit derivative.
CUSTOM = {"sin+deriv": (np.sin, sin_deriv), "sin+fd": (np.sin, None)}


def ref_kernels(net, X1, X2=None):
    kw = dict(depth=net.depth, activation=net.activation, sigma_w=net.sigma_w, sigma_b=net.sigma_b,
              method=net.method, order=net.quadrature_order, derivative=net.activation_derivative)
    return ref.nngp_kernel(X1, X2, **kw), ref.ntk_kernel(X1, X2, **kw)


def assert_rel(a, b, rel):
    scale = max(np.abs(b).max(), 1e-300)
    np.testing.assert_allclose(a, b, rtol=rel, atol=rel * scale)


@settings(max_examples=60)
@given(
    act=st.sampled_from(ACTS + list(CUSTOM)),
    depth=st.integers(0, 5),
    p1=st.integers(1, 7),
    p2=st.integers(1, 5),
    d=st.integers(1, 6),
    sigma_w=st.floats(0.3, 2.0),
    sigma_b=st.one_of(st.just(0.0), st.floats(0.1, 1.0)),
    with_x2=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_rust_matches_numpy_reference(act, depth, p1, p2, d, sigma_w, sigma_b, with_x2, seed):
    """(a)+(b)+(c): Rust core == NumPy reference to 1e-10 relative, every activation, depth 0..5."""
    rng = np.random.default_rng(seed)
    X1 = rng.standard_normal((p1, d))
    X2 = rng.standard_normal((p2, d)) if with_x2 else None
    if act in CUSTOM:
        phi, dphi = CUSTOM[act]
        net = ak.MLP(depth=depth, activation=phi, activation_derivative=dphi, sigma_w=sigma_w, sigma_b=sigma_b)
    else:
        net = ak.MLP(depth=depth, activation=act, sigma_w=sigma_w, sigma_b=sigma_b)
    K, Th = ak.lazy_kernels(net, X1, X2)
    Kr, Thr = ref_kernels(net, X1, X2)
    assert K.shape == Th.shape == (p1, p2 if with_x2 else p1)
    assert_rel(K, Kr, 1e-10)
    assert_rel(Th, Thr, 1e-10)
    np.testing.assert_array_equal(ak.nngp_kernel(net, X1, X2), K)
    np.testing.assert_array_equal(ak.ntk_kernel(net, X1, X2), Th)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("sigma_b", [0.0, 0.5])
def test_symmetric_and_psd(act, sigma_b):
    X = np.random.default_rng(1).standard_normal((40, 6))
    for depth in range(4):
        net = ak.MLP(depth=depth, activation=act, sigma_w=1.3, sigma_b=sigma_b)
        K, Th = ak.lazy_kernels(net, X)
        for M in (K, Th):
            np.testing.assert_array_equal(M, M.T)
            w = np.linalg.eigvalsh(M)
            assert w.min() >= -1e-10 * w.max()
        # NTK dominates the NNGP kernel (Th^L = K^L + PSD term)
        assert np.all(np.linalg.eigvalsh(Th - K) >= -1e-10 * np.abs(Th).max())


@pytest.mark.parametrize("act", ["relu", "tanh", "erf"])
def test_cross_kernel_is_transpose(act):
    """The polar rule is symmetric under swapping the two inputs: K(X1, X2) = K(X2, X1)^T."""
    rng = np.random.default_rng(2)
    X1, X2 = rng.standard_normal((9, 4)), rng.standard_normal((6, 4))
    net = ak.MLP(depth=3, activation=act, method="quadrature", sigma_b=0.2)
    K12, T12 = ak.lazy_kernels(net, X1, X2)
    K21, T21 = ak.lazy_kernels(net, X2, X1)
    assert_rel(K12, K21.T, 1e-12)
    assert_rel(T12, T21.T, 1e-12)


def test_cross_block_matches_full_kernel():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((12, 5))
    net = ak.MLP(depth=2, activation="tanh", sigma_b=0.1)
    K, Th = ak.lazy_kernels(net, X)
    Kc, Thc = ak.lazy_kernels(net, X[:7], X[7:])
    assert_rel(Kc, K[:7, 7:], 1e-12)
    assert_rel(Thc, Th[:7, 7:], 1e-12)


@pytest.mark.parametrize("sigma_w,sigma_b", [(1.0, 0.0), (1.7, 0.4)])
def test_depth_zero_is_linear_kernel(sigma_w, sigma_b):
    rng = np.random.default_rng(4)
    X1, X2 = rng.standard_normal((8, 5)), rng.standard_normal((3, 5))
    net = ak.MLP(depth=0, activation="tanh", sigma_w=sigma_w, sigma_b=sigma_b)
    lin = sigma_w**2 * X1 @ X2.T / 5 + sigma_b**2
    np.testing.assert_allclose(ak.nngp_kernel(net, X1, X2), lin, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(ak.ntk_kernel(net, X1, X2), lin, rtol=1e-14, atol=1e-14)


def test_linear_network_kernel_closed_form():
    """Deep linear net: K^L = sigma_w^{2L} K^0 + sigma_b^2 sum_l sigma_w^{2l}; NTK = (L+1) K^L w/o bias."""
    X = np.random.default_rng(5).standard_normal((10, 3))
    sw, L = 1.3, 4
    K0 = sw**2 * X @ X.T / 3
    net = ak.MLP(depth=L, activation="linear", sigma_w=sw)
    K, Th = ak.lazy_kernels(net, X)
    assert_rel(K, sw ** (2 * L) * K0, 1e-13)
    assert_rel(Th, (L + 1) * sw ** (2 * L) * K0, 1e-13)


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_closed_forms_match_quadrature(act):
    """(d) Closed forms (arc-cosine, Williams' erf kernel) vs the independent quadrature path."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((15, 4))
    order = 32 if act == "relu" else 96
    closed = ak.MLP(depth=2, activation=act, sigma_w=1.2, sigma_b=0.3)
    quad = ak.MLP(depth=2, activation=act, sigma_w=1.2, sigma_b=0.3, method="quadrature", quadrature_order=order)
    Kc, Tc = ak.lazy_kernels(closed, X)
    Kq, Tq = ak.lazy_kernels(quad, X)
    assert_rel(Kq, Kc, 1e-8)
    assert_rel(Tq, Tc, 1e-8)


def test_quadrature_order_accuracy():
    """Error of the quadrature path vs the erf closed form falls with the order (measured:
    ~1e-6 at q=32, ~1e-9 at q=64, ~1e-11 at q=96 for unit-scale inputs)."""
    X = np.random.default_rng(7).standard_normal((10, 4))
    exact, exact_t = ak.lazy_kernels(ak.MLP(depth=2, activation="erf", sigma_w=1.5), X)
    errs = []
    for q in (16, 32, 64, 96):
        K, Th = ak.lazy_kernels(ak.MLP(depth=2, activation="erf", sigma_w=1.5, method="quadrature",
                                       quadrature_order=q), X)
        errs.append(max(np.abs(K - exact).max(), np.abs(Th - exact_t).max()) / np.abs(exact_t).max())
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-9, errs
    # relu: exact radially, spectrally accurate in angle (pieces end at the kinks)
    Kr = ak.nngp_kernel(ak.MLP(depth=2, activation="relu", method="quadrature", quadrature_order=32), X)
    assert_rel(Kr, ak.nngp_kernel(ak.MLP(depth=2, activation="relu"), X), 1e-12)


def test_custom_callable_relu_equals_builtin():
    X = np.random.default_rng(8).standard_normal((10, 4))
    builtin = ak.lazy_kernels(ak.MLP(depth=3, activation="relu", sigma_w=1.4), X)
    step = lambda x: (x > 0).astype(float)  # noqa: E731
    custom = ak.lazy_kernels(ak.MLP(depth=3, activation=lambda x: np.maximum(x, 0), activation_derivative=step,
                                    sigma_w=1.4), X)
    fd = ak.lazy_kernels(ak.MLP(depth=3, activation=lambda x: np.maximum(x, 0), sigma_w=1.4), X)
    for a, b in zip(custom, builtin):
        assert_rel(a, b, 1e-12)
    assert_rel(fd[0], builtin[0], 1e-12)
    assert_rel(fd[1], builtin[1], 1e-8)  # central differences for phi'


def _empirical_ntk(X, depth, act, dact, sigma_w, sigma_b, width, rng):
    """NTK of one random finite MLP in NTK parameterization, by explicit backpropagation.

    h^1 = sigma_w W^0 x/sqrt(d) + sigma_b b^0, h^{l+1} = sigma_w W^l phi(h^l)/sqrt(N) + sigma_b b^l,
    f = h^{L+1} (one output), all parameters N(0, 1). Th(x, x') = sum_theta df/dtheta df/dtheta.
    """
    P, d = X.shape
    Ws, bs, hs, acts = [], [], [], [X]
    fan_in = d
    for _ in range(depth):
        W = rng.standard_normal((width, fan_in))
        b = rng.standard_normal(width)
        h = sigma_w * acts[-1] @ W.T / np.sqrt(fan_in) + sigma_b * b
        Ws.append(W), hs.append(h), acts.append(act(h))
        fan_in = width
    w_out = rng.standard_normal(fan_in)
    # readout layer: df/dw_out = sigma_w phi(h^L)/sqrt(N), df/db = sigma_b
    Th = sigma_w**2 * acts[-1] @ acts[-1].T / fan_in + sigma_b**2
    delta = np.tile(sigma_w * w_out / np.sqrt(fan_in), (P, 1))  # df/dphi(h^L), (P, N)
    for layer in reversed(range(depth)):
        delta = delta * dact(hs[layer])  # df/dh^{l+1}
        inp, n_in = acts[layer], acts[layer].shape[1]
        Th += (delta @ delta.T) * (sigma_w**2 * inp @ inp.T / n_in + sigma_b**2)
        delta = sigma_w * delta @ Ws[layer] / np.sqrt(n_in)
    return Th


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_finite_width_monte_carlo(act):
    """(d) Random networks of width 4096 (12 seeds): their empirical NNGP kernel and NTK agree
    with the infinite-width kernels within 5 standard errors entrywise."""
    rng = np.random.default_rng(9)
    X = rng.standard_normal((6, 5))
    depth, sw, sb, width, n = 2, 1.4, 0.3, 4096, 12
    net = ak.MLP(depth=depth, activation=act, sigma_w=sw, sigma_b=sb)
    K, Th = ak.lazy_kernels(net, X)
    emp = ref.empirical_nngp(X, depth=depth, activation=act, sigma_w=sw, sigma_b=sb, width=width,
                             n_networks=n, seed=10)
    z = np.abs(emp.mean(0) - K) / (emp.std(0, ddof=1) / np.sqrt(n) + 1e-12)
    assert z.max() < 5, z.max()
    phi, dphi = ref.activation_functions(act)
    ntks = np.stack([_empirical_ntk(X, depth, phi, dphi, sw, sb, width, np.random.default_rng(100 + s))
                     for s in range(n)])
    z = np.abs(ntks.mean(0) - Th) / (ntks.std(0, ddof=1) / np.sqrt(n) + 1e-12)
    assert z.max() < 5, z.max()
    # and the fluctuations are small: relative error of a single width-4096 network ~ 1/sqrt(N)
    assert np.abs(ntks[0] - Th).max() < 0.1 * np.abs(Th).max()


@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_same_result_with_one_and_two_threads(act):
    rng = np.random.default_rng(11)
    X1, X2 = rng.standard_normal((60, 30)), rng.standard_normal((25, 30))
    net = ak.MLP(depth=3, activation=act, sigma_b=0.1)
    for x2 in (None, X2):
        a = ak.lazy_kernels(net, X1, x2, n_threads=1)
        b = ak.lazy_kernels(net, X1, x2, n_threads=2)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_thread_env_var(monkeypatch):
    X = np.random.default_rng(12).standard_normal((30, 4))
    net = ak.MLP(depth=2, activation="relu")
    base = ak.nngp_kernel(net, X)
    monkeypatch.setenv("AK_NUM_THREADS", "1")
    np.testing.assert_array_equal(ak.nngp_kernel(net, X), base)
    monkeypatch.setenv("AK_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="AK_NUM_THREADS"):
        ak.nngp_kernel(net, X)


def test_inputs_are_not_copied_or_modified():
    X = np.random.default_rng(13).standard_normal((20, 4))
    X_before = X.copy()
    ak.lazy_kernels(ak.MLP(depth=2), X)
    np.testing.assert_array_equal(X, X_before)
    # non-contiguous and integer inputs are accepted (converted once)
    K1 = ak.nngp_kernel(ak.MLP(depth=1), np.asfortranarray(X))
    np.testing.assert_allclose(K1, ak.nngp_kernel(ak.MLP(depth=1), X), rtol=1e-14)
    Ki = ak.nngp_kernel(ak.MLP(depth=1), np.arange(12).reshape(4, 3))
    assert Ki.dtype == np.float64 and np.isfinite(Ki).all()


@settings(max_examples=25, deadline=None)
@given(act=st.sampled_from(ACTS), depth=st.integers(0, 3), sigma_w=st.floats(0.5, 2.0), sigma_b=st.floats(0.0, 0.8),
       seed=st.integers(0, 1000))
def test_kernel_diagonal_is_the_kernels_diagonal(act, depth, sigma_w, sigma_b, seed):
    """The O(P) diagonal (core recursion on each row) equals the diagonal of the full kernels, of
    the NumPy reference, and, with layer scales, of the rescaled kernel."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((7, 4))
    net = ak.MLP(depth=depth, activation=act, sigma_w=sigma_w, sigma_b=sigma_b)
    K, Th = ak.lazy_kernels(net, X)
    Kr, Thr = ref_kernels(net, X)
    rel = 1e-12 if act in ("linear", "relu", "erf") else 1e-9
    for kernel, full, reference in (("nngp", K, Kr), ("ntk", Th, Thr)):
        d = ak.kernel_diagonal(net, X, kernel=kernel)
        assert_rel(d, np.diag(full), 1e-13)
        assert_rel(d, np.diag(reference), rel)
    if depth:
        from adaptive_kernels.kernels.lazy import kernel_diagonal_scaled
        scales = list(rng.uniform(0.5, 1.5, depth))
        Ks = ak.lazy_kernels(net, X, ntk=False, scales=scales)[0]
        assert_rel(kernel_diagonal_scaled(net, X, scales=scales), np.diag(Ks), 1e-13)
