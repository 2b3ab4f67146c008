//! Cholesky factorisations: jittered (recursive, parallel), plain, rank-one update; triangular
//! and Cholesky solves.
use super::check_symmetric;
use crate::error::{invalid, shape, AkError, Result};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch, LltError};
use faer::linalg::matmul::triangular::{self, BlockStructure};
use crate::linalg::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::Accum;
use faer::{Mat, MatMut, MatRef, Par, Side};

/// Outcome of a jittered Cholesky factorization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CholeskyInfo {
    /// Jitter added to the diagonal on top of the ridge (0 when none was needed).
    pub jitter: f64,
    /// Number of factorizations tried.
    pub attempts: usize,
}

/// Relative size of the first jitter tried and the largest one, times the mean diagonal.
pub const JITTER_START: f64 = 1e-12;
pub const JITTER_MAX: f64 = 1e-4;

/// Below this size the recursive Cholesky calls faer's sequential kernel.
const CHOL_LEAF: usize = 512;

/// Recursive (right-looking) Cholesky of the lower triangle of `a`, in place:
/// `L11 = chol(A11)`, `L21 = A21 L11^{-T}` (triangular solve), `A22 -= L21 L21^T` (lower
/// triangle only), recurse on `A22`. Nearly all flops land in large GEMM-like updates, which
/// faer parallelizes well; faer's own blocked Cholesky scaled poorly from 1 to 2 threads here
/// (measurement: `benches/README.md`).
/// Returns the index of the first non-positive pivot on failure.
fn cholesky_recursive(
    mut a: MatMut<'_, f64>,
    par: Par,
    mem: &mut MemBuffer,
) -> std::result::Result<(), usize> {
    let n = a.nrows();
    // The recursion does not depend on `par`, so results are identical for any thread count.
    if n <= CHOL_LEAF {
        let stack = MemStack::new(mem);
        return cholesky_in_place(a, Default::default(), Par::Seq, stack, Default::default())
            .map(|_| ())
            .map_err(|LltError::NonPositivePivot { index }| index);
    }
    let k = (n / 2).next_multiple_of(64).min(n - 1);
    let (a11, _, a21, a22) = a.rb_mut().split_at_mut(k, k);
    let mut a11 = a11;
    let mut a21 = a21;
    cholesky_recursive(a11.rb_mut(), par, mem)?;
    // L21^T = L11^{-1} A21^T
    solve_lower_triangular_in_place(a11.rb(), a21.rb_mut().transpose_mut(), par);
    triangular::matmul(
        a22,
        BlockStructure::TriangularLower,
        Accum::Add,
        a21.rb(),
        BlockStructure::Rectangular,
        a21.rb().transpose(),
        BlockStructure::Rectangular,
        -1.0,
        par,
    );
    let (_, _, _, a22) = a.split_at_mut(k, k);
    cholesky_recursive(a22, par, mem).map_err(|i| i + k)
}

/// Factors `A + (ridge + jitter) I = L L^T` into `l` (lower triangle; the strict upper triangle
/// is zeroed). Jitter starts at 0, then `JITTER_START * mean(diag A)`, growing x10 up to
/// `JITTER_MAX * mean(diag A)`; beyond that the matrix is reported as not positive definite.
pub fn cholesky_with_jitter(
    name: &'static str,
    a: MatRef<'_, f64>,
    ridge: f64,
    l: MatMut<'_, f64>,
    par: Par,
) -> Result<CholeskyInfo> {
    check_symmetric(name, a)?;
    cholesky_scaled_with_jitter(name, a, 1.0, ridge, l, par)
}

