"""Lazy (infinite-width) kernels: the NNGP kernel and the neural tangent kernel of an MLP.

Conventions are stated on :class:`adaptive_kernels.MLP`. The work runs in the Rust core:
one Gram product (faer), then all layers of each kernel entry in one pass, rows in parallel.
"""
from __future__ import annotations

import numpy as np

from .. import _core
from .._progress import progress_bar
from .._validation import as_matrix, check_bool, check_n_threads, check_same_features
from ..networks import MLP, check_net

_KERNELS = ("nngp", "ntk")


def lazy_kernels(net: MLP, X1, X2=None, *, ntk: bool = True, scales=None, n_threads: int | None = None,
                 progress: bool | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """NNGP kernel ``K^L(X1, X2)`` and, if ``ntk``, the NTK ``Th^L(X1, X2)`` in one pass.

    Parameters
    ----------
    net : MLP
    X1 : array (P1, d)
    X2 : array (P2, d), optional
        ``None`` means ``X1`` (the result is then exactly symmetric).
    ntk : bool
        Also return the NTK.
    scales : sequence of L floats > 0, optional
        Per-layer rescaling ``K^l = s_l (sigma_w^2 E[phi phi] + sigma_b^2)`` (the renormalized
        kernels of kernel-rescaling theories); only without ``ntk``.
    n_threads : int, optional
        Threads of the Rust core (default: env ``AK_NUM_THREADS``, else all cores).
        Results do not depend on it.
    progress : bool, optional
        Show a progress bar (default: only for large jobs on a terminal). Ctrl-C interrupts.

    Returns
    -------
    K : ndarray (P1, P2) float64
    Th : ndarray (P1, P2) float64 or None
    """
    net = check_net(net)
    X1 = as_matrix("X1", X1)
    if X2 is not None:
        X2 = as_matrix("X2", X2)
        check_same_features("X2", X2, X1.shape[1], "X1")
    n_threads = check_n_threads(n_threads)
    ntk = check_bool("ntk", ntk)
    scales = _check_scales(scales, net, ntk)
    p2 = X1.shape[0] if X2 is None else X2.shape[0]
    work = X1.shape[0] * p2 * max(net.depth, 1) * (500 if net.method == "quadrature" else 1)
    with progress_bar(progress, "kernel", work, unit="entries") as cb:
        return _core.kernels.lazy_kernels(X1, X2, net, ntk=bool(ntk), scales=scales, n_threads=n_threads,
                                          progress=cb)


def nngp_kernel(net: MLP, X1, X2=None, *, n_threads: int | None = None, progress: bool | None = None) -> np.ndarray:
    """NNGP kernel ``K^L(X1, X2)`` of ``net`` (the readout covariance), shape (P1, P2).

    ``K^0 = sigma_w^2 X1 X2^T / d + sigma_b^2``; ``K^l = sigma_w^2 E[phi(u) phi(v)] + sigma_b^2``
    with ``(u, v) ~ N(0, K^{l-1})``. See :func:`lazy_kernels` for the arguments.
    """
    return lazy_kernels(net, X1, X2, ntk=False, n_threads=n_threads, progress=progress)[0]


def ntk_kernel(net: MLP, X1, X2=None, *, n_threads: int | None = None, progress: bool | None = None) -> np.ndarray:
    """Neural tangent kernel ``Th^L(X1, X2)`` (NTK parameterization), shape (P1, P2).

    ``Th^0 = K^0``, ``Th^l = K^l + sigma_w^2 Th^{l-1} E[phi'(u) phi'(v)]``.
    See :func:`lazy_kernels` for the arguments.
    """
    return lazy_kernels(net, X1, X2, ntk=True, n_threads=n_threads, progress=progress)[1]


def _check_scales(scales, net: MLP, ntk: bool):
    if scales is None:
        return None
    if ntk:
        raise ValueError("scales: the NTK is only defined without layer scales (pass ntk=False)")
    s = np.asarray(scales, dtype=float).ravel()
    if s.shape != (net.depth,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"scales: expected {net.depth} finite values > 0, got {scales!r}")
    return [float(v) for v in s]


def kernel_diagonal(net: MLP, X, *, kernel: str = "nngp", n_threads: int | None = None) -> np.ndarray:
    """Diagonal ``k(x_i, x_i)`` of the NNGP kernel or NTK in O(P) time and memory (equal to the
    diagonal of :func:`lazy_kernels` up to the last bits of ``|x_i|^2``).

    ``kernel`` is ``"nngp"`` or ``"ntk"``.
    """
    if not isinstance(kernel, str) or kernel not in _KERNELS:
        raise ValueError(f"kernel: expected one of {_KERNELS}, got {kernel!r}")
    net = check_net(net)
    X = as_matrix("X", X)
    return _diagonal(net, X, ntk=kernel == "ntk", scales=None, n_threads=check_n_threads(n_threads))


def kernel_diagonal_scaled(net: MLP, X, *, scales, n_threads=None) -> np.ndarray:
    """Diagonal of the layer-rescaled NNGP kernel (see ``scales`` of :func:`lazy_kernels`)."""
    return _diagonal(net, X, ntk=False, scales=_check_scales(scales, net, False), n_threads=n_threads)


def _diagonal(net: MLP, X: np.ndarray, *, ntk: bool, scales, n_threads) -> np.ndarray:
    """Diagonal of the NNGP kernel (or NTK, or the layer-rescaled NNGP with ``scales``) of
    validated inputs, in O(P) time and memory (the core runs each entry's layer recursion)."""
    return _core.kernels.kernel_diagonal(X, net, ntk=ntk, scales=scales, n_threads=n_threads)


def nngp_feature_kernel(net: MLP, X, X2=None, n_threads=None) -> np.ndarray:
    """gamma -> 0 limit of the last feature kernel ``Phi^L`` (no readout sigma_w):
    ``(K^L_NNGP - sigma_b^2) / sigma_w^2`` with the library's NNGP kernel of depth L."""
    K = nngp_kernel(net, X, X2, n_threads=n_threads)
    return (K - net.sigma_b**2) / net.sigma_w**2


def nngp_predict(net: MLP, X, Y, X_test, temperature, n_threads=None) -> np.ndarray:
    """The gamma -> 0 (NNGP) mean predictor ``Phi^L(*, X)(Phi^L + T I)^{-1} Y`` of the mean-field network."""
    K = nngp_feature_kernel(net, X, n_threads=n_threads)
    Kx = nngp_feature_kernel(net, X_test, X, n_threads=n_threads)
    return Kx @ np.linalg.solve(K + temperature * np.eye(len(K)), np.asarray(Y, float).reshape(len(K), -1))
