//! The tilted fixed point: the saddle point of a network whose layers' single-site densities
//! over the P training preactivations are Gaussian priors tilted by the readout (Lauditi, Bordelon,
//! Pehlevan 2025; digest `lauditi_bordelon_pehlevan_2025.md` §2.2, §2.5, §4.3), sampled by MCMC
//! ([`crate::mcmc::tilted`]) and solved by Newton-Krylov with continuation in the tilt strength.
//! It sits below the theories because several use it: the nonlinear Bayesian mean-field theory
//! (`theories::mean_field`, any depth) and the tree level of the multi-scale theory
//! (`theories::multi_scale`, one hidden layer, at `gamma = sqrt(chi / N) / sigma_w` and
//! temperature `T / sigma_w^2`). Conventions of the mean-field theory (deep linear closed form in
//! `theories::mean_field::linear`): readout `f = w . phi(h^L) / (gamma N)`, temperature T,
//! `C^{l-1} = sigma_w^2 Phi^{l-1} + sigma_b^2`, `C^0 = K^0`.
//!
//! # Equations (digest §2.2, derived there; stationarity of the min-max action)
//! Layer l's single-site density over the P training preactivations of one neuron is tilted:
//! `p_l(h) ∝ N(h; 0, C^{l-1}) exp(-phi(h)^T hatPhi_l phi(h) / 2)`, and
//! * forward: `Phi^l = <phi phi^T>_{p_l}`, `H^l = <h h^T>_{p_l}`;
//! * backward: `hatPhi_L = -gamma^2 A A^T` with `A = (Phi^L + T I)^{-1} Y`, and for l < L
//!   `hatPhi_l = sigma_w^2 C_l^{-1} (C_l - H^{l+1}) C_l^{-1}` (`C_l = C^l`, the prior of layer l+1;
//!   the Gaussian-derivative identity `d ln Z / dC = (C^{-1} H C^{-1} - C^{-1}) / 2`).
//!
//! For linear phi these reduce to the closed form of the linear module (tested).
//!
//! # Algorithm (why not the authors' one)
//! The unknowns are the conjugates: `x = (hatPhi_1 .. hatPhi_{L-1}, A)` (the last layer's tilt is
//! rank C, so its dual coefficients `A` (P x C) stand for it). One "outer iteration" is the map
//! `x -> x' = backward(forward(x))`; the saddle point is its fixed point.
//! * Plain (damped) iteration of this map is unstable (digest §4.3: Jacobian eigenvalues to -37),
//!   and so is Anderson mixing for L >= 2 (measured here on deep linear nets). The fixed point is
//!   found by inexact Newton–Krylov: GMRES on finite-difference Jacobian-vector products, with a
//!   backtracking line search on `|x' - x|`; for deep linear nets with exact moments this
//!   reaches the closed form in every case tried (L <= 4, gamma <= 5).
//! * Moments come from MCMC samples of each layer's density (the parallel MALA sampler of
//!   [`crate::mcmc::tilted`]), drawn once at a reference point and *reweighted* to the current
//!   iterate with log-domain self-normalised weights
//!   `log w = log N(h; 0, C) - log N(h; 0, C_ref) - phi^T (hatPhi - hatPhi_ref) phi / 2`.
//!   The map is then a smooth deterministic function of x (common random numbers), so Newton
//!   converges to round-off on a fixed sample set. Kernels are weighted sums of `phi phi^T`,
//!   hence positive semi-definite by construction.
//! * The samples are trusted only while their Kish effective fraction `1 / (S sum w^2)` stays
//!   above `min_trial_kish` (trial points beyond are rejected by the line search); after each
//!   solve they are redrawn at the new iterate until the fraction is >= `min_kish` in every layer,
//!   so the reported solution is the fixed point on samples drawn (almost) from its own densities.
//!   The default `min_kish = 0.5` sits below the Monte-Carlo floor of the Kish fraction at
//!   redraws at low T (measurements: `benches/README.md`); a self-normalised estimate at Kish 0.5
//!   only halves the effective sample number, which `ess` reports.
//! * The final samples' chains are checked for drift
//!   ([`chain_radius`](crate::mcmc::chains::chain_radius)): under a strong relu readout tilt
//!   the density has a soft direction that MALA (stepping at the scale of the stiff ones)
//!   crosses slowly, and where the tilt is not normalizable (a copositivity question the
//!   witness search can miss) the chains run away; either way the moments are biased, and the
//!   caller is told (a warning in Python), since importance weights cannot see a tail the samples
//!   never visited.
//! * Monte-Carlo limit for L >= 2: each hidden conjugate is a P x P matrix estimated from S
//!   samples, so its noise (whitened, Frobenius) grows like P / sqrt(S_eff) times the tilt
//!   strength, and so does the log-weight spread between two sample sets' fixed points. Beyond
//!   some richness the redraws' fixed points stop agreeing (Kish < `min_kish` at every redraw).
//!   The authors used S / P = 800 and 1000 (digest, "Sample counts"); S must grow with P
//!   (measurements: `benches/README.md`).
//! * gamma continuation from the NNGP (`x = 0`): the step in gamma doubles after a successful
//!   stage and halves after a failed one. Each stage starts from `A gamma_done / gamma_try`, which
//!   keeps the last tilt `-gamma^2 A A^T` (so the stage's first samples carry Kish 1) and is a good
//!   predictor (`gamma A` varies slowly along the path). A stage fails when a redraw's solve ends
//!   unconverged without a smaller residual than the previous one. A failure to reach gamma
//!   because the tilt of an unbounded activation becomes non-normalizable is an error, never a
//!   silent result.
//!
//! This replaces the concave inner maximisation over hatPhi + outer quasi-Newton over Phi the
//! digest recommends: that scheme needs values of `ln Z` (for a line search on the action),
//! which MCMC samples do not give; the fixed-point residual needs only moments.
//!
//! # Test points
//! Test rows carry no tilt, so given a layer's training preactivations they are conditionally
//! Gaussian: `h_* = M h + s xi`, `M = C(*, X) C^{-1}`, `s^2 = C(*,*) - M C(X, *)`. One Cholesky
//! factor per layer serves all test points; the weighted samples give `Phi^l(*, X)` and
//! `Phi^l(*, *)`, which build the next layer's `C(*, X)`.
#![allow(clippy::neg_cmp_op_on_partial_ord)]
use crate::control::Control;
use crate::error::{invalid, shape, AkError, Result};
use crate::kernels::input::{input_kernel, input_kernel_diag};
use crate::kernels::net::{Mlp, Rows};
use crate::linalg::CovFactor;
use crate::mcmc::tilted::TiltConfig;
use crate::solve::{Path, SolveReport};
use crate::validate;
use faer::{Mat, MatRef};

