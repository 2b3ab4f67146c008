"""``ak.kernel_decomposition``: against the NumPy reference (hypothesis), orthogonality of the
rest, recovery of a known combination, the target-vector form, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptive_kernels as ak
from adaptive_kernels.reference.kernels import decomposition as ref


def _psd(rng, n, rank):
    A = rng.standard_normal((n, rank))
    return A @ A.T


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 8), seed=st.integers(0, 1000))
def test_matches_reference_and_rest_is_orthogonal(n, seed):
    rng = np.random.default_rng(seed)
    K, K0 = _psd(rng, n, n), _psd(rng, n, n)
    y = rng.standard_normal(n)
    d = ak.kernel_decomposition(K, K0, y)
    c0, c1, rest = ref.kernel_decomposition(K, K0, np.outer(y, y))
    np.testing.assert_allclose([d.c0, d.c1], [c0, c1], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(d.rest, rest, rtol=1e-8, atol=1e-9 * np.abs(K).max())
    scale = np.linalg.norm(K)
    assert abs(np.sum(d.rest * K0)) < 1e-9 * scale * np.linalg.norm(K0)
    assert abs(np.sum(d.rest * np.outer(y, y))) < 1e-9 * scale * np.dot(y, y)


def test_known_combination_and_errors():
    rng = np.random.default_rng(0)
    K0, Ky = _psd(rng, 5, 5), _psd(rng, 5, 1)
    d = ak.kernel_decomposition(3.0 * K0 + 0.25 * Ky, K0, Ky)
    assert d.c0 == pytest.approx(3.0) and d.c1 == pytest.approx(0.25) and d.rest_fraction < 1e-12
    with pytest.raises(ValueError, match="Ky"):
        ak.kernel_decomposition(K0, K0, 2 * K0)
    with pytest.raises(ValueError, match="K0"):
        ak.kernel_decomposition(K0, K0[:4, :4], Ky)
    with pytest.raises(ValueError, match="K"):
        ak.kernel_decomposition(np.full((5, 5), np.nan), K0, Ky)
