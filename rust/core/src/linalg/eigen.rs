//! Symmetric eigendecomposition (sequential, so results do not depend on the thread count).
use super::check_symmetric;
use crate::error::{AkError, Result};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self_adjoint_evd, self_adjoint_evd_scratch, ComputeEigenvectors};
use faer::{Mat, MatRef, Par};

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
    let mut w = faer::diag::Diag::<f64>::zeros(n);
    let mut v = Mat::<f64>::zeros(n, n);
    let mut mem = MemBuffer::new(self_adjoint_evd_scratch::<f64>(
        n,
        ComputeEigenvectors::Yes,
        par,
        Default::default(),
    ));
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
