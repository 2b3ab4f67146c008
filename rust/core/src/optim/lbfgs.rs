//! Limited-memory BFGS with a weak-Wolfe line search (bracketing and bisection). Near the
//! optimum the objective changes by round-off only, so an "approximate Wolfe" point
//! (Hager-Zhang) is accepted too. Points where the objective is not finite (`None`) shrink the
//! step.
#![allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x > 0.0)` also rejects NaN
use crate::control::Control;
use crate::error::Result;
use crate::solve::SolveReport;

/// Memory budget of the history (bytes) when `memory = 0`.
const LBFGS_BYTES: f64 = 256e6;

/// Stopping rule and history length.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Converged when the caller's residual is below `tol`.
    pub tol: f64,
    pub max_iter: usize,
    /// History length (0: automatic, 30 capped by a 256 MB budget, at least 5).
    pub memory: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tol: 1e-10,
            max_iter: 5000,
            memory: 0,
        }
    }
}

/// `(objective, gradient, residual)` at a point, None where the objective is not finite.
pub type Eval = Option<(f64, Vec<f64>, f64)>;

/// Minimises from `x0`, where `start = eval(x0)` (the caller names the failure of an
/// inadmissible start). Stops when the residual is below `opts.tol`, after `opts.max_iter`
/// iterations, or when the line search finds no acceptable point.
pub fn minimize<F>(
    mut eval: F,
    x0: Vec<f64>,
    start: (f64, Vec<f64>, f64),
    opts: &Options,
    ctl: &Control,
) -> Result<(Vec<f64>, SolveReport)>
where
    F: FnMut(&[f64]) -> Eval,
{
    let n = x0.len();
    let memory = if opts.memory > 0 {
        opts.memory
    } else {
        ((LBFGS_BYTES / (16.0 * n as f64)) as usize).clamp(5, 30)
    };
    let mut x = x0;
    let (mut f, mut g, mut res) = start;
    let mut n_eval = 1;
    let mut history = vec![res];
    let mut hist_s: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> =
        std::collections::VecDeque::new();
    let dot = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
    let mut n_iter = 0;
    while res >= opts.tol && n_iter < opts.max_iter {
        ctl.checkpoint()?;
        n_iter += 1;
        // two-loop recursion
        let mut d: Vec<f64> = g.clone();
        let mut alphas = Vec::with_capacity(hist_s.len());
        for (s, y, rho) in hist_s.iter().rev() {
            let al = rho * dot(s, &d);
            for (di, yi) in d.iter_mut().zip(y) {
                *di -= al * yi;
            }
            alphas.push(al);
        }
        let scale = match hist_s.back() {
            Some((s, y, _)) => dot(s, y) / dot(y, y),
            None => 1.0f64.min(1.0 / g.iter().fold(0.0f64, |m, v| m.max(v.abs()))),
        };
        d.iter_mut().for_each(|v| *v *= scale);
        for ((s, y, rho), al) in hist_s.iter().zip(alphas.iter().rev()) {
            let be = rho * dot(y, &d);
            for (di, si) in d.iter_mut().zip(s) {
                *di += (al - be) * si;
            }
        }
        d.iter_mut().for_each(|v| *v = -*v);
        let mut gd = dot(&g, &d);
        if !(gd < 0.0) {
            hist_s.clear();
            let sc = 1.0f64.min(1.0 / g.iter().fold(0.0f64, |m, v| m.max(v.abs())));
            d = g.iter().map(|v| -sc * v).collect();
            gd = dot(&g, &d);
        }
        // weak-Wolfe line search by bracketing/bisection; near the optimum F changes by
        // round-off only, so an "approximate Wolfe" point (Hager-Zhang) is accepted too.
        let (c1, c2) = (1e-4, 0.9);
        let (mut lo, mut hi, mut step) = (0.0f64, f64::INFINITY, 1.0f64);
        let mut accepted: Option<(f64, f64, Vec<f64>, f64)> = None;
        let mut fallback: Option<(f64, f64, Vec<f64>, f64)> = None;
        for _ in 0..60 {
            let xn: Vec<f64> = x.iter().zip(&d).map(|(a, b)| a + step * b).collect();
            n_eval += 1;
            match eval(&xn) {
                None => hi = step,
                Some((fnew, gnew, rnew)) => {
                    let gdn = dot(&gnew, &d);
                    let armijo = fnew <= f + c1 * step * gd;
                    let approx =
                        fnew <= f + 1e-12 * (f.abs() + 1.0) && (2.0 * c1 - 1.0) * gd >= gdn;
                    if !(armijo || approx) {
                        hi = step;
                    } else if gdn < c2 * gd {
                        lo = step;
                        fallback = Some((step, fnew, gnew, rnew));
                    } else {
                        accepted = Some((step, fnew, gnew, rnew));
                        break;
                    }
                }
            }
            step = if hi.is_finite() {
                0.5 * (lo + hi)
            } else {
                2.0 * step
            };
            if hi.is_finite() && hi - lo <= 1e-16 * hi {
                break;
            }
        }
        let Some((step, fnew, gnew, rnew)) = accepted.or(fallback) else {
            break;
        };
        let s: Vec<f64> = d.iter().map(|v| step * v).collect();
        let y: Vec<f64> = gnew.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-16 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() && sy > 0.0 {
            hist_s.push_back((s.clone(), y, 1.0 / sy));
            if hist_s.len() > memory {
                hist_s.pop_front();
            }
        }
        for (xi, si) in x.iter_mut().zip(&s) {
            *xi += si;
        }
        f = fnew;
        g = gnew;
        res = rnew;
        history.push(res);
        ctl.advance(1);
    }
    let _ = f;
    let report = SolveReport::new("lbfgs", res < opts.tol, n_iter, n_eval, res, history);
    Ok((x, report))
}
