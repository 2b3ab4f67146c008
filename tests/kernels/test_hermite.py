"""method="hermite" (issue #20): the Hermite (Mehler) expansion of the lazy kernels agrees with
the closed forms (relu, erf, linear) and the polar quadrature at its highest order (tanh, gelu,
softplus, callables) to 1e-10 relative, for depths 1-5 with and without bias, on inputs that
include identical and nearly identical points (|rho| -> 1, where the error bound sends entries
to the quadrature fallback); and the NumPy reference of the expansion."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptive_kernels as ak
from adaptive_kernels.reference.kernels.hermite import hermite_expectation

RNG = np.random.default_rng(20)
_X = RNG.standard_normal((9, 6))
# identical and nearly identical points (|rho| = 1 and |rho| -> 1, also with unequal variances);
# variances K^0_ii up to ~8 (at ~10 the polar reference itself is only ~1e-8 accurate for tanh at
# quadrature_order=128, converging towards the expansion as the order grows)
X = np.vstack([_X, _X[:2], _X[2:4] + 1e-5 * RNG.standard_normal((2, 6)), _X[0:1] * 1.2 + 1e-3])
XT = np.vstack([RNG.standard_normal((3, 6)), _X[5:6]])


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("activation", ["relu", "erf", "linear", "tanh", "gelu", "softplus"])
@pytest.mark.parametrize("sigma_b", [0.0, 0.3])
def test_expansion_matches_closed_forms_and_quadrature(activation, sigma_b):
    for depth in range(1, 6):
        # the polar reference at its highest order is ~1e-10 accurate for tanh's NTK up to variances
        # ~3 only (1.8e-10 at 4.7, converging towards the expansion with the order), hence sigma_w = 1
        sigma_w = 1.3 if activation in ("relu", "erf", "linear") else 1.0
        kw = dict(depth=depth, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b, quadrature_order=128)
        ref = ak.MLP(**kw, method="auto" if activation in ("relu", "erf", "linear") else "quadrature")
        her = ak.MLP(**kw, method="hermite")
        K, Th = ak.lazy_kernels(her, X, XT)
        Kr, Thr = ak.lazy_kernels(ref, X, XT)
        assert _rel(K, Kr) < 1e-10 and _rel(Th, Thr) < 1e-10, (depth, _rel(K, Kr), _rel(Th, Thr))
        Ks, Kss = ak.nngp_kernel(her, X), ak.nngp_kernel(ref, X)
        assert _rel(Ks, Kss) < 1e-10, (depth, _rel(Ks, Kss))
        assert np.array_equal(Ks, Ks.T)
        for kernel in ("nngp", "ntk"):
            d = ak.kernel_diagonal(her, X, kernel=kernel)
            full = Ks if kernel == "nngp" else ak.ntk_kernel(her, X)
            np.testing.assert_allclose(d, np.diag(full), rtol=1e-12)


def test_callable_uses_the_expansion():
    kw = dict(depth=2, activation=np.sin, activation_derivative=np.cos, sigma_b=0.2, quadrature_order=128)
    K, Th = ak.lazy_kernels(ak.MLP(**kw, method="hermite"), X, XT)
    Kr, Thr = ak.lazy_kernels(ak.MLP(**kw, method="quadrature"), X, XT)
    assert _rel(K, Kr) < 1e-10 and _rel(Th, Thr) < 1e-10


@pytest.mark.parametrize("activation", ["tanh", "gelu", "softplus", np.sin, "relu", "erf", "linear"])
def test_auto_is_hermite_without_closed_form(activation):
    # method="auto": the expansion for every activation without a closed form (callables too),
    # the closed forms for relu, erf and linear
    kw = dict(depth=2, activation=activation, sigma_b=0.2)
    if callable(activation):
        kw["activation_derivative"] = np.cos
    auto = ak.MLP(**kw)
    same = ak.MLP(**kw, method="hermite") if isinstance(activation, str) and activation in ("tanh", "gelu", "softplus") \
        or callable(activation) else ak.MLP(**kw, method="auto")
    for a, b in zip(ak.lazy_kernels(auto, X, XT), ak.lazy_kernels(same, X, XT)):
        assert np.array_equal(a, b)
    assert np.array_equal(ak.kernel_diagonal(auto, X, kernel="ntk"), ak.kernel_diagonal(same, X, kernel="ntk"))
    if isinstance(activation, str) and activation in ("relu", "erf", "linear"):
        # closed forms, not the expansion (which differs in the last bits)
        her = ak.nngp_kernel(ak.MLP(**kw, method="hermite"), X)
        assert _rel(ak.nngp_kernel(auto, X), her) < 1e-10


def test_auto_fallback_is_accurate_near_rho_one():
    # entries with |rho| -> 1 that miss the expansion's bound use the polar rule at order 128 for
    # the named activations (order 32 is ~1e-5 off for tanh here): auto agrees with quadrature at
    # order 128 even where the default quadrature_order = 32 does not
    net = dict(depth=3, activation="tanh", sigma_w=1.0, sigma_b=0.2)
    K = ak.nngp_kernel(ak.MLP(**net), X)
    Kq = ak.nngp_kernel(ak.MLP(**net, method="quadrature", quadrature_order=128), X)
    K32 = ak.nngp_kernel(ak.MLP(**net, method="quadrature"), X)
    assert _rel(K, Kq) < 1e-10 < _rel(K32, Kq)


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.2, 2.5), b=st.floats(0.2, 2.5), rho=st.floats(-0.9995, 0.9995),
       act=st.sampled_from(["tanh", "gelu", "softplus", "erf"]))
def test_core_matches_numpy_reference(a, b, rho, act):
    # two points in d = 2 with K^0 = [[a, c], [c, b]] (sigma_w = 1, sigma_b = 0)
    x = np.array([[np.sqrt(2 * a), 0.0], [np.sqrt(2 * b) * rho, np.sqrt(2 * b) * np.sqrt(1 - rho ** 2)]])
    c = x[0] @ x[1] / 2
    e, bound = hermite_expectation(act, a, b, c)
    K = ak.nngp_kernel(ak.MLP(depth=1, activation=act, method="hermite", quadrature_order=128), x)
    scale = np.sqrt(abs(K[0, 0] * K[1, 1]))
    assert abs(K[0, 1] - e) <= 1e-10 * scale + bound


@pytest.mark.parametrize("activation", ["tanh", "softplus"])
def test_equal_norm_rows_share_coefficients(activation):
    """Rows normalized to a common norm (variances equal up to rounding) share one table per layer
    (variance groups of relative width 1e-13 in the core); points scaled by 1 + 1e-6 and an exact
    duplicate sit next to them. Against the NumPy reference (one table per point) to 1e-12 and the
    order-128 quadrature (independent) to 1e-10."""
    from adaptive_kernels.reference.kernels import lazy as lk
    rng = np.random.default_rng(7)
    Z = rng.standard_normal((12, 5))
    Z *= np.sqrt(5) / np.linalg.norm(Z, axis=1, keepdims=True)
    assert np.ptp(np.einsum("ij,ij->i", Z, Z)) > 0     # equal only up to rounding
    Z = np.vstack([Z, Z[:3] * (1 + 1e-6), Z[4:5]])
    kw = dict(depth=2, activation=activation, sigma_w=1.1, sigma_b=0.2)
    her = ak.MLP(**kw, method="hermite", quadrature_order=128)
    K = ak.nngp_kernel(her, Z)
    Kref = lk.nngp_kernel(Z, **kw, method="hermite", order=128)
    assert _rel(K, Kref) < 1e-12, _rel(K, Kref)
    Kq = ak.nngp_kernel(ak.MLP(**kw, method="quadrature", quadrature_order=128), Z)
    assert _rel(K, Kq) < 1e-10, _rel(K, Kq)
    Th = ak.ntk_kernel(her, Z)
    Thq = ak.ntk_kernel(ak.MLP(**kw, method="quadrature", quadrature_order=128), Z)
    assert _rel(Th, Thq) < 1e-10, _rel(Th, Thq)


@settings(max_examples=30, deadline=None)
@given(a=st.floats(0.2, 1.5), b=st.floats(0.2, 1.5), one_minus=st.floats(1e-6, 0.1), sign=st.sampled_from([1, -1]),
       act=st.sampled_from(["tanh", "gelu", "softplus"]))
def test_near_collinear_entries_match_conditional_rule(a, b, one_minus, sign, act):
    """|rho| in [0.9, 1 - 1e-6], where the expansion now accepts entries its error bound covers (the
    tails without cancellation, see hermite.rs residual_tails; before, the tails' rounding floor sent
    every entry above |rho| ~0.91 to the order-128 quadrature). Independent check: the conditional
    product rule v = sqrt(b) (rho x + sqrt(1 - rho^2) z), 400 x 200 Gauss-Hermite nodes."""
    from scipy import special
    from adaptive_kernels.reference.kernels.lazy import activation_functions
    rho = sign * (1.0 - one_minus)
    x = np.array([[np.sqrt(2 * a), 0.0], [np.sqrt(2 * b) * rho, np.sqrt(2 * b) * np.sqrt(1 - rho ** 2)]])
    c = x[0] @ x[1] / 2
    rho = c / np.sqrt(a * b)
    phi, _ = activation_functions(act)
    zo, wo = special.roots_hermitenorm(400)
    zi, wi = special.roots_hermitenorm(200)
    wo, wi = wo / wo.sum(), wi / wi.sum()
    inner = phi(np.sqrt(b) * (rho * zo[:, None] + np.sqrt(max(1 - rho ** 2, 0.0)) * zi[None, :])) @ wi
    want = wo @ (phi(np.sqrt(a) * zo) * inner)
    K = ak.nngp_kernel(ak.MLP(depth=1, activation=act, method="hermite", quadrature_order=128), x)
    assert abs(K[0, 1] - want) <= 1e-10 * np.sqrt(abs(K[0, 0] * K[1, 1])), (K[0, 1], want)


def _quad_mean(f, q):
    """E[f(sqrt(q) z)] by adaptive quadrature, split at 0 and at the edges of f's transition."""
    from scipy.integrate import quad
    g = lambda z: f(np.sqrt(q) * z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    cuts = sorted({0.0, *(s * t / np.sqrt(q) for s in (-1, 1) for t in (1.0, 5.0, 40.0) if t / np.sqrt(q) < 40)})
    edges = [-40.0, *cuts, 40.0]
    with warnings.catch_warnings():   # quad's round-off warning at epsrel 2e-14: its result is kept
        warnings.simplefilter("ignore")
        return sum(quad(g, lo, hi, limit=400, epsabs=0, epsrel=2e-14)[0] for lo, hi in zip(edges[:-1], edges[1:]))


@pytest.mark.parametrize("activation", ["tanh", "gelu", "softplus"])
@pytest.mark.parametrize("q", [0.05, 3.0, 10.0, 200.0, 1e4, 1e8])
def test_large_variance_diagonals_against_adaptive_quadrature(activation, q):
    """The diagonals E[phi(u)^2] and E[phi'(u)^2], u ~ N(0, q), of one layer, at variances where the
    former Gauss-Hermite rule (400 nodes) missed the transition of phi at |u| ~ 1: E[tanh^2] was
    off by 6.9e-8 at q = 10 and 1.2e-2 at q = 200, E[tanh'^2] by 23% at q = 100. The core's mesh
    rule (kernels/hermite/mesh.rs) against adaptive quadrature to 1e-12."""
    from adaptive_kernels.reference.kernels.lazy import ACTIVATIONS
    phi, dphi = ACTIVATIONS[activation]
    x = np.array([[np.sqrt(q)]])      # K^0 = q (d = 1, sigma_w = 1)
    net = ak.MLP(depth=1, activation=activation)
    e2, d2 = _quad_mean(lambda u: phi(u) ** 2, q), _quad_mean(lambda u: dphi(u) ** 2, q)
    assert ak.nngp_kernel(net, x)[0, 0] == pytest.approx(e2, rel=1e-12)
    # NTK of one hidden layer: E[phi^2] + q E[phi'^2]
    assert ak.ntk_kernel(net, x)[0, 0] == pytest.approx(e2 + q * d2, rel=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "gelu", "softplus"])
