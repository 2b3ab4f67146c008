//! The closed form of the linear saddle point (`sigma_b = 0`, rank(Y) <= 1; module docs of
//! [`super`]): the global minimum of `F1(kappa)` by a grid scan and bisection, and the kernels
//! and conjugates at `kappa`.
#![allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x > 0.0)` also rejects NaN
use super::{Point, Problem};
use crate::linalg::{a_at, at_b, symmetrize, RANK_RCOND};
use crate::linalg::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// Grid of the closed-form scan: `logit(kappa)` in `[-T_MAX, T_MAX]`, plus the end points.
const GRID: usize = 4000;
const T_MAX: f64 = 40.0;

impl Problem<'_> {
    /// The closed form (`sigma_b = 0`, rank(Y) <= 1): global minimum of `F1(kappa)` and the
    /// list of stationary points `(kappa, F1)`.
    pub fn closed_form_kappa(&self, gamma: f64, t: f64) -> (f64, Vec<(f64, f64)>) {
        let vy = at_b(self.vecs.as_ref(), self.y, Par::Seq);
        let q: Vec<f64> = (0..self.p)
            .map(|i| (0..self.c).map(|j| vy[(i, j)] * vy[(i, j)]).sum())
            .collect();
        closed_form_kappa(&self.lam, &q, self.depth, self.sigma_w, gamma, t)
    }
}

/// The closed form's `kappa` from the spectrum of the input kernel: eigenvalues `lam` (negative
/// ones clipped to 0) and the squared projections `q_i = |u_i^T Y|^2` of the targets on its
/// eigenvectors; global minimum of `F1(kappa)` and the list of stationary points `(kappa, F1)`.
pub fn closed_form_kappa(lam: &[f64], q: &[f64], depth: usize, sigma_w: f64, gamma: f64, t: f64) -> (f64, Vec<(f64, f64)>) {
    let depth = depth as i32;
    let s = sigma_w.powi(2 * (depth - 1));
    let lam: Vec<f64> = lam.iter().map(|v| v.max(0.0)).collect();
    let lq: f64 = lam.iter().zip(q).map(|(l, q)| l * q).sum();
    // F1 and the sign function h = dF1/dkappa (1-kappa)^2 / (L/2), both at (kappa, w = 1-kappa)
    let g2 = gamma * gamma;
    let f1 = |kap: f64, w: f64| -> f64 {
        let lnw = if kap < 0.5 { (-kap).ln_1p() } else { w.ln() };
        let wl = (depth as f64 * lnw).exp();
        let data: f64 = lam
            .iter()
            .zip(q)
            .map(|(l, q)| {
                if *l > 0.0 {
                    q * wl / (s * l + t * wl)
                } else {
                    q / t
                }
            })
            .sum();
        0.5 * depth as f64 * (kap / w + lnw) + 0.5 * g2 * data
    };
    let h = |kap: f64, w: f64| -> f64 {
        let lnw = if kap < 0.5 { (-kap).ln_1p() } else { w.ln() };
        let wl = (depth as f64 * lnw).exp();
        let sum: f64 = lam
            .iter()
            .zip(q)
            .filter(|(l, _)| **l > 0.0)
            .map(|(l, q)| l * q * wl * w / ((s * l + t * wl) * (s * l + t * wl)))
            .sum();
        kap - g2 * s * sum
    };
    if !(lq > 0.0) {
        return (0.0, vec![(0.0, f1(0.0, 1.0))]);
    }
    // grid nodes (kappa, w): kappa = 0, logistic(t_j), kappa = 1
    let node = |tt: f64| -> (f64, f64) {
        if tt >= 0.0 {
            let e = (-tt).exp();
            (1.0 / (1.0 + e), e / (1.0 + e))
        } else {
            let e = tt.exp();
            (e / (1.0 + e), 1.0 / (1.0 + e))
        }
    };
    let mut nodes: Vec<(f64, f64, f64)> = Vec::with_capacity(GRID + 2); // (coordinate, kappa, w)
    nodes.push((f64::NEG_INFINITY, 0.0, 1.0));
    for j in 0..GRID {
        let tt = -T_MAX + 2.0 * T_MAX * j as f64 / (GRID - 1) as f64;
        let (k, w) = node(tt);
        nodes.push((tt, k, w));
    }
    nodes.push((f64::INFINITY, 1.0, 0.0));
    let vals: Vec<f64> = nodes.iter().map(|&(_, k, w)| h(k, w)).collect();
    let mut roots = Vec::new();
    for j in 0..nodes.len() - 1 {
        let (h0, h1) = (vals[j], vals[j + 1]);
        if (h0 < 0.0) == (h1 < 0.0) && h0 != 0.0 {
            continue;
        }
        if h0 == 0.0 {
            roots.push((nodes[j].1, nodes[j].2));
            continue;
        }
        // bisection: in kappa on the first interval, in w on the last, in logit(kappa) inside
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        let first = j == 0;
        let last = j + 1 == nodes.len() - 1;
        let at = |u: f64| -> (f64, f64) {
            if first {
                let k = nodes[1].1 * u;
                (k, 1.0 - k)
            } else if last {
                let w = nodes[j].2 * (1.0 - u);
                (1.0 - w, w)
            } else {
                node(nodes[j].0 + (nodes[j + 1].0 - nodes[j].0) * u)
            }
        };
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            let (k, w) = at(mid);
            if (h(k, w) < 0.0) == (h0 < 0.0) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        roots.push(at(0.5 * (lo + hi)));
    }
    let stationary: Vec<(f64, f64)> = roots.iter().map(|&(k, w)| (k, f1(k, w))).collect();
    let best = stationary
        .iter()
        .cloned()
        .fold(
            (f64::NAN, f64::INFINITY),
            |acc, s| if s.1 < acc.1 { s } else { acc },
        );
    (best.0, stationary)
}

