//! Kernel renormalization of Bayesian deep networks in the proportional limit
//! (Li & Sompolinsky, PRX 2021, for deep linear nets; Pacelli et al., Nat. Mach. Intell. 2023,
//! for nonlinear ones; digest `helias_ringel_fischer_rubin.md` §5).
//!
//! Layer kernels are the NNGP ones rescaled by one scalar order parameter per hidden layer:
//! `K^0 = sigma_w^2 X X^T / d + sigma_b^2`, `M^l = sigma_w^2 E_{N(0, K^{l-1})}[phi phi] + sigma_b^2`,
//! `K^l = Q_l M^l` (l = 1..L). With widths `N_l`, temperature `T`, targets `Y` (P x C) and
//! `A = K^L(Q) + T I`, the saddle point minimises the action (minus the log evidence, constants
//! dropped; equal widths: `(2/N) S` is Pacelli et al.'s action)
//! `S(Q) = 1/2 sum_l N_l (Q_l - ln Q_l) + 1/2 [tr(Y^T A^{-1} Y) + C ln det A]`.
//! Gradient: `dS/dQ_l = N_l (1 - 1/Q_l) / 2 + tr(G dK^L/dQ_l) / 2`, `G = C A^{-1} - Z Z^T`,
//! `Z = A^{-1} Y`, obtained by reverse accumulation through the entrywise layer maps.
//!
//! Two evaluators: a general one (one Cholesky of `A` per evaluation, `A^{-1}` from the
//! triangular inverse, O(L P^2) layer maps), and a spectral one for kernels that are a scalar
//! multiple `U(Q) B` of a fixed matrix (one hidden layer, or deep linear without bias), which
//! costs O(P) per evaluation after one eigendecomposition. Both feed a BFGS minimiser in
//! `log Q` with a backtracking line search, so `Q` stays positive.
use crate::control::Control;
use crate::error::{invalid, AkError, Result};
use crate::kernels::net::Mlp;
use crate::kernels::quadrature::PolarRule;
use crate::optim::bfgs;
use crate::solve::{Path, SolveReport};
use crate::threads::with_threads;
use crate::validate;
use faer::MatRef;

mod problem;
mod spectrum;

use spectrum::Spectrum;

/// How the action is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// See [`Solver::resolve`].
    Auto,
    /// One eigendecomposition, then O(P) per evaluation (one hidden layer, or deep linear
    /// without bias).
    Spectral,
    /// One Cholesky per evaluation (any architecture).
    Cholesky,
}

impl Solver {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(Solver::Auto),
            "spectral" | "eigen" => Ok(Solver::Spectral),
            "cholesky" => Ok(Solver::Cholesky),
            other => Err(invalid(
                "solver",
                format!("expected 'auto', 'spectral' or 'cholesky', got {other:?}"),
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Solver::Auto => "auto",
            Solver::Spectral => "spectral",
            Solver::Cholesky => "cholesky",
        }
    }
    /// `Auto` picks the spectral evaluator when the kernel is `U(Q) B` and more than one
    /// saddle point is solved on the same data (a path), the Cholesky one otherwise (a single
    /// eigendecomposition costs about as much as the ~10 Cholesky evaluations of one solve).
    fn resolve(self, spectral_ok: bool, n_points: usize) -> Result<Solver> {
        match self {
            Solver::Auto => Ok(if spectral_ok && n_points > 1 {
                Solver::Spectral
            } else {
                Solver::Cholesky
            }),
            Solver::Spectral if !spectral_ok => Err(invalid(
                "solver",
                "'spectral' needs one hidden layer, or a linear activation with sigma_b = 0 \
                 (then K^L = (prod Q_l) K_NNGP); use 'cholesky' or 'auto'",
            )),
            s => Ok(s),
        }
    }
}

/// Stopping rule and iteration budget of the minimiser.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Converged when `max_l |(Q_l - 1) + Q_l tr(G dK^L/dQ_l) / N_l| < tol`
    /// (the stationarity condition divided by `N_l / 2`, times `Q_l`).
    pub tol: f64,
    pub max_iter: usize,
    pub solver: Solver,
}

