//! Exact Bayesian posterior of a one-hidden-layer linear network at finite width N.
//!
//! Network (no biases, all parameters N(0, 1) a priori, input dimension d):
//! `h_i(x) = s_w w_i.x / sqrt(d)` (i = 1..N), readout `v` in R^N;
//! standard (scale chi, default 1): `f = s_w v.h / sqrt(chi N)`, posterior
//! `∝ exp(-chi sum (f - y)^2 / (2T) - |theta|^2 / 2)`, i.e. noise variance `kappa = T / chi`;
//! mean field (richness gamma): `f = v.h / (gamma N)`, `kappa = T / (N gamma^2)`.
//!
//! Given `v`, `f ~ GP(0, u K0)` with `K0 = s_w^2 X X^T / d` and `u = c |v|^2 / N`, where
//! `c = s_w^2 / chi` (standard) or `c = 1 / (gamma^2 N)` (mean field). Hence (eq. numbers used below)
//!   (1) `u ~ Gamma(shape a = N/2, scale 2c/N)`            (prior mean c)
//!   (2) `p(u | y) ∝ Gamma(u) prod_c N(y_c; 0, u K0 + kappa I)`
//!   (3) `E[f(x*) | y] = E_u[u k*^T (u K0 + kappa I)^{-1} y]`
//!   (4) `Var[f(x*) | y] = E_u[u k** - u^2 k*^T (u K0 + kappa I)^{-1} k*] + Var_u[(3) at fixed u]`
//! a Gamma scale mixture of GPs. With `K0 = sum_k lam_k e_k e_k^T`, `y_k = e_k^T y`,
//! `s_k = u lam_k + kappa`, `rho_k = u / s_k`, `q_k = u lam_k / s_k`:
//!   (5) `log N(y_c; 0, u K0 + kappa I) = -1/2 sum_k [log(2 pi s_k) + y_kc^2 / s_k]`
//!   (6) mean at fixed u: `sum_k a_k y_k rho_k` with `a_k = k*.e_k` (train: `a_k = lam_k e_k`)
//!   (7) conditional variance: `u k** - sum_k a_k^2 u rho_k` (train: `kappa sum_k e_k^2 lam_k rho_k`)
//! The u-integral is done in `delta = log(u / c)`: the log integrand (Jacobian u included) is
//!   (8) `g(delta) = a (delta - r + 1) + S(a) + (5)`, `r = e^delta`, `S(a) = a log a - a - lgamma(a)`
//! (the Gamma log density in `log u`, written so nothing cancels at large N). Its mode is found
//! by Newton with a bisection safeguard, the width from the curvature, and the integral by the
//! trapezoid rule (spectrally accurate for this smooth, rapidly decaying integrand) on
//! `mode ± 20 sd` with 2001 points, widened until both end weights are below 1e-16 of the max.
//!
//! Several output columns share the one scalar u: the likelihood (2) is a product over columns.
//! That is exact for C outputs sharing the readout v with independent first layers; a network
//! with an N x C readout matrix V has the C x C Wishart scale `c V^T V / N` instead.
use crate::control::Control;
use crate::error::{invalid, shape, AkError, Result};
use crate::finite::network::Parameterization;
use crate::linalg::symmetric_eigen;
use crate::threads::with_threads;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

mod spectrum;

pub use spectrum::{gamma_log_norm, quadrature, Anchor, Quadrature, Spectrum};

/// Inputs of [`exact_linear_posterior`].
#[derive(Debug, Clone, Copy)]
pub struct ExactLinearProblem<'a> {
    /// Training inputs (P x d).
    pub x: MatRef<'a, f64>,
    /// Training targets (P x C).
    pub y: MatRef<'a, f64>,
    /// Test inputs (Q x d), optional.
    pub x_test: Option<MatRef<'a, f64>>,
    pub sigma_w: f64,
    /// Hidden width N >= 1.
    pub width: usize,
    /// Temperature T > 0 (the noise variance in standard scaling).
    pub temperature: f64,
    pub param: Parameterization,
}

