//! Exact Bayesian posterior of a one-hidden-layer linear network at finite width N.
//!
//! Network (no biases, all parameters N(0, 1) a priori, input dimension d):
//! `h_i(x) = s_w w_i.x / sqrt(d)` (i = 1..N), readout `v` in R^N;
//! standard: `f = s_w v.h / sqrt(N)`, noise variance `kappa = T`;
//! mean field (richness gamma): `f = v.h / (gamma N)`, `kappa = T / (N gamma^2)`.
//!
//! Given `v`, `f ~ GP(0, u K0)` with `K0 = s_w^2 X X^T / d` and `u = c |v|^2 / N`, where
//! `c = s_w^2` (standard) or `c = 1 / (gamma^2 N)` (mean field). Hence (eq. numbers used below)
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

/// Initial half-width of the grid in curvature standard deviations, and points per sd.
const HALF_WIDTH_SD: usize = 20;
const POINTS_PER_SD: usize = 50;
/// End weights must be below this fraction of the largest one.
const END_TOL_LOG: f64 = -36.841_361_487_904_73; // ln(1e-16)
/// Grid points whose weight is below 1e-18 of the max are dropped from the moments.
const KEEP_LOG: f64 = -41.446_531_673_892_82; // ln(1e-18)
const MAX_GRID: usize = 1 << 22;
/// Rows per parallel block (fixed, so results do not depend on the thread count).
const ROW_BLOCK: usize = 32;
const COL_BLOCK: usize = 64;

/// `S(a) = a log a - a - lgamma(a)`, the normalization of the Gamma density in (8).
/// Stirling series for a >= 10 (error < 1e-15), libm's lgamma below.
pub fn gamma_log_norm(a: f64) -> f64 {
    if a < 10.0 {
        return a * a.ln() - a - libm::lgamma(a);
    }
    let z = 1.0 / a;
    let z2 = z * z;
    // lgamma(a) = (a - 1/2) ln a - a + ln(2 pi)/2 + sum_n B_2n / (2n (2n-1) a^(2n-1))
    let series = z
        * (1.0 / 12.0
            - z2 * (1.0 / 360.0 - z2 * (1.0 / 1260.0 - z2 * (1.0 / 1680.0 - z2 / 1188.0))));
    0.5 * a.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln() - series
}

/// The 1-D problem in the eigenbasis of K0: everything the u-integral needs.
#[derive(Debug, Clone)]
pub struct Spectrum {
    /// Eigenvalues of K0 (those below `P eps lam_max` set to 0).
    pub lam: Vec<f64>,
    /// `sum_c y_kc^2` per eigenvector.
    pub ysq: Vec<f64>,
    pub n_out: usize,
    pub kappa: f64,
    /// Gamma shape `a = N/2` and prior mean `c`.
    pub a: f64,
    pub c: f64,
}

impl Spectrum {
    /// `g(delta)` of (8) without the constants `S(a) - P C log(2 pi) / 2`.
    pub fn log_density(&self, delta: f64) -> f64 {
        let rm1 = delta.exp_m1();
        let u = self.c * (1.0 + rm1);
        let cn = self.n_out as f64;
        let mut lik = 0.0;
        for (&l, &ys) in self.lam.iter().zip(&self.ysq) {
            let s = u * l + self.kappa;
            lik += cn * s.ln() + ys / s;
        }
        self.a * (delta - rm1) - 0.5 * lik
    }

    /// `g(anchor + dd) - g(anchor)`, summed term by term as differences (no cancellation
    /// of the large, u-independent parts of (5), e.g. from null eigenvalues at small kappa):
    /// with `du = u - u_a = u_a expm1(dd)`, `x_k = lam_k du / s_k(u_a)`,
    /// prior `a (dd - r_a expm1(dd))`, likelihood `-1/2 sum_k [C ln(1 + x_k) - Y_k x_k / (s_k(u_a)(1 + x_k))]`.
    pub fn log_density_rel(&self, anchor: &Anchor, dd: f64) -> f64 {
        let em1 = dd.exp_m1();
        let du = anchor.u * em1;
        let cn = self.n_out as f64;
        let mut lik = 0.0;
        for ((&l, &ys), &sa) in self.lam.iter().zip(&self.ysq).zip(&anchor.s) {
            let x = l * du / sa;
            lik += cn * x.ln_1p() - ys * x / (sa * (1.0 + x));
        }
        self.a * (dd - anchor.r * em1) - 0.5 * lik
    }

