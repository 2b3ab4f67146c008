//! Kernel alignment metrics.
//!
//! Kernel-target alignment (Cristianini et al. 2002): `A(K, Y) = <K, Y Y^T>_F /
//! (||K||_F ||Y Y^T||_F)`. Centered kernel alignment (Cortes et al. 2012; CKA of Kornblith et
//! al. 2019): the same cosine between the double-centered kernels `H K H`, `H = I - 11^T/P`.
//! All reductions sum rows sequentially and then the row sums in order, so results do not
//! depend on the number of threads.
use crate::error::{invalid, shape, Result};
use faer::MatRef;
use rayon::prelude::*;

fn square(name: &'static str, k: MatRef<'_, f64>) -> Result<usize> {
    if k.nrows() != k.ncols() || k.nrows() == 0 {
        return Err(shape(name, format!("must be a non-empty square matrix, got ({}, {})", k.nrows(), k.ncols())));
    }
    Ok(k.nrows())
}

fn ordered_sum(parts: Vec<f64>) -> f64 {
    parts.into_iter().sum()
}

/// Kernel-target alignment of `k` (P x P) with targets `y` (P x C).
pub fn kernel_alignment(k: MatRef<'_, f64>, y: MatRef<'_, f64>) -> Result<f64> {
    let p = square("K", k)?;
    if y.nrows() != p {
        return Err(shape("y", format!("has {} rows, K is {p} x {p}", y.nrows())));
    }
    let c = y.ncols();
    // <K, Y Y^T> = sum_ij K_ij (y_i . y_j); ||Y Y^T||_F = ||Y^T Y||_F.
    let rows: Vec<(f64, f64)> = (0..p)
        .into_par_iter()
        .map(|i| {
            let (mut num, mut kk) = (0.0, 0.0);
            for j in 0..p {
                let kij = k[(i, j)];
                let mut yy = 0.0;
                for m in 0..c {
                    yy += y[(i, m)] * y[(j, m)];
                }
                num += kij * yy;
                kk += kij * kij;
            }
            (num, kk)
        })
        .collect();
    let num = ordered_sum(rows.iter().map(|r| r.0).collect());
    let kk = ordered_sum(rows.iter().map(|r| r.1).collect());
    let mut yy = 0.0;
    for a in 0..c {
        for b in 0..c {
            let s: f64 = (0..p).map(|i| y[(i, a)] * y[(i, b)]).sum();
            yy += s * s;
        }
    }
    let den = kk.sqrt() * yy.sqrt();
    if den == 0.0 {
        return Err(invalid(if kk == 0.0 { "K" } else { "y" }, "is identically zero; alignment undefined"));
    }
    Ok(num / den)
}

/// Row means, column means and grand mean of a square matrix.
fn means(k: MatRef<'_, f64>) -> (Vec<f64>, Vec<f64>, f64) {
    let p = k.nrows();
    let pf = p as f64;
    let row: Vec<f64> = (0..p).into_par_iter().map(|i| (0..p).map(|j| k[(i, j)]).sum::<f64>() / pf).collect();
    let col: Vec<f64> = (0..p).into_par_iter().map(|j| (0..p).map(|i| k[(i, j)]).sum::<f64>() / pf).collect();
    let grand = row.iter().sum::<f64>() / pf;
    (row, col, grand)
}

/// Centered kernel alignment of two P x P kernels.
pub fn cka(k1: MatRef<'_, f64>, k2: MatRef<'_, f64>) -> Result<f64> {
    let p = square("K1", k1)?;
    if square("K2", k2)? != p {
        return Err(shape("K2", format!("must have the same shape as K1 ({p} x {p})")));
    }
    let (r1, c1, g1) = means(k1);
    let (r2, c2, g2) = means(k2);
    let rows: Vec<(f64, f64, f64)> = (0..p)
        .into_par_iter()
        .map(|i| {
            let (mut x12, mut x11, mut x22) = (0.0, 0.0, 0.0);
            for j in 0..p {
                let a = k1[(i, j)] - r1[i] - c1[j] + g1;
                let b = k2[(i, j)] - r2[i] - c2[j] + g2;
                x12 += a * b;
                x11 += a * a;
                x22 += b * b;
            }
            (x12, x11, x22)
        })
        .collect();
    let x12 = ordered_sum(rows.iter().map(|r| r.0).collect());
    let x11 = ordered_sum(rows.iter().map(|r| r.1).collect());
    let x22 = ordered_sum(rows.iter().map(|r| r.2).collect());
    if x11 == 0.0 || x22 == 0.0 {
        return Err(invalid(if x11 == 0.0 { "K1" } else { "K2" }, "is constant after centering; CKA undefined"));
    }
    Ok(x12 / (x11.sqrt() * x22.sqrt()))
}
