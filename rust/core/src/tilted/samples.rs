//! One layer's sample set and the energies its importance weights need.
use crate::error::{shape, AkError, Result};
use crate::kernels::activation::Activation;
use crate::linalg::{cholesky, CovFactor};
use crate::mcmc::tilted::apply_phi;
use crate::linalg::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// One layer's sample set: preactivations, their images, and the reference log density.
#[derive(Debug, Clone)]
pub struct LayerSamples {
    /// S x P preactivations.
    pub h: Mat<f64>,
    /// `phi(h)` and `phi'(h)`.
    pub phi: Mat<f64>,
    pub dphi: Mat<f64>,
    /// `+h^T C_ref^{-1} h / 2 + phi^T hatPhi_ref phi / 2` (minus the reference log density).
    pub base: Vec<f64>,
    /// `h^T C_ref^{-1} h` (reused in layer 1, whose prior is always `K^0`).
    pub(super) q_ref: Vec<f64>,
    /// MCMC diagnostics of the draw (NaN when the samples were given).
    pub ess: f64,
    pub acceptance: Vec<f64>,
}

/// Columns' squared norms `|z_s|^2 = h_s^T C^{-1} h_s`.
pub(super) fn quad_forms(z: &Mat<f64>) -> Vec<f64> {
    (0..z.ncols())
        .map(|s| z.col_as_slice(s).iter().map(|v| v * v).sum())
        .collect()
}

/// Self-normalised importance weights from log weights (in the log domain: the largest is
/// subtracted first) and their Kish effective fraction `1 / (S sum w^2)`; None when a log
/// weight is not finite (shared by the sampled solvers' reweighting).
pub fn normalized_weights(logw: &[f64]) -> Option<(Vec<f64>, f64)> {
    let mx = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !mx.is_finite() || logw.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut w: Vec<f64> = logw.iter().map(|v| (v - mx).exp()).collect();
    let sum: f64 = w.iter().sum();
    w.iter_mut().for_each(|v| *v /= sum);
    let kish = 1.0 / (w.len() as f64 * w.iter().map(|v| v * v).sum::<f64>());
    Some((w, kish))
}

/// `F = phi M` (S x P) and the rows `phi_s^T M phi_s` (M symmetric P x P).
pub fn tilt_energy(phi: MatRef<'_, f64>, m: MatRef<'_, f64>, par: Par) -> (Mat<f64>, Vec<f64>) {
    let mut fm = Mat::<f64>::zeros(phi.nrows(), phi.ncols());
    matmul(fm.as_mut(), Accum::Replace, phi, m, 1.0, par);
    let e = (0..phi.nrows())
        .map(|s| (0..phi.ncols()).map(|j| fm[(s, j)] * phi[(s, j)]).sum())
        .collect();
    (fm, e)
}

/// `B = phi A` (S x C) and the rows `|B_s|^2`.
pub(super) fn readout_energy(phi: MatRef<'_, f64>, a: MatRef<'_, f64>, par: Par) -> (Mat<f64>, Vec<f64>) {
    let mut b = Mat::<f64>::zeros(phi.nrows(), a.ncols());
    matmul(b.as_mut(), Accum::Replace, phi, a, 1.0, par);
    let e = (0..phi.nrows())
        .map(|s| (0..a.ncols()).map(|j| b[(s, j)] * b[(s, j)]).sum())
        .collect();
    (b, e)
}

pub(super) fn factor(name: &'static str, c: MatRef<'_, f64>) -> Result<Mat<f64>> {
    cholesky(c).ok_or_else(|| AkError::NotPositiveDefinite {
        name,
        msg: "Cholesky failed".into(),
    })
}

impl LayerSamples {
    /// Wraps samples `h` (S x P) drawn from the density with prior `c_ref` and tilt `hat_ref`.
    pub fn new(
        act: &Activation,
        h: Mat<f64>,
        c_ref: MatRef<'_, f64>,
        hat_ref: MatRef<'_, f64>,
        par: Par,
    ) -> Result<Self> {
        let lc = CovFactor::psd("C_ref", c_ref, par)?;
        Self::with_factor(act, h, &lc, hat_ref, par)
    }

    /// [`LayerSamples::new`] with the factor of `C_ref` given (a singular `K^0`'s support factor:
    /// `h^T C_ref^+ h` on its support).
    pub fn with_factor(
        act: &Activation,
        h: Mat<f64>,
        c_ref: &CovFactor,
        hat_ref: MatRef<'_, f64>,
        par: Par,
    ) -> Result<Self> {
        let p = c_ref.f().nrows();
        if h.ncols() != p || hat_ref.nrows() != p || hat_ref.ncols() != p || h.nrows() == 0 {
            return Err(shape(
                "samples",
                format!("need S x {p} samples and {p} x {p} reference matrices"),
            ));
        }
        let phi = apply_phi(act, h.as_ref());
        let dphi = Mat::from_fn(h.nrows(), p, |i, j| act.dphi(h[(i, j)]).unwrap());
        let q_ref = quad_forms(&c_ref.whiten(h.transpose(), par));
        let (_, t) = tilt_energy(phi.as_ref(), hat_ref, par);
        let base = q_ref.iter().zip(&t).map(|(q, t)| 0.5 * (q + t)).collect();
        Ok(LayerSamples {
            h,
            phi,
            dphi,
            base,
            q_ref,
            ess: f64::NAN,
            acceptance: vec![],
        })
    }
}