    pub fn anchor(&self, delta: f64) -> Anchor {
        let r = delta.exp();
        let u = self.c * r;
        Anchor {
            r,
            u,
            s: self.lam.iter().map(|&l| u * l + self.kappa).collect(),
        }
    }

    /// The constants left out of [`Spectrum::log_density`].
    pub fn log_constant(&self) -> f64 {
        gamma_log_norm(self.a)
            - 0.5 * (self.lam.len() * self.n_out) as f64 * (2.0 * std::f64::consts::PI).ln()
    }

    /// `(g', g'')` in delta: `g' = a(1 - r) + sum_k [-C q/2 + Y q / (2 s)]`,
    /// `g'' = -a r + sum_k [-C q (1 - q) / 2 + Y (q / s)(1/2 - q)]`.
    pub fn derivatives(&self, delta: f64) -> (f64, f64) {
        let r = delta.exp();
        let u = self.c * r;
        let cn = self.n_out as f64;
        let (mut d1, mut d2) = (self.a * (1.0 - r), -self.a * r);
        for (&l, &ys) in self.lam.iter().zip(&self.ysq) {
            let s = u * l + self.kappa;
            let q = u * l / s;
            d1 += -0.5 * cn * q + 0.5 * ys * q / s;
            d2 += -0.5 * cn * q * (1.0 - q) + ys * (q / s) * (0.5 - q);
        }
        (d1, d2)
    }

    /// A local maximum of g (a root of g' where it goes from + to -): the sign of g' at
    /// -inf is + (g' -> a) and at +inf is - (g' ~ -a r), so bisection always has a bracket;
    /// Newton steps are taken when they stay inside it. Returns `(mode, g''(mode))`.
    pub fn mode(&self) -> Result<(f64, f64)> {
        let (mut lo, mut hi) = (-1.0, 1.0);
        let mut step = 1.0;
        let mut it = 0;
        while self.derivatives(lo).0 <= 0.0 {
            step *= 2.0;
            lo -= step;
            it += 1;
            if it > 60 {
                return Err(non_finite(
                    "could not bracket the posterior mode of the kernel scale (from below)",
                ));
            }
        }
        step = 1.0;
        it = 0;
        while self.derivatives(hi).0 >= 0.0 {
            step *= 2.0;
            hi += step;
            it += 1;
            if it > 60 || !hi.exp().is_finite() {
                return Err(non_finite(
                    "could not bracket the posterior mode of the kernel scale (from above)",
                ));
            }
        }
        let mut t = 0.5 * (lo + hi);
        for _ in 0..300 {
            let (d1, d2) = self.derivatives(t);
            if !(d1.is_finite() && d2.is_finite()) {
                return Err(non_finite(
                    "non-finite derivative of the log posterior of the kernel scale",
                ));
            }
            if d1 == 0.0 {
                break;
            }
            if d1 > 0.0 {
                lo = t;
            } else {
                hi = t;
            }
            let newton = t - d1 / d2;
            let next = if d2 < 0.0 && newton > lo && newton < hi {
                newton
            } else {
                0.5 * (lo + hi)
            };
            let done =
                (next - t).abs() <= 1e-14 * (1.0 + t.abs()) || hi - lo <= 1e-14 * (1.0 + t.abs());
            t = next;
            if done {
                break;
            }
        }
        Ok((t, self.derivatives(t).1))
    }
}

fn non_finite(msg: &str) -> AkError {
    AkError::NonFinite {
        name: "kernel_scale",
        msg: msg.to_string(),
    }
}

/// A reference point of [`Spectrum::log_density_rel`]: `r = u/c`, `u` and `s_k = u lam_k + kappa` there.
#[derive(Debug, Clone)]
pub struct Anchor {
    pub r: f64,
    pub u: f64,
    pub s: Vec<f64>,
}

