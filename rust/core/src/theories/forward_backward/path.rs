//! Solving along a path of (width, temperature) points, and the options' validation.
use super::{Method, Options, Point, Problem, Solution};
use crate::control::Control;
use crate::error::{invalid, Result};
use crate::solve::Path;
use crate::threads::with_threads;
use crate::validate;

/// Validates the options.
fn check(points: &[Point], opts: &Options) -> Result<()> {
    for pt in points {
        if pt.width.is_nan() || pt.width <= 0.0 {
            return Err(invalid(
                "width",
                format!("must be > 0 (inf allowed), got {}", pt.width),
            ));
        }
        validate::temperature(pt.temperature)?;
    }
    validate::tol(opts.tol)?;
    if !(opts.start.is_finite() && opts.start >= 1.0) {
        return Err(invalid(
            "start",
            format!("must be finite and >= 1, got {}", opts.start),
        ));
    }
    if opts.n_samples < 2 {
        return Err(invalid(
            "n_samples",
            format!("must be >= 2, got {}", opts.n_samples),
        ));
    }
    if !(opts.min_kish > 0.0 && opts.min_kish <= 1.0) {
        return Err(invalid(
            "min_kish",
            format!("must be in (0, 1], got {}", opts.min_kish),
        ));
    }
    if opts.max_iter == 0 || opts.n_anneal == 0 || opts.krylov == 0 || opts.max_stages == 0 {
        return Err(invalid(
            "max_iter",
            "max_iter, n_anneal, krylov and max_stages must be >= 1",
        ));
    }
    Ok(())
}

/// Solves at each point in order (`width = inf`: the NNGP kernels); a point warm-starts from the previous one when its width is
/// not larger (annealing continues from there), otherwise it anneals from the NNGP again.
/// Progress counts converged annealing stages.
pub fn solve_path(
    prob: &Problem,
    points: &[Point],
    opts: &Options,
    n_threads: usize,
    ctl: &Control,
) -> Result<Path<Solution>> {
    check(points, opts)?;
    with_threads(n_threads, |par| {
        Path::walk(points, |pt, done: &[Solution]| match opts.method {
            // N = inf: Ct = 0 and the kernels are the NNGP ones (exactly, by either method)
            _ if pt.width.is_infinite() => {
                ctl.checkpoint()?;
                let mut s = prob.perturbative_solution(pt.width, pt.temperature, opts, par)?;
                s.report.solver = "nngp";
                Ok(s)
            }
            Method::Perturbative => {
                ctl.checkpoint()?;
                prob.perturbative_solution(pt.width, pt.temperature, opts, par)
            }
            Method::Full if !prob.is_linear() => {
                ctl.checkpoint()?;
                prob.anneal_sampled(pt.width, pt.temperature, opts, par, ctl)
            }
            Method::Full => {
                let prev = points
                    .get(done.len().wrapping_sub(1))
                    .filter(|_| !done.is_empty());
                let warm = match (done.last(), prev) {
                    (Some(s), Some(pp))
                        if pp.temperature == pt.temperature && s.report.converged =>
                    {
                        Some((s.kernels.as_slice(), pp.width))
                    }
                    _ => None,
                };
                prob.anneal(warm, pt.width, pt.temperature, opts, par, ctl)
            }
        })
    })
}
