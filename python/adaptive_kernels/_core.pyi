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
    scales: list[float] | None = None,
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

# --- finite-width ground truth (rust/python/src/finite_width.rs) ---
_F = NDArray[np.float64]
_Progress = Callable[[int, int], None] | None

def sample_posterior(
    x: _F, y: _F, x_test: _F | None, *, widths: list[int], activation: str, sigma_w: float, sigma_b: float,
    parameterization: str, gamma: float, temperature: float, n_chains: int, n_samples: int, burn_in: int,
    thin: int, step_size: float, metropolis: bool, adapt_step_size: bool, target_accept: float, seed: int,
    store_kernels: bool, store_weights: bool, train_hidden: bool = True, n_threads: int | None = None,
    progress: _Progress = None,
) -> dict[str, object]: ...
def train_gd(
    x: _F, y: _F, x_test: _F | None, *, widths: list[int], activation: str, sigma_w: float, sigma_b: float,
    parameterization: str, gamma: float, weight_decay: float, lr: float, max_steps: int, tol: float,
    record_every: int, n_ensemble: int, seed: int, n_threads: int | None = None, progress: _Progress = None,
) -> dict[str, object]: ...
def finite_potential_and_gradient(
    theta: _F, x: _F, y: _F, *, widths: list[int], activation: str, sigma_w: float, sigma_b: float,
    parameterization: str, gamma: float, beta: float, decay: float,
) -> tuple[float, _F]: ...
def langevin_step(
    theta: _F, x: _F, y: _F, xi: _F, *, widths: list[int], activation: str, sigma_w: float, sigma_b: float,
    parameterization: str, gamma: float, temperature: float, step_size: float,
) -> _F: ...
def gd_step(
    theta: _F, x: _F, y: _F, *, widths: list[int], activation: str, sigma_w: float, sigma_b: float,
    parameterization: str, gamma: float, lr: float, weight_decay: float,
) -> _F: ...
def finite_forward(
    theta: _F, x: _F, *, n_out: int, widths: list[int], activation: str, sigma_w: float, sigma_b: float,
    parameterization: str, gamma: float,
) -> _F: ...
def finite_param_count(
    *, d: int, n_out: int, widths: list[int], activation: str, sigma_w: float, sigma_b: float,
    parameterization: str, gamma: float,
) -> int: ...

# --- exact finite-width posterior of a one-hidden-layer linear network (rust/python/src/exact_linear.rs) ---
def exact_linear_posterior(
    x: _F, y: _F, x_test: _F | None, *, sigma_w: float, width: int, temperature: float, parameterization: str,
    gamma: float, n_threads: int | None = None, progress: _Progress = None,
) -> dict[str, object]: ...

# --- kernel renormalization (rust/python/src/kernel_renormalization.rs) ---
def kr_solve(
    x: _F, y: _F, *, depth: int, activation: str | Callable[[_F], _F], derivative: Callable[[_F], _F] | None,
    sigma_w: float, sigma_b: float, method: str, quadrature_order: int, widths: list[list[float]],
    temperatures: list[float], q0: list[float] | None = None, tol: float = 1e-10, max_iter: int = 200,
    solver: str = "auto", n_threads: int | None = None, progress: _Progress = None,
) -> list[dict[str, object]]: ...
def kr_action(
    x: _F, y: _F, q: list[float], *, depth: int, activation: str | Callable[[_F], _F],
    derivative: Callable[[_F], _F] | None, sigma_w: float, sigma_b: float, method: str, quadrature_order: int,
    widths: list[float], temperature: float, n_threads: int | None = None,
) -> tuple[float, _F]: ...

# --- Bayesian mean-field saddle point, deep linear networks (rust/python/src/bayesian_mean_field.rs) ---
def bmf_solve(
    x: _F, y: _F, *, depth: int, activation: str | Callable[[_F], _F], derivative: Callable[[_F], _F] | None,
    sigma_w: float, sigma_b: float, method: str, quadrature_order: int, gammas: list[float],
    temperatures: list[float], init: list[_F] | None = None, tol: float = 1e-10, max_iter: int = 5000,
    solver: str = "auto", memory: int = 0, n_threads: int | None = None, progress: _Progress = None,
) -> list[dict[str, object]]: ...
def bmf_objective(
    x: _F, y: _F, kernels: list[_F], *, depth: int, activation: str | Callable[[_F], _F],
    derivative: Callable[[_F], _F] | None, sigma_w: float, sigma_b: float, method: str, quadrature_order: int,
    gamma: float, temperature: float, n_threads: int | None = None,
) -> tuple[float, list[_F]]: ...
def bmf_predict(
    x: _F, y: _F, kernels: list[_F], x_test: _F, *, depth: int, activation: str | Callable[[_F], _F],
    derivative: Callable[[_F], _F] | None, sigma_w: float, sigma_b: float, method: str, quadrature_order: int,
    temperature: float, return_var: bool = False, n_threads: int | None = None, progress: _Progress = None,
) -> tuple[_F, _F | None]: ...

# --- tilted single-site density (rust/python/src/bayesian_mean_field.rs) ---
def tilted_moments(
    c: _F, hat_phi: _F, *, activation: str, n_chains: int, n_samples: int, burn_in: int, thin: int,
    step_size: float, seed: int, n_threads: int | None = None, progress: _Progress = None,
) -> dict[str, object]: ...
def tilted_potential(z: _F, c: _F, hat_phi: _F, *, activation: str) -> tuple[float, _F]: ...

# --- sampled (nonlinear) mean-field saddle point (rust/python/src/bayesian_mean_field.rs) ---
def bmf_tilted_solve(
    x: _F, y: _F, *, depth: int, activation: str | Callable[[_F], _F], derivative: Callable[[_F], _F] | None,
    sigma_w: float, sigma_b: float, method: str, quadrature_order: int, gammas: list[float], temperature: float,
    n_chains: int, n_samples: int, burn_in: int, thin: int, step_size: float, seed: int,
    tol: float | None = None, max_iter: int | None = None, krylov: int | None = None, forcing: float | None = None,
    min_kish: float | None = None, min_trial_kish: float | None = None, max_refresh: int | None = None,
    max_stages: int | None = None, n_threads: int | None = None, progress: _Progress = None,
) -> list[dict[str, object]]: ...
def bmf_tilted_map(
    k0: _F, y: _F, hidden: list[_F], a: _F, samples: list[_F], c_refs: list[_F], hat_refs: list[_F], *,
    activation: str, sigma_w: float, sigma_b: float, gamma: float, temperature: float, repeat: int = 1,
    n_threads: int | None = None,
) -> dict[str, object]: ...
def bmf_tilted_predict(
    x: _F, y: _F, kernels: list[_F], samples: list[_F], weights: list[_F], x_test: _F, *, depth: int,
    activation: str | Callable[[_F], _F], derivative: Callable[[_F], _F] | None, sigma_w: float, sigma_b: float,
    method: str, quadrature_order: int, temperature: float, seed: int, return_var: bool = False,
    n_threads: int | None = None,
) -> tuple[_F, _F | None]: ...
