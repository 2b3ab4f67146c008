//! The weight-decay fixed point of gradient flow in mean-field (muP) scaling at infinite width:
//! the dynamical mean-field theory's stationary state and its adaptive kernel predictors
//! (Lauditi, Bordelon & Pehlevan 2025, the aNTK family; digest §3).
//!
//! Convention (that of `train_gd(parameterization="mean_field")`):
//! `h^1 = sigma_w W^0 x / sqrt(d) + sigma_b b^0`, `h^{l+1} = sigma_w W^l phi(h^l) / sqrt(N) + sigma_b b^l`,
//! `f = w . phi(h^L) / (gamma N)`, and the flow `d theta / dt = -(N gamma^2 grad 1/2 sum (f - y)^2 + lambda theta)`,
//! from `theta(0) ~ N(0, I)`. Its Lyapunov function is `J = N gamma^2/2 |f - y|^2 + lambda/2 |theta|^2`.
//!
//! Infinite width is represented by `M` particles (neurons) per hidden layer. For one hidden
//! layer this is exactly the authors' particle DMFT (digest §3.1): neurons interact only through
//! the output, and the particle update `h_i += dt [gamma K^0 (Delta * g_i) - lambda h_i]`,
//! `z_i += dt [gamma phi(h_i) . Delta - lambda z_i]` is the network's GD step written on `h = W x`.
//! Deeper layers couple through `M x M` weights (the mean-field couplings), so a deep run is the
//! width-M network's flow; its kernels carry the same `O(1/sqrt M)` Monte-Carlo error.
//! With d > P the inputs are replaced by the P x r coordinates `X V` of their span
//! (`V = sqrt(r/d) X^T U diag(w)^{-1/2}`, `X X^T = U diag(w) U^T`, r = rank), which leaves `K^0`
//! and every preactivation unchanged; the component of `W^0` outside the span only decays
//! (`e^{-lambda t}`), so it is zero at the fixed point and test inputs are mapped by `V` too.
//!
//! The flow is integrated by explicit Euler steps (`dt` fixed, or adaptive: halved when `J` does
//! not decrease, grown after a run of accepted steps), then polished by L-BFGS on `J` from the
//! point the flow selected, until the stationarity residual `rms(grad J)` is below `tol`.
//! At the fixed point `lambda w = gamma phi(h^L)^T Delta` (`Delta = y - f`), hence the readout
//! predictor `f(x*) = Phi^L(x*, X)(Phi^L + lambda I)^{-1} y` for any activation, and for positively
//! homogeneous nets (bias-free relu or linear, degree L + 1) Euler's theorem gives the NTK form
//! `f(x*) = K(x*, X)(K + (L+1) lambda I)^{-1} y`. The initial output (O(1/sqrt M)) is not
//! subtracted: at infinite width it vanishes, and the fixed point keeps no memory of it.
pub mod flow;
pub mod predict;

pub use predict::{predict, Form};

use crate::control::Control;
use crate::error::{invalid, Result};
use crate::finite::network::{FiniteMlp, Parameterization};
use crate::kernels::activation::Activation;
use crate::kernels::net::Mlp;
use crate::linalg::{matmul, symmetric_eigen, RANK_RCOND};
use crate::rng::Rng;
use crate::solve::{Path, SolveReport};
use faer::{Accum, Mat, MatRef, Par};

/// Settings of the fixed-point solve (the defaults of `GradientFlowFixedPoint`).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Particles (neurons) per hidden layer, M.
    pub n_particles: usize,
    /// Seed of the initial draw: the same stream as `train_gd` member 0 with this seed.
    pub seed: u64,
    /// Euler step; 0 chooses `1 / (lambda_max(K_NTK) + lambda)` at the start.
    pub dt: f64,
    /// Adapt the step (halve when J does not decrease, grow by 1.25 after 20 accepted steps).
    pub adaptive: bool,
    /// Euler steps at most.
    pub max_steps: usize,
    /// Stop the flow when its residual has not fallen by 10% for this many steps (0: never); a
    /// relu flow stalls at its kink chatter and would otherwise run to `max_steps`.
    pub stall_steps: usize,
    /// Residual below which the flow hands over to the L-BFGS polish.
    pub switch_tol: f64,
    /// Converged when `rms(grad J) < tol`.
    pub tol: f64,
    /// L-BFGS iterations of the polish (0: no polish, the flow must reach `tol`).
    pub polish_iter: usize,
    /// Record (step, 1/2 |f - y|^2, J) every this many Euler steps.
    pub record_every: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            n_particles: 4096,
            seed: 0,
            dt: 0.0,
            adaptive: true,
            max_steps: 100_000,
            stall_steps: 5_000,
            switch_tol: 1e-4,
            tol: 1e-10,
            polish_iter: 5000,
            record_every: 10,
        }
    }
}

