//! Kernel predictors: GP posterior / kernel ridge, and the NTK gradient-flow predictor.
use crate::error::{invalid, shape, AkError, Result};
use crate::validate;
use crate::linalg::{check_factor, cholesky_solve_in_place, lower_solve_in_place};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Posterior mean `K_*^T alpha` (`alpha = (K + ridge I)^{-1} Y`, already solved) into `mean`
/// (Q x C) and, if given, the posterior variance `k_** - ||L^{-1} K_*||^2` per test point.
///
/// `l` is the Cholesky factor of `K + ridge I`, `k_cross` is `K(X_train, X_test)` (P x Q).
pub fn gp_predict(
    l: MatRef<'_, f64>,
    alpha: MatRef<'_, f64>,
    k_cross: MatRef<'_, f64>,
    k_test_diag: Option<&[f64]>,
    mean: MatMut<'_, f64>,
    var: Option<&mut [f64]>,
    par: Par,
) -> Result<()> {
    // All shapes are checked up front: a mismatch must never reach a faer assertion.
    check_factor(l)?;
    let (p, q) = (k_cross.nrows(), k_cross.ncols());
    if p != l.nrows() {
        return Err(shape(
            "K_cross",
            format!("has {p} rows, expected the {} training points", l.nrows()),
        ));
    }
    if alpha.nrows() != p {
        return Err(shape(
            "alpha",
            format!(
                "has {} rows, expected the {p} training points",
                alpha.nrows()
            ),
        ));
    }
    if mean.nrows() != q || mean.ncols() != alpha.ncols() {
        return Err(shape("out", "mean buffer shape mismatch".to_string()));
    }
    if let Some(kd) = k_test_diag {
        if kd.len() != q {
            return Err(shape(
                "k_test_diag",
                format!(
                    "has {} entries, expected {q} (one per test point)",
                    kd.len()
                ),
            ));
        }
        validate::finite("k_test_diag", kd)?;
        if var.as_ref().is_some_and(|v| v.len() != q) {
            return Err(shape(
                "out",
                format!("variance buffer must have {q} entries"),
            ));
        }
    }
    crate::linalg::matmul(mean, Accum::Replace, k_cross.transpose(), alpha, 1.0, par);
    if let (Some(kd), Some(var)) = (k_test_diag, var) {
        let mut v = k_cross.to_owned();
        lower_solve_in_place(l, v.as_mut(), par)?;
        // Column sums of squares, each column summed sequentially: thread-count independent.
        let vref = v.as_ref();
        var.par_iter_mut().enumerate().for_each(|(j, out)| {
            let col = vref.col(j);
            let s: f64 = (0..p).map(|i| col[i] * col[i]).sum();
            *out = (kd[j] - s).max(0.0);
        });
    }
    Ok(())
}

/// Solves `(K + ridge I) alpha = Y` given the factor; `y` is overwritten with `alpha`.
pub fn gp_alpha(l: MatRef<'_, f64>, y: MatMut<'_, f64>, par: Par) -> Result<()> {
    cholesky_solve_in_place(l, y, par)
}

/// Spectral filter of gradient flow on `1/2 ||f - y||^2` from `f_0 = 0` with rate `lr`:
/// `f_t = Th V g_t(Lambda) V^T y` with `g_t(lam) = (1 - exp(-lr lam t)) / lam`,
/// `g_inf(lam) = 1/lam`. Modes with `lam <= cutoff` are numerically null and get `g = 0`.
pub fn flow_filter(lam: f64, time: f64, lr: f64, cutoff: f64) -> f64 {
    if lam <= cutoff || time == 0.0 {
        return 0.0;
    }
    if time.is_infinite() {
        1.0 / lam
    } else {
        -(-lr * lam * time).exp_m1() / lam
    }
}

/// NTK gradient-flow coefficients `c_t = V g_t(Lambda) V^T Y` for each time (output
/// `coef[k]` is P x C for `times[k]`); predictions are `Th(X_train, X_test)^T c_t`.
///
/// `eigvals`/`eigvecs`: eigendecomposition of `Th + ridge I` (ascending). A clearly negative
/// eigenvalue (below `-1e-8 max |lam|`) means the kernel is not PSD and is an error.
pub fn ntk_flow_coefficients(
    eigvals: &[f64],
    eigvecs: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    times: &[f64],
    lr: f64,
    par: Par,
) -> Result<Vec<Mat<f64>>> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(invalid("lr", format!("must be finite and > 0, got {lr}")));
    }
    for &t in times {
        if t.is_nan() || t < 0.0 {
            return Err(invalid(
                "time",
                format!("must be >= 0 (inf allowed), got {t}"),
            ));
        }
    }
    let p = eigvals.len();
    if p == 0 {
        return Err(shape("eigenvalues", "must be non-empty".to_string()));
    }
    if eigvecs.nrows() != p || eigvecs.ncols() != p {
        return Err(shape(
            "eigenvectors",
            format!(
                "must be ({p}, {p}) for {p} eigenvalues, got ({}, {})",
                eigvecs.nrows(),
                eigvecs.ncols()
            ),
        ));
    }
    if y.nrows() != p {
        return Err(shape("y", format!("has {} rows, expected {p}", y.nrows())));
    }
    validate::finite("eigenvalues", eigvals)?;
    validate::finite_mat("eigenvectors", eigvecs)?;
    validate::finite_mat("y", y)?;
    let lmax = eigvals.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    // Smallest eigenvalue over all of them (do not rely on the ascending order).
    {
        let lmin = eigvals.iter().fold(f64::INFINITY, |m, &v| m.min(v));
        if lmin < -1e-8 * lmax {
            return Err(AkError::NotPositiveDefinite {
                name: "ntk",
                msg: format!("smallest eigenvalue {lmin:.3e} < 0 (largest {lmax:.3e})"),
            });
        }
    }
    let cutoff = p as f64 * f64::EPSILON * lmax;
    // Project once: Z = V^T Y.
    let mut z = Mat::<f64>::zeros(p, y.ncols());
    crate::linalg::matmul(z.as_mut(), Accum::Replace, eigvecs.transpose(), y, 1.0, par);
    let mut out = Vec::with_capacity(times.len());
    for &t in times {
        let mut zt = z.clone();
        for i in 0..p {
            let g = flow_filter(eigvals[i], t, lr, cutoff);
            for c in 0..zt.ncols() {
                zt[(i, c)] *= g;
            }
        }
        let mut coef = Mat::<f64>::zeros(p, y.ncols());
        crate::linalg::matmul(
            coef.as_mut(),
            Accum::Replace,
            eigvecs,
            zt.as_ref(),
            1.0,
            par,
        );
        out.push(coef);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
