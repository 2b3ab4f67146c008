//! Dense BFGS on a chart of the unknowns, with a backtracking Armijo line search. The problem
//! supplies the chart ([`Chart`]): its gradient, a retraction along a chart direction, chart
//! differences and the initial inverse Hessian, so that e.g. positive unknowns are optimised
//! in their logarithm. Steps are capped at `max_step` in the max norm. Near the optimum the
//! objective changes by round-off only; a step is then accepted when it lowers the residual.
//! Evaluation errors `NonFinite` and `NotPositiveDefinite` during the line search shorten the
//! step; other errors stop the solve. `ctl` cancels between iterations; progress is the
//! caller's to count (kernel renormalization counts its action evaluations).
//!
//! Where round-off, not the optimum, limits the residual (huge targets, tiny widths or
//! temperatures, duplicated inputs), the solve stops instead of spending its budget:
//! - a step that leaves the point unchanged in floating point is never accepted (`f(q) <= f(q)`
//!   passes the Armijo test once `step * slope` rounds away: that null step used to repeat
//!   identically until `max_iter`, ~30-55 evaluations per iteration);
//! - the line search halves at most [`MAX_HALVINGS`] times; when it fails with an updated inverse
//!   Hessian, it is retried once from the initial one, and a second failure ends the solve;
//! - [`STALL_WINDOW`] iterations without a decrease of `f` beyond round-off and without halving
//!   the best residual end the solve (stalled).
//! Each ends with `converged = false` and the residual reached; the caller warns.
use crate::control::Control;
use crate::error::{AkError, Result};
use crate::solve::SolveReport;

/// Line-search halvings before it fails (smallest step `2^-30` of the capped direction).
pub const MAX_HALVINGS: usize = 30;
/// Iterations without progress (no decrease of `f` beyond `1e-12 (|f| + 1)`, no halving of the
/// best residual) after which the solve stops.
pub const STALL_WINDOW: usize = 20;

/// Stopping rule, budget and step cap.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Converged when the problem's residual is below `tol`.
    pub tol: f64,
    pub max_iter: usize,
    /// Largest step in the chart (max norm).
    pub max_step: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tol: 1e-10,
            max_iter: 200,
            max_step: 2.0,
        }
    }
}

/// A minimisation problem on a chart of dimension `n` (the point itself, of any length, is
/// what [`Chart::eval`] sees).
pub trait Chart {
    /// What an evaluation returns besides the objective (e.g. the gradient in the problem's own
    /// coordinates).
    type Extra;
    /// Objective and extra data at a point.
    fn eval(&mut self, q: &[f64]) -> Result<(f64, Self::Extra)>;
    /// The gradient in chart coordinates.
    fn chart_gradient(&self, q: &[f64], extra: &Self::Extra) -> Vec<f64>;
    /// Stationarity residual (dimensionless).
    fn residual(&self, q: &[f64], extra: &Self::Extra) -> f64;
    /// The point at chart step `step * d` from `q`.
    fn retract(&self, q: &[f64], step: f64, d: &[f64]) -> Vec<f64>;
    /// Chart coordinates of `new` minus those of `old`.
    fn chart_difference(&self, new: &[f64], old: &[f64]) -> Vec<f64>;
    /// Initial inverse Hessian at `q` (n x n, row-major), also the reset after a non-descent
    /// direction.
    fn initial_inverse_hessian(&self, q: &[f64]) -> Vec<f64>;
}

/// The solution: point, objective and extra data there.
pub struct Minimum<E> {
    pub q: Vec<f64>,
    pub f: f64,
    pub extra: E,
    /// The final BFGS inverse Hessian in the chart (n x n, row-major): a warm start for a
    /// related problem ([`minimize_from`]).
    pub inv_hessian: Vec<f64>,
}

/// The initial-metric descent direction `-diag(h) g` and its slope.
fn steepest(h: &[f64], g: &[f64]) -> (Vec<f64>, f64) {
    let n = g.len();
    let d: Vec<f64> = (0..n).map(|i| -h[i * n + i] * g[i]).collect();
    let slope = d.iter().zip(g).map(|(a, b)| a * b).sum();
    (d, slope)
}

/// Minimises from `q0`; the first evaluation's error is returned as is.
pub fn minimize<P: Chart>(
    prob: &mut P,
    q0: Vec<f64>,
    opts: &Options,
    ctl: &Control,
) -> Result<(Minimum<P::Extra>, SolveReport)> {
    minimize_from(prob, q0, None, opts, ctl)
}