/// The quadrature in delta: nodes, normalized posterior weights (trapezoid included),
/// and the log of the integral of exp(g) (without the constants).
#[derive(Debug, Clone)]
pub struct Quadrature {
    pub delta: Vec<f64>,
    pub weight: Vec<f64>,
    pub log_integral: f64,
    pub mode: f64,
    pub sd: f64,
    pub n_grid: usize,
}

/// Trapezoid rule for the posterior of delta = log(u/c), widened until the tails are negligible.
pub fn quadrature(sp: &Spectrum, ctl: &Control) -> Result<Quadrature> {
    let (mode, d2) = sp.mode()?;
    let sd = if d2 < 0.0 { 1.0 / (-d2).sqrt() } else { 1.0 };
    let h = sd / POINTS_PER_SD as f64;
    let (mut nl, mut nr) = (HALF_WIDTH_SD * POINTS_PER_SD, HALF_WIDTH_SD * POINTS_PER_SD);
    // g relative to the mode (exact differences), plus g(mode) for the evidence
    let anchor = sp.anchor(mode);
    let g_mode = sp.log_density(mode);
    loop {
        ctl.checkpoint()?;
        let n = nl + nr + 1;
        let offset: Vec<f64> = (0..n).map(|j| (j as f64 - nl as f64) * h).collect();
        let delta: Vec<f64> = offset.iter().map(|o| mode + o).collect();
        let g: Vec<f64> = offset
            .par_iter()
            .map(|&o| sp.log_density_rel(&anchor, o))
            .collect();
        if let Some(j) = g.iter().position(|v| v.is_nan() || *v == f64::INFINITY) {
            return Err(non_finite(&format!(
                "log posterior of the kernel scale is {} at log(u/c) = {}",
                g[j], delta[j]
            )));
        }
        let gmax = g.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let left_ok = g[0] - gmax < END_TOL_LOG;
        let right_ok = g[n - 1] - gmax < END_TOL_LOG;
        if left_ok && right_ok {
            // Trapezoid: end nodes get half weight; e_j = exp(g_j - gmax).
            let mut w: Vec<f64> = g.iter().map(|v| (v - gmax).exp()).collect();
            w[0] *= 0.5;
            w[n - 1] *= 0.5;
            let z: f64 = w.iter().sum();
            let log_integral = g_mode + gmax + (h * z).ln();
            let keep: Vec<usize> = (0..n).filter(|&j| g[j] - gmax >= KEEP_LOG).collect();
            let zk: f64 = keep.iter().map(|&j| w[j]).sum();
            return Ok(Quadrature {
                delta: keep.iter().map(|&j| delta[j]).collect(),
                weight: keep.iter().map(|&j| w[j] / zk).collect(),
                log_integral,
                mode,
                sd,
                n_grid: n,
            });
        }
        if !left_ok {
            nl *= 2;
        }
        if !right_ok {
            nr *= 2;
        }
        if nl + nr + 1 > MAX_GRID {
            return Err(non_finite(&format!(
                "the posterior of log u is too wide to integrate (more than {MAX_GRID} grid points at spacing {h:.3e})"
            )));
        }
    }
}

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
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(invalid(
                "temperature",
                format!("must be finite and > 0, got {}", self.temperature),
            ));
        }
        if let Parameterization::MeanField { gamma } = self.param {
            if !(gamma.is_finite() && gamma > 0.0) {
                return Err(invalid(
                    "gamma",
                    format!("must be finite and > 0, got {gamma}"),
                ));
            }
        }
        Ok(())
    }

    /// Prior mean `c` of u and noise variance `kappa` (see the module docs).
    pub fn scales(&self) -> (f64, f64) {
        let n = self.width as f64;
        match self.param {
            Parameterization::Standard => (self.sigma_w * self.sigma_w, self.temperature),
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
            faer::linalg::matmul::matmul(
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
            faer::linalg::matmul::matmul(a.as_mut(), Accum::Replace, rows, xtv, scale, Par::Seq);
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
    faer::linalg::matmul::matmul(
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
        faer::linalg::matmul::matmul(
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
mod tests {
    use super::*;
    use crate::control::no_control;
    use faer::linalg::solvers::Solve;

    fn data(p: usize, d: usize, seed: u64) -> (Mat<f64>, Mat<f64>, Mat<f64>) {
        // small deterministic pseudo-random data (LCG), teacher y = x.beta + noise
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        let x = Mat::from_fn(p, d, |_, _| next());
        let xt = Mat::from_fn(3, d, |_, _| next());
        let beta: Vec<f64> = (0..d).map(|_| next()).collect();
        let y = Mat::from_fn(p, 1, |i, _| {
            (0..d).map(|l| x[(i, l)] * beta[l]).sum::<f64>() + 0.1 * next()
        });
        (x, y, xt)
    }

    /// GP posterior with kernel u K0 + noise kappa, by a dense solve (the N -> inf limit).
    fn gp(x: &Mat<f64>, y: &Mat<f64>, xt: &Mat<f64>, u: f64, kappa: f64) -> (Vec<f64>, Vec<f64>) {
        let d = x.ncols() as f64;
        let p = x.nrows();
        let k = Mat::from_fn(p, p, |i, j| {
            u * (0..x.ncols()).map(|l| x[(i, l)] * x[(j, l)]).sum::<f64>() / d
                + if i == j { kappa } else { 0.0 }
        });
        let kc = Mat::from_fn(xt.nrows(), p, |i, j| {
            u * (0..x.ncols()).map(|l| xt[(i, l)] * x[(j, l)]).sum::<f64>() / d
        });
        let lu = k.partial_piv_lu();
        let alpha = lu.solve(y);
        let kct = kc.transpose().to_owned();
        let sol = lu.solve(&kct);
        let mean = (0..xt.nrows())
            .map(|i| (0..p).map(|j| kc[(i, j)] * alpha[(j, 0)]).sum())
            .collect();
        let var = (0..xt.nrows())
            .map(|i| {
                let kss = u * (0..x.ncols()).map(|l| xt[(i, l)] * xt[(i, l)]).sum::<f64>() / d;
                kss - (0..p).map(|j| kc[(i, j)] * sol[(j, i)]).sum::<f64>()
            })
            .collect();
        (mean, var)
    }

    #[test]
    fn relative_log_density_and_derivatives_are_consistent() {
        let sp = Spectrum {
            lam: vec![2.0, 0.5, 1e-3, 0.0],
            ysq: vec![1.0, 3.0, 0.2, 5.0],
            n_out: 2,
            kappa: 0.01,
            a: 3.5,
            c: 0.7,
        };
        let (mode, d2) = sp.mode().unwrap();
        let anchor = sp.anchor(mode);
        assert!(sp.derivatives(mode).0.abs() < 1e-10 && d2 < 0.0);
        for dd in [-3.0, -0.1, 1e-4, 0.5, 2.0] {
            let direct = sp.log_density(mode + dd) - sp.log_density(mode);
            assert!(
                (sp.log_density_rel(&anchor, dd) - direct).abs() < 1e-11 * (1.0 + direct.abs()),
                "dd = {dd}"
            );
            // central differences of g against (g', g'')
            let h = 1e-4;
            let (d1, d2) = sp.derivatives(mode + dd);
            let g = |x: f64| sp.log_density_rel(&anchor, x);
            assert!(((g(dd + h) - g(dd - h)) / (2.0 * h) - d1).abs() < 1e-6 * (1.0 + d1.abs()));
            assert!(
                ((g(dd + h) - 2.0 * g(dd) + g(dd - h)) / (h * h) - d2).abs()
                    < 1e-4 * (1.0 + d2.abs())
            );
        }
    }

    #[test]
    fn stirling_normalization_matches_lgamma() {
        for a in [10.0, 12.5, 50.0, 1e3] {
            let direct = a * f64::ln(a) - a - libm::lgamma(a);
            assert!(
                (gamma_log_norm(a) - direct).abs() < 1e-12 * (1.0 + a),
                "a = {a}"
            );
        }
    }

    #[test]
    fn huge_width_gives_the_gp_posterior() {
        // Standard scaling: u -> c = s_w^2 and the posterior -> GP(0, s_w^2 K0) with noise T.
        // Mean field: u concentrates at the saddle point r* = u*/c of (8), which at fixed gamma
        // stays O(1) away from 1 (the likelihood is O(N) too): 1 - r + gamma^2 sum_k Y_k lam_k r/(r lam_k + T)^2 = 0,
        // with lam_k the eigenvalues of K0; the posterior -> GP(0, u* K0) with noise kappa.
        let (x, y, xt) = data(8, 3, 1);
        let sw = 1.3;
        for param in [
            Parameterization::Standard,
            Parameterization::MeanField { gamma: 0.7 },
        ] {
            let prob = ExactLinearProblem {
                x: x.as_ref(),
                y: y.as_ref(),
                x_test: Some(xt.as_ref()),
                sigma_w: sw,
                width: 10_000_000,
                temperature: 0.05,
                param,
            };
            let post = exact_linear_posterior(&prob, 2, no_control()).unwrap();
            let (c, kappa) = prob.scales();
            let r = post.kernel_scale_mean / c;
            assert!(post.kernel_scale_std / post.kernel_scale_mean < 1e-3);
            match param {
                Parameterization::Standard => assert!((r - 1.0).abs() < 1e-5, "{r}"),
                Parameterization::MeanField { gamma } => {
                    let d = x.ncols() as f64;
                    let k0 = Mat::from_fn(8, 8, |i, j| {
                        sw * sw * (0..3).map(|l| x[(i, l)] * x[(j, l)]).sum::<f64>() / d
                    });
                    let (lam, v) = symmetric_eigen("K0", k0.as_ref(), Par::Seq).unwrap();
                    let res: f64 = 1.0 - r
                        + gamma
                            * gamma
                            * (0..8)
                                .map(|k| {
                                    let yk: f64 = (0..8).map(|i| v[(i, k)] * y[(i, 0)]).sum();
                                    let l = lam[k].max(0.0);
                                    yk * yk * l * r / ((r * l + 0.05) * (r * l + 0.05))
                                })
                                .sum::<f64>();
                    assert!(
                        r > 1.1 && res.abs() < 1e-5,
                        "r = {r}, saddle-point residual {res}"
                    );
                }
            }
            let (gm, gv) = gp(&x, &y, &xt, post.kernel_scale_mean * sw * sw, kappa);
            let tm = post.test_mean.unwrap();
            let tv = post.test_var.unwrap();
            for i in 0..3 {
                assert!(
                    (tm[(i, 0)] - gm[i]).abs() < 1e-6 * (1.0 + gm[i].abs()),
                    "{} {}",
                    tm[(i, 0)],
                    gm[i]
                );
                if matches!(param, Parameterization::Standard) {
                    assert!(
                        (tv[(i, 0)] - gv[i]).abs() < 1e-4 * gv[i],
                        "{} {}",
                        tv[(i, 0)],
                        gv[i]
                    );
                } else {
                    // the conditional variance and Var_u of the mean are both O(1/N) here
                    assert!(
                        tv[(i, 0)] >= gv[i] * (1.0 - 1e-4) && tv[(i, 0)] < 2.0 * gv[i],
                        "{} {}",
                        tv[(i, 0)],
                        gv[i]
                    );
                }
            }
        }
    }

    #[test]
    fn train_points_as_test_points_agree() {
        // (6)-(7) through the eigenbasis (train) and through X_test (test) must agree
        let (x, y, _) = data(6, 4, 2);
        let prob = ExactLinearProblem {
            x: x.as_ref(),
            y: y.as_ref(),
            x_test: Some(x.as_ref()),
            sigma_w: 1.0,
            width: 3,
            temperature: 0.01,
            param: Parameterization::Standard,
        };
        let post = exact_linear_posterior(&prob, 1, no_control()).unwrap();
        let (tm, tv) = (post.test_mean.unwrap(), post.test_var.unwrap());
        for i in 0..6 {
            assert!((tm[(i, 0)] - post.train_mean[(i, 0)]).abs() < 1e-10);
            assert!((tv[(i, 0)] - post.train_var[(i, 0)]).abs() < 1e-10 * (1.0 + tv[(i, 0)]));
        }
    }

    #[test]
    fn no_data_signal_gives_the_prior_and_evidence_integrates() {
        // y = 0 and K0 = 0 direction-free: with X = 0 the likelihood does not depend on u,
        // so E[u|y] = c and Std[u|y] = c sqrt(2/N); the evidence is N(0; 0, kappa I).
        let x = Mat::<f64>::zeros(4, 2);
        let y = Mat::<f64>::zeros(4, 1);
        for width in [1, 2, 7, 1000] {
            let prob = ExactLinearProblem {
                x: x.as_ref(),
                y: y.as_ref(),
                x_test: None,
                sigma_w: 1.0,
                width,
                temperature: 0.3,
                param: Parameterization::Standard,
            };
            let post = exact_linear_posterior(&prob, 1, no_control()).unwrap();
            let n = width as f64;
            assert!(
                (post.kernel_scale_mean - 1.0).abs() < 1e-12,
                "N={width}: {}",
                post.kernel_scale_mean
            );
            assert!(
                (post.kernel_scale_std - (2.0 / n).sqrt()).abs() < 1e-12,
                "N={width}: {}",
                post.kernel_scale_std
            );
            let le = -0.5 * 4.0 * (2.0 * std::f64::consts::PI * 0.3).ln();
            assert!(
                (post.log_evidence - le).abs() < 1e-12,
                "N={width}: {} vs {le}",
                post.log_evidence
            );
        }
    }

    #[test]
    fn thread_count_does_not_change_results() {
        let (x, y, xt) = data(70, 5, 3);
        let prob = ExactLinearProblem {
            x: x.as_ref(),
            y: y.as_ref(),
            x_test: Some(xt.as_ref()),
            sigma_w: 1.0,
            width: 20,
            temperature: 0.01,
            param: Parameterization::MeanField { gamma: 2.0 },
        };
        let a = exact_linear_posterior(&prob, 1, no_control()).unwrap();
        let b = exact_linear_posterior(&prob, 3, no_control()).unwrap();
        assert_eq!(a.train_mean, b.train_mean);
        assert_eq!(a.train_var, b.train_var);
        assert_eq!(a.test_var, b.test_var);
        assert_eq!(a.log_evidence.to_bits(), b.log_evidence.to_bits());
    }

    #[test]
    fn bad_arguments_are_named() {
        let (x, y, xt) = data(5, 2, 4);
        let base = ExactLinearProblem {
            x: x.as_ref(),
            y: y.as_ref(),
            x_test: None,
            sigma_w: 1.0,
            width: 3,
            temperature: 0.1,
            param: Parameterization::Standard,
        };
        let name = |p: ExactLinearProblem<'_>| match exact_linear_posterior(&p, 1, no_control())
            .unwrap_err()
        {
            AkError::InvalidArgument { name, .. } | AkError::Shape { name, .. } => name,
            e => panic!("{e:?}"),
        };
        assert_eq!(name(ExactLinearProblem { width: 0, ..base }), "width");
        assert_eq!(
            name(ExactLinearProblem {
                temperature: 0.0,
                ..base
            }),
            "temperature"
        );
        assert_eq!(
            name(ExactLinearProblem {
                temperature: f64::NAN,
                ..base
            }),
            "temperature"
        );
        assert_eq!(
            name(ExactLinearProblem {
                param: Parameterization::MeanField { gamma: -1.0 },
                ..base
            }),
            "gamma"
        );
        assert_eq!(
            name(ExactLinearProblem {
                sigma_w: 0.0,
                ..base
            }),
            "sigma_w"
        );
        assert_eq!(
            name(ExactLinearProblem {
                y: xt.as_ref().subcols(0, 1),
                ..base
            }),
            "y"
        );
        let xt3 = Mat::<f64>::zeros(2, 3);
        assert_eq!(
            name(ExactLinearProblem {
                x_test: Some(xt3.as_ref()),
                ..base
            }),
            "X_test"
        );
    }
}
