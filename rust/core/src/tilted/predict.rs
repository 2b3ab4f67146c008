//! Test points of the sampled saddle point: conditionally Gaussian preactivations given the
//! training ones, layer by layer, and the predictor (module docs of [`super`]).
use super::samples::factor;
use crate::error::{shape, Result};
use crate::kernels::activation::Activation;
use crate::linalg::CovFactor;
use crate::mcmc::tilted::{apply_phi, weighted_gram};
use crate::rng::Rng;
use crate::linalg::matmul;
use crate::linalg::solve_lower_triangular_in_place;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

/// Test-point kernels layer by layer (module docs) and the predictor. `k0_cross` (n x P) and
/// `k0_diag` (n) are the input kernel between test and training points and on the test points.
/// Returns the mean `(n x C)` and, with `return_var`, `Phi^L(*,*) - Phi^L(*,X)(Phi^L + T)^{-1}Phi^L(X,*)`.
#[allow(clippy::too_many_arguments)]
pub fn predict(
    act: &Activation,
    sigma_w: f64,
    sigma_b: f64,
    k0: MatRef<'_, f64>,
    k0_cross: MatRef<'_, f64>,
    k0_diag: &[f64],
    kernels: &[MatRef<'_, f64>],
    samples: &[MatRef<'_, f64>],
    weights: &[&[f64]],
    y: MatRef<'_, f64>,
    temperature: f64,
    seed: u64,
    return_var: bool,
    par: Par,
) -> Result<(Mat<f64>, Option<Vec<f64>>)> {
    let (n, p) = (k0_cross.nrows(), k0.nrows());
    let depth = kernels.len();
    if samples.len() != depth
        || weights.len() != depth
        || k0_cross.ncols() != p
        || k0_diag.len() != n
    {
        return Err(shape("samples", "one sample set and weight vector per layer, and test kernels matching the training points"));
    }
    let (sw2, sb2) = (sigma_w * sigma_w, sigma_b * sigma_b);
    let mut c_tr = k0.to_owned();
    let mut c_x = k0_cross.to_owned();
    let mut c_d = k0_diag.to_vec();
    let mut phi_x = Mat::<f64>::zeros(n, p);
    let mut phi_d = vec![0.0; n];
    for l in 0..depth {
        let h = samples[l];
        let w = weights[l];
        let s = h.nrows();
        if h.ncols() != p || w.len() != s {
            return Err(shape(
                "samples",
                format!("layer {l}: need S x {p} samples and S weights"),
            ));
        }
        let lc = if l == 0 {
            CovFactor::psd("K^0", c_tr.as_ref(), par)?
        } else {
            CovFactor::Cholesky(factor("C", c_tr.as_ref())?)
        };
        let pre = carry_test_points(&lc, c_x.as_ref(), &c_d, h, seed, l, par);
        let ft = Mat::from_fn(s, n, |r, i| act.phi(pre[(r, i)]).unwrap());
        let fh = apply_phi(act, h);
        phi_x = weighted_gram(ft.as_ref(), fh.as_ref(), Some(w), par);
        phi_d = (0..n)
            .map(|i| (0..s).map(|r| w[r] * ft[(r, i)] * ft[(r, i)]).sum())
            .collect();
        c_tr = Mat::from_fn(p, p, |i, j| sw2 * kernels[l][(i, j)] + sb2);
        c_x = Mat::from_fn(n, p, |i, j| sw2 * phi_x[(i, j)] + sb2);
        c_d = phi_d.iter().map(|v| sw2 * v + sb2).collect();
    }
    let kl = kernels[depth - 1];
    let mut m = kl.to_owned();
    for i in 0..p {
        m[(i, i)] += temperature;
    }
    let lm = factor("Phi^L + T I", m.as_ref())?;
    let mut a = y.to_owned();
    crate::linalg::cholesky_solve_in_place(lm.as_ref(), a.as_mut(), par)?;
    let mut mean = Mat::<f64>::zeros(n, y.ncols());
    matmul(
        mean.as_mut(),
        Accum::Replace,
        phi_x.as_ref(),
        a.as_ref(),
        1.0,
        par,
    );
    let var = if return_var {
        let mut z = phi_x.transpose().to_owned();
        solve_lower_triangular_in_place(lm.as_ref(), z.as_mut(), par);
        Some(
            (0..n)
                .map(|i| (phi_d[i] - z.col_as_slice(i).iter().map(|v| v * v).sum::<f64>()).max(0.0))
                .collect(),
        )
    } else {
        None
    };
    Ok((mean, var))
}

/// Test preactivations carried along with a layer's training samples `h` (S x P): given the
/// training preactivations the test ones are Gaussian (the tilt acts on training points only),
/// `h_* = C(*, X) C^{-1} h + sd xi`, `sd^2 = C(*, *) - C(*, X) C^{-1} C(X, *)` (`C^+` on the
/// support of a singular factor, exact for a degenerate Gaussian because `C(X, *)` lies in the
/// range of `C`), `xi` one independent normal per sample and test point from stream
/// `layer * n + i` of `seed`. `lc` factors the training block `C(X, X)`; `c_x` is `C(*, X)`
/// (n x P), `c_d` the test diagonal. Returns `h_*` (S x n).
pub fn carry_test_points(
    lc: &CovFactor,
    c_x: MatRef<'_, f64>,
    c_d: &[f64],
    h: MatRef<'_, f64>,
    seed: u64,
    layer: usize,
    par: Par,
) -> Mat<f64> {
    let (ht, sd) = conditional_test_points(lc, c_x, c_d, h, par);
    let (n, s) = (c_x.nrows(), h.nrows());
    let cols: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut rng = Rng::new(seed, (layer * n + i) as u64);
            let mut xi = vec![0.0; s];
            rng.fill_normal(&mut xi);
            xi
        })
        .collect();
    Mat::from_fn(s, n, |r, i| ht[(r, i)] + sd[i] * cols[i][r])
}

/// The conditional law of [`carry_test_points`] without its noise: the means
/// `C(*, X) C^{-1} h` (S x n) and the standard deviations `sd` (n).
pub fn conditional_test_points(
    lc: &CovFactor,
    c_x: MatRef<'_, f64>,
    c_d: &[f64],
    h: MatRef<'_, f64>,
    par: Par,
) -> (Mat<f64>, Vec<f64>) {
    let (n, p, s) = (c_x.nrows(), c_x.ncols(), h.nrows());
    let mt = lc.solve(c_x.transpose(), par);
    let sd: Vec<f64> = (0..n)
        .map(|i| {
            (c_d[i] - (0..p).map(|k| c_x[(i, k)] * mt[(k, i)]).sum::<f64>())
                .max(0.0)
                .sqrt()
        })
        .collect();
    let mut ht = Mat::<f64>::zeros(s, n);
    matmul(ht.as_mut(), Accum::Replace, h, mt.as_ref(), 1.0, par);
    (ht, sd)
}
