//! Test points of the concave solution: the final draws are regenerated from the seed (or
//! reused: [`predict_rows`] returns the [`Draws`] it used, and takes them back); test
//! preactivations are conditionally Gaussian given the training ones (`h_* = M h + sd xi`,
//! `M^T = K^{0+} K^0(X, *)`, `sd^2 = K^0(*,*) - K^0(*,X) M^T`), and
//! `f(x*) = Phi(x*, X) a = sum_i w_i phi(h_*i) s_i`. The batch maximisers give the Monte-Carlo
//! standard error of the mean; with `return_var` also
//! `Phi(*,*) - Phi(*,X)(Phi + T I)^{-1} Phi(X,*)`.
use super::samples::{preacts, Proposal, CHUNK};
use crate::control::Control;
use crate::error::{shape, Result};
use crate::kernels::input::{input_kernel, input_kernel_diag};
use crate::kernels::net::{Mlp, Rows};
use crate::linalg::{cholesky_with_jitter, matmul, solve_lower_triangular_in_place, CovFactor};
use crate::rng::Rng;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;
use std::sync::Arc;

/// What prediction needs of a fitted solution.
pub struct Fitted<'a> {
    pub a: &'a [f64],
    pub kernel: MatRef<'a, f64>,
    pub batch_a: MatRef<'a, f64>,
    pub batch_lse: &'a [f64],
    pub lse: f64,
    pub proposal: &'a Proposal,
    pub seed: u64,
    pub gamma: f64,
    pub temperature: f64,
}

/// The final stage's preactivations (S x P) and log ratios, as regenerated from the proposal
/// and seed (a cache for repeated predictions: they are a function of the fitted state alone).
pub struct Draws {
    pub h: Mat<f64>,
    pub log_r: Vec<f64>,
}

