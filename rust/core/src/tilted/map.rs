//! The outer iteration `x -> backward(forward(x))` on a fixed sample set (forward by
//! reweighting, backward by the stationarity conditions), the packing of its unknowns, and the
//! dimensionless fixed-point residual.
#![allow(clippy::neg_cmp_op_on_partial_ord)]
use super::samples::{factor, normalized_weights, quad_forms, readout_energy, tilt_energy, LayerSamples};
use crate::error::{shape, AkError, Result};
use crate::kernels::activation::Activation;
use crate::linalg::{symmetrize, CovFactor};
use crate::mcmc::tilted::weighted_gram;
use crate::linalg::matmul;
use crate::linalg::solve_upper_triangular_in_place;
use faer::{Accum, Mat, MatRef, Par};

/// Result of one outer iteration.
#[derive(Debug, Clone)]
pub struct MapOut {
    /// `hatPhi_1' .. hatPhi_{L-1}'`.
    pub hidden: Vec<Mat<f64>>,
    /// `A' = (Phi^L + T I)^{-1} Y`.
    pub a: Mat<f64>,
    pub kernels: Vec<Mat<f64>>,
    /// Kish effective fraction per layer.
    pub kish: Vec<f64>,
    /// Normalised weights per layer.
    pub weights: Vec<Vec<f64>>,
    /// Lower Cholesky factors of the priors of the deeper layers, `C^1 .. C^{L-1}`.
    pub prior_factors: Vec<Mat<f64>>,
}

/// The fixed data of a fit.
pub struct Setup<'a> {
    pub act: &'a Activation,
    pub k0: MatRef<'a, f64>,
    /// `CovFactor::psd` of `K^0` (layer 1's prior never changes).
    pub k0_factor: &'a CovFactor,
    pub y: MatRef<'a, f64>,
    pub sigma_w: f64,
    pub sigma_b: f64,
    pub gamma: f64,
    pub temperature: f64,
}

impl Setup<'_> {
    /// `C^l = sigma_w^2 Phi^l + sigma_b^2`.
    pub(super) fn prior(&self, phi: &Mat<f64>) -> Mat<f64> {
        let (sw2, sb2) = (self.sigma_w * self.sigma_w, self.sigma_b * self.sigma_b);
        Mat::from_fn(phi.nrows(), phi.ncols(), |i, j| sw2 * phi[(i, j)] + sb2)
    }

    /// One outer iteration on a fixed sample set (module docs): forward by reweighting, backward
    /// by the stationarity conditions.
    pub fn map(
        &self,
        hidden: &[Mat<f64>],
        a: MatRef<'_, f64>,
        samples: &[LayerSamples],
        par: Par,
    ) -> Result<MapOut> {
        let l_count = samples.len();
        let p = self.k0.nrows();
        if hidden.len() + 1 != l_count || a.nrows() != p || a.ncols() != self.y.ncols() {
            return Err(shape(
                "conjugates",
                format!(
                    "need {} hidden conjugates and A of shape ({p}, {})",
                    l_count - 1,
                    self.y.ncols()
                ),
            ));
        }
        let mut c = self.k0.to_owned();
        let g2 = self.gamma * self.gamma;
        let sw2 = self.sigma_w * self.sigma_w;
        let (mut kernels, mut kish, mut weights, mut factors) = (vec![], vec![], vec![], vec![]);
        let mut hidden_new = Vec::with_capacity(l_count - 1);
        for (l, smp) in samples.iter().enumerate() {
            // layer 1's prior is K^0, the one it was drawn with; deeper layers are whitened by
            // the current prior (needed by the backward step too)
            let lz = if l > 0 {
                let lc = CovFactor::Cholesky(factor("C", c.as_ref())?);
                let z = lc.whiten(smp.h.transpose(), par);
                Some((lc, z))
            } else {
                None
            };
            let q = match &lz {
                Some((_, z)) => quad_forms(z),
                None => smp.q_ref.clone(),
            };
            // tilt energies and the tilt's gradient factor  hatPhi phi  (S x P)
            let (grad_factor, t) = if l + 1 == l_count {
                let (b, e) = readout_energy(smp.phi.as_ref(), a, par);
                // (only the backward step of a hidden layer needs it: not for L = 1)
                let mut gf = Mat::<f64>::zeros(if l > 0 { smp.h.nrows() } else { 0 }, p);
                if l > 0 {
                    matmul(
                        gf.as_mut(),
                        Accum::Replace,
                        b.as_ref(),
                        a.transpose(),
                        -g2,
                        par,
                    );
                }
                (gf, e.into_iter().map(|e| -g2 * e).collect::<Vec<f64>>())
            } else {
                tilt_energy(smp.phi.as_ref(), hidden[l].as_ref(), par)
            };
            let logw: Vec<f64> = (0..smp.h.nrows())
                .map(|s| smp.base[s] - 0.5 * (q[s] + t[s]))
                .collect();
            let (w, k_fraction) = normalized_weights(&logw).ok_or_else(|| AkError::NonFinite {
                name: "conjugates",
                msg: "importance weights are not finite".into(),
            })?;
            kish.push(k_fraction);
            let k = weighted_gram(smp.phi.as_ref(), smp.phi.as_ref(), Some(&w), par);
            if let Some((lc, z)) = lz {
                // backward step of layer l-1 by the first-order Stein identity (module docs):
                // C^{-1}(C - H)C^{-1} = C^{-1} <h grad V^T>,  grad V = phi'(h) ⊙ hatPhi phi(h)
                let gv = Mat::from_fn(smp.h.nrows(), p, |s, j| {
                    w[s] * smp.dphi[(s, j)] * grad_factor[(s, j)]
                });
                let mut m = Mat::<f64>::zeros(p, p);
                matmul(
                    m.as_mut(),
                    Accum::Replace,
                    z.as_ref(),
                    gv.as_ref(),
                    sw2,
                    par,
                );
                solve_upper_triangular_in_place(lc.f().transpose(), m.as_mut(), par);
                symmetrize(&mut m);
                hidden_new.push(m);
                if let CovFactor::Cholesky(l) = lc {
                    factors.push(l);
                }
            }
            c = self.prior(&k);
            kernels.push(k);
            weights.push(w);
        }
        // backward, last layer: A' = (Phi^L + T I)^{-1} Y
        let mut m = kernels[l_count - 1].clone();
        for i in 0..p {
            m[(i, i)] += self.temperature;
        }
        let lm = factor("Phi^L + T I", m.as_ref())?;
        let mut a_new = self.y.to_owned();
        crate::linalg::cholesky_solve_in_place(lm.as_ref(), a_new.as_mut(), par)?;
        Ok(MapOut {
            hidden: hidden_new,
            a: a_new,
            kernels,
            kish,
            weights,
            prior_factors: factors,
        })
    }
}