@pytest.mark.parametrize("q", [0.5, 10.0, 300.0])
def test_reference_mesh_coefficients_against_adaptive_quadrature(activation, q):
    """The Hermite coefficients c_n = E[phi(sqrt(q) z) h_n(z)] of the reference's mesh rule (which
    the core mirrors, tested against it below) against adaptive quadrature, n up to 128."""
    from scipy import special
    from adaptive_kernels.reference.kernels.hermite import hermite_coefficients
    from adaptive_kernels.reference.kernels.lazy import ACTIVATIONS
    phi = ACTIVATIONS[activation][0]
    c, m0 = hermite_coefficients(activation, [q])
    for n in (0, 1, 2, 7, 40, 127, 128):
        norm = np.exp(-0.5 * special.gammaln(n + 1))
        want = _quad_mean(lambda u: phi(u) * special.eval_hermitenorm(n, u / np.sqrt(q)) * norm, q)
        assert abs(c[0, n] - want) <= 1e-12 * np.sqrt(m0[0]), (n, c[0, n], want)


@settings(max_examples=25, deadline=None)
@given(a=st.floats(2.0, 400.0), b=st.floats(2.0, 400.0), rho=st.floats(-0.8, 0.8),
       act=st.sampled_from(["tanh", "gelu", "softplus"]))
