"""Criticality of the NNGP layer map (ak.criticality): exact edges of chaos, the Helias-Ringel
digest's table (§2, computed there with 201-point Gauss-Hermite), the NumPy reference, and an
independent check that chi_1 is the slope of the lazy kernels' own correlation map."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptive_kernels as ak
from adaptive_kernels.reference.kernels import criticality as ref


@pytest.mark.parametrize("activation,sigma_w", [("relu", np.sqrt(2.0)), ("tanh", 1.0), ("erf", np.sqrt(np.pi / 4)),
                                                ("linear", 1.0)])
def test_exact_edges_of_chaos_without_bias(activation, sigma_w):
    c = ak.criticality(ak.MLP(depth=1, activation=activation, sigma_w=0.7))
    assert c.phase == "ordered" and c.q_star == 0.0 and c.chi_1 < 1
    assert c.critical_sigma_w == pytest.approx(sigma_w, rel=1e-9)


# sigma_b^2 -> (critical sigma_w^2, q*) from the digest's table
TABLE = {"erf": {0.01: (1.1143, 0.253), 0.05: (1.3758, 0.517), 0.1: (1.5521, 0.726), 0.5: (2.2337, 1.772)},
         "tanh": {0.01: (1.4242, 0.273), 0.05: (1.7610, 0.570), 0.1: (1.9861, 0.806), 0.5: (2.8432, 1.971)}}


@pytest.mark.parametrize("activation", sorted(TABLE))
def test_digest_table(activation):
    for b, (g, q) in TABLE[activation].items():
        c = ak.criticality(ak.MLP(depth=1, activation=activation, sigma_w=1.0, sigma_b=np.sqrt(b)))
        assert c.critical_sigma_w**2 == pytest.approx(g, abs=6e-5)
        assert c.critical_q_star == pytest.approx(q, abs=6e-4)
        at_edge = ak.criticality(ak.MLP(depth=1, activation=activation, sigma_w=c.critical_sigma_w,
                                        sigma_b=np.sqrt(b)))
        assert at_edge.chi_1 == pytest.approx(1.0, abs=1e-9) and at_edge.depth_scale > 1e6


def test_relu_and_linear_edges_with_bias_have_no_finite_length():
    for act, sw in (("relu", np.sqrt(2.0)), ("linear", 1.0)):
        c = ak.criticality(ak.MLP(depth=1, activation=act, sigma_w=0.9, sigma_b=0.3))
        assert c.critical_sigma_w == pytest.approx(sw, rel=1e-9) and np.isinf(c.critical_q_star)
        big = ak.criticality(ak.MLP(depth=1, activation=act, sigma_w=1.1 * sw, sigma_b=0.3))
        assert np.isinf(big.q_star) and big.phase == "chaotic"


@settings(max_examples=8, deadline=None)
@given(activation=st.sampled_from(["tanh", "erf", "gelu", "softplus"]), sigma_w=st.floats(0.5, 2.5),
       sigma_b=st.floats(0.05, 1.0))
def test_matches_reference(activation, sigma_w, sigma_b):
    # polar rule of order 128: the default order 32 is off by ~3e-9 in E[phi'^2] for tanh on the
    # diagonal at q ~ 0.5, and by 3e-4 at q ~ 3.4 (order 64: 3e-6, order 128: 4e-9)
    c = ak.criticality(ak.MLP(depth=1, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b, quadrature_order=128))
    q = ref.fixed_point(activation, sigma_w, sigma_b)
    if np.isinf(q):   # gelu/softplus grow linearly: no finite length in the chaotic phase
        assert np.isinf(c.q_star)
        return
    assert c.q_star == pytest.approx(q, rel=1e-7, abs=1e-12)
    assert c.chi_1 == pytest.approx(sigma_w**2 * ref.gaussian_moments(activation, q)[1], rel=1e-7)


@pytest.mark.parametrize("activation", ["tanh", "erf"])
def test_reference_critical_sigma_w(activation):
    c = ak.criticality(ak.MLP(depth=1, activation=activation, sigma_b=0.3, quadrature_order=128))
    assert c.critical_sigma_w == pytest.approx(ref.critical_sigma_w(activation, 0.3), rel=1e-8)


@pytest.mark.parametrize("activation,sigma_w,sigma_b", [("tanh", 1.5, 0.3), ("erf", 1.2, 0.5), ("relu", 1.2, 0.4)])
def test_chi_1_is_the_slope_of_the_lazy_correlation_map(activation, sigma_w, sigma_b):
    """Two inputs at the fixed length q* with correlation 1 - eps: one layer of ak.nngp_kernel maps
    1 - c to chi_1 (1 - c) to first order."""
    net = ak.MLP(depth=1, activation=activation, sigma_w=sigma_w, sigma_b=sigma_b)
    c = ak.criticality(net)
    d, eps = 2, (1e-9 if activation == "relu" else 1e-5)   # relu's map has a (1 - c)^{3/2} term
    # K^0 = sigma_w^2 x.x'/d + sigma_b^2 = q* on the diagonal, 1 - eps correlation off it
    r = np.sqrt((c.q_star - sigma_b**2) * d) / sigma_w
    k_off = c.q_star * (1 - eps)
    cos = (k_off - sigma_b**2) * d / (sigma_w**2 * r**2)
    X = r * np.array([[1.0, 0.0], [cos, np.sqrt(1 - cos**2)]])
    K = ak.nngp_kernel(net, X)
    assert K[0, 0] == pytest.approx(c.q_star, rel=1e-9)
    slope = (1 - K[0, 1] / np.sqrt(K[0, 0] * K[1, 1])) / eps
    assert slope == pytest.approx(c.chi_1, rel=1e-4)


def test_bad_network_is_named():
    with pytest.raises((ValueError, TypeError), match="^(net|sigma_w|activation)"):
        ak.criticality(ak.MLP(depth=1, activation="tanh", sigma_w=0.0))
