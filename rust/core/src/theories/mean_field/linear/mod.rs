//! Bayesian mean-field (muP) saddle point of deep *linear* networks: the adaptive feature
//! kernels of Lauditi, Bordelon & Pehlevan (2025; digest `lauditi_bordelon_pehlevan_2025.md`
//! §2.2–2.4) at infinite width, richness `gamma` and temperature `T`.
//!
//! # Convention
//! The network of `adaptive_kernels.sample_posterior(..., parameterization="mean_field")`:
//! `h^1 = sigma_w W^0 x / sqrt(d) + sigma_b b^0`, `h^{l+1} = sigma_w W^l phi(h^l) / sqrt(N) + sigma_b b^l`
//! (phi = identity here), readout `f = w . phi(h^L) / (gamma N)`, posterior
//! `∝ exp(-(N gamma^2 / (2T)) sum_{mu,c} (f_{mu c} - y_{mu c})^2 - |theta|^2 / 2)`.
//! Feature kernels `Phi^l = phi(h^l) phi(h^l)^T / N` on the P training points; the prior
//! covariance of layer-l preactivations given layer l-1 is `C^{l-1} = sigma_w^2 Phi^{l-1} + sigma_b^2`
//! with `C^0 = K^0 = sigma_w^2 X X^T / d + sigma_b^2` (the library's input kernel).
//!
//! # Saddle point
//! As N -> inf the posterior of the kernels concentrates (large deviations of the Wishart laws
//! of the layers, readout integrated out) on the minimiser of
//! `F(Phi) = sum_l KL(N(0, Phi^l) || N(0, C^{l-1})) + (gamma^2 / 2) tr(Y^T (Phi^L + T I)^{-1} Y)`,
//! `KL(N(0,S) || N(0,C)) = [tr(C^{-1} S) - ln det(C^{-1} S) - P] / 2`; several outputs share it.
//! With `dF = sum_l tr(G_l dPhi^l)`:
//! `G_l = [C_{l-1}^{-1} - Phi_l^{-1} + hatPhi_l] / 2`, `hatPhi_L = -gamma^2 Z Z^T`,
//! `Z = (Phi^L + T I)^{-1} Y`, `hatPhi_l = sigma_w^2 C_l^{-1} (C_l - Phi^{l+1}) C_l^{-1}` (l < L),
//! so at the saddle `Phi_l^{-1} = C_{l-1}^{-1} + hatPhi_l`: the conjugate kernels `hatPhi_l` are
//! the Lagrange multipliers of the min-max action (tilt `exp(-h^T hatPhi_l h / 2)` of layer l).
//!
//! # Closed form (`sigma_b = 0`, rank(Y) <= 1)
//! Derivation: `hatPhi_L = -gamma^2 alpha alpha^T` is rank one (`alpha = (Phi^L + T I)^{-1} y`;
//! parallel output columns `Y = y c^T` act as one output with `gamma^2 |c|^2`). The backward
//! recursion `hatPhi_l = sigma_w^2 hatPhi_{l+1} (I + C_l hatPhi_{l+1})^{-1}` keeps the direction:
//! `g_l = sigma_w^2 g_{l+1} / (1 - kappa_{l+1})`, `kappa_l = g_l alpha^T C_{l-1} alpha`; the forward
//! Sherman-Morrison step `Phi^l = (C_{l-1}^{-1} - g_l alpha alpha^T)^{-1}` gives rank-one updates
//! of `sigma_w^{2(l-1)} K` along `v = K alpha` with `1 + c_l = (1 + c_{l-1}) / (1 - kappa_l)`, and
//! the two recursions together force `kappa_l = kappa` for all l. So every stationary point is
//! (s = sigma_w^{2(L-1)}, K = K^0, kappa in (0, 1)):
//! `Phi^l = sigma_w^{2(l-1)} [K + ((1-kappa)^{-l} - 1) v v^T / (alpha^T K alpha)]`, `v = K alpha`,
//! `alpha = (s (1-kappa)^{-L} K + T I)^{-1} y`, `g_l = gamma^2 (sigma_w^2 / (1-kappa))^{L-l}`,
//! `kappa (1-kappa)^{L-1} = gamma^2 s alpha^T K alpha`, and the mean predictor is ridge regression
//! `f(x*) = K(x*, X) (K + T (1-kappa)^L / s)^{-1} Y`. On that family
//! `F = F1(kappa) = (L/2) [kappa / (1-kappa) + ln(1-kappa)] + (gamma^2/2) sum_i q_i / (s (1-kappa)^{-L} lam_i + T)`
//! (`K = V diag(lam) V^T`, `q_i = |(V^T Y)_i|^2`), whose stationary points are exactly the roots above.
//! For L >= 2 there can be several (first-order transitions in gamma); the saddle point is the
//! global minimum of F1, found by a scan of `dF1/dkappa` on a grid in `logit(kappa)` and bisection.
//! With C >= 2 non-parallel outputs `hatPhi_L` has rank C and the order parameter becomes a C x C
//! matrix (no scalar root): the closed form is restricted to rank(Y) <= 1.
//!
//! # General solver (any sigma_b, any number of outputs)
//! L-BFGS over whitened Cholesky factors: `Phi^l = B_l B_l^T`, `B_l = R_l A_l`, `A_l` lower
//! triangular (the parameters, `A_l = I` at the NNGP start), `R_l` the Cholesky factor of the
//! NNGP kernel of layer l. Per evaluation: one rank-one Cholesky update per layer for `C^{l-1}`
//! (`C = sigma_w^2 B B^T + sigma_b^2 1 1^T`), triangular solves, one Cholesky of `Phi^L + T I`;
//! no explicit inverses. The gradient is `dF/dA_l = tril(2 A_l^{-T} M_l)` with the dimensionless
//! `M_l = B_l^T G_l B_l`; the residual is `max_l max |M_l|` (the stationarity condition relative
//! to the current kernel). L-BFGS finds a local minimum: from the NNGP start, the branch
//! connected to gamma -> 0.
//!
//! If `K^0` is singular (P > d + 1), the kernels live on its support: the problem is solved in
//! an orthonormal basis `U` of the eigenvectors of `K^0` with eigenvalues above `1e-10 x` the
//! largest (the KL terms are those of the Gaussians restricted to that subspace; the part of Y
//! outside it adds the constant `gamma^2 |Y_perp|^2 / (2T)`).
//!
//! # Test points
//! Test rows carry no tilt, so layer by layer (C = C^{l-1} on the training points)
//! `Phi^l(te, tr) = C(te, tr) C^{-1} Phi^l`,
//! `Phi^l(te, te) = C(te, te) - C(te, tr) C^{-1} C(tr, te) + C(te, tr) C^{-1} Phi^l C^{-1} C(tr, te)`,
//! and the mean predictor is `Phi^L(te, tr) (Phi^L + T I)^{-1} Y`. The GP variance of the adapted
//! kernel `Phi^L(te,te) - Phi^L(te,tr)(Phi^L + T I)^{-1}Phi^L(tr,te)`, divided by `gamma^2 N`, is
//! the posterior variance of f over the readout at the saddle-point kernels (kernel fluctuations,
//! of the same order 1/N, are not included).
#![allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x > 0.0)` also rejects NaN
use crate::control::Control;
use crate::error::{invalid, shape, AkError, Result};
use crate::kernels::input::{input_kernel, input_kernel_diag};
use crate::kernels::net::{Mlp, Rows};
use crate::linalg::{
    a_at, at_b, cholesky, frob2, lower_solve, scaled_update, symmetric_eigen, symmetrize,
    tril_product, RANK_RCOND,
};
use crate::optim::lbfgs;
use crate::solve::SolveReport;
use crate::threads::with_threads;
use crate::validate;
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Accum, Mat, MatRef, Par};
/// Grid of the closed-form scan: `logit(kappa)` in `[-T_MAX, T_MAX]`, plus the end points.
const GRID: usize = 4000;
const T_MAX: f64 = 40.0;

