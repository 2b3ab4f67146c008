//! The sample-average concave objective on fixed draws (module docs of [`super`]) and its
//! damped Newton maximisation.
//!
//! With draws `phi_i` (rows of `F`, S x P) and log prior/proposal ratios `l_i`:
//! `s_i = a . phi_i`, `w_i ∝ exp(l_i + gamma^2 s_i^2 / 2)` (normalised),
//! `g(a) = a.y - T|a|^2/2 - gamma^{-2} ln((1/S) sum_i exp(l_i + gamma^2 s_i^2 / 2))`,
//! `grad g = y - T a - m`, `m = sum_i w_i s_i phi_i = Phi(a) a`, `Phi(a) = sum_i w_i phi_i phi_i^T`,
//! `-Hess g = T I + sum_i w_i (1 + gamma^2 s_i^2) phi_i phi_i^T - gamma^2 m m^T` (positive definite:
//! `T I` plus a weighted second moment plus `gamma^2` times a weighted covariance of `s phi`).
//! For every fixed sample set `g` is strictly concave (log-sum-exp of convex quadratics).
use crate::error::Result;
use crate::linalg::{cholesky_solve_in_place, cholesky_with_jitter, matmul};
use crate::mcmc::tilted::weighted_gram;
use crate::solve::SolveReport;
use faer::{Accum, Mat, MatRef, Par};

/// The objective on one sample set.
pub struct Saa<'a> {
    pub f: MatRef<'a, f64>,
    pub log_r: &'a [f64],
    pub y: &'a [f64],
    pub temperature: f64,
    pub gamma: f64,
}

/// `g`, `s`, normalised weights and `ln sum exp(l + gamma^2 s^2/2)` at one `a`.
pub struct Eval {
    pub g: f64,
    pub s: Vec<f64>,
    pub w: Vec<f64>,
    pub lse: f64,
}

impl Saa<'_> {
    pub fn eval(&self, a: &[f64], par: Par) -> Eval {
        let n = self.f.nrows();
        let mut sm = Mat::<f64>::zeros(n, 1);
        matmul(sm.as_mut(), Accum::Replace, self.f, MatRef::from_column_major_slice(a, a.len(), 1), 1.0, par);
        let g2 = self.gamma * self.gamma;
        let s: Vec<f64> = sm.col_as_slice(0).to_vec();
        let lw: Vec<f64> = s.iter().zip(self.log_r).map(|(s, l)| l + 0.5 * g2 * s * s).collect();
        let mx = lw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = lw.iter().map(|v| (v - mx).exp()).sum();
        let lse = mx + sum.ln();
        let w = lw.iter().map(|v| (v - lse).exp()).collect();
        let dot: f64 = a.iter().zip(self.y).map(|(a, y)| a * y).sum();
        let a2: f64 = a.iter().map(|v| v * v).sum();
        let g = dot - 0.5 * self.temperature * a2 - (lse - (n as f64).ln()) / g2;
        Eval { g, s, w, lse }
    }

    /// `m = sum_i w_i s_i phi_i`.
    pub fn moment(&self, e: &Eval, par: Par) -> Vec<f64> {
        let ws: Vec<f64> = e.w.iter().zip(&e.s).map(|(w, s)| w * s).collect();
        let mut m = Mat::<f64>::zeros(self.f.ncols(), 1);
        matmul(m.as_mut(), Accum::Replace, self.f.transpose(), MatRef::from_column_major_slice(&ws, ws.len(), 1), 1.0, par);
        m.col_as_slice(0).to_vec()
    }

    pub fn gradient(&self, a: &[f64], m: &[f64]) -> Vec<f64> {
        (0..a.len()).map(|i| self.y[i] - self.temperature * a[i] - m[i]).collect()
    }

    /// `-Hess g` at the evaluation `e` with moment `m`.
    pub fn neg_hessian(&self, e: &Eval, m: &[f64], par: Par) -> Mat<f64> {
        let g2 = self.gamma * self.gamma;
        let d: Vec<f64> = e.w.iter().zip(&e.s).map(|(w, s)| w * (1.0 + g2 * s * s)).collect();
        let mut h = weighted_gram(self.f, self.f, Some(&d), par);
        let p = m.len();
        for i in 0..p {
            for j in 0..p {
                h[(i, j)] -= g2 * m[i] * m[j];
            }
            h[(i, i)] += self.temperature;
        }
        h
    }

    /// Kish effective fraction `1 / (S sum w^2)`.
    pub fn kish(e: &Eval) -> f64 {
        1.0 / (e.w.len() as f64 * e.w.iter().map(|w| w * w).sum::<f64>())
    }
}

