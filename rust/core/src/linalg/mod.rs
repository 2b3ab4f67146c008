//! Dense symmetric linear algebra on faer: Cholesky with jitter escalation, triangular and
//! Cholesky solves, symmetric eigendecomposition, PSD covariance factors, small dense helpers.
//! Matrices are faer views; square symmetric inputs from row-major buffers are passed
//! transposed (a free, column-major view).
mod cholesky;
mod dense;
mod eigen;
mod matmul;
mod pool;
mod psd;

pub use cholesky::{
    check_factor, cholesky, cholesky_scaled_with_jitter, cholesky_solve_in_place, cholesky_with_jitter,
    lower_solve_in_place,
    scaled_update, CholeskyInfo, JITTER_MAX, JITTER_START,
};
pub use dense::{a_at, at_b, check_symmetric, frob2, lower_solve, scale_rows, symmetrize, tril_product};
pub use eigen::{symmetric_eigen, workspace_bytes as eigen_workspace_bytes, EIGEN_MATRICES};
pub use matmul::{matmul, solve_lower_triangular_in_place, solve_upper_triangular_in_place};
pub use pool::BufferPool;
pub use psd::{CovFactor, RANK_RCOND};
