//! Inexact Newton-Krylov for nonlinear systems `r(x) = 0`: GMRES (without restart, Givens
//! rotations) on finite-difference Jacobian-vector products, and a backtracking line search on
//! `|r|`. Inadmissible points (`Ok(None)` from the residual) halve the step.
use crate::control::Control;
use crate::error::Result;
use crate::solve::SolveReport;

/// Stopping rule and Krylov settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Converged when the caller's measure is below `tol`.
    pub tol: f64,
    /// Newton iterations.
    pub max_iter: usize,
    /// Krylov subspace dimension (GMRES without restart).
    pub krylov: usize,
    /// Relative GMRES tolerance (forcing term).
    pub forcing: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tol: 1e-8,
            max_iter: 50,
            krylov: 30,
            forcing: 1e-2,
        }
    }
}

/// A stall (see [`newton_krylov_stall`]): `stall` accepted steps leave the measure above this
/// fraction of where they started.
pub const STALL_FACTOR: f64 = 0.9;

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// GMRES(m) from zero with Givens rotations: approximately solves `J d = b` to relative residual `tol`.
pub fn gmres<F: FnMut(&[f64]) -> Result<Vec<f64>>>(
    mut matvec: F,
    b: &[f64],
    tol: f64,
    m: usize,
) -> Result<Vec<f64>> {
    let n = b.len();
    let beta = norm(b);
    if beta == 0.0 {
        return Ok(vec![0.0; n]);
    }
    let mut v: Vec<Vec<f64>> = vec![b.iter().map(|x| x / beta).collect()];
    let mut h = vec![vec![0.0; m]; m + 1];
    let (mut cs, mut sn) = (vec![0.0; m], vec![0.0; m]);
    let mut g = vec![0.0; m + 1];
    g[0] = beta;
    let mut k = 0;
    for j in 0..m {
        let mut w = matvec(&v[j])?;
        for i in 0..=j {
            h[i][j] = dot(&w, &v[i]);
            for (wk, vk) in w.iter_mut().zip(&v[i]) {
                *wk -= h[i][j] * vk;
            }
        }
        h[j + 1][j] = norm(&w);
        for i in 0..j {
            let t = cs[i] * h[i][j] + sn[i] * h[i + 1][j];
            h[i + 1][j] = -sn[i] * h[i][j] + cs[i] * h[i + 1][j];
            h[i][j] = t;
        }
        let r = h[j][j].hypot(h[j + 1][j]);
        let hn = h[j + 1][j];
        if r == 0.0 {
            k = j;
            break;
        }
        cs[j] = h[j][j] / r;
        sn[j] = hn / r;
        h[j][j] = r;
        h[j + 1][j] = 0.0;
        g[j + 1] = -sn[j] * g[j];
        g[j] *= cs[j];
        k = j + 1;
        if g[j + 1].abs() <= tol * beta || hn <= 1e-14 * beta {
            break;
        }
        v.push(w.iter().map(|x| x / hn).collect());
    }
    let mut y = vec![0.0; k];
    for i in (0..k).rev() {
        let s: f64 = (i + 1..k).map(|l| h[i][l] * y[l]).sum();
        y[i] = (g[i] - s) / h[i][i];
    }
    let mut d = vec![0.0; n];
    for (yi, vi) in y.iter().zip(&v) {
        for (dk, vk) in d.iter_mut().zip(vi) {
            *dk += yi * vk;
        }
    }
    Ok(d)
}

/// Inexact Newton on `r(x) = 0` (finite-difference Jacobian-vector products, GMRES, backtracking
/// on `|r|`). `residual(x, want_measure)` returns `Ok(None)` at inadmissible points (the step is
/// halved); the convergence measure is only asked for at iterates and trial points, not inside
/// the Jacobian-vector products (it costs O(P^3) per hidden layer). Returns
/// `(x, iterations, measure history)`; stops at `measure < tol` or when no step decreases `|r|`
/// (an inadmissible start returns at once with the measure +inf).
pub fn newton_krylov<F>(
    residual: F,
    x0: Vec<f64>,
    opts: &Options,
    ctl: &Control,
) -> Result<(Vec<f64>, SolveReport)>
where
    F: FnMut(&[f64], bool) -> Result<Option<(Vec<f64>, f64)>>,
{
    newton_krylov_stall(residual, x0, opts, 0, ctl)
}

