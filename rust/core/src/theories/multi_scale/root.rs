//! The scalar root `F(Q) = 0` of eq. (2) (module docs of [`super`]), in the eigenbasis of `Kn`:
//! Newton in `ln Q`, safeguarded by a bracket grown geometrically from the warm start.
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
}

/// `(F(Q), Q dF/dQ)` of eq. (2).
pub(super) fn residual(sp: &Spec<'_>, q: f64) -> (f64, f64) {
    let Spec {
        lam,
        r,
        nc,
        t,
        chi,
        n,
        corr,
    } = *sp;
    let (mut d, mut dd, mut tr, mut dtr) = (0.0, 0.0, 0.0, 0.0);
    for (&l, &rk) in lam.iter().zip(r) {
        let g = q * l + t;
        let e = rk * l / (g * g);
        d += e;
        dd += -2.0 * e * l / g;
        if corr {
            tr += nc as f64 * l / g;
            dtr += -(nc as f64) * l * l / (g * g);
        }
    }
    let f = (q - 1.0) - chi * q / n * d + q / n * tr;
    let df = 1.0 - chi / n * (d + q * dd) + (tr + q * dtr) / n;
    (f, q * df)
}

/// `S(Q)` of eq. (1).
pub(super) fn action(sp: &Spec<'_>, q: f64) -> f64 {
    let Spec {
        lam,
        r,
        nc,
        t,
        chi,
        n,
        corr,
    } = *sp;
    let mut s = if n.is_finite() {
        0.5 * n * (q - q.ln())
    } else {
        0.0
    };
    for (&l, &rk) in lam.iter().zip(r) {
        let g = q * l + t;
        s += 0.5 * chi * rk / g;
        if corr {
            s += 0.5 * nc as f64 * g.ln();
        }
    }
    s
}

/// `S''(Q)` of eq. (3) (inf at infinite width: the scale is pinned).
pub(super) fn curvature(sp: &Spec<'_>, q: f64) -> f64 {
    let Spec {
        lam,
        r,
        nc,
        t,
        chi,
        n,
        corr,
    } = *sp;
    if n.is_infinite() {
        return f64::INFINITY;
    }
    let mut h = 0.5 * n / (q * q);
    for (&l, &rk) in lam.iter().zip(r) {
        let g = q * l + t;
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
    let mut x = q0.ln();
    let (mut f, mut df) = eval(x);
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
        n_eval += 1;
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
    Ok((
        x.exp(),
        SolveReport::new("scalar_root", converged, n_iter, n_eval, f.abs(), history),
    ))
}
