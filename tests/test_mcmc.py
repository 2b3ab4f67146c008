"""Tilted single-site preactivation density N(h; 0, C) exp(-phi^T hatPhi phi / 2) (building block
of the nonlinear Bayesian mean-field saddle point): Rust potential vs the NumPy reference, MALA
moments vs exact Gaussian (linear) and tensor quadrature (P = 2) moments, normalizability, input
checks, determinism."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptive_kernels as ak
from adaptive_kernels import _core
from adaptive_kernels.reference import mcmc as ref

# The sampler settings these tests were written for (the defaults of ak.tilted_moments before they
# became the core's): passed explicitly, each test overriding some of them.
SAMPLER = dict(n_chains=4, n_samples=2000, burn_in=500, thin=1, step_size=0.1)


def _moments(C, H, **kwargs):
    return ak.tilted_moments(C, H, **(SAMPLER | kwargs))


def _spd(p, seed):
    A = np.random.default_rng(seed).standard_normal((p, p + 2))
    return A @ A.T / (p + 2) + 0.1 * np.eye(p)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), p=st.integers(1, 6),
       act=st.sampled_from(["linear", "relu", "erf", "tanh", "gelu", "softplus"]))
def test_potential_matches_reference(seed, p, act):
    rng = np.random.default_rng(seed)
    C = _spd(p, seed)
    B = rng.standard_normal((p, p))
    H = 0.3 * (B + B.T)
    z = rng.standard_normal(p)
    u, g = _core._testing.tilted_potential(z, C, H, activation=act)
    u_ref, g_ref = ref.tilted_potential(z, C, H, act)
    np.testing.assert_allclose(u, u_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g, g_ref, rtol=1e-11, atol=1e-12)


def _within(est, exact, ess, scale, k=5.0):
    se = scale / np.sqrt(ess)
    assert np.all(np.abs(est - exact) < k * se), (est, exact, se)


def test_linear_tilt_matches_the_exact_gaussian():
    C = _spd(5, 1)
    H = -0.3 * np.linalg.inv(C) + 0.05      # raises the density, stays normalizable
    m = _moments(C, H, activation="linear", n_chains=4, n_samples=10000, burn_in=1000, seed=2)
    cov = np.linalg.inv(np.linalg.inv(C) + H)
    s = np.sqrt(np.diag(cov))
    _within(m.h2, cov, m.ess, 2 * np.outer(s, s))
    np.testing.assert_array_equal(m.h2, m.phi2)


@pytest.mark.parametrize("act,sign", [("tanh", -1.0), ("tanh", 1.0), ("erf", -1.0), ("relu", 1.0), ("softplus", 1.0)])
def test_two_point_moments_match_quadrature(act, sign):
    """P = 2: the tilted density is a 2-D integral; Gauss-Hermite gives its moments exactly."""
    C = np.array([[1.2, 0.5], [0.5, 0.8]])
    a = np.array([1.0, -0.7])
    H = sign * 0.8 * np.outer(a, a) + (0.2 * np.eye(2) if sign > 0 else 0.0)
    m = _moments(C, H, activation=act, n_chains=4, n_samples=20000, burn_in=1000, seed=5)
    phi2, h2 = ref.tilted_moments_quadrature(C, H, act)
    _within(m.phi2, phi2, m.ess, 2 * np.sqrt(np.outer(np.diag(phi2), np.diag(phi2))) + 1e-3)
    _within(m.h2, h2, m.ess, 2 * np.sqrt(np.outer(np.diag(h2), np.diag(h2))))
    # and the tilt matters here: the untilted moments are far away
    phi0, _ = ref.tilted_moments_quadrature(C, 0 * H, act)
    assert np.abs(phi0 - phi2).max() > 0.02


@pytest.mark.parametrize("act", ["linear", "relu"])
def test_non_normalizable_tilt_raises(act):
    C = _spd(3, 3)
    H = -50.0 * np.eye(3)
    with pytest.raises(ValueError, match="hat_phi.*not normalizable"):
        _moments(C, H, activation=act, n_samples=10)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), p=st.integers(2, 6), i=st.integers(0, 5),
       c=st.one_of(st.floats(1.05, 3.0), st.floats(0.2, 0.9)), act=st.sampled_from(["relu", "gelu", "softplus"]))
def test_single_coordinate_tilt_is_normalizable_exactly_below_the_marginal_precision(seed, p, i, c, act):
    # hatPhi = -a e_i e_i^T tilts only phi(h_i) ~ (h_i)_+, so the density is normalizable iff
    # a < 1 / C_ii (the marginal of h_i is N(0, C_ii)), exactly. With C_ji <= 0 the violating
    # direction h = C e_i has h_i > 0 and h_j <= 0: mixed signs, which a search over h >= 0 misses
    # whenever (C^-1)_ii > a (its cost there is (C^-1)_ii - a >= 1 / C_ii - a)
    i = i % p
    C = _spd(p, seed)
    s = -np.sign(C[:, i])
    s[i] = 1.0
    s[s == 0] = 1.0
    C = C * np.outer(s, s)                      # C_ji <= 0 for j != i, same spectrum
    H = np.zeros((p, p))
    H[i, i] = -c / C[i, i]
    if c > 1:
        with pytest.raises(ValueError, match="hat_phi.*not normalizable"):
            _moments(C, H, activation=act, n_samples=10, burn_in=0)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ak.ConvergenceWarning)
            m = _moments(C, H, activation=act, n_samples=50, burn_in=10)
        assert np.all(np.isfinite(m.phi2))


def test_bounded_activation_accepts_any_tilt():
    m = _moments(_spd(3, 3), -5.0 * np.eye(3), activation="tanh", n_samples=200, burn_in=100)
    assert np.all(np.isfinite(m.phi2))


def test_same_moments_with_one_and_two_threads():
    C, H = _spd(4, 4), -0.4 * np.eye(4)
    a = _moments(C, H, activation="erf", n_chains=3, n_samples=300, seed=7, n_threads=1)
    b = _moments(C, H, activation="erf", n_chains=3, n_samples=300, seed=7, n_threads=2)
    np.testing.assert_array_equal(a.phi2, b.phi2)
    np.testing.assert_array_equal(a.acceptance, b.acceptance)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(C=np.ones((2, 3))), ValueError, "C"),
    (dict(hat_phi=np.zeros((3, 3))), ValueError, "hat_phi"),
    (dict(hat_phi=np.full((2, 2), np.nan)), ValueError, "hat_phi"),
    (dict(activation="sigmoid"), ValueError, "activation"),
    (dict(step_size=0.0), ValueError, "step_size"),
    (dict(n_samples=0), ValueError, "n_samples"),
    (dict(C=-np.eye(2)), np.linalg.LinAlgError, "C"),
])
def test_bad_input_names_the_argument(kwargs, exc, match):
    args = dict(C=np.eye(2), hat_phi=np.zeros((2, 2)), activation="tanh", n_samples=10) | kwargs
    C, H = args.pop("C"), args.pop("hat_phi")
    with pytest.raises(exc, match=match):
        _moments(C, H, **args)
