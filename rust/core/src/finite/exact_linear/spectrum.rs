//! The one-dimensional integral over the readout scale: the log density of `delta`, its mode
//! and derivatives, and the adaptive quadrature grid (module docs of [`super`]).
use crate::control::Control;
use crate::error::{AkError, Result};
use rayon::prelude::*;

/// Initial half-width of the grid in curvature standard deviations, and points per sd.
const HALF_WIDTH_SD: usize = 20;
const POINTS_PER_SD: usize = 50;
/// End weights must be below this fraction of the largest one.
const END_TOL_LOG: f64 = -36.841_361_487_904_73; // ln(1e-16)
/// Grid points whose weight is below 1e-18 of the max are dropped from the moments.
const KEEP_LOG: f64 = -41.446_531_673_892_82; // ln(1e-18)
const MAX_GRID: usize = 1 << 22;

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

pub(super) fn non_finite(msg: &str) -> AkError {
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