/// Result of [`exact_linear_posterior`]; matrices are (points x outputs).
#[derive(Debug, Clone)]
pub struct ExactLinearPosterior {
    pub train_mean: Mat<f64>,
    pub train_var: Mat<f64>,
    pub test_mean: Option<Mat<f64>>,
    pub test_var: Option<Mat<f64>>,
    /// `E[u | y]` and `Std[u | y]` of the kernel scale u.
    pub kernel_scale_mean: f64,
    pub kernel_scale_std: f64,
    /// `log p(y)` (all normalizations of (1) and (5) included).
    pub log_evidence: f64,
    /// Prior mean `c` of u and noise variance `kappa`.
    pub prior_scale: f64,
    pub kappa: f64,
    /// Mode and curvature width of the posterior of `log u`, and the quadrature size.
    pub log_u_mode: f64,
    pub log_u_sd: f64,
    pub n_grid: usize,
}

/// Rows per parallel block (fixed, so results do not depend on the thread count).
const ROW_BLOCK: usize = 32;
const COL_BLOCK: usize = 64;

fn check_mat(name: &'static str, m: MatRef<'_, f64>) -> Result<()> {
    if m.nrows() == 0 || m.ncols() == 0 {
        return Err(shape(
            name,
            format!(
                "must be a non-empty 2-D array, got shape ({}, {})",
                m.nrows(),
                m.ncols()
            ),
        ));
    }
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            if !m[(i, j)].is_finite() {
                return Err(invalid(
                    name,
                    format!("contains a non-finite value (NaN or inf) at ({i}, {j})"),
                ));
            }
        }
    }
    Ok(())
}

impl ExactLinearProblem<'_> {
    pub fn validate(&self) -> Result<()> {
        check_mat("X", self.x)?;
        check_mat("y", self.y)?;
        if self.y.nrows() != self.x.nrows() {
            return Err(shape(
                "y",
                format!(
                    "has {} rows but X has {} samples",
                    self.y.nrows(),
                    self.x.nrows()
                ),
            ));
        }
        if let Some(xt) = self.x_test {
            check_mat("X_test", xt)?;
            if xt.ncols() != self.x.ncols() {
                return Err(shape(
                    "X_test",
                    format!("has {} features, expected {}", xt.ncols(), self.x.ncols()),
                ));
            }
        }
        if !(self.sigma_w.is_finite() && self.sigma_w > 0.0) {
            return Err(invalid(
                "sigma_w",
                format!("must be finite and > 0, got {}", self.sigma_w),
            ));
        }
        if self.width == 0 {
            return Err(invalid("width", "must be >= 1"));
        }
        // finite, > 0 and within [1e-100, 1e100] like every solver's (beyond, the evidence
        // overflows: temperature = 1e308 gave "log_evidence: is -inf", found by the fuzz)
        crate::validate::temperature(self.temperature)?;
        if let Parameterization::Standard { chi } = self.param {
            crate::validate::chi(chi)?;
        }
        if let Parameterization::MeanField { gamma } = self.param {
            if !(gamma.is_finite() && gamma > 0.0) {
                return Err(invalid(
                    "gamma",
                    format!("must be finite and > 0, got {gamma}"),
                ));
            }
            crate::validate::scale("gamma", gamma)?;
        }
        Ok(())
    }

    /// Prior mean `c` of u and noise variance `kappa` (see the module docs).
    pub fn scales(&self) -> (f64, f64) {
        let n = self.width as f64;
        match self.param {
            Parameterization::Standard { chi } => (self.sigma_w * self.sigma_w / chi, self.temperature / chi),
            Parameterization::MeanField { gamma } => (
                1.0 / (gamma * gamma * n),
                self.temperature / (n * gamma * gamma),
            ),
        }
    }
}