/// [`newton_krylov`] that also stops on a stall: when `stall` (>= 1; 0 never) accepted steps in
/// a row together reduce the measure by less than [`STALL_FACTOR`]. A converging Newton solve
/// gains far more than that per step (quadratic convergence); one that creeps along a plateau
/// (e.g. a line search pinned on an admissibility floor) would otherwise spend every remaining
/// iteration there.
pub fn newton_krylov_stall<F>(
    mut residual: F,
    x0: Vec<f64>,
    opts: &Options,
    stall: usize,
    ctl: &Control,
) -> Result<(Vec<f64>, SolveReport)>
where
    F: FnMut(&[f64], bool) -> Result<Option<(Vec<f64>, f64)>>,
{
    let (tol, max_iter, krylov, forcing) = (opts.tol, opts.max_iter, opts.krylov, opts.forcing);
    let mut n_eval = 1;
    let report = |it: usize, n_eval: usize, hist: Vec<f64>| {
        let meas = *hist.last().unwrap();
        SolveReport::new("newton_krylov", meas < tol, it, n_eval, meas, hist)
    };
    let mut x = x0;
    let (mut r, mut meas) = match residual(&x, true)? {
        Some(v) => v,
        None => return Ok((x, report(0, n_eval, vec![f64::INFINITY]))), // inadmissible start: no progress
    };
    let mut hist = vec![meas];
    for it in 0..max_iter {
        ctl.checkpoint()?;
        if meas < tol {
            return Ok((x, report(it, n_eval, hist)));
        }
        let nx = norm(&x).max(1.0);
        let rc = r.clone();
        let xc = x.clone();
        let rhs: Vec<f64> = r.iter().map(|v| -v).collect();
        let d = gmres(
            |v: &[f64]| {
                let eps = 1e-7 * nx / norm(v).max(1e-300);
                let xe: Vec<f64> = xc.iter().zip(v).map(|(a, b)| a + eps * b).collect();
                n_eval += 1;
                Ok(match residual(&xe, false)? {
                    Some((re, _)) => re.iter().zip(&rc).map(|(a, b)| (a - b) / eps).collect(),
                    None => vec![0.0; v.len()],
                })
            },
            &rhs,
            forcing,
            krylov,
        )?;
        let nr = norm(&r);
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..30 {
            let xn: Vec<f64> = x.iter().zip(&d).map(|(a, b)| a + t * b).collect();
            n_eval += 1;
            if let Some((rn, mn)) = residual(&xn, true)? {
                if norm(&rn) <= (1.0 - 1e-4 * t) * nr {
                    accepted = Some((xn, rn, mn));
                    break;
                }
            }
            t *= 0.5;
        }
        match accepted {
            Some((xn, rn, mn)) => {
                x = xn;
                r = rn;
                meas = mn;
                hist.push(meas);
                let k = hist.len() - 1;
                if stall > 0 && k >= stall && meas >= tol && !(meas < STALL_FACTOR * hist[k - stall]) {
                    return Ok((x, report(it + 1, n_eval, hist)));
                }
            }
            None => return Ok((x, report(it, n_eval, hist))),
        }
    }
    Ok((x, report(max_iter, n_eval, hist)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::no_control;
    use faer::Mat;

    #[test]
    fn gmres_solves_a_nonsymmetric_system_in_n_steps() {
        let n = 6;
        let a = Mat::from_fn(n, n, |i, j| {
            if i == j {
                3.0 + i as f64
            } else {
                ((i * 7 + j * 3) % 5) as f64 * 0.3 - 0.5
            }
        });
        let b: Vec<f64> = (0..n).map(|i| 1.0 + i as f64).collect();
        let mv = |v: &[f64]| -> Result<Vec<f64>> {
            Ok((0..n)
                .map(|i| (0..n).map(|j| a[(i, j)] * v[j]).sum())
                .collect())
        };
        let x = gmres(mv, &b, 1e-14, n).unwrap();
        let r: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| a[(i, j)] * x[j]).sum::<f64>() - b[i])
            .collect();
        assert!(norm(&r) < 1e-11 * norm(&b), "{r:?}");
    }

    #[test]
    fn newton_krylov_solves_a_nonlinear_fixed_point_and_respects_inadmissible_points() {
        // x = cos(x) componentwise with a coupling; points with x_0 > 2 are inadmissible
        let res = |x: &[f64], _m: bool| -> Result<Option<(Vec<f64>, f64)>> {
            if x[0] > 2.0 {
                return Ok(None);
            }
            let r: Vec<f64> = (0..x.len())
                .map(|i| (x[i] + 0.1 * x[(i + 1) % x.len()]).cos() - x[i])
                .collect();
            let m = r.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            Ok(Some((r, m)))
        };
        let opts = Options {
            tol: 1e-12,
            max_iter: 50,
            krylov: 10,
            forcing: 1e-3,
        };
        let (x, rep) = newton_krylov(res, vec![0.0; 4], &opts, no_control()).unwrap();
        let (it, hist) = (rep.n_iter, rep.residual_history);
        assert!(rep.converged && rep.n_eval > it);
        assert!(*hist.last().unwrap() < 1e-12 && it < 15, "{hist:?}");
        for i in 0..4 {
            assert!(((x[i] + 0.1 * x[(i + 1) % 4]).cos() - x[i]).abs() < 1e-12);
        }
    }

    #[test]
    fn a_stalled_solve_stops_early_and_a_converging_one_is_unchanged() {
        // r(x) = x^2 + 1 has no root: |r| creeps towards its floor 1 at x = 0 (Newton overshoots,
        // the line search accepts tiny decreases)
        let res = |x: &[f64], _m: bool| -> Result<Option<(Vec<f64>, f64)>> {
            let r = x[0] * x[0] + 1.0;
            Ok(Some((vec![r], r)))
        };
        let opts = Options {
            tol: 1e-10,
            max_iter: 50,
            krylov: 1,
            forcing: 1e-3,
        };
        let (_, full) = newton_krylov(res, vec![3.0], &opts, no_control()).unwrap();
        let (_, cut) = newton_krylov_stall(res, vec![3.0], &opts, 3, no_control()).unwrap();
        assert!(!full.converged && !cut.converged);
        assert!(cut.n_iter < full.n_iter, "{} vs {}", cut.n_iter, full.n_iter);
        let h = &cut.residual_history;
        let k = h.len() - 1;
        assert!(h[k] >= STALL_FACTOR * h[k - 3], "{h:?}");
        // a converging solve never stalls: same iterates with and without the rule
        let cosfix = |x: &[f64], _m: bool| -> Result<Option<(Vec<f64>, f64)>> {
            let r: Vec<f64> = x.iter().map(|v| v.cos() - v).collect();
            let m = r.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            Ok(Some((r, m)))
        };
        let (a, ra) = newton_krylov(cosfix, vec![0.0; 3], &opts, no_control()).unwrap();
        let (b, rb) = newton_krylov_stall(cosfix, vec![0.0; 3], &opts, 2, no_control()).unwrap();
        assert!(ra.converged && a == b && ra.residual_history == rb.residual_history);
    }
}
