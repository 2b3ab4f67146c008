//! Forward-backward equations for the MAP kernels of all layers in the proportional limit
//! (Fischer et al., ICML 2024; digest `helias_ringel_fischer_rubin.md` §3): deep linear networks
//! (full and first order), nonlinear activations to first order ([`nonlinear`]).
//!
//! Standard scaling (as `sample_posterior(parameterization="standard")`), L hidden layers of
//! width N, `g = sigma_w^2`, `b = sigma_b^2`, noise variance `T`, targets `Y` (P x C):
//! `C^0 = g X X^T / d + b` and, given `C^{l-1}`, `C^l = (g/N) sum_i h_i h_i^T + b` with
//! `h_i ~ N(0, C^{l-1})` i.i.d. Its cumulant generating function per unit width is
//! `W_l(Ct | C) = b 1^T Ct 1 - 1/2 ln det(I - 2 g Ct C)`, and the MAP of the kernels
//! (large-deviation prior `exp(-N sum_l I_l)`, `I_l` the Legendre transform of `W_l`, times the
//! Gaussian likelihood of `Y` under `G = C^L + T I`) is stationary when
//!
//! * forward  `C^l = g C^{l-1} (I - 2 g Ct^l C^{l-1})^{-1} + b`                 (l = 1..L)
//! * backward `Ct^{l-1} = g Ct^l (I - 2 g C^{l-1} Ct^l)^{-1}`                    (l = L..2)
//! * terminal `Ct^L = (Z Z^T - C G^{-1}) / (2N)`, `Z = G^{-1} Y`.
//!
//! The backward map is the closed form of the Stein form `1/2 C^{-1}(<hh^T>_tilt - C) C^{-1}`
//! (tilted measure `N(0, C (I - 2 g Ct C)^{-1})`), and needs no inverse of `C`.
//!
//! Solver: unknowns the upper triangles of `C^1..C^L`; the conjugates follow from the terminal
//! and backward maps; residual `C^l - F_l`. Width annealing from `N * start` down to `N` (an
//! adaptive continuation in `s`, `width = N start^(1-s)`), Newton-Krylov at each stage from the
//! last solution. Iterates whose tilted measure is improper (`F_l` not PSD) or whose `C^l` is
//! not PSD are rejected. Measure: `max_l |C^l - F_l|_F / |C^l|_F`.
//!
//! `Method::Perturbative`: first order in `1/N` around the NNGP kernels `K^l`: `Ct^L` from the
//! terminal map at `K^L`, `Ct^{l-1} = g Ct^l`, `C^l = g C^{l-1} + b + 2 g^2 K^{l-1} Ct^l K^{l-1}`;
//! for `g = 1, b = 0` this is `K + (l/N) K Phi K`, `Phi = Z Z^T - C G^{-1}` (Zavatone-Veth et al.).
use crate::control::Control;
use crate::error::{invalid, Result};
use crate::kernels::activation::Activation;
use crate::kernels::input::input_kernel;
use crate::kernels::net::Mlp;
use crate::linalg::matmul;
use crate::linalg::{cholesky, cholesky_solve_in_place};
use crate::optim::newton_krylov::{self, newton_krylov};
use crate::solve::continuation::Continuation;
use crate::solve::SolveReport;
use crate::validate;
use faer::linalg::solvers::Solve;
use faer::{Accum, Mat, MatRef, Par};

mod full;
pub mod nonlinear;
mod path;
mod predict;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_full;
#[cfg(test)]
mod tests_nonlinear;

pub use full::{Eval, LayerDraw};
pub use path::solve_path;

/// `(C^1..C^L, Ct^1..Ct^L)`.
pub type KernelsAndConjugates = (Vec<Mat<f64>>, Vec<Mat<f64>>);

/// Full solution or first-order perturbation theory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Full,
    Perturbative,
}

impl Method {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "full" => Ok(Method::Full),
            "perturbative" => Ok(Method::Perturbative),
            other => Err(invalid(
                "method",
                format!("expected 'full' or 'perturbative', got {other:?}"),
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Method::Full => "full",
            Method::Perturbative => "perturbative",
        }
    }
}