/// [`cholesky_with_jitter`] of `scale * A` (`scale > 0`), read from `a` without a scaled copy:
/// callers that hold `A` factor `scale * A + ridge I` into `l` with no third P x P buffer.
/// Only the lower triangle of `a` is read and its symmetry is not checked (a strided P^2
/// pass, 2-3% of a kernel-renormalization evaluation): for finite matrices the caller built
/// symmetric.
pub fn cholesky_scaled_with_jitter(
    name: &'static str,
    a: MatRef<'_, f64>,
    scale_a: f64,
    ridge: f64,
    mut l: MatMut<'_, f64>,
    par: Par,
) -> Result<CholeskyInfo> {
    if a.nrows() != a.ncols() || a.nrows() == 0 {
        return Err(shape(
            name,
            format!("must be a non-empty square matrix, got ({}, {})", a.nrows(), a.ncols()),
        ));
    }
    if !(scale_a.is_finite() && scale_a > 0.0) {
        return Err(invalid("scale", format!("must be finite and > 0, got {scale_a}")));
    }
    let n = a.nrows();
    if l.nrows() != n || l.ncols() != n {
        return Err(shape(
            "out",
            "factor buffer must match the matrix".to_string(),
        ));
    }
    if !(ridge.is_finite() && ridge >= 0.0) {
        return Err(invalid(
            "ridge",
            format!("must be finite and >= 0, got {ridge}"),
        ));
    }
    let mean_diag = scale_a * (0..n).map(|i| a[(i, i)].abs()).sum::<f64>() / n as f64;
    let scale = if mean_diag > 0.0 { mean_diag } else { 1.0 };
    let mut mem = MemBuffer::new(cholesky_in_place_scratch::<f64>(
        n,
        Par::Seq,
        Default::default(),
    ));
    let mut jitter = 0.0;
    let mut attempts = 0;
    loop {
        attempts += 1;
        for j in 0..n {
            for i in j..n {
                l[(i, j)] = scale_a * a[(i, j)];
            }
            l[(j, j)] += ridge + jitter;
        }
        match cholesky_recursive(l.rb_mut(), par, &mut mem) {
            Ok(()) => break,
            Err(index) => {
                let next = if jitter == 0.0 {
                    JITTER_START * scale
                } else {
                    jitter * 10.0
                };
                if next > JITTER_MAX * scale * (1.0 + 1e-9) {
                    return Err(AkError::NotPositiveDefinite {
                        name,
                        msg: format!(
                            "Cholesky failed at pivot {index} even with jitter {jitter:.3e} \
                             (= {:.0e} x mean diagonal) added to ridge {ridge:.3e}; the kernel \
                             has negative eigenvalues or is singular beyond round-off",
                            JITTER_MAX
                        ),
                    });
                }
                jitter = next;
            }
        }
    }
    for j in 1..n {
        for i in 0..j {
            l[(i, j)] = 0.0;
        }
    }
    Ok(CholeskyInfo { jitter, attempts })
}

/// Checks that `l` can serve as a triangular factor: non-empty, square, and with a finite,
/// non-zero diagonal (a zero pivot makes the triangular solves divide by zero).
pub fn check_factor(l: MatRef<'_, f64>) -> Result<()> {
    let n = l.nrows();
    if n == 0 || l.ncols() != n {
        return Err(shape(
            "factor",
            format!(
                "must be a non-empty square matrix, got ({}, {})",
                l.nrows(),
                l.ncols()
            ),
        ));
    }
    if let Some(i) = (0..n).position(|i| {
        let d = l[(i, i)];
        !(d.is_finite() && d != 0.0)
    }) {
        return Err(invalid(
            "factor",
            format!(
                "is singular or non-finite: diagonal entry {i} is {}; expected a Cholesky factor",
                l[(i, i)]
            ),
        ));
    }
    Ok(())
}

/// Solves `L L^T X = B` in place.
pub fn cholesky_solve_in_place(l: MatRef<'_, f64>, b: MatMut<'_, f64>, par: Par) -> Result<()> {
    check_factor(l)?;
    if b.nrows() != l.nrows() {
        return Err(shape(
            "y",
            format!(
                "has {} rows but the factor is {} x {}",
                b.nrows(),
                l.nrows(),
                l.ncols()
            ),
        ));
    }
    let mut b = b;
    solve_lower_triangular_in_place(l, b.rb_mut(), par);
    solve_upper_triangular_in_place(l.transpose(), b.rb_mut(), par);
    Ok(())
}

/// Solves `L X = B` in place.
pub fn lower_solve_in_place(l: MatRef<'_, f64>, b: MatMut<'_, f64>, par: Par) -> Result<()> {
    check_factor(l)?;
    if b.nrows() != l.nrows() {
        return Err(shape(
            "K_cross",
            format!(
                "has {} rows but the factor is {} x {}",
                b.nrows(),
                l.nrows(),
                l.ncols()
            ),
        ));
    }
    solve_lower_triangular_in_place(l, b, par);
    Ok(())
}

/// Lower Cholesky factor of a symmetric positive definite matrix (no jitter), or None.
pub fn cholesky(a: MatRef<'_, f64>) -> Option<Mat<f64>> {
    let llt = a.llt(Side::Lower).ok()?;
    let l = llt.L();
    let n = a.nrows();
    let out = Mat::from_fn(n, n, |i, j| if i >= j { l[(i, j)] } else { 0.0 });
    if (0..n).all(|i| out[(i, i)].is_finite() && out[(i, i)] > 0.0) {
        Some(out)
    } else {
        None
    }
}

