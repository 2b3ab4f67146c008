"""Rank-normalized chain diagnostics (``adaptive_kernels.mcmc.chain_diagnostics``; Vehtari et al.
2021): the Rust core against the NumPy reference (hypothesis), against ArviZ's values stored in
``tests/data/arviz_diagnostics.npz`` (no ArviZ needed) and against ArviZ live when installed;
input handling, NaN conventions, thread independence."""
import pathlib
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_kernels.mcmc import chain_diagnostics
from adaptive_kernels.reference import mcmc as ref

DATA = pathlib.Path(__file__).parent / "data" / "arviz_diagnostics.npz"
FIELDS = ("rhat", "ess_bulk", "ess_tail")


def _ar1(rng, m, n, phi):
    e = rng.standard_normal((m, n))
    x = np.empty((m, n))
    x[:, 0] = e[:, 0]
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + np.sqrt(1 - phi**2) * e[:, t]
    return x


def _draws(seed, m, n, p, phi, kind):
    """Seeded (m, n, p) draws of one kind: AR(1), ties (rounded or small integers), shifted
    chains, heavy tails."""
    rng = np.random.default_rng(seed)
    x = np.stack([_ar1(rng, m, n, phi) for _ in range(p)], axis=2)
    if kind == "rounded":
        x = np.round(x, 1)
    elif kind == "integers":
        x = rng.integers(0, 3, (m, n, p)).astype(float)
    elif kind == "shifted":
        x = x + rng.standard_normal((m, 1, p))
    elif kind == "heavy":
        x = rng.standard_t(1.5, (m, n, p))
    return x


def _relative_gap(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert np.array_equal(np.isnan(a), np.isnan(b)), (a, b)
    ok = ~np.isnan(a)
    return float(np.max(np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1.0), initial=0.0))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 5), n=st.integers(1, 160), p=st.integers(1, 3),
       phi=st.floats(-0.6, 0.98), kind=st.sampled_from(["ar1", "rounded", "integers", "shifted", "heavy"]))
def test_core_matches_reference(seed, m, n, p, phi, kind):
    x = _draws(seed, m, n, p, phi, kind)
    got = chain_diagnostics(x)
    want = ref.chain_diagnostics(x)
    for f, w in zip(FIELDS, want):
        assert _relative_gap(getattr(got, f), w) < 1e-10, (f, getattr(got, f), w)


def test_matches_stored_arviz_values():
    """ArviZ's values (``tests/data/make_arviz_diagnostics.py``), agreement to 1e-8 relative
    (measured: about 1e-14; the two differ only in rounding: FFT lengths, summation order, the
    normal quantile)."""
    data = np.load(DATA)
    cases = [k.removeprefix("chains_") for k in data.files if k.startswith("chains_")]
    assert len(cases) >= 10
    worst = 0.0
    for case in cases:
        x, want = data[f"chains_{case}"], data[f"arviz_{case}"]
        d = chain_diagnostics(x)
        worst = max(worst, _relative_gap([d.rhat, d.ess_bulk, d.ess_tail], want))
        assert _relative_gap([d.rhat, d.ess_bulk, d.ess_tail], want) < 1e-8, (case, d, want)
        # and the NumPy reference agrees with ArviZ too
        assert _relative_gap([f(x) for f in (ref.rank_rhat, ref.ess_bulk, ref.ess_tail)], want) < 1e-8, case
    assert worst < 1e-8


def test_matches_arviz_live():
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m, n, phi in ((4, 400, 0.0), (2, 251, 0.8), (3, 100, -0.4), (1, 80, 0.5), (6, 33, 0.95)):
            x = _ar1(rng, m, n, phi)
            for y in (x, np.round(x, 1), x + rng.standard_normal((m, 1))):
                d = chain_diagnostics(y)
                want = [float(az.rhat(y, method="rank")), float(az.ess(y, method="bulk")),
                        float(az.ess(y, method="tail"))]
                assert _relative_gap([d.rhat, d.ess_bulk, d.ess_tail], want) < 1e-8, (m, n, phi, d, want)


def test_shapes_and_conventions():
    rng = np.random.default_rng(0)
    x = _ar1(rng, 4, 200, 0.5)
    d = chain_diagnostics(x)
    assert isinstance(d.rhat, float) and isinstance(d.ess_bulk, float)
    d3 = chain_diagnostics(np.stack([x, 2 * x + 1, np.zeros_like(x)], axis=2))
    assert d3.rhat.shape == (3,)
    # monotone transformations leave rank diagnostics unchanged
    assert d3.rhat[1] == d.rhat and d3.ess_bulk[1] == d.ess_bulk and d3.ess_tail[1] == d.ess_tail
    # constant draws: ESS = number of split draws, R-hat undefined
    assert np.isnan(d3.rhat[2]) and d3.ess_bulk[2] == 800
    # one chain: no R-hat (as ArviZ); fewer than 4 draws: nothing; a NaN draw: that parameter NaN
    one = chain_diagnostics(x[:1])
    assert np.isnan(one.rhat) and one.ess_bulk > 0
    assert all(np.isnan(v) for v in vars(chain_diagnostics(x[:, :3])).values())
    y = np.stack([x, x], axis=2)
    y[1, 5, 0] = np.nan
    dn = chain_diagnostics(y)
    assert np.isnan(dn.rhat[0]) and np.isnan(dn.ess_tail[0]) and dn.rhat[1] == d.rhat
    # integer input is accepted
    assert chain_diagnostics(rng.integers(0, 5, (2, 50))).ess_bulk > 0


def test_rank_rhat_sees_what_the_classic_one_misses():
    """Equal means, one chain three times wider: the folded R-hat flags it."""
    data = np.load(DATA)
    d = chain_diagnostics(data["chains_one_wide"])
    assert d.rhat > 1.1
    x = data["chains_one_wide"]
    h = x.shape[1] // 2
    s = np.concatenate([x[:, :h], x[:, -h:]])
    classic = np.sqrt((h - 1) / h + np.var(s.mean(1), ddof=1) / np.mean(np.var(s, 1, ddof=1)))
    assert classic < 1.05


def test_thread_count_does_not_change_results():
    x = _draws(3, 4, 301, 6, 0.7, "ar1")
    a, b = chain_diagnostics(x, n_threads=1), chain_diagnostics(x, n_threads=3)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


@pytest.mark.parametrize("bad, err, match", [
    (np.zeros(10), ValueError, "chains: expected a 2-D"),
    (np.zeros((2, 3, 4, 5)), ValueError, "chains: expected a 2-D"),
    (np.zeros((0, 10)), ValueError, "chains"),
    (np.zeros((2, 0)), ValueError, "chains"),
    (np.zeros((2, 5), complex), TypeError, "chains"),
    (None, TypeError, "chains"),
])
def test_bad_input(bad, err, match):
    with pytest.raises(err, match=match):
        chain_diagnostics(bad)