def test_core_matches_numpy_reference_at_large_variances(a, b, rho, act):
    """Moderate correlations at large variances, where the expansion covers every entry (no
    fallback): core and reference (both on the mesh rule) agree to 1e-12."""
    x = np.array([[np.sqrt(2 * a), 0.0], [np.sqrt(2 * b) * rho, np.sqrt(2 * b) * np.sqrt(1 - rho ** 2)]])
    c = x[0] @ x[1] / 2
    e, bound = hermite_expectation(act, a, b, c)
    K = ak.nngp_kernel(ak.MLP(depth=1, activation=act, method="hermite"), x)
    scale = np.sqrt(abs(K[0, 0] * K[1, 1]))
    assert bound <= 1e-12 * scale
    assert abs(K[0, 1] - e) <= 1e-12 * scale


@pytest.mark.parametrize("q, rho, want", [(5.0, 0.99, 0.6571232525253772), (10.0, 0.99, 0.7413001275533326),
                                           (50.0, 0.9, 0.6924820613006085), (50.0, 0.99, 0.8558496009374345)])
def test_large_variance_fallback_entries(q, rho, want):
    """Entries that miss the expansion's bound (|rho| above ~0.85-0.97 at variances >= 2) take the
    graded polar rule; the order-128 rule they took before was off by 1.4e-9 (q = 5), 3.4e-7
    (q = 10) and 2.3e-4 (q = 50) here. want: nested adaptive quadrature (scipy quad over x of
    tanh(sqrt(q) x) E[tanh(sqrt(q) y) | x], split at the zeros of both arguments, epsrel
    1e-12 / 1e-13)."""
    th = np.arccos(rho)
    x = np.sqrt(2 * q) * np.array([[1.0, 0.0], [np.cos(th), np.sin(th)]])
    k = ak.nngp_kernel(ak.MLP(depth=1, activation="tanh"), x)[0, 1]
    assert k == pytest.approx(want, rel=1e-10)


