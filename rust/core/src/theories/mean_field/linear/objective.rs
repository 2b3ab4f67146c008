//! The objective `F` on whitened Cholesky factors of the layer kernels (module docs of
//! [`super`]): the reduced basis of the support of `K^0`, evaluation of `F` and of the
//! stationarity matrices `M_l = B_l^T G_l B_l`, the parameter packing of the L-BFGS solver, and
//! the assembly of a [`Solution`].
#![allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x > 0.0)` also rejects NaN
use super::{Point, Problem, Solution, Solver};
use crate::error::{shape, AkError, Result};
use crate::linalg::{a_at, at_b, cholesky, frob2, lower_solve, scaled_update, symmetrize, tril_product};
use crate::solve::SolveReport;
use crate::threads::with_threads;
use crate::validate;
use crate::linalg::matmul;
use crate::linalg::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::{Accum, Mat, MatRef, Par};

/// Result of one evaluation of F at factors `B_l`.
pub(super) struct Eval {
    f: f64,
    /// `M_l = B_l^T G_l B_l` (symmetric, dimensionless).
    m: Vec<Mat<f64>>,
    residual: f64,
    conj: Option<Vec<Mat<f64>>>,
}

impl Problem<'_> {
    // -- reduced basis -------------------------------------------------------------------------

    /// `U^T M U` (or `M`).
    pub(super) fn reduce(&self, m: MatRef<'_, f64>, par: Par) -> Mat<f64> {
        match &self.basis.u {
            None => m.to_owned(),
            Some(u) => {
                let mu = {
                    let mut t = Mat::<f64>::zeros(self.p, self.basis.r);
                    matmul(t.as_mut(), Accum::Replace, m, u.as_ref(), 1.0, par);
                    t
                };
                let mut out = at_b(u.as_ref(), mu.as_ref(), par);
                symmetrize(&mut out);
                out
            }
        }
    }

    /// `U M U^T` (or `M`).
    pub(super) fn expand(&self, m: &Mat<f64>, par: Par) -> Mat<f64> {
        match &self.basis.u {
            None => m.clone(),
            Some(u) => {
                let mut um = Mat::<f64>::zeros(self.p, self.basis.r);
                matmul(
                    um.as_mut(),
                    Accum::Replace,
                    u.as_ref(),
                    m.as_ref(),
                    1.0,
                    par,
                );
                let mut out = Mat::<f64>::zeros(self.p, self.p);
                matmul(
                    out.as_mut(),
                    Accum::Replace,
                    um.as_ref(),
                    u.transpose(),
                    1.0,
                    par,
                );
                symmetrize(&mut out);
                out
            }
        }
    }

    /// Lower factors `B_l` of full kernels (reduced to the support).
    pub(super) fn factors_of(
        &self,
        name: &'static str,
        kernels: &[MatRef<'_, f64>],
        par: Par,
    ) -> Result<Vec<Mat<f64>>> {
        if kernels.len() != self.depth {
            return Err(shape(
                name,
                format!(
                    "needs one kernel per hidden layer ({}), got {}",
                    self.depth,
                    kernels.len()
                ),
            ));
        }
        kernels
            .iter()
            .enumerate()
            .map(|(l, k)| {
                if k.nrows() != self.p || k.ncols() != self.p {
                    return Err(shape(
                        name,
                        format!(
                            "kernel {l} has shape ({}, {}), expected ({}, {})",
                            k.nrows(),
                            k.ncols(),
                            self.p,
                            self.p
                        ),
                    ));
                }
                crate::linalg::check_symmetric(name, *k)?;
                let s = self.reduce(*k, par);
                cholesky(s.as_ref()).ok_or_else(|| AkError::NotPositiveDefinite {
                    name,
                    msg: format!("kernel {l} is not positive definite on the support of K^0"),
                })
            })
            .collect()
    }

    // -- the objective -------------------------------------------------------------------------

    /// Cholesky factors of `C^0 .. C^{L-1}` from the layer factors.
    pub(super) fn prior_factors(&self, b: &[Mat<f64>]) -> Vec<Mat<f64>> {
        let bo: Vec<f64> = self.basis.ones.iter().map(|v| self.sigma_b * v).collect();
        let mut lc = Vec::with_capacity(self.depth);
        lc.push(self.basis.precond[0].clone());
        for bl in &b[..self.depth - 1] {
            lc.push(scaled_update(bl, self.sigma_w, &bo));
        }
        lc
    }

    /// F and `M_l = B_l^T G_l B_l` at `Phi^l = B_l B_l^T` (reduced); None where F = +inf.
    pub(super) fn evaluate(
        &self,
        gamma: f64,
        t: f64,
        b: &[Mat<f64>],
        want_conj: bool,
        par: Par,
    ) -> Option<Eval> {
        let (r, depth) = (self.basis.r, self.depth);
        for bl in b {
            if (0..r).any(|i| !(bl[(i, i)].is_finite() && bl[(i, i)] != 0.0)) {
                return None;
            }
        }
        let lc = self.prior_factors(b);
        let mut f = 0.0;
        let mut w = Vec::with_capacity(depth);
        for l in 0..depth {
            let wl = lower_solve(&lc[l], b[l].as_ref(), par);
            let mut logdet = 0.0;
            for i in 0..r {
                logdet += wl[(i, i)].abs().ln();
            }
            f += 0.5 * (frob2(&wl) - 2.0 * logdet - r as f64);
            w.push(wl);
        }
        // data term through the Cholesky factor of Phi^L + T I
        let mut a = a_at(b[depth - 1].as_ref(), par);
        for i in 0..r {
            a[(i, i)] += t;
        }
        let lt = cholesky(a.as_ref())?;
        drop(a);
        let mut z = self.basis.y.clone();
        solve_lower_triangular_in_place(lt.as_ref(), z.as_mut(), par);
        solve_upper_triangular_in_place(lt.transpose(), z.as_mut(), par);
        let mut yz = 0.0;
        for j in 0..self.c {
            for i in 0..r {
                yz += self.basis.y[(i, j)] * z[(i, j)];
            }
        }
        f += 0.5 * gamma * gamma * (yz + self.basis.y_perp / t);
        if !f.is_finite() {
            return None;
        }
        let mut m = Vec::with_capacity(depth);
        let mut residual: f64 = 0.0;
        for l in 0..depth {
            let mut ml = at_b(w[l].as_ref(), w[l].as_ref(), par);
            for i in 0..r {
                ml[(i, i)] -= 1.0;
            }
            let half = 0.5;
            if l + 1 < depth {
                // sigma_w^2 / 2 B^T C_l^{-1} (C_l - Phi^{l+1}) C_l^{-1} B = E^T (I - W W^T) E sigma_w^2 / 2
                let e = lower_solve(&lc[l + 1], b[l].as_ref(), par);
                let ete = at_b(e.as_ref(), e.as_ref(), par);
                let ew = at_b(e.as_ref(), w[l + 1].as_ref(), par);
                let eww = a_at(ew.as_ref(), par);
                let s2 = self.sigma_w * self.sigma_w;
                for j in 0..r {
                    for i in 0..r {
                        ml[(i, j)] = half * ml[(i, j)] + half * s2 * (ete[(i, j)] - eww[(i, j)]);
                    }
                }
            } else {
                let bz = at_b(b[l].as_ref(), z.as_ref(), par);
                let bzz = a_at(bz.as_ref(), par);
                let g2 = gamma * gamma;
                for j in 0..r {
                    for i in 0..r {
                        ml[(i, j)] = half * ml[(i, j)] - half * g2 * bzz[(i, j)];
                    }
                }
            }
            symmetrize(&mut ml);
            for j in 0..r {
                for i in 0..r {
                    residual = residual.max(ml[(i, j)].abs());
                }
            }
            m.push(ml);
        }
        if !residual.is_finite() {
            return None;
        }
        let conj = if want_conj {
            let mut out = Vec::with_capacity(depth);
            for l in 0..depth {
                if l + 1 < depth {
                    // sigma_w^2 Lc^{-T} (I - W W^T) Lc^{-1}
                    let mut n = a_at(w[l + 1].as_ref(), par);
                    for j in 0..r {
                        for i in 0..r {
                            n[(i, j)] = if i == j { 1.0 } else { 0.0 } - n[(i, j)];
                        }
                    }
                    let lcn = &lc[l + 1];
                    solve_upper_triangular_in_place(lcn.transpose(), n.as_mut(), par);
                    let mut nt = n.transpose().to_owned();
                    solve_upper_triangular_in_place(lcn.transpose(), nt.as_mut(), par);
                    let s2 = self.sigma_w * self.sigma_w;
                    let mut h = Mat::from_fn(r, r, |i, j| s2 * nt[(i, j)]);
                    symmetrize(&mut h);
                    out.push(h);
                } else {
                    let zz = a_at(z.as_ref(), par);
                    out.push(Mat::from_fn(r, r, |i, j| -gamma * gamma * zz[(i, j)]));
                }
            }
            Some(out)
        } else {
            None
        };
        Some(Eval {
            f,
            m,
            residual,
            conj,
        })
    }

    /// `(F, [dF/dPhi^l])` at full kernels `Phi^l` (P x P). With a singular `K^0` both are those of
    /// the problem restricted to its support (kernels are projected onto it).
    pub fn objective(
        &self,
        gamma: f64,
        t: f64,
        kernels: &[MatRef<'_, f64>],
        n_threads: usize,
    ) -> Result<(f64, Vec<Mat<f64>>)> {
        validate::gamma_temperature(gamma, t)?;
        with_threads(n_threads, |par| {
            let b = self.factors_of("kernels", kernels, par)?;
            let ev = self
                .evaluate(gamma, t, &b, false, par)
                .ok_or_else(|| AkError::NonFinite {
                    name: "kernels",
                    msg: "the objective is not finite at these kernels".into(),
                })?;
            let grads = b
                .iter()
                .zip(&ev.m)
                .map(|(bl, ml)| {
                    // G = B^{-T} M B^{-1}
                    let mut g = ml.clone();
                    solve_upper_triangular_in_place(bl.transpose(), g.as_mut(), par);
                    let mut gt = g.transpose().to_owned();
                    solve_upper_triangular_in_place(bl.transpose(), gt.as_mut(), par);
                    symmetrize(&mut gt);
                    self.expand(&gt, par)
                })
                .collect();
            Ok((ev.f, grads))
        })
    }

    // -- solvers -------------------------------------------------------------------------------

    pub(super) fn n_params(&self) -> usize {
        self.depth * self.basis.r * (self.basis.r + 1) / 2
    }

    pub(super) fn unpack(&self, x: &[f64]) -> Vec<Mat<f64>> {
        let r = self.basis.r;
        let mut k = 0;
        (0..self.depth)
            .map(|_| {
                let mut a = Mat::<f64>::zeros(r, r);
                for j in 0..r {
                    for i in j..r {
                        a[(i, j)] = x[k];
                        k += 1;
                    }
                }
                a
            })
            .collect()
    }

    pub(super) fn pack(&self, a: &[Mat<f64>]) -> Vec<f64> {
        let r = self.basis.r;
        let mut x = Vec::with_capacity(self.n_params());
        for al in a {
            for j in 0..r {
                for i in j..r {
                    x.push(al[(i, j)]);
                }
            }
        }
        x
    }

    /// `(F, dF/dx, residual)` at parameters x (None where F = +inf).
    pub(super) fn eval_params(&self, gamma: f64, t: f64, x: &[f64], par: Par) -> Option<(f64, Vec<f64>, f64)> {
        let a = self.unpack(x);
        let b: Vec<Mat<f64>> = a
            .iter()
            .zip(&self.basis.precond)
            .map(|(al, rl)| tril_product(rl, al, par))
            .collect();
        let ev = self.evaluate(gamma, t, &b, false, par)?;
        let r = self.basis.r;
        let mut g = Vec::with_capacity(x.len());
        for (al, ml) in a.iter().zip(&ev.m) {
            let mut s = ml.clone();
            solve_upper_triangular_in_place(al.transpose(), s.as_mut(), par);
            for j in 0..r {
                for i in j..r {
                    g.push(2.0 * s[(i, j)]);
                }
            }
        }
        if g.iter().any(|v| !v.is_finite()) {
            return None;
        }
        Some((ev.f, g, ev.residual))
    }

    /// Whitened factors `A_l = R_l^{-1} B_l` of full kernels.
    pub(super) fn whiten(&self, b: &[Mat<f64>], par: Par) -> Vec<Mat<f64>> {
        b.iter()
            .zip(&self.basis.precond)
            .map(|(bl, rl)| {
                let mut a = lower_solve(rl, bl.as_ref(), par);
                let r = self.basis.r;
                for j in 0..r {
                    for i in 0..j {
                        a[(i, j)] = 0.0;
                    }
                }
                a
            })
            .collect()
    }

    /// Finishes a solution from whitened factors: kernels, conjugates, action, residual.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish(
        &self,
        pt: Point,
        a: Vec<Mat<f64>>,
        kernels: Option<Vec<Mat<f64>>>,
        solver: Solver,
        converged_tol: f64,
        iters: (usize, usize, Vec<f64>),
        closed: Option<(f64, Vec<(f64, f64)>)>,
        par: Par,
    ) -> Result<Solution> {
        let b: Vec<Mat<f64>> = a
            .iter()
            .zip(&self.basis.precond)
            .map(|(al, rl)| tril_product(rl, al, par))
            .collect();
        let ev = self
            .evaluate(pt.gamma, pt.temperature, &b, true, par)
            .ok_or_else(|| AkError::NonFinite {
                name: "kernels",
                msg: "the saddle-point objective is not finite at the solution".into(),
            })?;
        let kernels = match kernels {
            Some(k) => k,
            None => b
                .iter()
                .map(|bl| self.expand(&a_at(bl.as_ref(), par), par))
                .collect(),
        };
        let conjugates = ev
            .conj
            .as_ref()
            .unwrap()
            .iter()
            .map(|h| self.expand(h, par))
            .collect();
        if kernels.iter().any(|k: &Mat<f64>| {
            (0..self.p).any(|j| k.col_as_slice(j).iter().any(|v| !v.is_finite()))
        }) {
            return Err(AkError::NonFinite {
                name: "kernels",
                msg: "non-finite saddle-point kernels".into(),
            });
        }
        let (n_iter, n_eval, mut history) = iters;
        if history.is_empty() {
            history.push(ev.residual);
        }
        let (kappa, stationary) = match closed {
            Some((k, s)) => (Some(k), s),
            None => (None, Vec::new()),
        };
        Ok(Solution {
            kernels,
            conjugates,
            action: ev.f,
            report: SolveReport::new(
                solver.name(),
                ev.residual < converged_tol,
                n_iter,
                n_eval,
                ev.residual,
                history,
            ),
            kappa,
            stationary,
            rank: self.basis.r,
            a,
        })
    }
}