/// Which solver computes the saddle point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// Closed form when `sigma_b = 0` and rank(Y) <= 1, L-BFGS otherwise.
    Auto,
    /// One eigendecomposition of `K^0` and a scalar global minimisation (`sigma_b = 0`, rank(Y) <= 1).
    ClosedForm,
    /// L-BFGS over whitened Cholesky factors (any `sigma_b`, any number of outputs).
    Lbfgs,
}

impl Solver {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(Solver::Auto),
            "closed_form" | "closed-form" => Ok(Solver::ClosedForm),
            "lbfgs" | "l-bfgs" => Ok(Solver::Lbfgs),
            other => Err(invalid(
                "solver",
                format!("expected 'auto', 'closed_form' or 'lbfgs', got {other:?}"),
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Solver::Auto => "auto",
            Solver::ClosedForm => "closed_form",
            Solver::Lbfgs => "lbfgs",
        }
    }
}

/// Stopping rule and budget of the L-BFGS solver.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Converged when `max_l max |B_l^T G_l B_l| < tol` (dimensionless).
    pub tol: f64,
    pub max_iter: usize,
    pub solver: Solver,
    /// L-BFGS history length (0: automatic, 30 capped by a 256 MB budget, at least 5).
    pub memory: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tol: 1e-10,
            max_iter: 5000,
            solver: Solver::Auto,
            memory: 0,
        }
    }
}

