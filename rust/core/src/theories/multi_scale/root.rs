//! The scalar root `F(Q) = 0` of eq. (2) (module docs of [`super`]), in the eigenbasis of `Kn`:
//! Newton in `ln Q`, safeguarded by a bracket grown geometrically from the warm start. Deep nets
//! (`L >= 2`, kernel scale `U = Q^L`) can have several stationary points (first-order
//! transitions): [`solve_global`] brackets every sign change of `F` on a grid in `ln Q` and
//! returns the global minimum of `S`.
use super::Options;
use crate::error::{AkError, Result};
use crate::solve::report::SolveReport;

/// The spectral data of eq. (1)-(3) at one point: eigenvalues `lam` of `Kn`, `r_k` the squared
/// row norms of `V^T Y`, `nc` outputs, and the point (`t`, `chi`, `n`), the order (`corr`).
#[derive(Clone, Copy)]
pub(super) struct Spec<'a> {
    pub lam: &'a [f64],
    pub r: &'a [f64],
    pub nc: usize,
    pub t: f64,
    pub chi: f64,
    pub n: f64,
    pub corr: bool,
    /// Number of hidden layers `L`; the kernel scale is `U = Q^L`.
    pub depth: usize,
}

/// `(F(Q), Q dF/dQ)` of eq. (2) (deep: `U = Q^L` in place of the `Q` multiplying the data and
/// trace terms and inside `G`).
pub(super) fn residual(sp: &Spec<'_>, q: f64) -> (f64, f64) {
    let Spec {
        lam,
        r,
        nc,
        t,
        chi,
        n,
        corr,
        depth,
    } = *sp;
    let big_l = depth as i32;
    let uq = q.powi(big_l);
    let (mut d, mut dd, mut tr, mut dtr) = (0.0, 0.0, 0.0, 0.0);
    for (&l, &rk) in lam.iter().zip(r) {
        let g = uq * l + t;
        let e = rk * l / (g * g);
        d += e;
        dd += -2.0 * e * l / g;
        if corr {
            tr += nc as f64 * l / g;
            dtr += -(nc as f64) * l * l / (g * g);
        }
    }
    let f = (q - 1.0) - chi * uq / n * d + uq / n * tr;
    if depth == 1 {
        let df = 1.0 - chi / n * (d + q * dd) + (tr + q * dtr) / n;
        return (f, q * df);
    }
    // Q dF/dQ = Q + L U dR/dU, R(U) = -chi U D / N + U tr / N
    let dr = -chi / n * (d + uq * dd) + (tr + uq * dtr) / n;
    (f, q + depth as f64 * uq * dr)
}

/// `S(Q)` of eq. (1) (deep: `L N / 2 (Q - ln Q)` and `G = Q^L Kn + T I`).
pub(super) fn action(sp: &Spec<'_>, q: f64) -> f64 {
    let Spec {
        lam,
        r,
        nc,
        t,
        chi,
        n,
        corr,
        depth,
    } = *sp;
    let uq = q.powi(depth as i32);
    let mut s = if n.is_finite() {
        0.5 * depth as f64 * n * (q - q.ln())
    } else {
        0.0
    };
    for (&l, &rk) in lam.iter().zip(r) {
        let g = uq * l + t;
        s += 0.5 * chi * rk / g;
        if corr {
            s += 0.5 * nc as f64 * g.ln();
        }
    }
    s
}

/// `S''(Q)` of eq. (3) (inf at infinite width: the scale is pinned). Deep nets: the precision
/// of the kernel scale `U` with the `L` layer scales integrated out in the Laplace
/// approximation (at a stationary point, in `ln Q_l`: Hessian `(N Q / 2) I + D''(ln U) 1 1^T`,
/// so `Var(ln U) = L / (N Q / 2 + L D'')`), i.e.
/// `S_UU = [N Q / (2 L) - N (Q - 1) / 2] / U^2 + D_UU`, `D(U) = chi/2 y^T G^{-1} y [+ 1/2 ln det G]`;
/// `L = 1` is `S''(Q)`.
pub(super) fn curvature(sp: &Spec<'_>, q: f64) -> f64 {
    let Spec {
        lam,
        r,
        nc,
        t,
        chi,
        n,
        corr,
        depth,
    } = *sp;
    if n.is_infinite() {
        return f64::INFINITY;
    }
    let uq = q.powi(depth as i32);
    let mut h = if depth == 1 {
        0.5 * n / (q * q)
    } else {
        let big_l = depth as f64;
        (0.5 * n * q / big_l - 0.5 * n * (q - 1.0)) / (uq * uq)
    };
    for (&l, &rk) in lam.iter().zip(r) {
        let g = uq * l + t;
        h += chi * rk * l * l / (g * g * g);
        if corr {
            h -= 0.5 * nc as f64 * l * l / (g * g);
        }
    }
    h
}

