//! Factors of positive semi-definite covariances: Cholesky when numerically definite, else the
//! eigen-factor on the support (eigenvalues above `RANK_RCOND` times the largest).
use super::{cholesky, scale_rows, symmetric_eigen};
use crate::error::{invalid, shape, AkError, Result};
use crate::linalg::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// Eigenvalues below this fraction of the largest one span the null space of a PSD matrix
/// (the support of `K^0`, the rank of a covariance factor).
pub const RANK_RCOND: f64 = 1e-10;

/// A factor `C = F F^T` of a prior covariance: the lower Cholesky factor (P x P) when `C` is
/// positive definite, else `F = U Lambda^{1/2}` (P x r) on its support (the eigenpairs above
/// `RANK_RCOND * lambda_max`), as for the input kernel `K^0` of P > d + 1 points. The density then
/// lives on the r-dimensional support `h = F z`, and `C^{-1}` becomes the pseudo-inverse there.
#[derive(Debug, Clone)]
pub enum CovFactor {
    Cholesky(Mat<f64>),
    Support {
        /// `U Lambda^{1/2}` (P x r).
        f: Mat<f64>,
        /// `U` (P x r) and `lambda^{-1/2}` of the kept eigenpairs.
        u: Mat<f64>,
        isqrt: Vec<f64>,
    },
}

impl CovFactor {
    /// Cholesky when it succeeds with all squared pivots above `RANK_RCOND * max diag C` (pivots
    /// bound the smallest eigenvalue from above, so a tiny one flags a numerically singular C),
    /// else the support factor. Fails only for a zero, non-finite or indefinite C.
    pub fn psd(name: &'static str, c: MatRef<'_, f64>, par: Par) -> Result<Self> {
        let p = c.nrows();
        if p == 0 || c.ncols() != p {
            return Err(shape(
                name,
                format!("must be square and non-empty, got ({p}, {})", c.ncols()),
            ));
        }
        let dmax = (0..p).map(|i| c[(i, i)]).fold(0.0f64, f64::max);
        if !(dmax > 0.0 && dmax.is_finite()) {
            return Err(invalid(name, "the covariance is zero or non-finite"));
        }
        let rcond = RANK_RCOND;
        if let Some(l) = cholesky(c) {
            if (0..p).all(|i| l[(i, i)] * l[(i, i)] > rcond * dmax) {
                return Ok(CovFactor::Cholesky(l));
            }
        }
        let (w, v) = symmetric_eigen(name, c, par)?;
        let lmax = w[p - 1];
        if w[0] < -1e-8 * lmax {
            return Err(AkError::NotPositiveDefinite {
                name,
                msg: format!("eigenvalue {:.3e} < 0 (largest {lmax:.3e})", w[0]),
            });
        }
        let keep: Vec<usize> = (0..p).filter(|&i| w[i] > rcond * lmax).collect();
        let r = keep.len();
        let u = Mat::from_fn(p, r, |i, k| v[(i, keep[k])]);
        let f = Mat::from_fn(p, r, |i, k| u[(i, k)] * w[keep[k]].sqrt());
        let isqrt = keep.iter().map(|&k| 1.0 / w[k].sqrt()).collect();
        Ok(CovFactor::Support { f, u, isqrt })
    }

    /// `F` (P x r; lower triangular when r = P).
    pub fn f(&self) -> MatRef<'_, f64> {
        match self {
            CovFactor::Cholesky(l) => l.as_ref(),
            CovFactor::Support { f, .. } => f.as_ref(),
        }
    }

    /// Rank r of C.
    pub fn rank(&self) -> usize {
        self.f().ncols()
    }

    /// Whitened coordinates `Z = F^+ B` (r x k) of the columns of B (P x k): `L^{-1} B`, or
    /// `Lambda^{-1/2} U^T B` on the support (`|Z_j|^2 = B_j^T C^+ B_j`).
    pub fn whiten(&self, b: MatRef<'_, f64>, par: Par) -> Mat<f64> {
        match self {
            CovFactor::Cholesky(l) => {
                let mut z = b.to_owned();
                crate::linalg::solve_lower_triangular_in_place(
                    l.as_ref(),
                    z.as_mut(),
                    par,
                );
                z
            }
            CovFactor::Support { u, isqrt, .. } => {
                let mut z = Mat::<f64>::zeros(u.ncols(), b.ncols());
                matmul(z.as_mut(), Accum::Replace, u.transpose(), b, 1.0, par);
                scale_rows(&mut z, isqrt);
                z
            }
        }
    }

    /// `C^+ B` (`C^{-1} B` when C is positive definite).
    pub fn solve(&self, b: MatRef<'_, f64>, par: Par) -> Mat<f64> {
        let z = self.whiten(b, par);
        match self {
            CovFactor::Cholesky(l) => {
                let mut z = z;
                crate::linalg::solve_upper_triangular_in_place(
                    l.transpose(),
                    z.as_mut(),
                    par,
                );
                z
            }
            CovFactor::Support { u, isqrt, .. } => {
                let mut z = z;
                scale_rows(&mut z, isqrt);
                let mut out = Mat::<f64>::zeros(u.nrows(), b.ncols());
                matmul(
                    out.as_mut(),
                    Accum::Replace,
                    u.as_ref(),
                    z.as_ref(),
                    1.0,
                    par,
                );
                out
            }
        }
    }
}