/// One point of a path in (gamma, T).
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub gamma: f64,
    pub temperature: f64,
}

/// One saddle point.
#[derive(Debug, Clone)]
pub struct Solution {
    /// `Phi^1 .. Phi^L` on the training points (P x P).
    pub kernels: Vec<Mat<f64>>,
    /// `hatPhi_1 .. hatPhi_L` (P x P; on the support of `K^0`).
    pub conjugates: Vec<Mat<f64>>,
    /// `F` at the solution.
    pub action: f64,
    /// Convergence; `solver` is `closed_form` or `lbfgs`.
    pub report: SolveReport,
    /// Closed form: the global minimiser kappa, and `(kappa, F1(kappa))` at every stationary point.
    pub kappa: Option<f64>,
    pub stationary: Vec<(f64, f64)>,
    /// Dimension of the support of `K^0`.
    pub rank: usize,
    /// Whitened factors `A_l` (warm start of the next path point).
    a: Vec<Mat<f64>>,
}

/// The support of `K^0` and everything expressed in it.
struct Basis {
    /// Orthonormal basis (P x r), None = identity (K^0 positive definite).
    u: Option<Mat<f64>>,
    r: usize,
    /// Reduced ones vector `U^T 1`, targets `U^T Y`, and `|Y - U U^T Y|^2`.
    ones: Vec<f64>,
    y: Mat<f64>,
    y_perp: f64,
    /// Cholesky factors of the NNGP kernels `R_1 .. R_L` (`R_1 R_1^T = K^0`).
    precond: Vec<Mat<f64>>,
}

/// The data of a fit: architecture, training inputs, targets, and `K^0` with its spectrum.
pub struct Problem<'a> {
    pub depth: usize,
    pub sigma_w: f64,
    pub sigma_b: f64,
    p: usize,
    c: usize,
    x: Rows<'a>,
    y: MatRef<'a, f64>,
    k0: Mat<f64>,
    lam: Vec<f64>,
    vecs: Mat<f64>,
    basis: Basis,
}

/// Result of one evaluation of F at factors `B_l`.
struct Eval {
    f: f64,
    /// `M_l = B_l^T G_l B_l` (symmetric, dimensionless).
    m: Vec<Mat<f64>>,
    residual: f64,
    conj: Option<Vec<Mat<f64>>>,
}