mod map;
mod predict;
mod samples;
mod solve;

pub use map::{MapOut, Setup};
pub use predict::{carry_test_points, conditional_test_points, predict};
pub use samples::{normalized_weights, tilt_energy, LayerSamples};
pub use solve::solve;

/// Settings of the sampled solver.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub sampler: TiltConfig,
    /// Converged when the dimensionless fixed-point residual is below `tol`.
    pub tol: f64,
    /// Newton iterations per solve on one sample set.
    pub max_iter: usize,
    /// Krylov subspace dimension (GMRES without restart).
    pub krylov: usize,
    /// Relative GMRES tolerance (forcing term).
    pub forcing: f64,
    pub min_kish: f64,
    pub min_trial_kish: f64,
    /// Redraws per continuation stage.
    pub max_refresh: usize,
    /// Continuation stages (successful and failed).
    pub max_stages: usize,
    /// A Newton-Krylov solve on one sample set stops when this many accepted steps in a row
    /// reduce the residual by less than 10% (0: never; see `optim::newton_krylov_stall`).
    /// Converging solves gain orders of magnitude per step; a solve whose fixed point lies beyond
    /// the samples' trial-Kish floor creeps along the floor (measured: 40+ steps at 0.92-0.94,
    /// ~90% of a failing fit's time) and ends unconverged either way.
    pub stall: usize,
}

impl Default for Options {
    fn default() -> Self {
        // the Newton-Krylov settings are the optimizer's defaults
        let nk = crate::optim::newton_krylov::Options::default();
        Options {
            sampler: TiltConfig::default(),
            tol: nk.tol,
            max_iter: nk.max_iter,
            krylov: nk.krylov,
            forcing: nk.forcing,
            min_kish: 0.5,
            min_trial_kish: 0.1,
            max_refresh: 8,
            max_stages: 40,
            stall: 4,
        }
    }
}

/// A fitted saddle point.
#[derive(Debug, Clone)]
pub struct Solution {
    pub gamma: f64,
    pub kernels: Vec<Mat<f64>>,
    /// `hatPhi_1 .. hatPhi_L` (the last is `-gamma^2 A A^T`).
    pub conjugates: Vec<Mat<f64>>,
    /// The iterate's `A` (at the fixed point `(Phi^L + T I)^{-1} Y`).
    pub a: Mat<f64>,
    /// Convergence (`converged`: the target gamma was reached and its solve converged),
    /// Newton iterations and residual evaluations summed over the stages, and the continuation
    /// `stages`: reached gammas (positive) and failed attempts (negative).
    pub report: SolveReport,
    pub kish: Vec<f64>,
    /// MCMC effective sample size (tilt energy, summed over chains) per layer, times the Kish fraction.
    pub ess: Vec<f64>,
    pub acceptance: Vec<Vec<f64>>,
    pub n_draws: usize,
    /// The final samples (S x P per layer) and their normalised weights, for prediction.
    pub samples: Vec<Mat<f64>>,
    pub weights: Vec<Vec<f64>>,
    /// Rank of `K^0` (< P: layer 1 lives on its support).
    pub support_rank: usize,
    /// Per layer, [`chain_radius`](crate::mcmc::chains::chain_radius) of the final samples (first and last third of the chains).
    pub chain_radius: Vec<[f64; 2]>,
}

