"""Kernel-target alignment and CKA against the NumPy reference and their invariances."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptive_kernels as ak
from adaptive_kernels.reference.kernels import alignment as ref

HYP = settings(max_examples=int(os.environ.get("AK_HYP_EXAMPLES", 40)), deadline=None, database=None)


def _psd(rng, P, rank=None, scale=1.0):
    G = rng.standard_normal((P, rank or P + 1)) * scale
    return G @ G.T


@HYP
@given(seed=st.integers(0, 2**32 - 1), P=st.integers(2, 60), rank=st.integers(1, 10),
       C=st.sampled_from([None, 1, 4]), scale=st.floats(1e-3, 1e3))
def test_kernel_alignment_matches_reference(seed, P, rank, C, scale):
    rng = np.random.default_rng(seed)
    K = _psd(rng, P, rank, scale)
    y = rng.standard_normal(P) if C is None else rng.standard_normal((P, C))
    a = ak.kernel_alignment(K, y)
    assert isinstance(a, float)
    assert a == pytest.approx(ref.kernel_alignment(K, y), abs=1e-12)
    assert -1e-12 <= a <= 1 + 1e-12          # PSD K: alignment in [0, 1]
    # scale invariance in K and in y
    assert ak.kernel_alignment(7.5 * K, -3.0 * y) == pytest.approx(a, abs=1e-12)


@HYP
@given(seed=st.integers(0, 2**32 - 1), P=st.integers(2, 60), r1=st.integers(1, 10),
       r2=st.integers(1, 10), s1=st.floats(1e-3, 1e3), s2=st.floats(1e-3, 1e3))
def test_cka_matches_reference(seed, P, r1, r2, s1, s2):
    rng = np.random.default_rng(seed)
    K1, K2 = _psd(rng, P, r1, s1), _psd(rng, P, r2, s2)
    # a rank-1 kernel can be constant after centering only in degenerate cases; skip those
    H = np.eye(P) - 1.0 / P
    if min(np.linalg.norm(H @ K1 @ H), np.linalg.norm(H @ K2 @ H)) < 1e-8 * min(s1, s2) ** 2:
        return
    c = ak.cka(K1, K2)
    assert isinstance(c, float)
    assert c == pytest.approx(ref.cka(K1, K2), abs=1e-12)
    assert -1e-12 <= c <= 1 + 1e-12
    assert ak.cka(K2, K1) == pytest.approx(c, abs=1e-15)        # symmetric


def test_kernel_alignment_of_target_kernel_is_one():
    rng = np.random.default_rng(0)
    for C in (None, 1, 3):
        y = rng.standard_normal(40) if C is None else rng.standard_normal((40, C))
        Y = y[:, None] if C is None else y
        assert ak.kernel_alignment(Y @ Y.T, y) == pytest.approx(1.0, abs=1e-13)
        assert ak.kernel_alignment(0.01 * Y @ Y.T, y) == pytest.approx(1.0, abs=1e-13)


def test_kernel_alignment_examples():
    y = np.array([1.0, -1.0, 1.0, -1.0])
    assert ak.kernel_alignment(np.eye(4), y) == pytest.approx(0.5, abs=1e-15)   # 4 / (2 * 4)
    assert ak.kernel_alignment(-np.outer(y, y), y) == pytest.approx(-1.0, abs=1e-15)
    assert ak.kernel_alignment(np.ones((4, 4)), y) == pytest.approx(0.0, abs=1e-15)


@HYP
@given(seed=st.integers(0, 2**32 - 1), P=st.integers(3, 50), c=st.floats(1e-3, 1e3),
       const=st.floats(-100, 100))
def test_cka_invariant_to_scale_and_constant(seed, P, c, const):
    rng = np.random.default_rng(seed)
    K = _psd(rng, P, 5)
    assert ak.cka(K, c * K + const) == pytest.approx(1.0, abs=1e-10)
    assert ak.cka(K, K) == pytest.approx(1.0, abs=1e-13)
    K2 = _psd(rng, P, 5)
    assert ak.cka(c * K + const, K2) == pytest.approx(ak.cka(K, K2), abs=1e-10)


def test_cka_permutation_equivariance():
    rng = np.random.default_rng(1)
    K1, K2 = _psd(rng, 30, 4), _psd(rng, 30, 6)
    p = rng.permutation(30)
    assert ak.cka(K1[np.ix_(p, p)], K2[np.ix_(p, p)]) == pytest.approx(ak.cka(K1, K2), abs=1e-13)


def test_cka_of_independent_low_rank_kernels_is_small():
    rng = np.random.default_rng(2)
    P = 300
    values = [ak.cka(_psd(rng, P, 2), _psd(rng, P, 2)) for _ in range(5)]
    assert max(values) < 0.2
    assert np.mean(values) < 0.05
    # whereas a kernel sharing the features is perfectly aligned
    G = rng.standard_normal((P, 2))
    assert ak.cka(G @ G.T, 3 * G @ G.T + 1) == pytest.approx(1.0, abs=1e-12)


def test_cka_on_lazy_kernels():
    X = np.random.default_rng(3).standard_normal((40, 5))
    net = ak.MLP(depth=2, activation="relu", sigma_w=np.sqrt(2.0))
    K, Th = ak.lazy_kernels(net, X)
    c = ak.cka(K, Th)
    assert c == pytest.approx(ref.cka(K, Th), abs=1e-12)
    assert 0.5 < c <= 1.0


@pytest.mark.parametrize("P", [5, 257, 600])
def test_thread_count_independence(P):
    rng = np.random.default_rng(P)
    K1, K2 = _psd(rng, P, 20), _psd(rng, P, 30)
    y = rng.standard_normal((P, 3))
    assert ak.cka(K1, K2, n_threads=1) == ak.cka(K1, K2, n_threads=2)
    assert ak.kernel_alignment(K1, y, n_threads=1) == ak.kernel_alignment(K1, y, n_threads=2)
    assert ak.cka(K1, K2, n_threads=1) == ak.cka(K1, K2)


@pytest.mark.parametrize("K", [np.zeros((6, 6)), np.zeros((1, 1))])
def test_zero_kernel_raises_naming_k(K):
    with pytest.raises(ValueError, match=r"\bK\b"):
        ak.kernel_alignment(K, np.ones(K.shape[0]))


def test_zero_kernels_raise_for_cka():
    with pytest.raises(ValueError, match=r"\bK1\b"):
        ak.cka(np.zeros((6, 6)), np.eye(6))
    with pytest.raises(ValueError, match=r"\bK2\b"):
        ak.cka(np.eye(6), np.zeros((6, 6)))
    with pytest.raises(ValueError, match=r"\bK1\b"):
        ak.cka(np.full((4, 4), 2.0), np.eye(4))     # constant: zero after centering


def test_inputs_are_not_modified_and_lists_accepted():
    rng = np.random.default_rng(4)
    K1, K2, y = _psd(rng, 10, 3), _psd(rng, 10, 3), rng.standard_normal(10)
    copies = [K1.copy(), K2.copy(), y.copy()]
    a = ak.kernel_alignment(K1.tolist(), y.tolist())
    c = ak.cka(K1.tolist(), K2.tolist())
    assert a == ak.kernel_alignment(K1, y) and c == ak.cka(K1, K2)
    for orig, cp in zip((K1, K2, y), copies):
        np.testing.assert_array_equal(orig, cp)
    # non-contiguous views work through the public API
    big = _psd(rng, 20, 3)
    view = big[::2, ::2]
    assert ak.cka(view, K2) == pytest.approx(ref.cka(view, K2), abs=1e-12)