@settings(max_examples=20, deadline=None)
@given(a=st.floats(2.0, 300.0), b=st.floats(2.0, 300.0), one_minus=st.floats(1e-7, 0.1),
       sign=st.sampled_from([1, -1]), act=st.sampled_from(["tanh", "gelu", "softplus"]))
def test_fallback_entries_match_reference_at_large_variances(a, b, one_minus, sign, act):
    """NNGP and NTK entries near |rho| = 1 at large variances (expansion where its bound holds,
    graded polar rule elsewhere) against the NumPy reference of the same scheme, to 1e-12."""
    from adaptive_kernels.reference.kernels import lazy as lk
    rho = sign * (1.0 - one_minus)
    x = np.array([[np.sqrt(2 * a), 0.0], [np.sqrt(2 * b) * rho, np.sqrt(2 * b) * np.sqrt(1 - rho ** 2)]])
    net = ak.MLP(depth=1, activation=act)
    K, Th = ak.nngp_kernel(net, x), ak.ntk_kernel(net, x)
    Kr = lk.nngp_kernel(x, depth=1, activation=act)
    Thr = lk.ntk_kernel(x, depth=1, activation=act)
    assert abs(K[0, 1] - Kr[0, 1]) <= 1e-12 * np.sqrt(K[0, 0] * K[1, 1])
    assert abs(Th[0, 1] - Thr[0, 1]) <= 1e-12 * np.sqrt(Th[0, 0] * Th[1, 1])