/// Solver settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Converged when `max_l |C^l - F_l|_F / |C^l|_F < tol` at the target width.
    pub tol: f64,
    /// Newton iterations per annealing stage.
    pub max_iter: usize,
    /// Krylov dimension and forcing term of the inner GMRES.
    pub krylov: usize,
    pub forcing: f64,
    /// Annealing starts at width `N * start` (from the NNGP kernels there).
    pub start: f64,
    /// Number of equal steps in `log width` the annealing starts with (the step then doubles
    /// after a converged stage and halves after a failed one).
    pub n_anneal: usize,
    /// Most stages (converged and failed) of one annealing.
    pub max_stages: usize,
    pub method: Method,
    /// Monte-Carlo samples of the 4-point covariance of nonlinear activations (perturbative).
    pub n_samples: usize,
    /// Seed of those samples.
    pub seed: u64,
    /// Nonlinear `Method::Full`: samples are redrawn (MALA at the solution) after a stage whose
    /// Kish fraction fell below `min_kish` in some layer, at most `max_refresh` times a stage.
    pub min_kish: f64,
    pub max_refresh: usize,
}

impl Default for Options {
    fn default() -> Self {
        let nk = newton_krylov::Options::default();
        Options {
            tol: 1e-10,
            max_iter: nk.max_iter,
            krylov: 40,
            forcing: 1e-3,
            start: 1e3,
            n_anneal: 8,
            max_stages: 60,
            method: Method::Full,
            n_samples: 20_000,
            seed: 0,
            min_kish: 0.5,
            max_refresh: 4,
        }
    }
}

/// The MAP kernels at one width and temperature.
#[derive(Debug, Clone)]
pub struct Solution {
    /// `C^1..C^L` on the training points.
    pub kernels: Vec<Mat<f64>>,
    /// `Ct^1..Ct^L`.
    pub conjugates: Vec<Mat<f64>>,
    /// `Ct^0 = g Ct^1 (I - 2 g C^0 Ct^1)^{-1}` (the backward map through the first layer; the
    /// test rows of the forward pass need it).
    pub input_conjugate: Mat<f64>,
    pub report: SolveReport,
    /// Nonlinear `Method::Full`: Kish fraction of each layer's weights at the solution and the
    /// number of sample sets drawn (empty and 0 otherwise).
    pub kish: Vec<f64>,
    pub n_draws: usize,
    /// Nonlinear `Method::Full`: each layer's final sample set (the test rows of predictions
    /// reweight it, [`Problem::sampled_test_rows`]); empty otherwise.
    pub draws: Vec<LayerDraw>,
}

/// One point of a path.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub width: f64,
    pub temperature: f64,
}

/// Data of a fit: input kernel, targets, layer constants.
pub struct Problem {
    pub depth: usize,
    pub k0: Mat<f64>,
    pub y: Mat<f64>,
    pub g: f64,
    pub b: f64,
    pub act: Activation,
    /// How the per-pair expectations of nonlinear activations are computed.
    pub quad: nonlinear::Quad,
}

fn sym(m: &mut Mat<f64>) {
    let n = m.nrows();
    for j in 0..n {
        for i in 0..j {
            let v = 0.5 * (m[(i, j)] + m[(j, i)]);
            m[(i, j)] = v;
            m[(j, i)] = v;
        }
    }
}