/// Maps inputs to the coordinates the particles see (identity when d <= P).
#[derive(Debug, Clone)]
pub struct InputMap {
    /// `V` (d x r), or None for the identity.
    pub v: Option<Mat<f64>>,
}

impl InputMap {
    pub fn apply(&self, x: MatRef<'_, f64>, par: Par) -> Mat<f64> {
        match &self.v {
            None => x.to_owned(),
            Some(v) => {
                let mut out = Mat::<f64>::zeros(x.nrows(), v.ncols());
                matmul(out.as_mut(), Accum::Replace, x, v.as_ref(), 1.0, par);
                out
            }
        }
    }

    /// Input dimension the particles see.
    pub fn dim(&self, d: usize) -> usize {
        self.v.as_ref().map_or(d, |v| v.ncols())
    }
}

/// The span coordinates of the training inputs when d > P (see the module docs).
pub fn input_map(x: MatRef<'_, f64>, par: Par) -> Result<InputMap> {
    let (p, d) = (x.nrows(), x.ncols());
    if d <= p {
        return Ok(InputMap { v: None });
    }
    // X X^T and its eigendecomposition (smaller than X itself, d > P, but counted all the same)
    crate::validate::dense_memory(
        "X",
        "the span coordinates of the inputs (X X^T and its eigendecomposition)",
        1.0 + crate::linalg::EIGEN_MATRICES,
        p,
        p,
        "use fewer samples",
    )?;
    let mut g = Mat::<f64>::zeros(p, p);
    matmul(g.as_mut(), Accum::Replace, x, x.transpose(), 1.0, par);
    crate::linalg::symmetrize(&mut g);
    let (w, u) = symmetric_eigen("X", g.as_ref(), par)?;
    let wmax = w[p - 1];
    if !(wmax > 0.0) {
        return Err(invalid("X", "all training inputs are zero"));
    }
    let keep: Vec<usize> = (0..p).filter(|&i| w[i] > RANK_RCOND * wmax).collect();
    let r = keep.len();
    let s = (r as f64 / d as f64).sqrt();
    let ur = Mat::from_fn(p, r, |i, k| u[(i, keep[k])] * s / w[keep[k]].sqrt());
    let mut v = Mat::<f64>::zeros(d, r);
    matmul(v.as_mut(), Accum::Replace, x.transpose(), ur.as_ref(), 1.0, par);
    Ok(InputMap { v: Some(v) })
}

/// The particle network: width M per layer, mean-field readout, inputs of dimension `d`.
pub fn particle_net(net: &Mlp, d: usize, n_out: usize, gamma: f64, m: usize) -> FiniteMlp {
    FiniteMlp {
        d,
        widths: vec![m; net.depth],
        n_out,
        activation: net.activation.clone(),
        sigma_w: net.sigma_w,
        sigma_b: net.sigma_b,
        param: Parameterization::MeanField { gamma },
    }
}

/// Whether the NTK form applies: bias-free relu or linear networks (positively homogeneous).
pub fn homogeneous(net: &Mlp) -> bool {
    net.sigma_b == 0.0 && matches!(net.activation, Activation::Relu | Activation::Linear)
}

/// The fixed point at one (gamma, lambda).
#[derive(Debug, Clone)]
pub struct FixedPoint {
    pub gamma: f64,
    pub weight_decay: f64,
    /// Particle parameters (the particle network's flat layout).
    pub theta: Vec<f64>,
    /// Feature kernels `Phi^l` (l = 1..L) and gradient kernels `G^l` of each output, NTK of each
    /// output, on the training points.
    pub feature_kernels: Vec<Mat<f64>>,
    pub gradient_kernels: Vec<Vec<Mat<f64>>>,
    pub ntk: Vec<Mat<f64>>,
    /// Network outputs on the training points at the fixed point.
    pub train_output: Mat<f64>,
    /// `(Phi^L + lambda I)^{-1} Y` and, for homogeneous nets, `(K_c + (L+1) lambda I)^{-1} y_c`.
    pub dual_readout: Mat<f64>,
    pub dual_ntk: Option<Mat<f64>>,
    /// Every particle decayed (`max diag Phi^L < DEAD`): the dead state f = 0.
    pub dead: bool,
    /// Flow time integrated, Euler steps taken, final step.
    pub time: f64,
    pub n_steps: usize,
    pub dt: f64,
    /// (step, 1/2 |f - y|^2, J) along the flow.
    pub loss_curve: Vec<(usize, f64, f64)>,
    pub report: SolveReport,
}