/// The root nearest the warm start `q0` in the direction `F` points (continuation: from the
/// NNGP `Q = 1`, or the previous point of a path).
pub(super) fn solve(sp: &Spec<'_>, opts: &Options, q0: f64) -> Result<(f64, SolveReport)> {
    let eval = |x: f64| residual(sp, x.exp());
    let mut n_eval = 0usize;
    let x = q0.ln();
    let (f, df) = eval(x);
    n_eval += 1;
    let mut history = vec![f.abs()];
    // bracket [lo, hi] in ln Q with F(lo) < 0 < F(hi) (F -> -1 as Q -> 0, F -> +inf as Q -> inf)
    let (mut lo, mut hi) = (x, x);
    let mut step = std::f64::consts::LN_2;
    if f < 0.0 {
        loop {
            hi += step;
            step *= 2.0;
            n_eval += 1;
            if eval(hi).0 > 0.0 || hi > 700.0 {
                break;
            }
            lo = hi;
        }
    } else if f > 0.0 {
        loop {
            lo -= step;
            step *= 2.0;
            n_eval += 1;
            if eval(lo).0 < 0.0 || lo < -700.0 {
                break;
            }
            hi = lo;
        }
    }
    let (x, f, n_iter, converged) =
        refine(&eval, opts, (x, f, df), (lo, hi), &mut n_eval, &mut history)?;
    Ok((
        x.exp(),
        SolveReport::new("scalar_root", converged, n_iter, n_eval, f.abs(), history),
    ))
}

/// Safeguarded Newton in `x = ln Q` from `(x, F, dF/dx)` inside the bracket `[lo, hi]`
/// (`F(lo) < 0 < F(hi)`): `(x, F(x), iterations, converged)`.
fn refine(
    eval: &impl Fn(f64) -> (f64, f64),
    opts: &Options,
    start: (f64, f64, f64),
    bracket: (f64, f64),
    n_eval: &mut usize,
    history: &mut Vec<f64>,
) -> Result<(f64, f64, usize, bool)> {
    let (mut x, mut f, mut df) = start;
    let (mut lo, mut hi) = bracket;
    let mut n_iter = 0;
    let mut converged = f.abs() < opts.tol;
    while !converged && n_iter < opts.max_iter {
        n_iter += 1;
        let newton = x - f / df;
        x = if df > 0.0 && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        let r = eval(x);
        *n_eval += 1;
        (f, df) = r;
        if !f.is_finite() {
            return Err(AkError::NonFinite {
                name: "scale",
                msg: format!("non-finite residual at Q = {}", x.exp()),
            });
        }
        if f < 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        history.push(f.abs());
        converged = f.abs() < opts.tol || (hi - lo) < 1e-15 * (1.0 + x.abs());
    }
    Ok((x, f, n_iter, converged))
}

/// Grid of [`solve_global`]: `ln Q` in `[-GRID_SPAN, GRID_SPAN]` (the upper end lowered so that
/// `U = Q^L` stays finite).
const GRID: usize = 4000;
const GRID_SPAN: f64 = 40.0;

/// The global minimum of `S` over the stationary points of eq. (2) (deep nets: the kernel
/// scale's action can have several minima, the saddle point is the lowest, as in the deep-linear
/// mean-field closed form): every upward sign change of `F` (a minimum of `S`, since
/// `dS/dQ = L N F / (2 Q)`) on a grid in `ln Q` is refined by [`refine`]. Returns the minimiser,
/// the report, and every minimum `(Q, S(Q))` found.
pub(super) fn solve_global(sp: &Spec<'_>, opts: &Options) -> Result<(f64, SolveReport, Vec<(f64, f64)>)> {
    let eval = |x: f64| residual(sp, x.exp());
    let hi_end = GRID_SPAN.min(600.0 / sp.depth as f64);
    let node = |j: usize| -GRID_SPAN + (hi_end + GRID_SPAN) * j as f64 / (GRID - 1) as f64;
    let vals: Vec<(f64, f64)> = (0..GRID).map(|j| eval(node(j))).collect();
    let mut n_eval = GRID;
    let mut history = Vec::new();
    let mut minima = Vec::new();
    let mut best: Option<(f64, f64, f64, usize, bool)> = None; // (x, F, S, n_iter, converged)
    let mut n_iter = 0;
    for j in 0..GRID - 1 {
        let (f0, f1) = (vals[j].0, vals[j + 1].0);
        if !(f0 < 0.0 && f1 >= 0.0) {
            continue;
        }
        let (lo, hi) = (node(j), node(j + 1));
        let start = if f1 == 0.0 { (hi, f1, vals[j + 1].1) } else { (lo, f0, vals[j].1) };
        let (x, f, it, conv) = refine(&eval, opts, start, (lo, hi), &mut n_eval, &mut history)?;
        n_iter += it;
        let s = action(sp, x.exp());
        minima.push((x.exp(), s));
        if best.map_or(true, |b| s < b.2) {
            best = Some((x, f, s, it, conv));
        }
    }
    let (x, f, _, _, converged) = best.ok_or_else(|| AkError::NonFinite {
        name: "scale",
        msg: format!(
            "no stationary point of the scale's action for ln Q in [{}, {hi_end}]",
            -GRID_SPAN
        ),
    })?;
    if history.is_empty() {
        history.push(f.abs());
    }
    Ok((
        x.exp(),
        SolveReport::new("scalar_scan", converged, n_iter, n_eval, f.abs(), history),
        minima,
    ))
}