/// Damped Newton from `a0` until `|grad g| / |y| < tol`, trusting the draws only where their
/// Kish fraction stays `>= min_trial_kish` (a trial point below is shortened; a step that must
/// shrink below 1e-3 ends the solve unconverged, to be continued on draws at the new point).
/// Returns the maximiser, its evaluation and a report (residual = `|grad g| / |y|`).
/// Trial points where `inside` is false lie outside the true objective's domain (`g = -inf`
/// there): the step is shortened as for a failed sufficient increase.
pub fn maximise(
    saa: &Saa<'_>,
    a0: &[f64],
    tol: f64,
    max_iter: usize,
    min_trial_kish: f64,
    inside: &dyn Fn(&[f64]) -> bool,
    par: Par,
) -> Result<(Vec<f64>, Eval, SolveReport)> {
    let ynorm = saa.y.iter().map(|v| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    let mut a = a0.to_vec();
    let mut e = saa.eval(&a, par);
    let mut m = saa.moment(&e, par);
    let mut grad = saa.gradient(&a, &m);
    let res = |g: &[f64]| g.iter().map(|v| v * v).sum::<f64>().sqrt() / ynorm;
    let mut hist = vec![res(&grad)];
    let (mut n_iter, mut n_eval) = (0, 1);
    while *hist.last().unwrap() >= tol && n_iter < max_iter {
        n_iter += 1;
        let h = saa.neg_hessian(&e, &m, par);
        let p = a.len();
        let mut l = Mat::<f64>::zeros(p, p);
        cholesky_with_jitter("Hessian", h.as_ref(), 0.0, l.as_mut(), par)?;
        let mut d = Mat::from_fn(p, 1, |i, _| grad[i]);
        cholesky_solve_in_place(l.as_ref(), d.as_mut(), par)?;
        let d = d.col_as_slice(0).to_vec();
        let slope: f64 = d.iter().zip(&grad).map(|(d, g)| d * g).sum();
        let mut t = 1.0;
        let mut accepted = false;
        let mut trusted = true;
        for _ in 0..40 {
            let trial: Vec<f64> = a.iter().zip(&d).map(|(a, d)| a + t * d).collect();
            if !inside(&trial) {
                t *= 0.5;
                continue;
            }
            let et = saa.eval(&trial, par);
            n_eval += 1;
            if Saa::kish(&et) < min_trial_kish {
                trusted = false;
                if t < 1e-3 {
                    break;
                }
                t *= 0.5;
                continue;
            }
            if et.g >= e.g + 1e-4 * t * slope || (et.g - e.g).abs() <= 1e-15 * e.g.abs().max(1.0) {
                a = trial;
                e = et;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        m = saa.moment(&e, par);
        grad = saa.gradient(&a, &m);
        hist.push(res(&grad));
        if !accepted || !trusted {
            // round-off floor, or the step left the draws' trust region: redraw there
            let r = *hist.last().unwrap();
            let report = SolveReport::new("concave", accepted && r < tol, n_iter, n_eval, r, hist);
            return Ok((a, e, report));
        }
    }
    let r = *hist.last().unwrap();
    let report = SolveReport::new("concave", r < tol, n_iter, n_eval, r, hist);
    Ok((a, e, report))
}