/// Lower factor of `s^2 B B^T + x x^T` from a lower factor `B` (diagonal signs arbitrary) by a
/// rank-one Cholesky update (O(n^2), stable: an update, never a downdate).
pub fn scaled_update(b: &Mat<f64>, s: f64, x: &[f64]) -> Mat<f64> {
    let n = b.nrows();
    let mut l = Mat::from_fn(n, n, |i, j| {
        if i >= j {
            s * b[(i, j)] * b[(j, j)].signum()
        } else {
            0.0
        }
    });
    if x.iter().all(|v| *v == 0.0) {
        return l;
    }
    let mut x = x.to_vec();
    for k in 0..n {
        let lkk = l[(k, k)];
        let r = lkk.hypot(x[k]);
        let (c, sn) = (r / lkk, x[k] / lkk);
        l[(k, k)] = r;
        for i in k + 1..n {
            let li = (l[(i, k)] + sn * x[i]) / c;
            x[i] = c * x[i] - sn * li;
            l[(i, k)] = li;
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_rescues_singular_psd_and_rejects_indefinite() {
        // rank-1 PSD: needs jitter
        let x = [1.0, 2.0, 3.0];
        let a = Mat::<f64>::from_fn(3, 3, |i, j| x[i] * x[j]);
        let mut l = Mat::<f64>::zeros(3, 3);
        let info = cholesky_with_jitter("K", a.as_ref(), 0.0, l.as_mut(), Par::Seq).unwrap();
        assert!(info.jitter > 0.0);
        // indefinite
        let b = Mat::<f64>::from_fn(2, 2, |i, j| if i == j { 1.0 } else { 2.0 });
        let mut l = Mat::<f64>::zeros(2, 2);
        let err = cholesky_with_jitter("K", b.as_ref(), 0.0, l.as_mut(), Par::Seq).unwrap_err();
        assert!(matches!(err, AkError::NotPositiveDefinite { .. }));
    }

    #[test]
    fn solve_roundtrip() {
        let n = 5;
        let a = Mat::<f64>::from_fn(n, n, |i, j| {
            if i == j {
                3.0
            } else {
                1.0 / (1.0 + (i + j) as f64)
            }
        });
        let mut l = Mat::<f64>::zeros(n, n);
        cholesky_with_jitter("K", a.as_ref(), 0.0, l.as_mut(), Par::Seq).unwrap();
        let mut b = Mat::<f64>::from_fn(n, 1, |i, _| i as f64);
        let b0 = b.clone();
        cholesky_solve_in_place(l.as_ref(), b.as_mut(), Par::Seq).unwrap();
        let r = &a * &b - &b0;
        assert!(r.norm_max() < 1e-12);
    }

    #[test]
    fn solves_reject_bad_factors() {
        let mut b = Mat::<f64>::zeros(3, 1);
        let nonsquare = Mat::<f64>::zeros(3, 2);
        let e = cholesky_solve_in_place(nonsquare.as_ref(), b.as_mut(), Par::Seq).unwrap_err();
        assert!(matches!(e, AkError::Shape { name: "factor", .. }), "{e}");
        let e = lower_solve_in_place(nonsquare.as_ref(), b.as_mut(), Par::Seq).unwrap_err();
        assert!(matches!(e, AkError::Shape { name: "factor", .. }), "{e}");
        let mut singular = Mat::<f64>::identity(3, 3);
        singular[(1, 1)] = 0.0;
        let e = cholesky_solve_in_place(singular.as_ref(), b.as_mut(), Par::Seq).unwrap_err();
        assert!(
            matches!(e, AkError::InvalidArgument { name: "factor", .. }),
            "{e}"
        );
        singular[(1, 1)] = f64::NAN;
        let e = lower_solve_in_place(singular.as_ref(), b.as_mut(), Par::Seq).unwrap_err();
        assert!(
            matches!(e, AkError::InvalidArgument { name: "factor", .. }),
            "{e}"
        );
        let eye = Mat::<f64>::identity(2, 2);
        let e = cholesky_solve_in_place(eye.as_ref(), b.as_mut(), Par::Seq).unwrap_err();
        assert!(matches!(e, AkError::Shape { name: "y", .. }), "{e}");
    }
}
