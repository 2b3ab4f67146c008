"""Type stubs of the Rust extension (thin binding over adaptive-kernels-core)."""
from typing import Callable

import numpy as np
from numpy.typing import NDArray

__version__: str

def lazy_kernels(
    x1: NDArray[np.float64],
    x2: NDArray[np.float64] | None,
    *,
    depth: int,
    activation: str | Callable[[NDArray[np.float64]], NDArray[np.float64]],
    derivative: Callable[[NDArray[np.float64]], NDArray[np.float64]] | None,
    sigma_w: float,
    sigma_b: float,
    method: str,
    quadrature_order: int,
    ntk: bool,
    n_threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]: ...
def cholesky(a: NDArray[np.float64], ridge: float, n_threads: int | None = None) -> tuple[NDArray[np.float64], float, int]: ...
def cho_solve(u: NDArray[np.float64], y: NDArray[np.float64], n_threads: int | None = None) -> NDArray[np.float64]: ...
def gp_predict(
    u: NDArray[np.float64],
    alpha: NDArray[np.float64],
    k_cross: NDArray[np.float64],
    k_test_diag: NDArray[np.float64] | None = None,
    n_threads: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]: ...
def symmetric_eigen(a: NDArray[np.float64], n_threads: int | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def ntk_flow_coefficients(
    w: NDArray[np.float64], v: NDArray[np.float64], y: NDArray[np.float64], times: NDArray[np.float64], lr: float,
    n_threads: int | None = None,
) -> NDArray[np.float64]: ...
def kernel_alignment(k: NDArray[np.float64], y: NDArray[np.float64], n_threads: int | None = None) -> float: ...
def cka(k1: NDArray[np.float64], k2: NDArray[np.float64], n_threads: int | None = None) -> float: ...
def default_threads() -> int: ...
