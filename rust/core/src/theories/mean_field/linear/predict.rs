//! Test points of the linear saddle point (module docs of [`super`]): layer by layer, the
//! untilted conditional kernels `Phi^l(te, tr) = C^{l-1}(te, tr) C_{l-1}^{-1} Phi^l` and the
//! adapted-kernel GP predictor.
//!
//! The fitted state is split in two, each computed once:
//! - [`MeanPredictor`] (at fit, a few `r x r` factorizations): the mean is linear in
//!   `K^0(te, tr)`: with `M_l = Phi_l C_{l-1}^{-1}` and `C_l = sigma_w^2 Phi_l + sigma_b^2 1 1^T`,
//!   `mean^T = Z^T M_L C_{L-1}(tr, te)` unrolls backwards into `K^0(te, tr) w + b`, where
//!   `h_l = C_{l-1}^{-1} Phi_l g_l`, `g_L = Z = (Phi^L + T I)^{-1} Y`, `g_{l-1} = sigma_w^2 h_l`,
//!   `b = sigma_b^2 sum_{l >= 2} 1^T h_l` and `w = U h_1`; a prediction then costs O(Q d C).
//! - [`VariancePredictor`] (the Cholesky factors `B_l` of the kernels, `Lc_l` of the priors,
//!   `W_l = Lc_l^{-1} B_l` and `Lt` of `Phi^L + T I`): the GP variance needs the whole chain per
//!   test point, `Phi(tr, te) = B_l W_l^T Lc_l^{-1} C(tr, te)`, in chunks of 512 test points.
//!
//! Everything is reduced to the support of `K^0` (basis `U`, `r = rank K^0`).
use super::Problem;
use crate::control::Control;
use crate::error::{shape, AkError, Result};
use crate::kernels::input::{input_kernel, input_kernel_diag};
use crate::kernels::net::Rows;
use crate::linalg::{a_at, at_b, cholesky, lower_solve};
use crate::threads::with_threads;
use crate::validate;
use crate::linalg::matmul;
use crate::linalg::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::{Accum, Mat, MatRef, Par};

/// The fitted mean: `mean(x*) = K^0(x*, X) weights + offset` (P x C and C).
#[derive(Debug, Clone)]
pub struct MeanPredictor {
    pub sigma_w: f64,
    pub sigma_b: f64,
    pub weights: Mat<f64>,
    pub offset: Vec<f64>,
}

/// The fitted state of the variance (module docs), reduced to the support of `K^0`.
#[derive(Debug, Clone)]
pub struct VariancePredictor {
    pub sigma_w: f64,
    pub sigma_b: f64,
    /// Orthonormal basis of the support of `K^0` (P x r); None: `K^0` is positive definite.
    pub u: Option<Mat<f64>>,
    /// `U^T 1` (r).
    pub ones: Vec<f64>,
    pub b: Vec<Mat<f64>>,
    pub lc: Vec<Mat<f64>>,
    pub w: Vec<Mat<f64>>,
    pub lt: Mat<f64>,
}

fn not_pd(msg: &str) -> AkError {
    AkError::NotPositiveDefinite { name: "kernels", msg: msg.into() }
}

/// Solves `L L^T x = b` in place.
fn chol_solve(l: &Mat<f64>, b: &mut Mat<f64>, par: Par) {
    solve_lower_triangular_in_place(l.as_ref(), b.as_mut(), par);
    solve_upper_triangular_in_place(l.transpose(), b.as_mut(), par);
}

fn check_features(x_train: Rows<'_>, x_test: Rows<'_>, p: usize) -> Result<()> {
    if x_test.cols != x_train.cols {
        return Err(shape(
            "X_test",
            format!("has {} features, expected {}", x_test.cols, x_train.cols),
        ));
    }
    if x_train.rows != p {
        return Err(shape(
            "X",
            format!("has {} rows, the predictor was fitted on {p} points", x_train.rows),
        ));
    }
    Ok(())
}