fn mul(a: MatRef<'_, f64>, b: MatRef<'_, f64>, alpha: f64, par: Par) -> Mat<f64> {
    let mut out = Mat::zeros(a.nrows(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a, b, alpha, par);
    out
}

fn frob(a: &Mat<f64>) -> f64 {
    a.norm_l2()
}

/// Whether a symmetric matrix is PSD up to `1e-10` of its mean diagonal.
fn is_psd(a: &Mat<f64>) -> bool {
    let n = a.nrows();
    let scale = (0..n).map(|i| a[(i, i)].abs()).sum::<f64>() / n as f64;
    let shifted = Mat::from_fn(n, n, |i, j| {
        a[(i, j)]
            + if i == j {
                1e-10 * scale.max(1e-300)
            } else {
                0.0
            }
    });
    cholesky(shifted.as_ref()).is_some()
}

impl Problem {
    /// Validates the network and the targets.
    pub fn new(net: &Mlp, x: MatRef<'_, f64>, y: MatRef<'_, f64>, par: Par) -> Result<Self> {
        net.validate()?;
        if net.depth < 1 {
            return Err(invalid(
                "net",
                "the forward-backward kernels need at least one hidden layer (depth >= 1)",
            ));
        }
        validate::finite_mat("X", x)?;
        validate::targets(y, x.nrows())?;
        // K^0, per layer C^l and its conjugate, and the Newton-Krylov / factorization work matrices
        validate::dense_memory(
            "X",
            "the layer kernels, their conjugates and the Newton-Krylov work matrices",
            (3 * net.depth + 6) as f64,
            x.nrows(),
            x.nrows(),
            "use fewer samples or fewer layers",
        )?;
        let k0 = input_kernel(x, x, net.sigma_w, net.sigma_b, par);
        crate::kernels::lazy::check_overflow("X", k0.as_ref())?;
        Ok(Problem {
            depth: net.depth,
            k0,
            y: y.to_owned(),
            g: net.sigma_w * net.sigma_w,
            b: net.sigma_b * net.sigma_b,
            act: net.activation.clone(),
            quad: nonlinear::Quad::of(net),
        })
    }

    pub fn p(&self) -> usize {
        self.k0.nrows()
    }

    /// NNGP kernels `K^1..K^L` of the linear activation (nonlinear: [`nonlinear::nngp`]).
    pub fn nngp(&self) -> Vec<Mat<f64>> {
        let mut out = Vec::with_capacity(self.depth);
        let mut prev = self.k0.clone();
        for _ in 0..self.depth {
            prev = Mat::from_fn(self.p(), self.p(), |i, j| self.g * prev[(i, j)] + self.b);
            out.push(prev.clone());
        }
        out
    }

    /// Terminal map `(Z Z^T - C G^{-1}) / (2N)`; None when `C^L + T I` is not PD.
    pub fn terminal(&self, cl: &Mat<f64>, width: f64, t: f64, par: Par) -> Option<Mat<f64>> {
        let p = self.p();
        let g = Mat::from_fn(p, p, |i, j| cl[(i, j)] + if i == j { t } else { 0.0 });
        let l = cholesky(g.as_ref())?;
        let llt = LltSolve(l);
        let z = llt.solve(self.y.as_ref(), par)?;
        let gi = llt.solve(Mat::<f64>::identity(p, p).as_ref(), par)?;
        let c = self.y.ncols() as f64;
        let mut out = mul(z.as_ref(), z.transpose(), 1.0, par);
        for j in 0..p {
            for i in 0..p {
                out[(i, j)] = (out[(i, j)] - c * gi[(i, j)]) / (2.0 * width);
            }
        }
        sym(&mut out);
        Some(out)
    }

    /// Backward map `g Ct (I - 2 g C Ct)^{-1}`.
    pub fn backward(&self, c_prev: &Mat<f64>, ct: &Mat<f64>, par: Par) -> Mat<f64> {
        // X (I - 2g C Ct) = g Ct  <=>  (I - 2g Ct C) X^T = g Ct
        let a = identity_minus(mul(ct.as_ref(), c_prev.as_ref(), 2.0 * self.g, par));
        let rhs = Mat::from_fn(ct.nrows(), ct.ncols(), |i, j| self.g * ct[(i, j)]);
        let mut x = a.partial_piv_lu().solve(&rhs).transpose().to_owned();
        sym(&mut x);
        x
    }

    /// Forward map `g C (I - 2 g Ct C)^{-1} + b`.
    pub fn forward(&self, c_prev: &Mat<f64>, ct: &Mat<f64>, par: Par) -> Mat<f64> {
        // D^T = (I - 2g C Ct)^{-1} g C
        let a = identity_minus(mul(c_prev.as_ref(), ct.as_ref(), 2.0 * self.g, par));
        let rhs = Mat::from_fn(ct.nrows(), ct.ncols(), |i, j| self.g * c_prev[(i, j)]);
        let mut d = a.partial_piv_lu().solve(&rhs).transpose().to_owned();
        sym(&mut d);
        for v in d.col_iter_mut() {
            for x in v.iter_mut() {
                *x += self.b;
            }
        }
        d
    }

    /// `Ct^1..Ct^L` from `C^1..C^L` (terminal, then backward); None when `C^L + T I` is not PD.
    pub fn conjugates(
        &self,
        cs: &[Mat<f64>],
        width: f64,
        t: f64,
        par: Par,
    ) -> Option<Vec<Mat<f64>>> {
        let depth = cs.len();
        let mut ct = vec![Mat::zeros(0, 0); depth];
        ct[depth - 1] = self.terminal(&cs[depth - 1], width, t, par)?;
        for l in (1..depth).rev() {
            ct[l - 1] = self.backward(&cs[l - 1], &ct[l], par);
        }
        Some(ct)
    }

    /// Residuals `C^l - F_l(C^{l-1}, Ct^l)`, the conjugates, and whether every `F_l` and `C^l`
    /// is PSD (checked only with `check`); None when `C^L + T I` is not PD.
    #[allow(clippy::type_complexity)]
    pub fn residual(
        &self,
        cs: &[Mat<f64>],
        width: f64,
        t: f64,
        check: bool,
        par: Par,
    ) -> Option<(Vec<Mat<f64>>, Vec<Mat<f64>>, bool)> {
        let ct = self.conjugates(cs, width, t, par)?;
        let mut res = Vec::with_capacity(cs.len());
        let mut psd = true;
        for l in 0..cs.len() {
            let prev = if l == 0 { &self.k0 } else { &cs[l - 1] };
            let f = self.forward(prev, &ct[l], par);
            if check {
                psd &= is_psd(&f) && is_psd(&cs[l]);
            }
            res.push(Mat::from_fn(self.p(), self.p(), |i, j| {
                cs[l][(i, j)] - f[(i, j)]
            }));
        }
        Some((res, ct, psd))
    }

    /// First-order perturbative solution at width N and temperature T.
    pub fn perturbative(&self, width: f64, t: f64, par: Par) -> Result<KernelsAndConjugates> {
        let k = self.nngp();
        let mut ct = vec![Mat::zeros(0, 0); self.depth];
        ct[self.depth - 1] = self
            .terminal(&k[self.depth - 1], width, t, par)
            .ok_or_else(|| invalid("temperature", "K^L + T I is not positive definite"))?;
        for l in (1..self.depth).rev() {
            ct[l - 1] = Mat::from_fn(self.p(), self.p(), |i, j| self.g * ct[l][(i, j)]);
        }
        let mut cs = Vec::with_capacity(self.depth);
        for l in 0..self.depth {
            let kprev = if l == 0 { &self.k0 } else { &k[l - 1] };
            let kt = mul(kprev.as_ref(), ct[l].as_ref(), 1.0, par);
            let mut c = mul(kt.as_ref(), kprev.as_ref(), 2.0 * self.g * self.g, par);
            let prev = if l == 0 { &self.k0 } else { &cs[l - 1] };
            for j in 0..self.p() {
                for i in 0..self.p() {
                    c[(i, j)] += self.g * prev[(i, j)] + self.b;
                }
            }
            sym(&mut c);
            cs.push(c);
        }
        Ok((cs, ct))
    }

    fn pack(&self, cs: &[Mat<f64>]) -> Vec<f64> {
        let p = self.p();
        let mut x = Vec::with_capacity(cs.len() * p * (p + 1) / 2);
        for c in cs {
            for j in 0..p {
                for i in 0..=j {
                    x.push(c[(i, j)]);
                }
            }
        }
        x
    }

    fn unpack(&self, x: &[f64]) -> Vec<Mat<f64>> {
        let p = self.p();
        let m = p * (p + 1) / 2;
        x.chunks(m)
            .map(|v| {
                let mut c = Mat::zeros(p, p);
                let mut k = 0;
                for j in 0..p {
                    for i in 0..=j {
                        c[(i, j)] = v[k];
                        c[(j, i)] = v[k];
                        k += 1;
                    }
                }
                c
            })
            .collect()
    }

    /// Newton-Krylov at one width from `cs0`.
    fn newton(
        &self,
        cs0: &[Mat<f64>],
        width: f64,
        t: f64,
        opts: &Options,
        par: Par,
        ctl: &Control,
    ) -> Result<(Vec<Mat<f64>>, SolveReport)> {
        let nk = newton_krylov::Options {
            tol: opts.tol,
            max_iter: opts.max_iter,
            krylov: opts.krylov,
            forcing: opts.forcing,
        };
        let resid = |x: &[f64], measure: bool| -> Result<Option<(Vec<f64>, f64)>> {
            ctl.checkpoint()?;
            let cs = self.unpack(x);
            let Some((res, _, psd)) = self.residual(&cs, width, t, measure, par) else {
                return Ok(None);
            };
            if measure && !psd {
                return Ok(None); // non-PSD iterates are rejected
            }
            let m = if measure {
                res.iter()
                    .zip(&cs)
                    .map(|(r, c)| frob(r) / frob(c).max(1e-300))
                    .fold(0.0, f64::max)
            } else {
                0.0
            };
            let v = self.pack(&res);
            if v.iter().any(|a| !a.is_finite()) {
                return Ok(None);
            }
            Ok(Some((v, m)))
        };
        let (x, report) = newton_krylov(resid, self.pack(cs0), &nk, ctl)?;
        Ok((self.unpack(&x), report))
    }

    /// Width annealing from the NNGP at `N * start` (or from `warm`, solved at `warm_width`,
    /// when given) down to `width`.
    pub fn anneal(
        &self,
        warm: Option<(&[Mat<f64>], f64)>,
        width: f64,
        t: f64,
        opts: &Options,
        par: Par,
        ctl: &Control,
    ) -> Result<Solution> {
        let (mut cs, from) = match warm {
            Some((c, w)) if w >= width && w.is_finite() => (c.to_vec(), w),
            _ => (self.nngp(), width * opts.start.max(1.0)),
        };
        let span = (from / width).ln();
        let width_at = |s: f64| width * (span * (1.0 - s)).exp();
        let mut cont = Continuation::new(0.0, 1.0, opts.max_stages);
        if span > 0.0 {
            cont.step = 1.0 / opts.n_anneal.max(1) as f64;
        }
        let (mut n_iter, mut n_eval, mut hist) = (0, 0, Vec::new());
        let mut last = f64::INFINITY;
        let mut converged = false;
        while let Some(s) = cont.next() {
            let w = width_at(s);
            let (c, rep) = self.newton(&cs, w, t, opts, par, ctl)?;
            n_iter += rep.n_iter;
            n_eval += rep.n_eval;
            hist.extend_from_slice(&rep.residual_history);
            if rep.converged {
                cs = c;
                last = rep.residual;
                ctl.advance(1);
                if cont.succeeded(s) {
                    converged = true;
                    break;
                }
            } else if cont.failed(s) {
                break;
            }
        }
        if !converged {
            // report the measure at the last accepted iterate, at the target width
            if let Some((res, _, _)) = self.residual(&cs, width, t, false, par) {
                last = res
                    .iter()
                    .zip(&cs)
                    .map(|(r, c)| frob(r) / frob(c).max(1e-300))
                    .fold(0.0, f64::max);
            }
        }
        let ct = self
            .conjugates(&cs, width, t, par)
            .ok_or_else(|| invalid("temperature", "C^L + T I is not positive definite"))?;
        let input_conjugate = self.backward(&self.k0, &ct[0], par);
        let mut report = SolveReport::new("newton_krylov", converged, n_iter, n_eval, last, hist);
        report.stages = cont
            .stages
            .iter()
            .map(|&s| if s >= 0.0 { width_at(s) } else { -width_at(-s) })
            .collect();
        Ok(Solution {
            kernels: cs,
            conjugates: ct,
            input_conjugate,
            report,
            kish: vec![],
            n_draws: 0,
            draws: vec![],
        })
    }

    /// The perturbative solution with its report (the residual is the full equations' measure
    /// at the first-order kernels: how far first order is from the full solution).
    pub fn perturbative_solution(&self, width: f64, t: f64, opts: &Options, par: Par) -> Result<Solution> {
        if !self.is_linear() {
            return self.perturbative_nonlinear(width, t, opts.n_samples, opts.seed, par);
        }
        let (cs, ct) = self.perturbative(width, t, par)?;
        let measure = match self.residual(&cs, width, t, false, par) {
            Some((res, _, _)) => res
                .iter()
                .zip(&cs)
                .map(|(r, c)| frob(r) / frob(c).max(1e-300))
                .fold(0.0, f64::max),
            None => f64::INFINITY,
        };
        let input_conjugate = Mat::from_fn(self.p(), self.p(), |i, j| self.g * ct[0][(i, j)]);
        let report = SolveReport::new("perturbative", true, 0, 1, measure, vec![measure]);
        Ok(Solution {
            kernels: cs,
            conjugates: ct,
            input_conjugate,
            report,
            kish: vec![],
            n_draws: 0,
            draws: vec![],
        })
    }
}

fn identity_minus(mut a: Mat<f64>) -> Mat<f64> {
    let n = a.nrows();
    for j in 0..n {
        for i in 0..n {
            a[(i, j)] = if i == j { 1.0 } else { 0.0 } - a[(i, j)];
        }
    }
    a
}

/// Solves with a lower Cholesky factor.
struct LltSolve(Mat<f64>);

impl LltSolve {
    fn solve(&self, b: MatRef<'_, f64>, par: Par) -> Option<Mat<f64>> {
        let mut x = b.to_owned();
        cholesky_solve_in_place(self.0.as_ref(), x.as_mut(), par).ok()?;
        Some(x)
    }
}