/// `lhs * rhs` with the columns of `rhs` in fixed blocks run in parallel, each block
/// sequentially: the result does not depend on the thread count.
fn par_matmul(lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>, alpha: f64) -> Mat<f64> {
    let (m, n) = (lhs.nrows(), rhs.ncols());
    let blocks: Vec<Mat<f64>> = (0..n.div_ceil(COL_BLOCK))
        .into_par_iter()
        .map(|b| {
            let j0 = b * COL_BLOCK;
            let nb = COL_BLOCK.min(n - j0);
            let mut out = Mat::<f64>::zeros(m, nb);
            crate::linalg::matmul(
                out.as_mut(),
                Accum::Replace,
                lhs,
                rhs.subcols(j0, nb),
                alpha,
                Par::Seq,
            );
            out
        })
        .collect();
    Mat::from_fn(m, n, |i, j| blocks[j / COL_BLOCK][(i, j % COL_BLOCK)])
}

/// Which points a block of rows belongs to (the projections `a_k` differ, eq. (6)-(7)).
#[derive(Clone, Copy)]
enum Points<'a> {
    /// Train points: `a = V diag(lam)`.
    Train { v: MatRef<'a, f64> },
    /// Test points: `a = (s_w^2/d) X_test (X^T V)`, `k** = s_w^2 |x*|^2 / d`.
    Test {
        xt: MatRef<'a, f64>,
        xtv: MatRef<'a, f64>,
        scale: f64,
    },
}

/// Shared per-eigenvector posterior moments.
struct Moments<'a> {
    lam: &'a [f64],
    kappa: f64,
    /// `E[u]`, `E[rho_k]`, `E[u rho_k]` under the posterior of u.
    eu: f64,
    erho: Vec<f64>,
    eurho: Vec<f64>,
    /// `y_k E[rho_k]` (P x C) and, per column c, `R_c[k, g] = y_kc rho_k(u_g)` (P x G).
    ye: Mat<f64>,
    r: Vec<Mat<f64>>,
    w: &'a [f64],
}

/// Mean (6) and variance (4) = E[(7)] + Var_u[(6)] for the rows `r0..r0+nb` of `pts`.
fn block(pts: Points<'_>, m: &Moments<'_>, r0: usize, nb: usize) -> (Mat<f64>, Mat<f64>) {
    let p = m.lam.len();
    let n_out = m.ye.ncols();
    let (a, cond): (Mat<f64>, Vec<f64>) = match pts {
        Points::Train { v } => {
            let a = Mat::from_fn(nb, p, |i, k| v[(r0 + i, k)] * m.lam[k]);
            // (7) train: kappa sum_k e_k^2 lam_k E[rho_k] (no cancellation)
            let cond = (0..nb)
                .map(|i| {
                    m.kappa
                        * (0..p)
                            .map(|k| v[(r0 + i, k)] * v[(r0 + i, k)] * m.lam[k] * m.erho[k])
                            .sum::<f64>()
                })
                .collect();
            (a, cond)
        }
        Points::Test { xt, xtv, scale } => {
            let rows = xt.subrows(r0, nb);
            let mut a = Mat::<f64>::zeros(nb, p);
            crate::linalg::matmul(a.as_mut(), Accum::Replace, rows, xtv, scale, Par::Seq);
            // k*.e_k = s_w^2 x*.(X^T e_k)/d = 0 exactly on null directions (|X^T e_k|^2 ∝ lam_k):
            // drop their rounding noise, which (6) would amplify by u/kappa
            for k in (0..p).filter(|&k| m.lam[k] == 0.0) {
                for i in 0..nb {
                    a[(i, k)] = 0.0;
                }
            }
            // (7) test: E[u] k** - sum_k a_k^2 E[u rho_k]
            let cond = (0..nb)
                .map(|i| {
                    let kss = scale
                        * (0..rows.ncols())
                            .map(|l| rows[(i, l)] * rows[(i, l)])
                            .sum::<f64>();
                    let s: f64 = (0..p).map(|k| a[(i, k)] * a[(i, k)] * m.eurho[k]).sum();
                    (m.eu * kss - s).max(0.0)
                })
                .collect();
            (a, cond)
        }
    };
    let mut mean = Mat::<f64>::zeros(nb, n_out);
    crate::linalg::matmul(
        mean.as_mut(),
        Accum::Replace,
        a.as_ref(),
        m.ye.as_ref(),
        1.0,
        Par::Seq,
    );
    let mut var = Mat::<f64>::zeros(nb, n_out);
    let g = m.w.len();
    let mut mu = Mat::<f64>::zeros(nb, g);
    for c in 0..n_out {
        // mean at each node: M = A R_c; Var_u = sum_g w_g (M_g - E M)^2 (centered: no cancellation)
        crate::linalg::matmul(
            mu.as_mut(),
            Accum::Replace,
            a.as_ref(),
            m.r[c].as_ref(),
            1.0,
            Par::Seq,
        );
        for i in 0..nb {
            let e = mean[(i, c)];
            let s: f64 = (0..g)
                .map(|j| m.w[j] * (mu[(i, j)] - e) * (mu[(i, j)] - e))
                .sum();
            var[(i, c)] = cond[i] + s;
        }
    }
    (mean, var)
}