/// Mean (n), its Monte-Carlo standard error (n), optionally the adapted-kernel variance (n), and
/// the draws used (`draws`, when given and of the proposal's size, else regenerated).
#[allow(clippy::type_complexity)]
pub fn predict_rows(
    net: &Mlp,
    x: &Rows,
    x_test: &Rows,
    fit: &Fitted<'_>,
    return_var: bool,
    draws: Option<Arc<Draws>>,
    n_threads: usize,
) -> Result<(Vec<f64>, Vec<f64>, Option<Vec<f64>>, Arc<Draws>)> {
    if x_test.cols != x.cols {
        return Err(shape("X_test", format!("has {} features, the training inputs {}", x_test.cols, x.cols)));
    }
    let (p, n, b) = (x.rows, x_test.rows, fit.batch_a.nrows());
    if fit.a.len() != p || fit.batch_a.ncols() != p || fit.kernel.nrows() != p || b == 0 || !fit.proposal.chunks.is_multiple_of(b) {
        return Err(shape("a", "the fitted state does not match the training points"));
    }
    crate::threads::with_threads(n_threads, |par| {
        let k0 = input_kernel(x.mat(), x.mat(), net.sigma_w, net.sigma_b, par);
        let kx = input_kernel(x.mat(), x_test.mat(), net.sigma_w, net.sigma_b, par);
        let kd = input_kernel_diag(x_test.mat(), net.sigma_w, net.sigma_b);
        let fac = CovFactor::psd("X", k0.as_ref(), par)?;
        let mt = fac.solve(kx.as_ref(), par); // P x n
        let sd: Vec<f64> = (0..n).map(|i| (kd[i] - (0..p).map(|k| kx[(k, i)] * mt[(k, i)]).sum::<f64>()).max(0.0).sqrt()).collect();
        let draws = match draws {
            Some(d) if d.h.nrows() == fit.proposal.n() && d.h.ncols() == p && d.log_r.len() == d.h.nrows() => d,
            _ => {
                let (h, log_r) = preacts(&net.activation, &fac, fit.proposal, fit.seed, fit.gamma, &Control::new())?;
                Arc::new(Draws { h, log_r })
            }
        };
        let (h, log_r) = (&draws.h, &draws.log_r);
        let g2 = fit.gamma * fit.gamma;
        let per_batch = fit.proposal.chunks / b;
        let act = &net.activation;
        // per chunk: (sum w phi_* s, sum w_b phi_* s_b, [sum w phi_* phi^T, sum w phi_*^2])
        type Part = (Vec<f64>, Vec<f64>, Option<(Mat<f64>, Vec<f64>)>);
        let parts: Vec<Part> = (0..fit.proposal.chunks)
            .into_par_iter()
            .map(|c| {
                let hc = h.as_ref().subrows(c * CHUNK, CHUNK);
                let log_r = &log_r[c * CHUNK..(c + 1) * CHUNK];
                let f = Mat::from_fn(CHUNK, p, |i, k| act.phi(hc[(i, k)]).unwrap());
                let mut ht = Mat::<f64>::zeros(CHUNK, n);
                matmul(ht.as_mut(), Accum::Replace, hc, mt.as_ref(), 1.0, Par::Seq);
                let mut rng = Rng::new(fit.seed ^ 0x7e57_7e57, c as u64);
                let mut xi = vec![0.0; CHUNK * n];
                rng.fill_normal(&mut xi);
                let ft = Mat::from_fn(CHUNK, n, |i, k| act.phi(ht[(i, k)] + sd[k] * xi[i * n + k]).unwrap());
                let bi = c / per_batch;
                let ab: Vec<f64> = (0..p).map(|k| fit.batch_a[(bi, k)]).collect();
                let dot = |row: usize, v: &[f64]| (0..p).map(|k| f[(row, k)] * v[k]).sum::<f64>();
                let (mut mean, mut mb) = (vec![0.0; n], vec![0.0; n]);
                let mut wv = vec![0.0; CHUNK];
                for i in 0..CHUNK {
                    let s = dot(i, fit.a);
                    let w = (log_r[i] + 0.5 * g2 * s * s - fit.lse).exp();
                    let sb = dot(i, &ab);
                    let wb = (log_r[i] + 0.5 * g2 * sb * sb - fit.batch_lse[bi]).exp();
                    wv[i] = w;
                    for k in 0..n {
                        mean[k] += w * s * ft[(i, k)];
                        mb[k] += wb * sb * ft[(i, k)];
                    }
                }
                let var = return_var.then(|| {
                    let wf = Mat::from_fn(CHUNK, n, |i, k| wv[i] * ft[(i, k)]);
                    let mut cross = Mat::<f64>::zeros(n, p);
                    matmul(cross.as_mut(), Accum::Replace, wf.transpose(), f.as_ref(), 1.0, Par::Seq);
                    let d = (0..n).map(|k| (0..CHUNK).map(|i| wv[i] * ft[(i, k)] * ft[(i, k)]).sum()).collect();
                    (cross, d)
                });
                (mean, mb, var)
            })
            .collect();
        let mut mean = vec![0.0; n];
        let mut batch = Mat::<f64>::zeros(b, n);
        let mut cross = Mat::<f64>::zeros(n, p);
        let mut diag = vec![0.0; n];
        for (c, (m, mb, v)) in parts.into_iter().enumerate() {
            let bi = c / per_batch;
            for k in 0..n {
                mean[k] += m[k];
                batch[(bi, k)] += mb[k];
            }
            if let Some((cr, d)) = v {
                cross += cr;
                for k in 0..n {
                    diag[k] += d[k];
                }
            }
        }
        let bf = b as f64;
        let stderr = (0..n)
            .map(|k| {
                let mu = (0..b).map(|j| batch[(j, k)]).sum::<f64>() / bf;
                ((0..b).map(|j| (batch[(j, k)] - mu).powi(2)).sum::<f64>() / (bf * (bf - 1.0))).sqrt()
            })
            .collect();
        let var = if return_var {
            let mut m = fit.kernel.to_owned();
            for i in 0..p {
                m[(i, i)] += fit.temperature;
            }
            let mut l = Mat::<f64>::zeros(p, p);
            cholesky_with_jitter("Phi + T I", m.as_ref(), 0.0, l.as_mut(), par)?;
            let mut zt = cross.transpose().to_owned();
            solve_lower_triangular_in_place(l.as_ref(), zt.as_mut(), par);
            Some((0..n).map(|k| (diag[k] - zt.col(k).iter().map(|v| v * v).sum::<f64>()).max(0.0)).collect())
        } else {
            None
        };
        Ok((mean, stderr, var, draws))
    })
}