impl Problem<'_> {

    /// Closed-form kernels `Phi^1 .. Phi^L` (P x P) at `kappa`.
    pub(super) fn closed_form_kernels(&self, t: f64, kappa: f64, par: Par) -> Vec<Mat<f64>> {
        let (depth, sw, p) = (self.depth, self.sigma_w, self.p);
        let s = sw.powi(2 * (depth as i32 - 1));
        let lnw = (-kappa).ln_1p();
        let u = (-(depth as f64) * lnw).exp();
        // direction of the targets: the column of largest norm (all columns are parallel)
        let jstar = (0..self.c)
            .map(|j| {
                (
                    j,
                    (0..p).map(|i| self.y[(i, j)] * self.y[(i, j)]).sum::<f64>(),
                )
            })
            .fold((0, -1.0), |acc, v| if v.1 > acc.1 { v } else { acc })
            .0;
        let mut yh = vec![0.0; p];
        for (k, yk) in yh.iter_mut().enumerate() {
            *yk = (0..p).map(|i| self.vecs[(i, k)] * self.y[(i, jstar)]).sum();
        }
        let lam: Vec<f64> = self.lam.iter().map(|v| v.max(0.0)).collect();
        // v = K alpha = V diag(lam / (s u lam + T)) V^T y, k = alpha^T K alpha
        let coef: Vec<f64> = (0..p)
            .map(|k| lam[k] * yh[k] / (s * u * lam[k] + t))
            .collect();
        let kk: f64 = (0..p)
            .map(|k| lam[k] * yh[k] * yh[k] / ((s * u * lam[k] + t) * (s * u * lam[k] + t)))
            .sum();
        let mut v = Mat::<f64>::zeros(p, 1);
        matmul(
            v.as_mut(),
            Accum::Replace,
            self.vecs.as_ref(),
            MatRef::from_column_major_slice(&coef, p, 1),
            1.0,
            par,
        );
        (1..=depth)
            .map(|l| {
                let scale = sw.powi(2 * (l as i32 - 1));
                let c = if kk > 0.0 {
                    (-(l as f64) * lnw).exp_m1() / kk
                } else {
                    0.0
                };
                let mut k = Mat::from_fn(p, p, |i, j| {
                    scale * (self.k0[(i, j)] + c * v[(i, 0)] * v[(j, 0)])
                });
                symmetrize(&mut k);
                k
            })
            .collect()
    }

    /// Closed-form conjugates `hatPhi_l = -gamma^2 (sigma_w^2 / (1-kappa))^{L-l} A A^T`,
    /// `A = (Phi^L + T I)^{-1} Y` projected onto the support of `K^0` (exact, no cancellation).
    pub(super) fn closed_form_conjugates(&self, pt: Point, kappa: f64, par: Par) -> Vec<Mat<f64>> {
        let (depth, sw, p) = (self.depth, self.sigma_w, self.p);
        let s = sw.powi(2 * (depth as i32 - 1));
        let lnw = (-kappa).ln_1p();
        let u = (-(depth as f64) * lnw).exp();
        let mut vy = at_b(self.vecs.as_ref(), self.y, par);
        let lmax = self.lam.iter().cloned().fold(0.0, f64::max);
        for k in 0..p {
            let lam = self.lam[k].max(0.0);
            // directions outside the support (as in the L-BFGS basis) carry no tilt
            let f = if self.basis.u.is_some() && !(self.lam[k] > RANK_RCOND * lmax) {
                0.0
            } else {
                1.0 / (s * u * lam + pt.temperature)
            };
            for j in 0..self.c {
                vy[(k, j)] *= f;
            }
        }
        let mut alpha = Mat::<f64>::zeros(p, self.c);
        matmul(
            alpha.as_mut(),
            Accum::Replace,
            self.vecs.as_ref(),
            vy.as_ref(),
            1.0,
            par,
        );
        let aa = a_at(alpha.as_ref(), par);
        (1..=depth)
            .map(|l| {
                let g = pt.gamma
                    * pt.gamma
                    * (sw * sw).powi((depth - l) as i32)
                    * (-((depth - l) as f64) * lnw).exp();
                Mat::from_fn(p, p, |i, j| -g * aa[(i, j)])
            })
            .collect()
    }
}