fn predict(
    pts: Points<'_>,
    n: usize,
    m: &Moments<'_>,
    ctl: &Control,
) -> Result<(Mat<f64>, Mat<f64>)> {
    let blocks: Vec<(Mat<f64>, Mat<f64>)> = (0..n.div_ceil(ROW_BLOCK))
        .into_par_iter()
        .map(|b| {
            ctl.checkpoint()?;
            let r0 = b * ROW_BLOCK;
            let nb = ROW_BLOCK.min(n - r0);
            let out = block(pts, m, r0, nb);
            ctl.advance(nb as u64);
            Ok(out)
        })
        .collect::<Result<_>>()?;
    let n_out = m.ye.ncols();
    let mean = Mat::from_fn(n, n_out, |i, c| blocks[i / ROW_BLOCK].0[(i % ROW_BLOCK, c)]);
    let var = Mat::from_fn(n, n_out, |i, c| blocks[i / ROW_BLOCK].1[(i % ROW_BLOCK, c)]);
    Ok((mean, var))
}

/// Exact posterior of the one-hidden-layer linear network (module docs, eqs. (1)-(8)):
/// one eigendecomposition of K0, then O(P) per quadrature node for the weights and
/// O(P (P + Q) C) per node for the mixture variance of the mean.
pub fn exact_linear_posterior(
    prob: &ExactLinearProblem<'_>,
    n_threads: usize,
    ctl: &Control,
) -> Result<ExactLinearPosterior> {
    prob.validate()?;
    let (c, kappa) = prob.scales();
    let (p, d, n_out) = (prob.x.nrows(), prob.x.ncols(), prob.y.ncols());
    let q = prob.x_test.map_or(0, |t| t.nrows());
    // K^0, its eigenvectors and work copies (P x P), and the test cross kernel (Q x P)
    crate::validate::memory(
        "X",
        "the exact posterior's P x P and Q x P matrices",
        8.0 * (6.0 * (p * p) as f64 + 3.0 * (q * p) as f64),
        "use fewer training or test points",
    )?;
    let s2 = prob.sigma_w * prob.sigma_w / d as f64;
    ctl.set_total((p + q) as u64);
    with_threads(n_threads, |par| {
        // K0 = s_w^2 X X^T / d, exactly symmetric (lower triangle mirrored)
        let mut k0 = par_matmul(prob.x, prob.x.transpose(), s2);
        for j in 0..p {
            for i in 0..j {
                k0[(i, j)] = k0[(j, i)];
            }
        }
        ctl.checkpoint()?;
        crate::kernels::lazy::check_overflow("X", k0.as_ref())?;
        let (lam, v) = symmetric_eigen("K0", k0.as_ref(), par)?;
        // Eigenvalues below P eps lam_max are rounding noise of null directions: set them to 0.
        // (At small kappa, Y_k lam_k u / kappa^2 makes the weights sensitive to that noise.)
        let lmax = lam.iter().cloned().fold(0.0, f64::max);
        let cutoff = p as f64 * f64::EPSILON * lmax;
        let lam: Vec<f64> = lam
            .into_iter()
            .map(|l| if l > cutoff { l } else { 0.0 })
            .collect();
        ctl.checkpoint()?;
        // y_k = V^T y (P x C)
        let yk = par_matmul(v.transpose(), prob.y, 1.0);
        let ysq: Vec<f64> = (0..p)
            .map(|k| (0..n_out).map(|cc| yk[(k, cc)] * yk[(k, cc)]).sum())
            .collect();
        let sp = Spectrum {
            lam: lam.clone(),
            ysq,
            n_out,
            kappa,
            a: 0.5 * prob.width as f64,
            c,
        };
        let quad = quadrature(&sp, ctl)?;
        let (dl, w) = (&quad.delta, &quad.weight);
        let g = dl.len();
        // posterior moments of u = c e^delta
        let er: f64 = (0..g).map(|j| w[j] * dl[j].exp()).sum();
        let vr: f64 = (0..g)
            .map(|j| w[j] * (dl[j].exp() - er) * (dl[j].exp() - er))
            .sum();
        let (erho, eurho): (Vec<f64>, Vec<f64>) = lam
            .par_iter()
            .map(|&l| {
                let (mut e1, mut e2) = (0.0, 0.0);
                for j in 0..g {
                    let u = c * dl[j].exp();
                    let rho = u / (u * l + kappa);
                    e1 += w[j] * rho;
                    e2 += w[j] * u * rho;
                }
                (e1, e2)
            })
            .unzip();
        let ye = Mat::from_fn(p, n_out, |k, cc| yk[(k, cc)] * erho[k]);
        let r: Vec<Mat<f64>> = (0..n_out)
            .map(|cc| {
                let cols: Vec<Vec<f64>> = dl
                    .par_iter()
                    .map(|&t| {
                        let u = c * t.exp();
                        (0..p)
                            .map(|k| yk[(k, cc)] * u / (u * lam[k] + kappa))
                            .collect()
                    })
                    .collect();
                Mat::from_fn(p, g, |k, j| cols[j][k])
            })
            .collect();
        let m = Moments {
            lam: &lam,
            kappa,
            eu: c * er,
            erho,
            eurho,
            ye,
            r,
            w,
        };
        let (train_mean, train_var) = predict(Points::Train { v: v.as_ref() }, p, &m, ctl)?;
        let (test_mean, test_var) = match prob.x_test {
            Some(xt) => {
                let xtv = par_matmul(prob.x.transpose(), v.as_ref(), 1.0); // X^T V (d x P)
                let (tm, tv) = predict(
                    Points::Test {
                        xt,
                        xtv: xtv.as_ref(),
                        scale: s2,
                    },
                    q,
                    &m,
                    ctl,
                )?;
                (Some(tm), Some(tv))
            }
            None => (None, None),
        };
        let log_evidence = quad.log_integral + sp.log_constant();
        for (name, val) in [
            ("log_evidence", log_evidence),
            ("kernel_scale_mean", c * er),
        ] {
            if !val.is_finite() {
                return Err(AkError::NonFinite {
                    name,
                    msg: format!("is {val}"),
                });
            }
        }
        Ok(ExactLinearPosterior {
            train_mean,
            train_var,
            test_mean,
            test_var,
            kernel_scale_mean: c * er,
            kernel_scale_std: c * vr.sqrt(),
            log_evidence,
            prior_scale: c,
            kappa,
            log_u_mode: quad.mode + c.ln(),
            log_u_sd: quad.sd,
            n_grid: quad.n_grid,
        })
    })
}

#[cfg(test)]
mod tests;
