//! Symmetric eigendecomposition (sequential, so results do not depend on the thread count).
//!
//! Memory: beyond its input, an `n x n` decomposition holds the eigenvectors and faer's
//! workspace (`self_adjoint_evd_scratch`: a copy of the matrix, a block of Householder
//! vectors, and two `n x n` matrices of the divide-and-conquer step), about
//! [`EIGEN_MATRICES`] `n x n` matrices in all ([`workspace_bytes`] has the exact figure).
//! Callers count them in their estimates; [`symmetric_eigen`] checks them again right before
//! allocating (against the memory available then) and allocates faer's workspace fallibly, so
//! an eigendecomposition that cannot fit is an `OutOfMemory` error, never an abort.
use super::check_symmetric;
use crate::error::{AkError, Result};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
use faer::{Mat, MatRef, Par};

/// `n x n` matrices an eigendecomposition allocates beyond its input (eigenvectors + faer's
/// workspace), rounded up; for the callers' memory estimates.
pub const EIGEN_MATRICES: f64 = 4.0;

fn scratch(n: usize) -> faer::dyn_stack::StackReq {
    self_adjoint_evd_scratch::<f64>(n, ComputeEigenvectors::Yes, Par::Seq, Default::default())
}

/// Bytes an `n x n` eigendecomposition allocates beyond its input: the eigenvectors, the
/// eigenvalues and faer's workspace (its `StackReq`).
pub fn workspace_bytes(n: usize) -> f64 {
    let req = scratch(n).unaligned_bytes_required() as f64;
    8.0 * (n as f64) * (n as f64 + 1.0) + req
}

/// Eigendecomposition `A = V diag(w) V^T` of a symmetric matrix, eigenvalues ascending.
///
/// Runs sequentially whatever `par` says: faer's parallel tridiagonalization changes the
/// rounding with the thread count, and results must not depend on it.
pub fn symmetric_eigen(
    name: &'static str,
    a: MatRef<'_, f64>,
    par: Par,
) -> Result<(Vec<f64>, Mat<f64>)> {
    let _ = par;
    let par = Par::Seq;
    check_symmetric(name, a)?;
    let n = a.nrows();
    crate::validate::memory(
        name,
        "an eigendecomposition (eigenvectors and faer's workspace)",
        workspace_bytes(n),
        "use fewer points",
    )?;
    let mut w = faer::diag::Diag::<f64>::zeros(n);
    let mut v = Mat::<f64>::zeros(n, n);
    let mut mem = MemBuffer::try_new(scratch(n)).map_err(|_| AkError::OutOfMemory {
        name,
        what: "faer's eigendecomposition workspace".to_string(),
        needed: format!("{:.1} MiB", workspace_bytes(n) / 1048576.0),
        available: "less".to_string(),
        hint: "use fewer points".to_string(),
    })?;
    let stack = MemStack::new(&mut mem);
    self_adjoint_evd(
        a,
        w.as_mut(),
        Some(v.as_mut()),
        par,
        stack,
        Default::default(),
    )
    .map_err(|e| AkError::LinAlg {
        name,
        msg: format!("eigendecomposition did not converge ({e:?})"),
    })?;
    Ok(((0..n).map(|i| w[i]).collect(), v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The callers' count (`EIGEN_MATRICES` n x n matrices) covers what faer asks for, and is
    /// close to it for large n (eigenvectors + a copy + two divide-and-conquer matrices).
    #[test]
    fn workspace_count_covers_faers_request() {
        for n in [100usize, 1000, 5000, 20000] {
            let m = 8.0 * (n * n) as f64;
            let w = workspace_bytes(n);
            assert!(w <= EIGEN_MATRICES * m * 1.05, "n = {n}: {} matrices", w / m);
            // divide and conquer (n above faer's recursion threshold) takes two more
            assert!(n < 1000 || w >= 3.5 * m, "n = {n}: {} matrices", w / m);
        }
    }
}
