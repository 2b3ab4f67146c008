//! Full-batch gradient descent with weight decay on finite-width MLPs, run to a fixed point.
//!
//! `theta <- theta - lr (beta grad 1/2 sum (f - y)^2 + lambda theta)`, with `beta = 1` in
//! standard scaling and `beta = N_L gamma^2` in mean-field scaling (Lauditi, Bordelon,
//! Pehlevan 2025, `GF.py`), from a prior draw `theta_0 ~ N(0, I)`. Stops when the RMS gradient
//! falls below `tol` (a fixed point of the regularized gradient flow) or after `max_steps`.
//! Ensemble members run in parallel, each with its own RNG stream `(seed, member)`.
use crate::control::Control;
use crate::error::{invalid, AkError, Result};
use crate::finite::network::{FiniteMlp, Parameterization};
use crate::finite::posterior_sampling::prior_draw;
use crate::rng::Rng;
use faer::{Mat, MatRef, Par};
use rayon::prelude::*;

#[derive(Debug, Clone)]
pub struct GdConfig {
    pub weight_decay: f64,
    pub lr: f64,
    pub max_steps: usize,
    pub tol: f64,
    pub record_every: usize,
    pub n_ensemble: usize,
    pub seed: u64,
}

impl Default for GdConfig {
    /// The defaults of `adaptive_kernels.train_gd` (`steps` is `max_steps`).
    fn default() -> Self {
        GdConfig {
            weight_decay: 0.0,
            lr: 1e-2,
            max_steps: 10000,
            tol: 1e-8,
            record_every: 10,
            n_ensemble: 1,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GdResult {
    pub theta: Vec<f64>,
    pub n_steps: usize,
    pub converged: bool,
    pub interrupted: bool,
    pub grad_rms: f64,
    /// (step, 1/2 sum (f - y)^2, regularized objective) every `record_every` steps.
    pub loss_curve: Vec<(usize, f64, f64)>,
    pub train_output: Mat<f64>,
    pub test_output: Mat<f64>,
    pub feature_kernels: Vec<Mat<f64>>,
    pub gradient_kernels: Vec<Mat<f64>>,
    pub ntk: Mat<f64>,
}

/// The loss multiplier `beta` of gradient descent (see module docs).
pub fn gd_loss_scale(net: &FiniteMlp) -> f64 {
    match net.param {
        Parameterization::Standard { chi } => chi,
        Parameterization::MeanField { gamma } => *net.widths.last().unwrap() as f64 * gamma * gamma,
    }
}

/// One gradient-descent step in place; returns (objective, 1/2 SSE, RMS gradient) at the
/// starting point.
pub fn gd_step(
    net: &FiniteMlp,
    theta: &mut [f64],
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    cfg: &GdConfig,
    grad: &mut [f64],
) -> (f64, f64, f64) {
    let (obj, half_sse, _) = net.potential_and_gradient(
        theta,
        x,
        y,
        gd_loss_scale(net),
        cfg.weight_decay,
        grad,
        Par::Seq,
    );
    let rms = (grad.iter().map(|g| g * g).sum::<f64>() / grad.len() as f64).sqrt();
    for (t, g) in theta.iter_mut().zip(grad.iter()) {
        *t -= cfg.lr * g;
    }
    (obj, half_sse, rms)
}

/// Growth of the objective over its initial value that counts as divergence.
const DIVERGED: f64 = 1e6;

fn run_member(
    net: &FiniteMlp,
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    x_test: Option<MatRef<'_, f64>>,
    cfg: &GdConfig,
    member: usize,
    ctl: &Control,
) -> Result<GdResult> {
    let mut rng = Rng::new(cfg.seed, member as u64);
    let mut theta = prior_draw(net, &mut rng);
    let mut grad = vec![0.0; theta.len()];
    let mut curve = Vec::new();
    let (mut converged, mut interrupted) = (false, false);
    let mut steps = 0;
    let mut rms = f64::INFINITY;
    let mut obj0: Option<f64> = None;
    while steps < cfg.max_steps {
        if ctl.is_cancelled() {
            interrupted = true;
            break;
        }
        let (obj, half_sse, g) = gd_step(net, &mut theta, x, y, cfg, &mut grad);
        rms = g;
        obj0.get_or_insert(obj);
        // Diverged: non-finite, or the objective a million times its initial value (a stable
        // step size decreases it; an unstable one grows it geometrically long before overflow).
        if !obj0.unwrap().is_finite() {
            return Err(AkError::NonFinite {
                name: "X",
                msg: format!(
                    "the objective at initialization is not finite ({:.3e}, member {member}); rescale the data X \
                     and y, weight_decay or gamma",
                    obj0.unwrap()
                ),
            });
        }
        if !obj.is_finite() || !g.is_finite() || obj > DIVERGED * obj0.unwrap().max(f64::MIN_POSITIVE) {
            return Err(AkError::NonFinite {
                name: "lr",
                msg: format!(
                    "gradient descent diverged at step {steps} (member {member}): objective {obj:.3e}, \
                     initially {:.3e}; reduce lr (now {}; stable steps need lr < 2 / (weight_decay + curvature))",
                    obj0.unwrap(),
                    cfg.lr
                ),
            });
        }
        if steps % cfg.record_every == 0 {
            curve.push((steps, half_sse, obj));
        }
        if g < cfg.tol {
            // undo nothing: the step taken from a point with |grad| < tol moves theta by < lr tol
            converged = true;
            steps += 1;
            break;
        }
        steps += 1;
        ctl.advance(1);
    }
    let par = Par::Seq;
    let fw = net.forward(&theta, x, par);
    let test_output = x_test.map_or(Mat::zeros(0, net.n_out), |xt| {
        net.forward(&theta, xt, par).f
    });
    let feature_kernels = net.feature_kernels(&fw, par);
    let (gradient_kernels, ntk) = net.gradient_kernels_and_ntk(&theta, x, 0, par);
    let finite = |m: &Mat<f64>| (0..m.ncols()).all(|j| m.col_as_slice(j).iter().all(|v| v.is_finite()));
    if !(finite(&fw.f) && finite(&test_output) && finite(&ntk) && feature_kernels.iter().all(finite)) {
        return Err(AkError::NonFinite {
            name: "X",
            msg: format!(
                "the trained network's outputs, kernels or NTK overflowed (member {member}); rescale the inputs"
            ),
        });
    }
    Ok(GdResult {
        theta,
        n_steps: steps,
        converged,
        interrupted,
        grad_rms: rms,
        loss_curve: curve,
        train_output: fw.f,
        test_output,
        feature_kernels,
        gradient_kernels,
        ntk,
    })
}

/// Trains `cfg.n_ensemble` networks from independent initializations, in parallel.
pub fn train_gd(
    net: &FiniteMlp,
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    x_test: Option<MatRef<'_, f64>>,
    cfg: &GdConfig,
    ctl: &Control,
) -> Result<Vec<GdResult>> {
    net.validate()?;
    crate::finite::network::check_data(x, y)?;
    net.check_memory(cfg.n_ensemble, 4, x.nrows() + x_test.map_or(0, |t| t.nrows()), 2 * net.widths.len() + 1, false)?;
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return Err(invalid(
            "lr",
            format!("must be finite and > 0, got {}", cfg.lr),
        ));
    }
    if !(cfg.weight_decay.is_finite() && cfg.weight_decay >= 0.0) {
        return Err(invalid(
            "weight_decay",
            format!("must be finite and >= 0, got {}", cfg.weight_decay),
        ));
    }
    if !(cfg.tol.is_finite() && cfg.tol >= 0.0) {
        return Err(invalid("tol", "must be finite and >= 0"));
    }
    if cfg.n_ensemble == 0 || cfg.max_steps == 0 || cfg.record_every == 0 {
        return Err(invalid(
            "n_ensemble",
            "n_ensemble, steps and record_every must be >= 1",
        ));
    }
    if x.ncols() != net.d || y.ncols() != net.n_out {
        return Err(invalid("X", "shape does not match the network"));
    }
    if let Some(xt) = x_test {
        if xt.ncols() != net.d {
            return Err(invalid(
                "X_test",
                format!("has {} features, expected {}", xt.ncols(), net.d),
            ));
        }
    }
    ctl.set_total((cfg.n_ensemble * cfg.max_steps) as u64);
    (0..cfg.n_ensemble)
        .into_par_iter()
        .map(|m| run_member(net, x, y, x_test, cfg, m, ctl))
        .collect()
}