/// `max diag Phi^L` below this (the kernels are O(1) when alive) marks the dead state.
pub const DEAD: f64 = 1e-12;

fn check_args(net: &Mlp, x: MatRef<'_, f64>, y: MatRef<'_, f64>, opts: &Options) -> Result<()> {
    net.validate()?;
    if net.depth == 0 {
        return Err(invalid("net", "the gradient-flow fixed point needs at least one hidden layer (depth >= 1)"));
    }
    if matches!(net.activation, Activation::Custom(_)) {
        return Err(invalid("activation", "the gradient-flow fixed point supports the built-in activations only"));
    }
    if !(net.sigma_w > 0.0) {
        return Err(invalid("sigma_w", format!("must be > 0, got {}", net.sigma_w)));
    }
    crate::validate::finite_mat("X", x)?;
    crate::validate::targets(y, x.nrows())?;
    if opts.n_particles == 0 {
        return Err(invalid("n_particles", "must be >= 1"));
    }
    if opts.max_steps == 0 || opts.record_every == 0 {
        return Err(invalid("max_steps", "max_steps and record_every must be >= 1"));
    }
    if !(opts.dt.is_finite() && opts.dt >= 0.0) {
        return Err(invalid("dt", format!("must be finite and >= 0 (0: automatic), got {}", opts.dt)));
    }
    crate::validate::tol(opts.tol)?;
    if !(opts.switch_tol.is_finite() && opts.switch_tol >= 0.0) {
        return Err(invalid("switch_tol", "must be finite and >= 0"));
    }
    Ok(())
}

fn check_point(gamma: f64, lambda: f64) -> Result<()> {
    if !(gamma.is_finite() && gamma > 0.0) {
        return Err(invalid("gamma", format!("must be finite and > 0, got {gamma}")));
    }
    if !(lambda.is_finite() && lambda > 0.0) {
        return Err(invalid(
            "weight_decay",
            format!("must be finite and > 0 (without weight decay gradient flow has no fixed point selecting the kernels), got {lambda}"),
        ));
    }
    Ok(())
}

/// Fixed points along a path of `(gamma, weight_decay)` points, each warm-started from the
/// previous one (from the initial draw after a dead point, which a warm start could not leave).
/// The first starts from `init` (particle parameters in the particle network's layout, on the
/// mapped inputs) or from the draw `theta ~ N(0, I)` of `seed`. Progress counts steps (flow
/// steps, then the polish's L-BFGS iterations) with no total (the flow stops at its tolerance
/// or when it stalls; `max_steps` only bounds it). An interrupt keeps the points solved before
/// it.
pub fn solve_path(
    net: &Mlp,
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    points: &[(f64, f64)],
    init: Option<&[f64]>,
    opts: &Options,
    par: Par,
    ctl: &Control,
) -> Result<(InputMap, Path<FixedPoint>)> {
    check_args(net, x, y, opts)?;
    if points.is_empty() {
        return Err(invalid("gamma", "the path is empty"));
    }
    for &(g, l) in points {
        check_point(g, l)?;
    }
    let map = input_map(x, par)?;
    let xr = map.apply(x, par);
    let pnet = particle_net(net, xr.ncols(), y.ncols(), points[0].0, opts.n_particles);
    pnet.check_memory(1, 16, x.nrows(), 2 * net.depth + 2 + y.ncols() * (net.depth + 1), false)?;
    let theta0 = match init {
        Some(t) if t.len() != pnet.layout().len => {
            return Err(crate::error::shape(
                "init",
                format!("has {} entries, the particle network has {} parameters", t.len(), pnet.layout().len),
            ))
        }
        Some(t) => {
            crate::validate::finite("init", t)?;
            t.to_vec()
        }
        None => {
            let mut t = vec![0.0; pnet.layout().len];
            Rng::new(opts.seed, 0).fill_normal(&mut t);
            t
        }
    };
    let path = Path::walk(points, |&(gamma, lambda), out: &[FixedPoint]| {
        let pnet = particle_net(net, xr.ncols(), y.ncols(), gamma, opts.n_particles);
        let start = match out.last() {
            Some(prev) if !prev.dead => prev.theta.clone(),
            _ => theta0.clone(),
        };
        flow::fixed_point(net, &pnet, xr.as_ref(), y, gamma, lambda, start, opts, par, ctl)
    })?;
    Ok((map, path))
}