impl Default for Options {
    fn default() -> Self {
        // the stopping rule is the BFGS defaults
        let b = bfgs::Options::default();
        Options {
            tol: b.tol,
            max_iter: b.max_iter,
            solver: Solver::Auto,
        }
    }
}

/// One saddle point.
#[derive(Debug, Clone)]
pub struct Saddle {
    pub q: Vec<f64>,
    /// `S(Q*)` (layers of infinite width contribute nothing and keep `Q = 1`).
    pub action: f64,
    /// `dS/dQ` at `Q*`.
    pub gradient: Vec<f64>,
    /// Jitter the Cholesky of `A` needed at `Q*` (0 almost always: `T > 0`).
    pub jitter: f64,
    /// Convergence; `solver` is the evaluator used (`spectral` or `cholesky`).
    pub report: SolveReport,
}

/// The data of a fit: architecture, input kernel and targets.
pub struct Problem<'a> {
    net: &'a Mlp,
    p: usize,
    c: usize,
    y: MatRef<'a, f64>,
    rule: PolarRule,
    /// `M^1 = sigma_w^2 E[phi phi](K^0) + sigma_b^2`, the same at every `Q`.
    m1: Vec<f64>,
    /// P x P buffers reused across evaluations (no fresh pages per evaluation).
    pool: crate::linalg::BufferPool,
}

/// Stationarity residual `max_l |2 Q_l dS/dQ_l / N_l|` over layers of finite width.
fn residual(widths: &[f64], q: &[f64], grad: &[f64]) -> f64 {
    (0..q.len())
        .filter(|&l| widths[l].is_finite())
        .map(|l| (2.0 * q[l] * grad[l] / widths[l]).abs())
        .fold(0.0, f64::max)
}

type Eval<'e> = dyn FnMut(&[f64]) -> Result<(f64, Vec<f64>, f64)> + 'e;

/// The BFGS chart `x = ln Q` over the layers of finite width (infinite ones stay at `Q = 1`).
/// Steps are capped at `|dx| <= 2`, so `Q` changes at most by e^2 per iteration.
struct LogChart<'a, 'e> {
    eval: &'a mut Eval<'e>,
    widths: &'a [f64],
    free: Vec<usize>,
}

impl bfgs::Chart for LogChart<'_, '_> {
    /// `(dS/dQ, jitter)`.
    type Extra = (Vec<f64>, f64);
    fn eval(&mut self, q: &[f64]) -> Result<(f64, Self::Extra)> {
        let (f, g, jitter) = (self.eval)(q)?;
        Ok((f, (g, jitter)))
    }
    fn chart_gradient(&self, q: &[f64], extra: &Self::Extra) -> Vec<f64> {
        self.free.iter().map(|&l| q[l] * extra.0[l]).collect()
    }
    fn residual(&self, q: &[f64], extra: &Self::Extra) -> f64 {
        residual(self.widths, q, &extra.0)
    }
    fn retract(&self, q: &[f64], step: f64, d: &[f64]) -> Vec<f64> {
        let mut qn = q.to_vec();
        for (k, &l) in self.free.iter().enumerate() {
            qn[l] = q[l] * (step * d[k]).exp();
        }
        qn
    }
    fn chart_difference(&self, new: &[f64], old: &[f64]) -> Vec<f64> {
        self.free.iter().map(|&l| new[l].ln() - old[l].ln()).collect()
    }
    /// The prior term's curvature in log Q, inverted: `1 / (N_l Q_l / 2)`.
    fn initial_inverse_hessian(&self, q: &[f64]) -> Vec<f64> {
        let n = self.free.len();
        let mut h = vec![0.0; n * n];
        for (k, &l) in self.free.iter().enumerate() {
            h[k * n + k] = 2.0 / (self.widths[l] * q[l]);
        }
        h
    }
}

