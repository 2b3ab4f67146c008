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
use crate::error::{invalid, AkError, Result};
use crate::kernels::input::input_kernel;
use crate::kernels::net::{Mlp, Rows};
use crate::linalg::{at_b, cholesky, frob2, scaled_update, symmetric_eigen, symmetrize, RANK_RCOND};
use crate::optim::lbfgs;
use crate::solve::{Path, SolveReport};
use crate::threads::with_threads;
use crate::validate;
use crate::linalg::matmul;
use faer::{Accum, Mat, MatRef, Par};

mod closed_form;
pub use closed_form::closed_form_kappa;
mod objective;
mod predict;
pub use predict::{MeanPredictor, VariancePredictor};

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
        // the L-BFGS stopping rule and history length are the optimizer's defaults
        let l = lbfgs::Options::default();
        Options {
            tol: l.tol,
            max_iter: l.max_iter,
            solver: Solver::Auto,
            memory: l.memory,
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

impl<'a> Problem<'a> {
    /// Builds `K^0` of the training inputs `x` (P x d), its spectrum and support, for targets
    /// `y` (P x C). Only linear activations are implemented.
    pub fn new(net: &Mlp, x: Rows<'a>, y: MatRef<'a, f64>, n_threads: usize) -> Result<Self> {
        validate::mean_field_net(net, true)?;
        let p = x.rows;
        validate::targets(y, p)?;
        // K^0 and its eigenvectors, per layer kernels, conjugates, factors, gradients and the
        // L-BFGS history (the default memory budget, 256 MB)
        validate::memory(
            "X",
            "the mean-field saddle point's P x P matrices",
            8.0 * (8 * net.depth + 8) as f64 * (p * p) as f64 + 2.56e8,
            "use fewer training points",
        )?;
        let (sw, sb) = (net.sigma_w, net.sigma_b);
        with_threads(n_threads, |par| {
            let mut k0 = input_kernel(x.mat(), x.mat(), sw, sb, par);
            symmetrize(&mut k0);
            crate::kernels::lazy::check_overflow("X", k0.as_ref())?;
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
    /// Progress counts iterations (one per closed-form point; L-BFGS iterations otherwise, with
    /// no total: `max_iter` only bounds them). An interrupt keeps the points solved before it.
    pub fn solve_path(
        &self,
        points: &[Point],
        init: Option<&[MatRef<'_, f64>]>,
        opts: &Options,
        n_threads: usize,
        ctl: &Control,
    ) -> Result<Path<Solution>> {
        for pt in points {
            validate::gamma_temperature(pt.gamma, pt.temperature)?;
        }
        validate::tol(opts.tol)?;
        if opts.max_iter == 0 {
            return Err(invalid("max_iter", "must be >= 1"));
        }
        let solver = self.resolve(opts.solver)?;
        if solver == Solver::ClosedForm {
            ctl.set_total(points.len() as u64);
        }
        with_threads(n_threads, |par| {
            let first: Option<Vec<Mat<f64>>> = match init {
                Some(k) => {
                    let b = self.factors_of("init", k, par)?;
                    Some(self.whiten(&b, par))
                }
                None => None,
            };
            Path::walk(points, |&pt, done: &[Solution]| {
                let start = done.last().map(|s| &s.a[..]).or(first.as_deref());
                // the solver's own kernels (not an argument) overflowing: name the knobs that scale them
                self.solve_point(pt, start, solver, opts, par, ctl).map_err(|e| match e {
                    AkError::NonFinite { name: "kernels", msg }
                    | AkError::InvalidArgument { name: "kernels", msg } => AkError::NonFinite {
                        name: "gamma",
                        msg: format!(
                            "the saddle point's kernels overflow at gamma = {}, temperature = {} ({msg}); \
                             rescale gamma, temperature or the data X and y",
                            pt.gamma, pt.temperature
                        ),
                    },
                    e => e,
                })
            })
        })
    }
}

#[cfg(test)]
mod tests;
