//! The particle gradient flow to its weight-decay fixed point: Euler steps on
//! `J = beta/2 |f - y|^2 + lambda/2 |theta|^2` (`beta = M gamma^2`), then an L-BFGS polish of the
//! stationarity condition `grad J = 0`, then the kernels and the predictors' dual coefficients.
use super::{homogeneous, FixedPoint, Options, DEAD};
use crate::control::Control;
use crate::error::{AkError, Result};
use crate::finite::network::FiniteMlp;
use crate::kernels::activation::Activation;
use crate::kernels::net::Mlp;
use crate::optim::lbfgs;
use crate::solve::SolveReport;
use faer::{Mat, MatRef, Par};

/// `(J, 1/2 |f - y|^2, grad J, rms(grad J))` at `theta`.
pub fn objective(
    pnet: &FiniteMlp,
    theta: &[f64],
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    lambda: f64,
    par: Par,
) -> (f64, f64, Vec<f64>, f64) {
    let beta = crate::finite::gradient_descent::gd_loss_scale(pnet);
    let mut grad = vec![0.0; theta.len()];
    let (j, half_sse, _) = pnet.potential_and_gradient(theta, x, y, beta, lambda, &mut grad, par);
    let rms = (grad.iter().map(|g| g * g).sum::<f64>() / grad.len() as f64).sqrt();
    (j, half_sse, grad, rms)
}

/// Largest eigenvalue of a symmetric PSD matrix by power iteration (a step-size scale).
fn lambda_max(k: &Mat<f64>) -> f64 {
    let p = k.nrows();
    let mut v = vec![1.0 / (p as f64).sqrt(); p];
    let mut est = 0.0;
    for _ in 0..50 {
        let w: Vec<f64> = (0..p).map(|i| (0..p).map(|j| k[(i, j)] * v[j]).sum()).collect();
        let n = w.iter().map(|a| a * a).sum::<f64>().sqrt();
        if !(n > 0.0) {
            return 0.0;
        }
        if (n - est).abs() <= 1e-6 * n {
            return n;
        }
        est = n;
        v = w.iter().map(|a| a / n).collect();
    }
    est
}

/// Solves `(K + ridge I) A = B` by Cholesky (K PSD, ridge > 0).
fn ridge_solve(k: &Mat<f64>, ridge: f64, b: MatRef<'_, f64>, par: Par) -> Result<Mat<f64>> {
    let p = k.nrows();
    let a = Mat::from_fn(p, p, |i, j| k[(i, j)] + if i == j { ridge } else { 0.0 });
    let l = crate::linalg::cholesky(a.as_ref()).ok_or_else(|| AkError::NonFinite {
        name: "X",
        msg: "the fixed point's kernel plus the ridge is not positive definite (non-finite kernels, or a weight_decay \
              too small for a rank-deficient kernel)"
            .into(),
    })?;
    let mut out = b.to_owned();
    crate::linalg::cholesky_solve_in_place(l.as_ref(), out.as_mut(), par)?;
    Ok(out)
}

/// Growth of J over its initial value that counts as divergence of a fixed-step flow.
const DIVERGED: f64 = 1e6;

/// The adaptive step never falls below the initial step divided by this.
const DT_FLOOR: f64 = 64.0;