/// BFGS on `x = ln Q` (free layers only) from `q0` ([`LogChart`]), with the first inverse
/// Hessian `h0` if given (else the prior's); also returns the final inverse Hessian.
fn minimise(
    eval: &mut Eval<'_>,
    widths: &[f64],
    q0: &[f64],
    h0: Option<Vec<f64>>,
    opts: &Options,
    ctl: &Control,
) -> Result<(Saddle, Vec<f64>)> {
    let depth = widths.len();
    let free: Vec<usize> = (0..depth).filter(|&l| widths[l].is_finite()).collect();
    let q: Vec<f64> = (0..depth)
        .map(|l| if widths[l].is_finite() { q0[l] } else { 1.0 })
        .collect();
    let mut chart = LogChart { eval, widths, free };
    let bopts = bfgs::Options {
        tol: opts.tol,
        max_iter: opts.max_iter,
        ..Default::default()
    };
    let (min, mut report) = bfgs::minimize_from(&mut chart, q, h0, &bopts, ctl)?;
    report.solver = opts.solver.name();
    Ok((
        Saddle {
            q: min.q,
            action: min.f,
            gradient: min.extra.0,
            jitter: min.extra.1,
            report,
        },
        min.inv_hessian,
    ))
}

/// Training sets of at least this many points start the Cholesky evaluator from a coarse
/// solve ([`coarse_start`]).
const COARSE_MIN_P: usize = 256;
/// The coarse problem keeps one point in this many.
const COARSE_FACTOR: usize = 4;

/// A start for the saddle point of `prob` at `(widths, t)` from the same problem on a fixed
/// pseudo-random subset of `P / 4` points with widths scaled by the same factor (so
/// `alpha = P / N` and the balance of prior and data terms are kept): `(Q*_coarse, its final
/// inverse Hessian scaled by 1/4)`, since both terms of the action, and so its Hessian in
/// `ln Q`, grow in proportion to `P` at fixed `alpha`. Applied recursively down to
/// [`COARSE_MIN_P`]. On MNIST-5k parity (erf, L = 2, P = 2000, N = 800) the coarse `Q*` is
/// within 1% of the full one and the full solve takes 6 action evaluations instead of 10,
/// for ~0.2 evaluations' worth of coarse work. `None` (start from the caller's point) when
/// the coarse solve fails or does not converge; only an interrupt is passed on.
fn coarse_start(
    prob: &Problem<'_>,
    widths: &[f64],
    t: f64,
    opts: &Options,
    par: faer::Par,
    ctl: &Control,
) -> Result<Option<(Vec<f64>, Vec<f64>)>> {
    let p = prob.p;
    if p < COARSE_MIN_P {
        return Ok(None);
    }
    let ps = p / COARSE_FACTOR;
    // fixed pseudo-random subset (partial Fisher-Yates, constant seed), sorted
    let mut perm: Vec<usize> = (0..p).collect();
    let mut rng = crate::rng::Rng::new(0x6b72_636f_6172_7365, 0);
    for i in 0..ps {
        let j = i + (rng.next_u64() % (p - i) as u64) as usize;
        perm.swap(i, j);
    }
    let mut idx = perm[..ps].to_vec();
    idx.sort_unstable();
    let mut m1 = vec![0.0; ps * ps];
    for (a, &i) in idx.iter().enumerate() {
        for (b, &j) in idx.iter().enumerate() {
            m1[a * ps + b] = prob.m1[i * p + j];
        }
    }
    let y = faer::Mat::from_fn(ps, prob.c, |a, k| prob.y[(idx[a], k)]);
    let sub = Problem {
        net: prob.net,
        p: ps,
        c: prob.c,
        y: y.as_ref(),
        rule: prob.rule.clone(),
        m1,
        pool: crate::linalg::BufferPool::new(ps * ps),
    };
    let scale = ps as f64 / p as f64;
    let w: Vec<f64> = widths.iter().map(|&n| n * scale).collect();
    let start = coarse_start(&sub, &w, t, opts, par, ctl)?;
    let (q0, h0) = match start {
        Some((q, h)) => (q, Some(h)),
        None => (vec![1.0; widths.len()], None),
    };
    let mut eval = |q: &[f64]| sub.action_and_gradient(&w, t, q, par, ctl);
    match minimise(&mut eval, &w, &q0, h0, opts, ctl) {
        Ok((sol, h)) if sol.report.converged => {
            Ok(Some((sol.q, h.iter().map(|v| v * scale).collect())))
        }
        Ok(_) => Ok(None),
        Err(AkError::Interrupted) => Err(AkError::Interrupted),
        Err(_) => Ok(None),
    }
}