impl<'a> Problem<'a> {
    /// Builds `K^0` of the training inputs `x` (P x d), its spectrum and support, for targets
    /// `y` (P x C). Only linear activations are implemented.
    pub fn new(net: &Mlp, x: Rows<'a>, y: MatRef<'a, f64>, n_threads: usize) -> Result<Self> {
        validate::mean_field_net(net, true)?;
        let p = x.rows;
        validate::targets(y, p)?;
        let (sw, sb) = (net.sigma_w, net.sigma_b);
        with_threads(n_threads, |par| {
            let mut k0 = input_kernel(x.mat(), x.mat(), sw, sb, par);
            symmetrize(&mut k0);
            let (lam, vecs) = symmetric_eigen("K", k0.as_ref(), par)?;
            let lmax = lam.iter().cloned().fold(0.0, f64::max);
            if !(lmax > 0.0) || !lmax.is_finite() {
                return Err(invalid(
                    "X",
                    "the input kernel K^0 = sigma_w^2 X X^T / d + sigma_b^2 is zero or non-finite",
                ));
            }
            let keep: Vec<usize> = (0..p).filter(|&i| lam[i] > RANK_RCOND * lmax).collect();
            let r = keep.len();
            let c = y.ncols();
            let basis = if r == p {
                let r1 = cholesky(k0.as_ref()).ok_or_else(|| AkError::NotPositiveDefinite {
                    name: "K^0",
                    msg: "Cholesky failed".into(),
                })?;
                Basis {
                    u: None,
                    r,
                    ones: vec![1.0; p],
                    y: y.to_owned(),
                    y_perp: 0.0,
                    precond: vec![r1],
                }
            } else {
                let u = Mat::from_fn(p, r, |i, k| vecs[(i, keep[k])]);
                let ones: Vec<f64> = (0..r).map(|k| (0..p).map(|i| u[(i, k)]).sum()).collect();
                let yr = at_b(u.as_ref(), y, par);
                let mut yp = y.to_owned();
                matmul(yp.as_mut(), Accum::Add, u.as_ref(), yr.as_ref(), -1.0, par);
                let y_perp = frob2(&yp);
                let r1 = Mat::from_fn(r, r, |i, j| if i == j { lam[keep[i]].sqrt() } else { 0.0 });
                Basis {
                    u: Some(u),
                    r,
                    ones,
                    y: yr,
                    y_perp,
                    precond: vec![r1],
                }
            };
            let mut basis = basis;
            let bo: Vec<f64> = basis.ones.iter().map(|v| sb * v).collect();
            for l in 1..net.depth {
                let next = scaled_update(&basis.precond[l - 1], sw, &bo);
                basis.precond.push(next);
            }
            Ok(Problem {
                depth: net.depth,
                sigma_w: sw,
                sigma_b: sb,
                p,
                c,
                x,
                y,
                k0,
                lam,
                vecs,
                basis,
            })
        })
    }

    /// Dimension of the support of `K^0`.
    pub fn rank(&self) -> usize {
        self.basis.r
    }