/// Runs the flow from `theta` and polishes the fixed point (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn fixed_point(
    net: &Mlp,
    pnet: &FiniteMlp,
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    gamma: f64,
    lambda: f64,
    mut theta: Vec<f64>,
    opts: &Options,
    par: Par,
    ctl: &Control,
) -> Result<FixedPoint> {
    let (mut j, mut half_sse, mut grad, mut rms) = objective(pnet, &theta, x, y, lambda, par);
    let j0 = j;
    let mut dt = if opts.dt > 0.0 {
        opts.dt
    } else {
        let (_, k) = pnet.gradient_kernels_and_ntk(&theta, x, 0, par);
        1.0 / (lambda_max(&k) + lambda)
    };
    let dt0 = dt;
    let handover = if opts.polish_iter > 0 && !matches!(net.activation, Activation::Relu) { opts.switch_tol.max(opts.tol) } else { opts.tol };
    let (mut steps, mut time, mut streak, mut n_eval) = (0usize, 0.0f64, 0usize, 1usize);
    let mut curve = Vec::new();
    let mut history = vec![rms];
    let mut recent = std::collections::VecDeque::with_capacity(11);
    let (mut best, mut best_step) = (rms, 0usize);
    let mut stalled = false;
    while steps < opts.max_steps && rms >= handover {
        if opts.stall_steps > 0 && steps - best_step >= opts.stall_steps {
            stalled = true; // no 10% gain in the residual for stall_steps steps (relu's kink chatter)
            break;
        }
        ctl.checkpoint()?;
        if steps % opts.record_every == 0 {
            curve.push((steps, half_sse, j));
        }
        let trial: Vec<f64> = theta.iter().zip(&grad).map(|(t, g)| t - dt * g).collect();
        let (jt, ht, gt, rt) = objective(pnet, &trial, x, y, lambda, par);
        n_eval += 1;
        if opts.adaptive {
            // Non-monotone acceptance (J may not exceed its maximum over the last steps): a relu
            // neuron sliding along a kink makes the gradient chatter, and a monotone rule would
            // shrink the step to nothing there.
            let ceiling = recent.iter().fold(j, |m: f64, &v| m.max(v));
            let floor = dt0 / DT_FLOOR;
            if !(jt.is_finite() && jt <= ceiling + 1e-13 * j.abs()) && dt > floor {
                // a relu flow at a kink would shrink the step to nothing: below dt0 / DT_FLOOR
                // the step is taken anyway (the network's own GD chatters there the same way)
                dt = (0.5 * dt).max(floor);
                streak = 0;
                continue;
            }
            if !jt.is_finite() || jt > DIVERGED * j0.max(f64::MIN_POSITIVE) {
                return Err(AkError::NonFinite {
                    name: "dt",
                    msg: format!(
                        "the particle flow diverged at step {steps} even at the smallest step {dt:.3e}; \
                         check the scale of weight_decay, gamma and the data X and y"
                    ),
                });
            }
            streak += 1;
        } else if !jt.is_finite() || jt > DIVERGED * j0.max(f64::MIN_POSITIVE) {
            return Err(AkError::NonFinite {
                name: "dt",
                msg: format!("the particle flow diverged at step {steps}: J = {jt:.3e}, initially {j0:.3e}; reduce dt (now {dt})"),
            });
        }
        recent.push_back(j);
        if recent.len() > 10 {
            recent.pop_front();
        }
        theta = trial;
        (j, half_sse, grad, rms) = (jt, ht, gt, rt);
        time += dt;
        steps += 1;
        if rms < 0.9 * best {
            (best, best_step) = (rms, steps);
        }
        if steps % opts.record_every == 0 {
            history.push(rms);
        }
        if opts.adaptive && streak >= 20 {
            dt *= 1.25;
            streak = 0;
        }
        ctl.advance(1);
    }
    if history.last() != Some(&rms) {
        history.push(rms);
    }
    let mut n_iter = steps;
    let mut solver = if stalled { "gradient flow (stalled)" } else { "gradient flow" };
    // L-BFGS needs a smooth J: relu's kinks would stall its line search, so relu stops at the flow.
    let smooth = !matches!(net.activation, Activation::Relu);
    if rms >= opts.tol && opts.polish_iter > 0 && smooth {
        let eval = |t: &[f64]| {
            let (jj, _, gg, rr) = objective(pnet, t, x, y, lambda, par);
            jj.is_finite().then_some((jj, gg, rr))
        };
        let lo = lbfgs::Options { tol: opts.tol, max_iter: opts.polish_iter, memory: 0 };
        let (t, rep) = lbfgs::minimize(eval, theta, (j, grad, rms), &lo, ctl)?;
        theta = t;
        n_iter += rep.n_iter;
        n_eval += rep.n_eval;
        history.extend_from_slice(&rep.residual_history[1..]);
        rms = rep.residual;
        solver = "gradient flow + L-BFGS";
    }
    finish(net, pnet, x, y, gamma, lambda, theta, par, FlowStats { steps, time, dt, curve, n_iter, n_eval, rms, history, solver, tol: opts.tol })
}

struct FlowStats {
    steps: usize,
    time: f64,
    dt: f64,
    curve: Vec<(usize, f64, f64)>,
    n_iter: usize,
    n_eval: usize,
    rms: f64,
    history: Vec<f64>,
    solver: &'static str,
    tol: f64,
}

/// Kernels, outputs and dual coefficients at the final parameters.
#[allow(clippy::too_many_arguments)]
fn finish(
    net: &Mlp,
    pnet: &FiniteMlp,
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    gamma: f64,
    lambda: f64,
    theta: Vec<f64>,
    par: Par,
    s: FlowStats,
) -> Result<FixedPoint> {
    let fw = pnet.forward(&theta, x, par);
    let feature_kernels = pnet.feature_kernels(&fw, par);
    let (mut gradient_kernels, mut ntk) = (Vec::new(), Vec::new());
    for c in 0..y.ncols() {
        let (g, k) = pnet.gradient_kernels_and_ntk(&theta, x, c, par);
        gradient_kernels.push(g);
        ntk.push(k);
    }
    let finite = |m: &Mat<f64>| (0..m.ncols()).all(|j| m.col_as_slice(j).iter().all(|v| v.is_finite()));
    if !(feature_kernels.iter().all(finite) && ntk.iter().all(finite) && finite(&fw.f)) {
        return Err(AkError::NonFinite {
            name: "X",
            msg: "the fixed point's kernels or outputs are not finite; rescale the inputs or targets (X, y), gamma or weight_decay".into(),
        });
    }
    let phi_l = feature_kernels.last().unwrap();
    let dead = (0..phi_l.nrows()).map(|i| phi_l[(i, i)]).fold(0.0f64, f64::max) < DEAD;
    let dual_readout = ridge_solve(phi_l, lambda, y, par)?;
    let dual_ntk = if homogeneous(net) {
        let ridge = (net.depth + 1) as f64 * lambda;
        let mut d = Mat::<f64>::zeros(y.nrows(), y.ncols());
        for c in 0..y.ncols() {
            let a = ridge_solve(&ntk[c], ridge, y.subcols(c, 1), par)?;
            for i in 0..y.nrows() {
                d[(i, c)] = a[(i, 0)];
            }
        }
        Some(d)
    } else {
        None
    };
    let report = SolveReport::new(s.solver, s.rms < s.tol, s.n_iter, s.n_eval, s.rms, s.history);
    Ok(FixedPoint {
        gamma,
        weight_decay: lambda,
        theta,
        feature_kernels,
        gradient_kernels,
        ntk,
        train_output: fw.f,
        dual_readout,
        dual_ntk,
        dead,
        time: s.time,
        n_steps: s.steps,
        dt: s.dt,
        loss_curve: s.curve,
        report,
    })
}