/// [`minimize`] with the first inverse Hessian given (`h0`, n x n row-major; e.g. a related
/// problem's [`Minimum::inv_hessian`]) instead of [`Chart::initial_inverse_hessian`], which
/// still serves as the reset after a non-descent direction. An `h0` of the wrong size or with
/// a non-finite entry is ignored.
pub fn minimize_from<P: Chart>(
    prob: &mut P,
    q0: Vec<f64>,
    h0: Option<Vec<f64>>,
    opts: &Options,
    ctl: &Control,
) -> Result<(Minimum<P::Extra>, SolveReport)> {
    let mut q = q0;
    let (mut f, mut extra) = prob.eval(&q)?;
    let mut n_eval = 1;
    let mut res = prob.residual(&q, &extra);
    let mut history = vec![res];
    let mut gx = prob.chart_gradient(&q, &extra);
    let n = gx.len();
    // `fresh`: h is the initial inverse Hessian (a given h0 is not: a failed line search along
    // it is retried along the initial metric)
    let (mut h, mut fresh) = match h0 {
        Some(h) if h.len() == n * n && h.iter().all(|v| v.is_finite()) => (h, false),
        _ => (prob.initial_inverse_hessian(&q), true),
    };
    let mut converged = res < opts.tol;
    let mut n_iter = 0;
    let mut f_history = vec![f];
    while !converged && n_iter < opts.max_iter {
        ctl.checkpoint()?;
        n_iter += 1;
        let mut d: Vec<f64> = (0..n)
            .map(|i| -(0..n).map(|j| h[i * n + j] * gx[j]).sum::<f64>())
            .collect();
        let mut slope: f64 = d.iter().zip(&gx).map(|(a, b)| a * b).sum();
        if slope >= 0.0 {
            h = prob.initial_inverse_hessian(&q);
            fresh = true;
            (d, slope) = steepest(&h, &gx);
        }
        let mut accepted = None;
        loop {
            let big = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            if big > opts.max_step {
                d.iter_mut().for_each(|v| *v *= opts.max_step / big);
                slope *= opts.max_step / big;
            }
            let mut step = 1.0;
            for _ in 0..=MAX_HALVINGS {
                let qn = prob.retract(&q, step, &d);
                if qn == q {
                    break; // the step rounds away: a null step would pass the Armijo test
                }
                match prob.eval(&qn) {
                    Ok((fnew, xnew)) => {
                        n_eval += 1;
                        let rnew = prob.residual(&qn, &xnew);
                        let armijo = fnew <= f + 1e-4 * step * slope;
                        let flat = (fnew - f).abs() <= 1e-12 * (f.abs() + 1.0) && rnew < res;
                        if armijo || flat {
                            accepted = Some((qn, fnew, xnew, rnew));
                            break;
                        }
                    }
                    // A step into overflow: shorten it.
                    Err(AkError::NonFinite { .. }) | Err(AkError::NotPositiveDefinite { .. }) => {
                        n_eval += 1
                    }
                    Err(e) => return Err(e),
                }
                step *= 0.5;
            }
            if accepted.is_some() || fresh {
                break;
            }
            // the quasi-Newton direction failed: retry once along the initial metric
            h = prob.initial_inverse_hessian(&q);
            fresh = true;
            (d, slope) = steepest(&h, &gx);
        }
        let Some((qn, fnew, xnew, rnew)) = accepted else {
            break;
        };
        let s: Vec<f64> = prob.chart_difference(&qn, &q);
        let gxn = prob.chart_gradient(&qn, &xnew);
        let yv: Vec<f64> = gxn.iter().zip(&gx).map(|(a, b)| a - b).collect();
        let sy: f64 = s.iter().zip(&yv).map(|(a, b)| a * b).sum();
        let ny = yv.iter().map(|v| v * v).sum::<f64>().sqrt();
        let ns = s.iter().map(|v| v * v).sum::<f64>().sqrt();
        if sy > 1e-12 * ny * ns {
            // H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T
            let rho = 1.0 / sy;
            let hy: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|j| h[i * n + j] * yv[j]).sum())
                .collect();
            let yhy: f64 = yv.iter().zip(&hy).map(|(a, b)| a * b).sum();
            for i in 0..n {
                for j in 0..n {
                    h[i * n + j] += -rho * (hy[i] * s[j] + s[i] * hy[j])
                        + (rho * rho * yhy + rho) * s[i] * s[j];
                }
            }
            fresh = false;
        }
        q = qn;
        f = fnew;
        extra = xnew;
        gx = gxn;
        res = rnew;
        history.push(res);
        f_history.push(f);
        converged = res < opts.tol;
        let k = history.len();
        if !converged && k > STALL_WINDOW {
            let f_then = f_history[k - 1 - STALL_WINDOW];
            let best_then = history[..k - STALL_WINDOW].iter().cloned().fold(f64::INFINITY, f64::min);
            let best_now = history[k - STALL_WINDOW..].iter().cloned().fold(f64::INFINITY, f64::min);
            if f_then - f <= 1e-12 * (f.abs() + 1.0) && best_now > 0.5 * best_then {
                break; // stalled: round-off, not the optimum, limits the residual
            }
        }
    }
    let report = SolveReport::new("bfgs", converged, n_iter, n_eval, res, history);
    Ok((
        Minimum {
            q,
            f,
            extra,
            inv_hessian: h,
        },
        report,
    ))
}