    /// `K^0` on the training points.
    pub fn input_kernel(&self) -> MatRef<'_, f64> {
        self.k0.as_ref()
    }

    /// Whether the targets have rank <= 1 (all columns parallel), so the closed form applies.
    pub fn targets_rank_one(&self) -> bool {
        let c = self.c;
        let g = at_b(self.y, self.y, Par::Seq);
        for i in 0..c {
            for j in i + 1..c {
                let (a, b, x) = (g[(i, i)], g[(j, j)], g[(i, j)]);
                if (a * b - x * x).abs() > 1e-10 * a * b {
                    return false;
                }
            }
        }
        true
    }

    pub fn closed_form_applies(&self) -> bool {
        self.sigma_b == 0.0 && self.targets_rank_one()
    }

    fn resolve(&self, solver: Solver) -> Result<Solver> {
        match solver {
            Solver::Auto => Ok(if self.closed_form_applies() { Solver::ClosedForm } else { Solver::Lbfgs }),
            Solver::ClosedForm if self.sigma_b != 0.0 => {
                Err(invalid("solver", "'closed_form' needs sigma_b = 0; use 'lbfgs' or 'auto'"))
            }
            Solver::ClosedForm if !self.targets_rank_one() => Err(invalid(
                "solver",
                "'closed_form' needs one output (or parallel output columns): with several independent \
                 outputs the order parameter is a C x C matrix; use 'lbfgs' or 'auto'",
            )),
            s => Ok(s),
        }
    }

    // -- reduced basis -------------------------------------------------------------------------

    /// `U^T M U` (or `M`).
    fn reduce(&self, m: MatRef<'_, f64>, par: Par) -> Mat<f64> {
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
    fn expand(&self, m: &Mat<f64>, par: Par) -> Mat<f64> {
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
    fn factors_of(
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
    fn prior_factors(&self, b: &[Mat<f64>]) -> Vec<Mat<f64>> {
        let bo: Vec<f64> = self.basis.ones.iter().map(|v| self.sigma_b * v).collect();
        let mut lc = Vec::with_capacity(self.depth);
        lc.push(self.basis.precond[0].clone());
        for bl in &b[..self.depth - 1] {
            lc.push(scaled_update(bl, self.sigma_w, &bo));
        }
        lc
    }

    /// F and `M_l = B_l^T G_l B_l` at `Phi^l = B_l B_l^T` (reduced); None where F = +inf.
    fn evaluate(
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

    fn n_params(&self) -> usize {
        self.depth * self.basis.r * (self.basis.r + 1) / 2
    }

    fn unpack(&self, x: &[f64]) -> Vec<Mat<f64>> {
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

    fn pack(&self, a: &[Mat<f64>]) -> Vec<f64> {
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
    fn eval_params(&self, gamma: f64, t: f64, x: &[f64], par: Par) -> Option<(f64, Vec<f64>, f64)> {
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
    fn whiten(&self, b: &[Mat<f64>], par: Par) -> Vec<Mat<f64>> {
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
    fn finish(
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

    /// The closed form (`sigma_b = 0`, rank(Y) <= 1): global minimum of `F1(kappa)` and the
    /// list of stationary points `(kappa, F1)`.
    pub fn closed_form_kappa(&self, gamma: f64, t: f64) -> (f64, Vec<(f64, f64)>) {
        let (depth, sw) = (self.depth as i32, self.sigma_w);
        let s = sw.powi(2 * (depth - 1));
        let lam: Vec<f64> = self.lam.iter().map(|v| v.max(0.0)).collect();
        let vy = at_b(self.vecs.as_ref(), self.y, Par::Seq);
        let q: Vec<f64> = (0..self.p)
            .map(|i| (0..self.c).map(|j| vy[(i, j)] * vy[(i, j)]).sum())
            .collect();
        let lq: f64 = lam.iter().zip(&q).map(|(l, q)| l * q).sum();
        // F1 and the sign function h = dF1/dkappa (1-kappa)^2 / (L/2), both at (kappa, w = 1-kappa)
        let g2 = gamma * gamma;
        let f1 = |kap: f64, w: f64| -> f64 {
            let lnw = if kap < 0.5 { (-kap).ln_1p() } else { w.ln() };
            let wl = (depth as f64 * lnw).exp();
            let data: f64 = lam
                .iter()
                .zip(&q)
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
                .zip(&q)
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

    /// Closed-form kernels `Phi^1 .. Phi^L` (P x P) at `kappa`.
    fn closed_form_kernels(&self, t: f64, kappa: f64, par: Par) -> Vec<Mat<f64>> {
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
    fn closed_form_conjugates(&self, pt: Point, kappa: f64, par: Par) -> Vec<Mat<f64>> {
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

    /// L-BFGS from whitened factors `a0`.
    fn lbfgs(
        &self,
        pt: Point,
        a0: &[Mat<f64>],
        opts: &Options,
        par: Par,
        ctl: &Control,
    ) -> Result<(Vec<Mat<f64>>, SolveReport)> {
        let (gamma, t) = (pt.gamma, pt.temperature);
        let x0 = self.pack(a0);
        let start = self
            .eval_params(gamma, t, &x0, par)
            .ok_or_else(|| AkError::NonFinite {
                name: "kernels",
                msg: "the objective is not finite at the starting point".into(),
            })?;
        let lopts = lbfgs::Options {
            tol: opts.tol,
            max_iter: opts.max_iter,
            memory: opts.memory,
        };
        let (x, report) = lbfgs::minimize(
            |x: &[f64]| self.eval_params(gamma, t, x, par),
            x0,
            start,
            &lopts,
            ctl,
        )?;
        Ok((self.unpack(&x), report))
    }

    /// Solves one point from whitened factors `start` (None: NNGP).
    fn solve_point(
        &self,
        pt: Point,
        start: Option<&[Mat<f64>]>,
        solver: Solver,
        opts: &Options,
        par: Par,
        ctl: &Control,
    ) -> Result<Solution> {
        match solver {
            Solver::ClosedForm => {
                let (kappa, stationary) = self.closed_form_kappa(pt.gamma, pt.temperature);
                let kernels = self.closed_form_kernels(pt.temperature, kappa, par);
                let views: Vec<MatRef<'_, f64>> = kernels.iter().map(|k| k.as_ref()).collect();
                let b = self.factors_of("kernels", &views, par)?;
                let a = self.whiten(&b, par);
                ctl.advance(1);
                let mut sol = self.finish(
                    pt,
                    a,
                    Some(kernels),
                    solver,
                    opts.tol.max(1e-8),
                    (0, 1, Vec::new()),
                    Some((kappa, stationary)),
                    par,
                )?;
                sol.conjugates = self.closed_form_conjugates(pt, kappa, par);
                Ok(sol)
            }
            _ => {
                let r = self.basis.r;
                let nngp: Vec<Mat<f64>> = (0..self.depth)
                    .map(|_| Mat::<f64>::identity(r, r))
                    .collect();
                let a0 = start.unwrap_or(&nngp);
                let (a, rep) = self.lbfgs(pt, a0, opts, par, ctl)?;
                self.finish(
                    pt,
                    a,
                    None,
                    Solver::Lbfgs,
                    opts.tol,
                    (rep.n_iter, rep.n_eval, rep.residual_history),
                    None,
                    par,
                )
            }
        }
    }

    /// Saddle points along a path of `(gamma, T)` points, each L-BFGS solve warm-started from the
    /// previous solution (continuation); `init` (full kernels) starts the first, default NNGP.
    pub fn solve_path(
        &self,
        points: &[Point],
        init: Option<&[MatRef<'_, f64>]>,
        opts: &Options,
        n_threads: usize,
        ctl: &Control,
    ) -> Result<Vec<Solution>> {
        for pt in points {
            validate::gamma_temperature(pt.gamma, pt.temperature)?;
        }
        validate::tol(opts.tol)?;
        if opts.max_iter == 0 {
            return Err(invalid("max_iter", "must be >= 1"));
        }
        let solver = self.resolve(opts.solver)?;
        ctl.set_total(
            (if solver == Solver::ClosedForm {
                1
            } else {
                opts.max_iter
            } * points.len()) as u64,
        );
        with_threads(n_threads, |par| {
            let mut start: Option<Vec<Mat<f64>>> = match init {
                Some(k) => {
                    let b = self.factors_of("init", k, par)?;
                    Some(self.whiten(&b, par))
                }
                None => None,
            };
            let mut out = Vec::with_capacity(points.len());
            for &pt in points {
                let sol = self.solve_point(pt, start.as_deref(), solver, opts, par, ctl)?;
                start = Some(sol.a.clone());
                out.push(sol);
            }
            Ok(out)
        })
    }

    // -- predictor -----------------------------------------------------------------------------

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
        validate::temperature(t)?;
        if x_test.cols != self.x.cols {
            return Err(shape(
                "X_test",
                format!("has {} features, expected {}", x_test.cols, self.x.cols),
            ));
        }
        let (r, depth, c) = (self.basis.r, self.depth, self.c);
        let (sw, sb) = (self.sigma_w, self.sigma_b);
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
            let lt = cholesky(a.as_ref()).ok_or_else(|| AkError::NotPositiveDefinite {
                name: "kernels",
                msg: "Phi^L + T I".into(),
            })?;
            let mut z = self.basis.y.clone();
            solve_lower_triangular_in_place(lt.as_ref(), z.as_mut(), par);
            solve_upper_triangular_in_place(lt.transpose(), z.as_mut(), par);
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
                let cx_full = input_kernel(self.x.mat(), xc, sw, sb, par);
                let mut ct = match &self.basis.u {
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
                            sw * sw * cross_t[(i, j)] + sb * sb * self.basis.ones[i]
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
                    let e = lower_solve(&lt, cross_t.as_ref(), par);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::no_control;
    use crate::kernels::activation::Activation;
    use crate::rng::Rng;

    fn data(p: usize, d: usize, c: usize, seed: u64) -> (Vec<f64>, Mat<f64>) {
        let mut rng = Rng::new(seed, 0);
        let x: Vec<f64> = (0..p * d).map(|_| rng.normal()).collect();
        let y = Mat::from_fn(p, c, |i, j| {
            (x[i * d] + 0.5 * x[i * d + 1] * (j as f64 + 1.0)).tanh() + 0.2
        });
        (x, y)
    }

    fn max_rel(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
        let mut num: f64 = 0.0;
        let mut den: f64 = 0.0;
        for j in 0..a.ncols() {
            for i in 0..a.nrows() {
                num = num.max((a[(i, j)] - b[(i, j)]).abs());
                den = den.max(b[(i, j)].abs());
            }
        }
        num / den
    }

    fn solve(prob: &Problem<'_>, gamma: f64, t: f64, solver: Solver, n_threads: usize) -> Solution {
        let opts = Options {
            solver,
            tol: 1e-11,
            ..Default::default()
        };
        prob.solve_path(
            &[Point {
                gamma,
                temperature: t,
            }],
            None,
            &opts,
            n_threads,
            no_control(),
        )
        .unwrap()
        .remove(0)
    }

    #[test]
    fn bayesian_closed_form_matches_lbfgs() {
        let (x, y) = data(12, 15, 1, 1);
        for (depth, sw, gamma, t) in [(1, 1.0, 1.0, 0.1), (2, 1.3, 1.5, 0.05), (3, 0.8, 1.0, 0.2)] {
            let net = Mlp::new(depth, Activation::Linear, sw, 0.0);
            let prob =
                Problem::new(&net, Rows::new("X", &x, 12, 15).unwrap(), y.as_ref(), 1).unwrap();
            let cf = solve(&prob, gamma, t, Solver::ClosedForm, 1);
            let lb = solve(&prob, gamma, t, Solver::Lbfgs, 1);
            assert_eq!(cf.stationary.len(), 1, "{:?}", cf.stationary);
            assert!(cf.report.converged && cf.report.residual < 1e-11, "{}", cf.report.residual);
            assert!(lb.report.converged, "{} {}", lb.report.residual, lb.report.n_iter);
            for l in 0..depth {
                let e = max_rel(&lb.kernels[l], &cf.kernels[l]);
                assert!(e < 1e-9, "layer {l}: {e}");
                let e = max_rel(&lb.conjugates[l], &cf.conjugates[l]);
                assert!(e < 1e-7, "conjugate {l}: {e}");
            }
            assert!((lb.action - cf.action).abs() < 1e-12 * (1.0 + cf.action.abs()));
        }
    }

    #[test]
    fn bayesian_gradient_matches_finite_differences() {
        let (x, y) = data(7, 9, 2, 2);
        let net = Mlp::new(2, Activation::Linear, 1.2, 0.3);
        let prob = Problem::new(&net, Rows::new("X", &x, 7, 9).unwrap(), y.as_ref(), 1).unwrap();
        let mut rng = Rng::new(5, 0);
        let ks: Vec<Mat<f64>> = (0..2)
            .map(|l| {
                let g = Mat::from_fn(7, 7, |_, _| rng.normal());
                let mut k = Mat::from_fn(7, 7, |i, j| {
                    (1.0 + l as f64) * prob.k0[(i, j)]
                        + 0.1 * (0..7).map(|m| g[(i, m)] * g[(j, m)]).sum::<f64>()
                });
                symmetrize(&mut k);
                k
            })
            .collect();
        let views: Vec<MatRef<'_, f64>> = ks.iter().map(|k| k.as_ref()).collect();
        let (_, grads) = prob.objective(1.3, 0.2, &views, 1).unwrap();
        let e = Mat::from_fn(7, 7, |i, j| {
            ((i * 7 + j) as f64).sin() + ((j * 7 + i) as f64).sin()
        });
        for l in 0..2 {
            let h = 1e-6;
            let mut kp = ks.clone();
            let mut km = ks.clone();
            for j in 0..7 {
                for i in 0..7 {
                    kp[l][(i, j)] += h * e[(i, j)];
                    km[l][(i, j)] -= h * e[(i, j)];
                }
            }
            let f = |k: &Vec<Mat<f64>>| {
                let v: Vec<MatRef<'_, f64>> = k.iter().map(|k| k.as_ref()).collect();
                prob.objective(1.3, 0.2, &v, 1).unwrap().0
            };
            let fd = (f(&kp) - f(&km)) / (2.0 * h);
            let an: f64 = (0..7)
                .flat_map(|i| (0..7).map(move |j| (i, j)))
                .map(|(i, j)| grads[l][(i, j)] * e[(i, j)])
                .sum();
            assert!(
                (fd - an).abs() < 1e-6 * (1.0 + fd.abs()),
                "{l}: {fd} vs {an}"
            );
        }
    }

    #[test]
    fn bayesian_singular_input_kernel_and_bias() {
        // P > d + 1: K^0 is singular; the solve happens on its support
        let (x, y) = data(14, 3, 1, 3);
        let net = Mlp::new(2, Activation::Linear, 1.1, 0.0);
        let prob = Problem::new(&net, Rows::new("X", &x, 14, 3).unwrap(), y.as_ref(), 1).unwrap();
        assert_eq!(prob.rank(), 3);
        let cf = solve(&prob, 1.0, 0.1, Solver::ClosedForm, 1);
        let lb = solve(&prob, 1.0, 0.1, Solver::Lbfgs, 1);
        assert!(lb.report.converged);
        for l in 0..2 {
            assert!(max_rel(&lb.kernels[l], &cf.kernels[l]) < 1e-9);
        }
        let net = Mlp::new(2, Activation::Linear, 1.1, 0.5);
        let prob = Problem::new(&net, Rows::new("X", &x, 14, 3).unwrap(), y.as_ref(), 1).unwrap();
        assert_eq!(prob.rank(), 4);
        let lb = solve(&prob, 1.0, 0.1, Solver::Auto, 1);
        assert_eq!(lb.report.solver, "lbfgs");
        assert!(lb.report.converged && lb.report.residual < 1e-11);
    }

    #[test]
    fn bayesian_threads_and_predictor() {
        let (x, y) = data(16, 20, 2, 4);
        let net = Mlp::new(2, Activation::Linear, 1.0, 0.2);
        let prob = Problem::new(&net, Rows::new("X", &x, 16, 20).unwrap(), y.as_ref(), 1).unwrap();
        let a = solve(&prob, 0.8, 0.1, Solver::Auto, 1);
        let b = solve(&prob, 0.8, 0.1, Solver::Auto, 2);
        assert_eq!(a.report.n_iter, b.report.n_iter);
        for l in 0..2 {
            assert_eq!(a.kernels[l], b.kernels[l]);
        }
        // the predictor at the training points reproduces Phi^L (Phi^L + T I)^{-1} Y
        let views: Vec<MatRef<'_, f64>> = a.kernels.iter().map(|k| k.as_ref()).collect();
        let (mean, var) = prob
            .predict(
                &views,
                0.1,
                Rows::new("X", &x, 16, 20).unwrap(),
                true,
                1,
                no_control(),
            )
            .unwrap();
        let mut am = a.kernels[1].clone();
        for i in 0..16 {
            am[(i, i)] += 0.1;
        }
        let l = cholesky(am.as_ref()).unwrap();
        let mut z = y.clone();
        solve_lower_triangular_in_place(l.as_ref(), z.as_mut(), Par::Seq);
        solve_upper_triangular_in_place(l.transpose(), z.as_mut(), Par::Seq);
        let want = &a.kernels[1] * &z;
        assert!(max_rel(&mean, &want) < 1e-10);
        // GP variance at the training points: T Phi (Phi + T)^{-1} diagonal
        let var = var.unwrap();
        assert!(var.iter().all(|v| *v >= 0.0 && *v < 0.1));
    }
}