/// Saddle points along `gammas` (each warm-started from the previous one) at one temperature.
/// Progress counts MCMC steps of the tilted samplers (summed over chains; the total grows as
/// the continuation adds stages). An interrupt keeps the points solved before it.
pub fn solve_path(
    net: &Mlp,
    x: &Rows,
    y: MatRef<'_, f64>,
    gammas: &[f64],
    temperature: f64,
    opts: &Options,
    n_threads: usize,
    ctl: &Control,
) -> Result<Path<Solution>> {
    validate::mean_field_net(net, false)?;
    validate::targets(y, x.rows)?;
    let (p, s) = (x.rows as f64, (opts.sampler.n_chains * opts.sampler.n_samples) as f64);
    let depth = net.depth as f64;
    // per layer: samples, their images, whitened copies and weights (S x P), kernels, conjugates,
    // factors (P x P); Newton-Krylov: `krylov` vectors of the unknowns (L P^2)
    validate::memory(
        "n_samples",
        "the sampled solver's samples and P x P matrices",
        8.0 * (depth * (5.0 * s * p + 8.0 * p * p) + (opts.krylov as f64 + 4.0) * depth * p * p),
        "lower n_chains * n_samples, or use fewer training points",
    )?;
    if !(opts.tol > 0.0)
        || opts.max_iter == 0
        || opts.krylov == 0
        || !(opts.min_kish > 0.0 && opts.min_kish <= 1.0)
    {
        return Err(invalid(
            "tol",
            "tol > 0, max_iter >= 1, krylov >= 1 and min_kish in (0, 1] are required",
        ));
    }
    // A singular deeper-layer prior (duplicated or collinear training rows make
    // C^l = sigma_w^2 Phi^l + sigma_b^2 singular for l >= 1) is refused naming X; a singular K^0
    // is handled on its support.
    let singular_prior = |e: AkError| match e {
        AkError::NotPositiveDefinite { name: "C", .. } if net.depth >= 2 => invalid(
            "X",
            "the prior covariance of a hidden layer beyond the first, sigma_w^2 Phi^l + sigma_b^2, is \
             singular: training rows are duplicated (or their features collinear); remove duplicated rows \
             of X (the sampled solver handles a singular K^0 on its support, but not a singular deeper prior)",
        ),
        e => e,
    };
    crate::threads::with_threads(n_threads, |par| {
        let k0 = input_kernel(x.mat(), x.mat(), net.sigma_w, net.sigma_b, par);
        let k0f = CovFactor::psd("X", k0.as_ref(), par)?;
        Path::walk(gammas, |&g, out: &[Solution]| {
            let setup = Setup {
                act: &net.activation,
                k0: k0.as_ref(),
                k0_factor: &k0f,
                y,
                sigma_w: net.sigma_w,
                sigma_b: net.sigma_b,
                gamma: g,
                temperature,
            };
            // warm start from the previous point's last reached gamma: a solved fixed point there
            // even when its continuation stopped short of its own target
            let init = out.last().filter(|s| s.gamma <= g).map(|s| (s, s.gamma));
            solve(&setup, net.depth, opts, init, par, ctl).map_err(singular_prior)
        })
    })
}

/// [`predict`] from training and test inputs.
#[allow(clippy::too_many_arguments)]
pub fn predict_rows(
    net: &Mlp,
    x: &Rows,
    x_test: &Rows,
    kernels: &[MatRef<'_, f64>],
    samples: &[MatRef<'_, f64>],
    weights: &[&[f64]],
    y: MatRef<'_, f64>,
    temperature: f64,
    seed: u64,
    return_var: bool,
    n_threads: usize,
) -> Result<(Mat<f64>, Option<Vec<f64>>)> {
    validate::mean_field_net(net, false)?;
    if x_test.cols != x.cols {
        return Err(shape(
            "X_test",
            format!(
                "has {} features, the training inputs {}",
                x_test.cols, x.cols
            ),
        ));
    }
    crate::threads::with_threads(n_threads, |par| {
        let k0 = input_kernel(x.mat(), x.mat(), net.sigma_w, net.sigma_b, par);
        let kx = input_kernel(x_test.mat(), x.mat(), net.sigma_w, net.sigma_b, par);
        let kd = input_kernel_diag(x_test.mat(), net.sigma_w, net.sigma_b);
        predict(
            &net.activation,
            net.sigma_w,
            net.sigma_b,
            k0.as_ref(),
            kx.as_ref(),
            &kd,
            kernels,
            samples,
            weights,
            y,
            temperature,
            seed,
            return_var,
            par,
        )
    })
}
