//! The one matrix product and triangular solve of the core: faer's, made independent of the
//! thread count.
//!
//! faer's parallel product splits the reduction dimension of matrix-vector shaped products (an
//! output with a few columns, or a few rows), so their last bits depend on the number of threads
//! (measured: `(2400 x 120) (120 x 1)` differs by 3e-15 between 1, 2 and 3 threads), while its
//! products with wide outputs split the output only. Thin outputs are therefore computed here in
//! fixed blocks of rows (or columns), each block sequentially, the blocks in parallel: the same
//! bits for any thread count. Its triangular solves with a few right-hand sides likewise
//! (`1500 x 1`: 5e-15); they run sequentially here (O(n^2) work per right-hand side).
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Outputs with at most this many columns (or rows) are computed in fixed blocks.
const THIN: usize = 16;
/// Rows (or columns) per block of a thin output.
const BLOCK: usize = 256;

/// `dst = alpha lhs rhs` (`Accum::Replace`) or `dst += alpha lhs rhs` (`Accum::Add`), with the
/// same bits for any `par`.
pub fn matmul(dst: MatMut<'_, f64>, accum: Accum, lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>, alpha: f64, par: Par) {
    let (m, n) = (dst.nrows(), dst.ncols());
    if n <= THIN && m > THIN {
        let blocks: Vec<(usize, MatMut<'_, f64>)> = split_rows(dst);
        let run = |(start, d): (usize, MatMut<'_, f64>)| {
            let rows = d.nrows();
            faer::linalg::matmul::matmul(d, accum, lhs.subrows(start, rows), rhs, alpha, Par::Seq)
        };
        match par {
            Par::Seq => blocks.into_iter().for_each(run),
            _ => blocks.into_par_iter().for_each(run),
        }
    } else if m <= THIN && n > THIN {
        matmul(dst.transpose_mut(), accum, rhs.transpose(), lhs.transpose(), alpha, par)
    } else {
        faer::linalg::matmul::matmul(dst, accum, lhs, rhs, alpha, par)
    }
}

fn split_rows(dst: MatMut<'_, f64>) -> Vec<(usize, MatMut<'_, f64>)> {
    let mut out = Vec::new();
    let mut rest = dst;
    let mut start = 0;
    while rest.nrows() > BLOCK {
        let (top, bottom) = rest.split_at_row_mut(BLOCK);
        out.push((start, top));
        start += BLOCK;
        rest = bottom;
    }
    out.push((start, rest));
    out
}

/// `Par::Seq` for a solve with at most [`THIN`] right-hand sides (see the module docs).
fn solve_par(rhs: &MatMut<'_, f64>, par: Par) -> Par {
    if rhs.ncols() <= THIN {
        Par::Seq
    } else {
        par
    }
}

/// `b <- L^{-1} b` for lower triangular `l`, the same bits for any `par`.
pub fn solve_lower_triangular_in_place(l: MatRef<'_, f64>, b: MatMut<'_, f64>, par: Par) {
    let par = solve_par(&b, par);
    faer::linalg::triangular_solve::solve_lower_triangular_in_place(l, b, par)
}

/// `b <- U^{-1} b` for upper triangular `u`, the same bits for any `par`.
pub fn solve_upper_triangular_in_place(u: MatRef<'_, f64>, b: MatMut<'_, f64>, par: Par) {
    let par = solve_par(&b, par);
    faer::linalg::triangular_solve::solve_upper_triangular_in_place(u, b, par)
}