impl Problem<'_> {
    /// The fitted mean at saddle-point kernels `kernels` (P x P) and temperature `t`.
    pub fn mean_predictor(
        &self,
        kernels: &[MatRef<'_, f64>],
        t: f64,
        n_threads: usize,
    ) -> Result<MeanPredictor> {
        validate::temperature(t)?;
        let (r, depth, c) = (self.basis.r, self.depth, self.c);
        let (sw, sb) = (self.sigma_w, self.sigma_b);
        with_threads(n_threads, |par| {
            if kernels.len() != depth {
                return Err(shape("kernels", format!("needs one kernel per hidden layer ({depth})")));
            }
            for k in kernels {
                if k.nrows() != self.p || k.ncols() != self.p {
                    return Err(shape("kernels", format!("each kernel must be {0} x {0}", self.p)));
                }
                crate::linalg::check_symmetric("kernels", *k)?;
            }
            let phi: Vec<Mat<f64>> = kernels.iter().map(|k| self.reduce(*k, par)).collect();
            let mut a = phi[depth - 1].clone();
            for i in 0..r {
                a[(i, i)] += t;
            }
            let lt = cholesky(a.as_ref()).ok_or_else(|| not_pd("Phi^L + T I"))?;
            let mut g = self.basis.y.clone();
            chol_solve(&lt, &mut g, par);
            let mut offset = vec![0.0; c];
            let mut h = Mat::<f64>::zeros(r, c);
            for l in (0..depth).rev() {
                // h = C_{l-1}^{-1} Phi_l g (C_0 = K^0, factored once with the problem)
                h = Mat::<f64>::zeros(r, c);
                matmul(h.as_mut(), Accum::Replace, phi[l].as_ref(), g.as_ref(), 1.0, par);
                if l == 0 {
                    chol_solve(&self.basis.precond[0], &mut h, par);
                } else {
                    let prior = Mat::from_fn(r, r, |i, j| {
                        sw * sw * phi[l - 1][(i, j)] + sb * sb * self.basis.ones[i] * self.basis.ones[j]
                    });
                    let lp = cholesky(prior.as_ref()).ok_or_else(|| not_pd("the prior C^l"))?;
                    chol_solve(&lp, &mut h, par);
                    for (j, o) in offset.iter_mut().enumerate() {
                        let s: f64 = h.col_as_slice(j).iter().zip(&self.basis.ones).map(|(a, b)| a * b).sum();
                        *o += sb * sb * s;
                    }
                    g = Mat::from_fn(r, c, |i, j| sw * sw * h[(i, j)]);
                }
            }
            let weights = match &self.basis.u {
                None => h,
                Some(u) => {
                    let mut m = Mat::<f64>::zeros(self.p, c);
                    matmul(m.as_mut(), Accum::Replace, u.as_ref(), h.as_ref(), 1.0, par);
                    m
                }
            };
            Ok(MeanPredictor { sigma_w: sw, sigma_b: sb, weights, offset })
        })
    }

    /// The fitted variance state at saddle-point kernels `kernels` and temperature `t`.
    pub fn variance_predictor(
        &self,
        kernels: &[MatRef<'_, f64>],
        t: f64,
        n_threads: usize,
    ) -> Result<VariancePredictor> {
        validate::temperature(t)?;
        let (r, depth) = (self.basis.r, self.depth);
        with_threads(n_threads, |par| {
            let b = self.factors_of("kernels", kernels, par)?;
            let lc = self.prior_factors(&b);
            let w: Vec<Mat<f64>> = (0..depth)
                .map(|l| lower_solve(&lc[l], b[l].as_ref(), par))
                .collect();
            let mut a = a_at(b[depth - 1].as_ref(), par);
            for i in 0..r {
                a[(i, i)] += t;
            }
            let lt = cholesky(a.as_ref()).ok_or_else(|| not_pd("Phi^L + T I"))?;
            Ok(VariancePredictor {
                sigma_w: self.sigma_w,
                sigma_b: self.sigma_b,
                u: self.basis.u.clone(),
                ones: self.basis.ones.clone(),
                b,
                lc,
                w,
                lt,
            })
        })
    }

    /// Mean `Phi^L(te, tr) (Phi^L + T I)^{-1} Y` (Q x C) at test inputs and, with `want_var`, the
    /// adapted-kernel GP variance `Phi^L(te,te) - Phi^L(te,tr)(Phi^L + T I)^{-1}Phi^L(tr,te)` (Q),
    /// negative round-off clipped at 0. `kernels` are the saddle-point kernels (P x P).
    pub fn predict(
        &self,
        kernels: &[MatRef<'_, f64>],
        t: f64,
        x_test: Rows<'_>,
        want_var: bool,
        n_threads: usize,
        ctl: &Control,
    ) -> Result<(Mat<f64>, Option<Vec<f64>>)> {
        let mean = self.mean_predictor(kernels, t, n_threads)?.predict(self.x, x_test, n_threads)?;
        let var = if want_var {
            let v = self.variance_predictor(kernels, t, n_threads)?;
            Some(v.variance(self.x, x_test, n_threads, ctl)?)
        } else {
            None
        };
        Ok((mean, var))
    }
}

impl MeanPredictor {
    /// The mean (Q x C) at `x_test` (`x_train`: the training inputs of the fit), `K^0(te, tr)`
    /// never formed: `sigma_w^2 / d X_te (X_tr^T w) + sigma_b^2 1 (1^T w) + b`.
    pub fn predict(&self, x_train: Rows<'_>, x_test: Rows<'_>, n_threads: usize) -> Result<Mat<f64>> {
        check_features(x_train, x_test, self.weights.nrows())?;
        let (sw, sb, c) = (self.sigma_w, self.sigma_b, self.weights.ncols());
        let mean = with_threads(n_threads, |par| {
            let w = self.weights.as_ref();
            let mut xw = Mat::<f64>::zeros(x_train.cols, c);
            matmul(xw.as_mut(), Accum::Replace, x_train.mat().transpose(), w, 1.0, par);
            let mut mean = Mat::from_fn(x_test.rows, c, |_, j| {
                sb * sb * w.col(j).iter().sum::<f64>() + self.offset[j]
            });
            let scale = sw * sw / x_train.cols as f64;
            matmul(mean.as_mut(), Accum::Add, x_test.mat(), xw.as_ref(), scale, par);
            mean
        });
        if (0..c).any(|j| mean.col_as_slice(j).iter().any(|v| !v.is_finite())) {
            return Err(AkError::NonFinite { name: "X_test", msg: "non-finite predictions".into() });
        }
        Ok(mean)
    }
}

impl VariancePredictor {
    /// Dimension of the support of `K^0`.
    pub fn rank(&self) -> usize {
        self.lt.nrows()
    }

    /// The GP variance (Q) at `x_test`, in chunks of 512 test points (module docs).
    pub fn variance(
        &self,
        x_train: Rows<'_>,
        x_test: Rows<'_>,
        n_threads: usize,
        ctl: &Control,
    ) -> Result<Vec<f64>> {
        let r = self.rank();
        check_features(x_train, x_test, self.u.as_ref().map_or(r, |u| u.nrows()))?;
        let depth = self.b.len();
        let (sw, sb) = (self.sigma_w, self.sigma_b);
        let (b, lc, w, lt) = (&self.b, &self.lc, &self.w, &self.lt);
        with_threads(n_threads, |par| {
            let q = x_test.rows;
            let mut var = vec![0.0; q];
            const CHUNK: usize = 512;
            let xm = x_test.mat();
            for start in (0..q).step_by(CHUNK) {
                ctl.checkpoint()?;
                let end = (start + CHUNK).min(q);
                let nq = end - start;
                let xc = xm.subrows(start, nq);
                // K^0(tr, te) (P x nq), reduced to the support
                let cx_full = input_kernel(x_train.mat(), xc, sw, sb, par);
                let mut ct = match &self.u {
                    None => cx_full,
                    Some(u) => at_b(u.as_ref(), cx_full.as_ref(), par),
                };
                let mut cdiag = input_kernel_diag(xc, sw, sb);
                let mut cross_t = Mat::<f64>::zeros(r, nq);
                let mut diag = vec![0.0; nq];
                for l in 0..depth {
                    // G^T = Lc^{-1} C(tr, te); H^T = W^T G^T; Phi(tr, te) = B H^T
                    let gt = lower_solve(&lc[l], ct.as_ref(), par);
                    let ht = at_b(w[l].as_ref(), gt.as_ref(), par);
                    cross_t = Mat::<f64>::zeros(r, nq);
                    matmul(cross_t.as_mut(), Accum::Replace, b[l].as_ref(), ht.as_ref(), 1.0, par);
                    for j in 0..nq {
                        let g2: f64 = gt.col_as_slice(j).iter().map(|v| v * v).sum();
                        let h2: f64 = ht.col_as_slice(j).iter().map(|v| v * v).sum();
                        diag[j] = cdiag[j] - g2 + h2;
                    }
                    if l + 1 < depth {
                        ct = Mat::from_fn(r, nq, |i, j| sw * sw * cross_t[(i, j)] + sb * sb * self.ones[i]);
                        cdiag = diag.iter().map(|v| sw * sw * v + sb * sb).collect();
                    }
                }
                let e = lower_solve(lt, cross_t.as_ref(), par);
                for j in 0..nq {
                    let e2: f64 = e.col_as_slice(j).iter().map(|v| v * v).sum();
                    var[start + j] = (diag[j] - e2).max(0.0);
                }
            }
            Ok(var)
        })
    }
}
