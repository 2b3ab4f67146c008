//! Small dense helpers on faer matrices: products with a transpose, symmetrisation, triangular
//! products and solves, norms, row scaling, and the symmetry check of inputs.
use crate::error::{invalid, shape, Result};
use crate::linalg::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use crate::linalg::solve_lower_triangular_in_place;
use faer::{Accum, Mat, MatRef, Par};

/// Checks that `a` is square, finite and symmetric to `1e-10` relative (name for errors).
/// Visits the matrix in 64 x 64 tiles so both `a[(i, j)]` and `a[(j, i)]` stay in cache.
pub fn check_symmetric(name: &'static str, a: MatRef<'_, f64>) -> Result<()> {
    let n = a.nrows();
    if a.ncols() != n || n == 0 {
        return Err(shape(
            name,
            format!(
                "must be a non-empty square matrix, got ({}, {})",
                a.nrows(),
                a.ncols()
            ),
        ));
    }
    const B: usize = 64;
    let mut scale: f64 = 0.0;
    let mut asym: f64 = 0.0;
    for jb in (0..n).step_by(B) {
        for ib in (jb..n).step_by(B) {
            for j in jb..(jb + B).min(n) {
                for i in ib.max(j)..(ib + B).min(n) {
                    let (x, y) = (a[(i, j)], a[(j, i)]);
                    if !x.is_finite() || !y.is_finite() {
                        return Err(invalid(
                            name,
                            format!("contains a non-finite value at ({i}, {j})"),
                        ));
                    }
                    scale = scale.max(x.abs());
                    asym = asym.max((x - y).abs());
                }
            }
        }
    }
    if asym > 1e-10 * scale.max(f64::MIN_POSITIVE) {
        return Err(invalid(
            name,
            format!("must be symmetric; max |A - A^T| = {asym:.3e}"),
        ));
    }
    Ok(())
}

/// `L^{-1} B` for lower `L`.
pub fn lower_solve(l: &Mat<f64>, b: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let mut out = b.to_owned();
    solve_lower_triangular_in_place(l.as_ref(), out.as_mut(), par);
    out
}
/// `M <- (M + M^T) / 2` (each pair averaged once).
pub fn symmetrize(m: &mut Mat<f64>) {
    let n = m.nrows();
    for j in 0..n {
        for i in j + 1..n {
            let v = 0.5 * (m[(i, j)] + m[(j, i)]);
            m[(i, j)] = v;
            m[(j, i)] = v;
        }
    }
}
/// `A B` of lower-triangular `A`, `B` (lower triangle only).
pub fn tril_product(a: &Mat<f64>, b: &Mat<f64>, par: Par) -> Mat<f64> {
    let n = a.nrows();
    let mut out = Mat::<f64>::zeros(n, n);
    triangular::matmul(
        out.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        a.as_ref(),
        BlockStructure::TriangularLower,
        b.as_ref(),
        BlockStructure::TriangularLower,
        1.0,
        par,
    );
    out
}
/// `A^T B` (dense).
pub fn at_b(a: MatRef<'_, f64>, b: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.ncols(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a.transpose(), b, 1.0, par);
    out
}
/// `A A^T` (dense, symmetric).
pub fn a_at(a: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let mut out = Mat::<f64>::zeros(a.nrows(), a.nrows());
    matmul(out.as_mut(), Accum::Replace, a, a.transpose(), 1.0, par);
    symmetrize(&mut out);
    out
}
/// Squared Frobenius norm (column by column).
pub fn frob2(a: &Mat<f64>) -> f64 {
    let mut s = 0.0;
    for j in 0..a.ncols() {
        for v in a.col_as_slice(j) {
            s += v * v;
        }
    }
    s
}

/// `Z <- diag(s) Z`.
pub fn scale_rows(z: &mut Mat<f64>, s: &[f64]) {
    for j in 0..z.ncols() {
        for (k, v) in s.iter().enumerate() {
            z[(k, j)] *= v;
        }
    }
}