/// One point of a path: widths and temperature.
#[derive(Debug, Clone)]
pub struct Point {
    pub widths: Vec<f64>,
    pub temperature: f64,
}

/// Solves the saddle point at each point in order, each warm-started from the previous
/// solution (continuation); `q0` (default all ones) starts the first. The spectral evaluator,
/// when used, shares one eigendecomposition across all points. Progress counts action
/// evaluations (no total: their number is not known ahead). An interrupt keeps the points
/// solved before it ([`Path`]).
pub fn solve_path(
    prob: &Problem<'_>,
    points: &[Point],
    q0: Option<&[f64]>,
    opts: &Options,
    n_threads: usize,
    ctl: &Control,
) -> Result<Path<Saddle>> {
    let path = solve_path_then(prob, points, q0, opts, n_threads, ctl, |_, _| Ok(()))?;
    Ok(path.map(|(s, ())| s))
}

/// [`solve_path`] with `finish(point, saddle)` run right after each point is solved, before the
/// next one starts (the binding builds each point's predictor there): an interrupt then keeps
/// every point finished before it, at most one point's work is lost. `finish` counts no
/// progress (the path's unit is the action evaluation).
#[allow(clippy::too_many_arguments)]
pub fn solve_path_then<T: Send>(
    prob: &Problem<'_>,
    points: &[Point],
    q0: Option<&[f64]>,
    opts: &Options,
    n_threads: usize,
    ctl: &Control,
    mut finish: impl FnMut(&Point, &Saddle) -> Result<T> + Send,
) -> Result<Path<(Saddle, T)>> {
    let depth = prob.net.depth;
    for pt in points {
        validate::widths(&pt.widths, depth)?;
        validate::temperature(pt.temperature)?;
    }
    validate::tol(opts.tol)?;
    if points.len() > 1 {
        // beyond the problem's buffers (M^1, already allocated): the spectral evaluator's K^L and
        // its eigendecomposition (eigenvectors and faer's workspace, linalg::EIGEN_MATRICES), or
        // each point's predictor while M^1 is kept
        validate::dense_memory(
            "X",
            "kernel renormalization's path (eigendecomposition, per-point predictors)",
            1.0 + crate::linalg::EIGEN_MATRICES,
            prob.p,
            prob.p,
            "use fewer training points, or fit the points one at a time",
        )?;
    }
    let first = match q0 {
        Some(q) => {
            if q.len() != depth || q.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(invalid("Q0", format!("needs {depth} finite values > 0")));
            }
            q.to_vec()
        }
        None => vec![1.0; depth],
    };
    let solver = opts.solver.resolve(prob.spectral_applies(), points.len())?;
    with_threads(n_threads, |par| {
        let spectrum = if solver == Solver::Spectral {
            Some(Spectrum::new(prob, par, ctl)?)
        } else {
            None
        };
        Path::walk(points, |pt, done: &[(Saddle, T)]| {
            let start = done.last().map_or(&first, |(s, _)| &s.q);
            let (t, w) = (pt.temperature, &pt.widths);
            let mut eval = |q: &[f64]| {
                let out = match &spectrum {
                    Some(sp) => sp.action_and_gradient(w, t, q),
                    None => prob.action_and_gradient(w, t, q, par, ctl),
                };
                if !matches!(out, Err(AkError::Interrupted)) {
                    ctl.advance(1); // as the report's n_eval counts them
                }
                out
            };
            // the first point of a Cholesky solve from the default start: a coarse solve first
            let coarse = if done.is_empty() && q0.is_none() && solver == Solver::Cholesky {
                coarse_start(prob, w, t, opts, par, ctl)?
            } else {
                None
            };
            let (start, h0) = match &coarse {
                Some((q, h)) => (q, Some(h.clone())),
                None => (start, None),
            };
            let (sol, _) = minimise(&mut eval, w, start, h0, &Options { solver, ..*opts }, ctl)?;
            let extra = ctl.quietly(|| finish(pt, &sol))?;
            Ok((sol, extra))
        })
    })
}

#[cfg(test)]
mod tests;