/// Flattens `(hidden, A)` column-major.
pub(super) fn pack(hidden: &[Mat<f64>], a: MatRef<'_, f64>) -> Vec<f64> {
    let mut x = Vec::new();
    for m in hidden {
        for j in 0..m.ncols() {
            x.extend_from_slice(m.col_as_slice(j));
        }
    }
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            x.push(a[(i, j)]);
        }
    }
    x
}

pub(super) fn unpack(x: &[f64], depth: usize, p: usize, c: usize) -> (Vec<Mat<f64>>, Mat<f64>) {
    let hidden = (0..depth - 1)
        .map(|l| {
            let off = l * p * p;
            let mut m = Mat::from_fn(p, p, |i, j| x[off + j * p + i]);
            symmetrize(&mut m);
            m
        })
        .collect();
    let off = (depth - 1) * p * p;
    (hidden, Mat::from_fn(p, c, |i, j| x[off + j * p + i]))
}

/// Dimensionless residual: `max |A' - A| / max |A'|`, and over hidden layers the change of the
/// whitened tilt `max |L^T (hatPhi_l' - hatPhi_l) L|` (`L L^T = C^l`, the prior of the next
/// layer, the scale of the tilted features).
pub(super) fn measure(hidden: &[Mat<f64>], a: MatRef<'_, f64>, out: &MapOut, par: Par) -> f64 {
    let (mut amax, mut r) = (0.0f64, 0.0f64);
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            amax = amax.max(out.a[(i, j)].abs());
            r = r.max((out.a[(i, j)] - a[(i, j)]).abs());
        }
    }
    r /= amax.max(1e-300);
    for (l, (old, new)) in hidden.iter().zip(&out.hidden).enumerate() {
        // hatPhi_{l+1} tilts phi(h^{l+1}), whose second moment Phi^{l+1} ~ C^{l+1} / sigma_w^2:
        // measured in units of that prior (as the reference does; the layer's own prior C^l
        // would be blind off the support of a singular K^0, which phi(h) does reach)
        let lc = out.prior_factors[l].as_ref();
        let p = old.nrows();
        let d = Mat::from_fn(p, p, |i, j| new[(i, j)] - old[(i, j)]);
        let mut t = Mat::<f64>::zeros(p, lc.ncols());
        matmul(t.as_mut(), Accum::Replace, d.as_ref(), lc, 1.0, par);
        let mut w = Mat::<f64>::zeros(lc.ncols(), lc.ncols());
        matmul(
            w.as_mut(),
            Accum::Replace,
            lc.transpose(),
            t.as_ref(),
            1.0,
            par,
        );
        for j in 0..w.ncols() {
            for i in 0..w.nrows() {
                r = r.max(w[(i, j)].abs());
            }
        }
    }
    r
}
