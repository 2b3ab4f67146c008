//! Test points of the linear saddle point (module docs of [`super`]): layer by layer, the
//! untilted conditional kernels and the adapted-kernel GP predictor.
use super::Problem;
use crate::control::Control;
use crate::error::{shape, AkError, Result};
use crate::kernels::input::{input_kernel, input_kernel_diag};
use crate::kernels::net::Rows;
use faer::Par;
use crate::linalg::{a_at, at_b, cholesky, lower_solve};
use crate::threads::with_threads;
use crate::validate;
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Accum, Mat, MatRef};

/// The fitted linear predictor: everything [`Predictor::predict`] needs that does not depend on
/// the test points, computed once per solution (the `K^0` support, the Cholesky factors `B_l` of
/// the kernels and `Lc_l` of the priors, `W_l = Lc_l^{-1} B_l`, the factor `Lt` of
/// `Phi^L + T I` and `Z = (Phi^L + T I)^{-1} Y`, all reduced to the support of `K^0`).
#[derive(Debug, Clone)]
pub struct Predictor {
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
    /// (r x C)
    pub z: Mat<f64>,
}

impl Problem<'_> {
    /// The fitted predictor at saddle-point kernels `kernels` (P x P) and temperature `t`.
    pub fn predictor(&self, kernels: &[MatRef<'_, f64>], t: f64, n_threads: usize) -> Result<Predictor> {
        validate::temperature(t)?;
        with_threads(n_threads, |par| self.predictor_par(kernels, t, par))
    }

    fn predictor_par(&self, kernels: &[MatRef<'_, f64>], t: f64, par: Par) -> Result<Predictor> {
        let (r, depth) = (self.basis.r, self.depth);
        let b = self.factors_of("kernels", kernels, par)?;
        let lc = self.prior_factors(&b);
        let w: Vec<Mat<f64>> = (0..depth)
            .map(|l| lower_solve(&lc[l], b[l].as_ref(), par))
            .collect();
        let mut a = a_at(b[depth - 1].as_ref(), par);
        for i in 0..r {
            a[(i, i)] += t;
        }
        let lt = cholesky(a.as_ref()).ok_or_else(|| AkError::NotPositiveDefinite {
            name: "kernels",
            msg: "Phi^L + T I".into(),
        })?;
        let mut z = self.basis.y.clone();
        solve_lower_triangular_in_place(lt.as_ref(), z.as_mut(), par);
        solve_upper_triangular_in_place(lt.transpose(), z.as_mut(), par);
        Ok(Predictor {
            sigma_w: self.sigma_w,
            sigma_b: self.sigma_b,
            u: self.basis.u.clone(),
            ones: self.basis.ones.clone(),
            b,
            lc,
            w,
            lt,
            z,
        })
    }

    /// Mean `Phi^L(te, tr) (Phi^L + T I)^{-1} Y` (Q x C) at test inputs and, with `want_var`, the
    /// adapted-kernel GP variance `Phi^L(te,te) - Phi^L(te,tr)(Phi^L + T I)^{-1}Phi^L(tr,te)` (Q),
    /// negative round-off clipped at 0. `kernels` are the saddle-point kernels (P x P). The
    /// same as [`Problem::predictor`] followed by [`Predictor::predict`].
    pub fn predict(
        &self,
        kernels: &[MatRef<'_, f64>],
        t: f64,
        x_test: Rows<'_>,
        want_var: bool,
        n_threads: usize,
        ctl: &Control,
    ) -> Result<(Mat<f64>, Option<Vec<f64>>)> {
        let pred = self.predictor(kernels, t, n_threads)?;
        pred.predict(self.x, x_test, want_var, n_threads, ctl)
    }
}

impl Predictor {
    /// Dimension of the support of `K^0`.
    pub fn rank(&self) -> usize {
        self.lt.nrows()
    }

    /// Mean (Q x C) and optional variance (Q) at `x_test` (see [`Problem::predict`]); `x_train`
    /// are the training inputs of the fit. Test points are processed in chunks of 512:
    /// per chunk `K^0(tr, te)` and, per layer, two triangular solves and a product with `B_l`.
    pub fn predict(
        &self,
        x_train: Rows<'_>,
        x_test: Rows<'_>,
        want_var: bool,
        n_threads: usize,
        ctl: &Control,
    ) -> Result<(Mat<f64>, Option<Vec<f64>>)> {
        if x_test.cols != x_train.cols {
            return Err(shape(
                "X_test",
                format!("has {} features, expected {}", x_test.cols, x_train.cols),
            ));
        }
        let p = self.u.as_ref().map_or(self.rank(), |u| u.nrows());
        if x_train.rows != p {
            return Err(shape(
                "X",
                format!("has {} rows, the predictor was fitted on {p} points", x_train.rows),
            ));
        }
        let (r, depth, c) = (self.rank(), self.b.len(), self.z.ncols());
        let (sw, sb) = (self.sigma_w, self.sigma_b);
        let (b, lc, w, lt, z) = (&self.b, &self.lc, &self.w, &self.lt, &self.z);
        with_threads(n_threads, |par| {
            let q = x_test.rows;
            let mut mean = Mat::<f64>::zeros(q, c);
            let mut var = if want_var { Some(vec![0.0; q]) } else { None };
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
                    matmul(
                        cross_t.as_mut(),
                        Accum::Replace,
                        b[l].as_ref(),
                        ht.as_ref(),
                        1.0,
                        par,
                    );
                    for j in 0..nq {
                        let g2: f64 = gt.col_as_slice(j).iter().map(|v| v * v).sum();
                        let h2: f64 = ht.col_as_slice(j).iter().map(|v| v * v).sum();
                        diag[j] = cdiag[j] - g2 + h2;
                    }
                    if l + 1 < depth {
                        ct = Mat::from_fn(r, nq, |i, j| {
                            sw * sw * cross_t[(i, j)] + sb * sb * self.ones[i]
                        });
                        cdiag = diag.iter().map(|v| sw * sw * v + sb * sb).collect();
                    }
                }
                let mut mc = Mat::<f64>::zeros(nq, c);
                matmul(
                    mc.as_mut(),
                    Accum::Replace,
                    cross_t.transpose(),
                    z.as_ref(),
                    1.0,
                    par,
                );
                for j in 0..c {
                    for i in 0..nq {
                        mean[(start + i, j)] = mc[(i, j)];
                    }
                }
                if let Some(v) = var.as_mut() {
                    let e = lower_solve(lt, cross_t.as_ref(), par);
                    for j in 0..nq {
                        let e2: f64 = e.col_as_slice(j).iter().map(|v| v * v).sum();
                        v[start + j] = (diag[j] - e2).max(0.0);
                    }
                }
            }
            if (0..c).any(|j| mean.col_as_slice(j).iter().any(|v| !v.is_finite())) {
                return Err(AkError::NonFinite {
                    name: "X_test",
                    msg: "non-finite predictions".into(),
                });
            }
            Ok((mean, var))
        })
    }
}
