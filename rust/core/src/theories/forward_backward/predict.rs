//! Test rows of the layer kernels of a sampled full fit (nonlinear `Method::Full`), for
//! predictions: GP regression on the MAP readout kernel needs `C^l(*, X)` and `C^l(*, *)`.
//!
//! The tilt `exp(g phi^T Ct^l phi)` acts on the training preactivations only (`Ct` is zero on
//! test rows, as in the linear closed form), so given the training preactivations `h` the test
//! ones are Gaussian, `h_* | h ~ N(C(*, X) C^{-1} h, C(*, *) - C(*, X) C^{-1} C(X, *))`
//! ([`crate::tilted::carry_test_points`], shared with the mean-field predictor), and
//! `C^l(*, X) = g <phi(h_*) phi(h)^T>_tilt + b`, `C^l(*, *) = g <phi(h_*)^2>_tilt + b`. Each layer
//! reuses the fit's final sample set and the same control variate as the training block
//! ([`super::full`]): the exact untilted map of the joint kernel (`F_nngp`, per pair) plus
//! `g sum_s (w_s - w0_s) phi_* phi^T` with the fit's weights `w` at the solution and the
//! zero-tilt weights `w0`. So at `N -> inf` (`Ct = 0`, `w = w0`) the rows are the NNGP ones
//! exactly, and the training block of the same estimator is the fit's `C^l`. The test rows of
//! layer l feed layer l + 1 (their test-test covariances are not needed: only the diagonal).
use super::{LayerDraw, Problem};
use crate::error::{invalid, Result};
use crate::linalg::{matmul, CovFactor};
use crate::mcmc::tilted::{apply_phi, weighted_gram};
use crate::kernels::hermite::gauss_hermite;
use crate::tilted::{conditional_test_points, normalized_weights, tilt_energy};
use faer::{Accum, Mat, MatRef, Par};

/// Gauss-Hermite nodes of the conditional expectations over a test point's preactivation.
pub const GH_NODES: usize = 40;

/// Test rows of every layer, `(C^l(*, X) (n x P), C^l(*, *) diagonal)` for l = 1..L.
pub type TestRows = Vec<(Mat<f64>, Vec<f64>)>;

impl Problem {
    /// Test rows (module docs) from the fit's kernels `cs`, conjugates `cts` and sample sets
    /// `draws`; `k0_cross` is `K^0(*, X)` (n x P) and `k0_diag` the test diagonal of `K^0`.
    #[allow(clippy::too_many_arguments)]
    pub fn sampled_test_rows(
        &self,
        cs: &[Mat<f64>],
        cts: &[Mat<f64>],
        draws: &[LayerDraw],
        k0_cross: MatRef<'_, f64>,
        k0_diag: &[f64],
        par: Par,
    ) -> Result<TestRows> {
        let (p, n, depth) = (self.p(), k0_cross.nrows(), self.depth);
        if cs.len() != depth || cts.len() != depth || draws.len() != depth {
            return Err(invalid("kernels", format!("need {depth} kernels, conjugates and sample sets")));
        }
        if k0_cross.ncols() != p || k0_diag.len() != n {
            return Err(invalid("X", "test kernels do not match the training points"));
        }
        let k0f = CovFactor::psd("X", self.k0.as_ref(), par)?;
        let gh = gauss_hermite(GH_NODES);
        let mut c_x = k0_cross.to_owned();
        let mut c_d = k0_diag.to_vec();
        let mut out = Vec::with_capacity(depth);
        for l in 0..depth {
            let fac = self
                .prior_factor(l, cs, &k0f)
                .ok_or_else(|| invalid("X", "a layer's kernel is not positive definite (Cholesky failed)"))?;
            let (draw, s) = (&draws[l], draws[l].z.nrows());
            if draw.z.ncols() != fac.rank() || draw.e_ref.len() != s || cs[l].nrows() != p || cts[l].nrows() != p {
                return Err(invalid("draws", "the sample sets do not match the fit"));
            }
            let mut h = Mat::<f64>::zeros(s, p);
            matmul(h.as_mut(), Accum::Replace, draw.z.as_ref(), fac.f().transpose(), 1.0, par);
            let phi = apply_phi(&self.act, h.as_ref());
            let (_, e) = tilt_energy(phi.as_ref(), cts[l].as_ref(), par);
            let logw: Vec<f64> = (0..s).map(|k| self.g * e[k] - draw.e_ref[k]).collect();
            let log0: Vec<f64> = draw.e_ref.iter().map(|v| -v).collect();
            let (Some((w, _)), Some((w0, _))) = (normalized_weights(&logw), normalized_weights(&log0)) else {
                return Err(invalid("temperature", "the tilted weights at the solution are not finite"));
            };
            let dw: Vec<f64> = w.iter().zip(&w0).map(|(a, b)| a - b).collect();
            let (m, sd) = conditional_test_points(&fac, c_x.as_ref(), &c_d, h.as_ref(), par);
            // E[phi(m + sd xi)] and E[phi(m + sd xi)^2], xi ~ N(0, 1) (symmetric half rule)
            let (mut phis, mut phis2) = (Mat::<f64>::zeros(s, n), Mat::<f64>::zeros(s, n));
            for i in 0..n {
                for r in 0..s {
                    let (mut a, mut a2) = (0.0, 0.0);
                    for (z, w) in gh.z.iter().zip(&gh.w) {
                        let u = self.act.phi(m[(r, i)] + sd[i] * z).unwrap_or(f64::NAN);
                        let v = self.act.phi(m[(r, i)] - sd[i] * z).unwrap_or(f64::NAN);
                        a += w * (u + v);
                        a2 += w * (u * u + v * v);
                    }
                    phis[(r, i)] = a;
                    phis2[(r, i)] = a2;
                }
            }
            let shift = weighted_gram(phis.as_ref(), phi.as_ref(), Some(&dw), par);
            // the exact untilted map per pair on the joint kernel (test-test covariances are
            // set to 0: only their diagonal is used, and each entry is a per-pair expectation)
            let prev = if l == 0 { &self.k0 } else { &cs[l - 1] };
            let joint = Mat::from_fn(p + n, p + n, |i, j| match (i < p, j < p) {
                (true, true) => prev[(i, j)],
                (false, true) => c_x[(i - p, j)],
                (true, false) => c_x[(j - p, i)],
                (false, false) => if i == j { c_d[i - p] } else { 0.0 },
            });
            let base = self.nngp_map(&joint)?;
            let cross = Mat::from_fn(n, p, |i, j| base.f[(p + i, j)] + self.g * shift[(i, j)]);
            let diag: Vec<f64> = (0..n)
                .map(|i| base.f[(p + i, p + i)] + self.g * (0..s).map(|r| dw[r] * phis2[(r, i)]).sum::<f64>())
                .collect();
            c_x = cross.clone();
            c_d = diag.clone();
            out.push((cross, diag));
        }
        Ok(out)
    }
}
