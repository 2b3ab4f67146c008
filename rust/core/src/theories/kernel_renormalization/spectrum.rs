//! The spectral evaluator of the action, for kernels `K^L(Q) = U(Q) B` (module docs of [`super`]).
use super::Problem;
use crate::control::Control;
use crate::error::{AkError, Result};
use crate::linalg::symmetric_eigen;
use crate::linalg::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// `K^L(Q) = U B` in the eigenbasis of `B = K^L(1) = V diag(lam) V^T`: with `r_k = sum_c (V^T Y)_kc^2`,
/// `tr(Y^T A^{-1} Y) + C ln det A = sum_k [r_k / (U lam_k + T) + C ln(U lam_k + T)]`.
pub(super) struct Spectrum {
    lam: Vec<f64>,
    r: Vec<f64>,
    c: f64,
}

impl Spectrum {
    pub(super) fn new(prob: &Problem<'_>, par: Par, ctl: &Control) -> Result<Self> {
        let p = prob.p;
        let ones = vec![1.0; prob.net.depth];
        let b = prob.readout_kernel(&ones, ctl)?;
        let (lam, v) = symmetric_eigen("K", MatRef::from_row_major_slice(&b, p, p), par)?;
        drop(b);
        let mut vy = Mat::<f64>::zeros(p, prob.c);
        matmul(vy.as_mut(), Accum::Replace, v.transpose(), prob.y, 1.0, par);
        let r = (0..p)
            .map(|k| (0..prob.c).map(|j| vy[(k, j)] * vy[(k, j)]).sum())
            .collect();
        // Round-off can leave tiny negative eigenvalues of a PSD kernel.
        let lam = lam.into_iter().map(|x| x.max(0.0)).collect();
        Ok(Spectrum {
            lam,
            r,
            c: prob.c as f64,
        })
    }

    /// `(data(U), d data/dU)`.
    fn data(&self, u: f64, t: f64) -> (f64, f64) {
        let (mut f, mut g) = (0.0, 0.0);
        for (&l, &r) in self.lam.iter().zip(&self.r) {
            let a = u * l + t;
            f += r / a + self.c * a.ln();
            g += -l * r / (a * a) + self.c * l / a;
        }
        (f, g)
    }

    pub(super) fn action_and_gradient(
        &self,
        widths: &[f64],
        t: f64,
        q: &[f64],
    ) -> Result<(f64, Vec<f64>, f64)> {
        let u: f64 = q.iter().product();
        let (data, ddata) = self.data(u, t);
        let mut s = 0.5 * data;
        let mut grad = vec![0.0; q.len()];
        for l in 0..q.len() {
            if widths[l].is_finite() {
                s += 0.5 * widths[l] * (q[l] - q[l].ln());
                grad[l] = 0.5 * widths[l] * (1.0 - 1.0 / q[l]) + 0.5 * ddata * u / q[l];
            }
        }
        if !s.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            return Err(AkError::NonFinite {
                name: "action",
                msg: format!("non-finite action or gradient at Q = {q:?}"),
            });
        }
        Ok((s, grad, 0.0))
    }
}
