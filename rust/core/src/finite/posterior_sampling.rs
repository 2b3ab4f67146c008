//! Posterior sampling of finite-width Bayesian MLPs by (Metropolis-adjusted) Langevin dynamics.
//!
//! Target: `p(theta | D) ∝ exp(-U(theta))` with the potential of
//! [`crate::finite::network::FiniteMlp::potential_and_gradient`] at `decay = 1`.
//! Proposal (overdamped Langevin, Euler-Maruyama): `theta' = theta - eta grad U + sqrt(2 eta) xi`.
//! With `metropolis = true` this is MALA (Roberts & Tweedie 1996): accept with probability
//! `min(1, exp(U - U' + log q(theta|theta') - log q(theta'|theta)))`, which removes the
//! O(eta) bias of unadjusted Langevin. During burn-in the step size is adapted towards an
//! acceptance rate of 0.574 (Robbins-Monro on log eta), then frozen so the chain is exact.
//! Chains run in parallel (one Rayon task each, sequential linear algebra inside), each with its
//! own RNG stream `(seed, chain)`, so results do not depend on the number of threads.
//! Diagnostics of the scalar traces ([`TRACE_NAMES`]): each chain's own ESS, and over all
//! chains the rank-normalized R-hat, bulk and tail ESS ([`crate::mcmc::rank`]) and the classic
//! split-R-hat.
use crate::control::Control;
use crate::error::{invalid, AkError, Result};
use crate::finite::network::{FiniteMlp, Forward};
use crate::mcmc::chains::{effective_sample_size, split_rhat};
use crate::mcmc::rank::rank_diagnostics;
use crate::mcmc::mala::{langevin_proposal, mala_log_ratio};
use crate::rng::Rng;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

#[derive(Debug, Clone)]
pub struct SamplerConfig {
    pub temperature: f64,
    pub n_chains: usize,
    pub n_samples: usize,
    pub burn_in: usize,
    pub thin: usize,
    pub step_size: f64,
    pub metropolis: bool,
    pub adapt_step_size: bool,
    pub target_accept: f64,
    pub seed: u64,
    pub store_kernels: bool,
    pub store_weights: bool,
    /// `false` freezes the hidden layers at their prior draw and samples only the readout
    /// (a linear model on random features, whose posterior is exactly Gaussian).
    pub train_hidden: bool,
}

impl Default for SamplerConfig {
    /// The defaults of `adaptive_kernels.sample_posterior` (`burn_in = n_samples * thin / 2`);
    /// the temperature has none there (it is required) and is 1 here.
    fn default() -> Self {
        SamplerConfig {
            temperature: 1.0,
            n_chains: 4,
            n_samples: 1000,
            burn_in: 500,
            thin: 1,
            step_size: 1e-3,
            metropolis: true,
            adapt_step_size: true,
            target_accept: 0.574,
            seed: 0,
            store_kernels: true,
            store_weights: true,
            train_hidden: true,
        }
    }
}

impl SamplerConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(invalid(
                "temperature",
                format!("must be finite and > 0, got {}", self.temperature),
            ));
        }
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(invalid(
                "step_size",
                format!("must be finite and > 0, got {}", self.step_size),
            ));
        }
        if self.n_chains == 0 {
            return Err(invalid("n_chains", "must be >= 1"));
        }
        if self.n_samples == 0 {
            return Err(invalid("n_samples", "must be >= 1"));
        }
        if self.thin == 0 {
            return Err(invalid("thin", "must be >= 1"));
        }
        if !(self.target_accept > 0.0 && self.target_accept < 1.0) {
            return Err(invalid("target_accept", "must be in (0, 1)"));
        }
        Ok(())
    }
}

/// Names of the scalar traces recorded per kept sample.
pub const TRACE_NAMES: [&str; 3] = ["potential", "mean_train_output", "readout_scale"];

/// What one chain accumulated (sums over kept samples).
#[derive(Debug, Clone)]
pub struct ChainResult {
    pub n_kept: usize,
    pub accepted: usize,
    pub proposed: usize,
    pub step_size: f64,
    pub interrupted: bool,
    /// Sums and sums of squares of the outputs on train (P x C) and test (Q x C) points.
    pub train_sum: Mat<f64>,
    pub train_sq: Mat<f64>,
    pub test_sum: Mat<f64>,
    pub test_sq: Mat<f64>,
    /// Sum over samples of the feature kernels `phi(h^l) phi(h^l)^T / N_l` on train points.
    pub kernels: Vec<Mat<f64>>,
    /// Sums of `w_out^T w_out / C` (N_L x N_L) and `W^0^T W^0 / N_1` (d x d).
    pub readout_second_moment: Mat<f64>,
    pub input_second_moment: Mat<f64>,
    /// traces[k] = values of TRACE_NAMES[k] per kept sample.
    pub traces: Vec<Vec<f64>>,
    /// The chain's last state.
    pub final_theta: Vec<f64>,
    /// Outputs per kept sample, flattened (sample-major): train (P*C each) and test (Q*C each),
    /// for the per-point effective sample sizes.
    pub train_trace: Vec<f64>,
    pub test_trace: Vec<f64>,
}

/// Combined result over chains.
#[derive(Debug, Clone)]
pub struct PosteriorSummary {
    pub chains: Vec<ChainResult>,
    pub n_kept: usize,
    pub train_mean: Mat<f64>,
    pub train_var: Mat<f64>,
    pub test_mean: Mat<f64>,
    pub test_var: Mat<f64>,
    pub kernels: Vec<Mat<f64>>,
    pub readout_spectrum: Vec<f64>,
    pub input_spectrum: Vec<f64>,
    /// ess[chain][trace]: each chain's own ESS (integrated autocorrelation time).
    pub ess: Vec<Vec<f64>>,
    /// Per trace, over all chains (cut to the shortest chain): the rank-normalized split R-hat
    /// and the bulk and tail ESS of Vehtari et al. 2021 ([`crate::mcmc::rank`]), and the
    /// classic split-R-hat.
    pub rhat: Vec<f64>,
    pub ess_bulk: Vec<f64>,
    pub ess_tail: Vec<f64>,
    pub rhat_classic: Vec<f64>,
    /// Monte-Carlo standard errors of `train_mean` and `test_mean`.
    pub train_se: Mat<f64>,
    pub test_se: Mat<f64>,
    pub interrupted: bool,
}

fn add_squares(sum: &mut Mat<f64>, sq: &mut Mat<f64>, f: MatRef<'_, f64>) {
    for j in 0..f.ncols() {
        for i in 0..f.nrows() {
            let v = f[(i, j)];
            sum[(i, j)] += v;
            sq[(i, j)] += v * v;
        }
    }
}

/// Draws `theta ~ N(0, I)` (the prior) for chain `chain`.
pub fn prior_draw(net: &FiniteMlp, rng: &mut Rng) -> Vec<f64> {
    let mut theta = vec![0.0; net.layout().len];
    rng.fill_normal(&mut theta);
    theta
}

#[allow(clippy::too_many_arguments)]
fn run_chain(
    net: &FiniteMlp,
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    x_test: Option<MatRef<'_, f64>>,
    cfg: &SamplerConfig,
    chain: usize,
    ctl: &Control,
) -> Result<ChainResult> {
    let par = Par::Seq;
    let beta = net.loss_scale(cfg.temperature);
    let mut rng = Rng::new(cfg.seed, chain as u64);
    let mut theta = prior_draw(net, &mut rng);
    let n = theta.len();
    let mut grad = vec![0.0; n];
    let mut grad_prop = vec![0.0; n];
    // Frozen coordinates (hidden layers when !train_hidden) get zero drift and zero noise.
    let frozen = if cfg.train_hidden {
        0
    } else {
        net.layout().w_out
    };
    let (mut u, _, mut fw) = net.potential_and_gradient(&theta, x, y, beta, 1.0, &mut grad, par);
    if !(u.is_finite() && grad.iter().all(|g| g.is_finite())) {
        return Err(AkError::NonFinite {
            name: "temperature",
            msg: format!(
                "the log posterior at the prior draw is not finite (loss scale chi/T or N gamma^2/T = {beta:.3e}); \
                 rescale temperature, chi or gamma, or the data X and y"
            ),
        });
    }
    grad[..frozen].fill(0.0);
    let (p, c) = (x.nrows(), net.n_out);
    let q = x_test.map_or(0, |t| t.nrows());
    let nl = *net.widths.last().unwrap();
    let n1 = net.widths[0];
    let lay = net.layout();
    let mut res = ChainResult {
        n_kept: 0,
        accepted: 0,
        proposed: 0,
        step_size: cfg.step_size,
        interrupted: false,
        train_sum: Mat::zeros(p, c),
        train_sq: Mat::zeros(p, c),
        test_sum: Mat::zeros(q, c),
        test_sq: Mat::zeros(q, c),
        kernels: if cfg.store_kernels {
            vec![Mat::zeros(p, p); net.depth()]
        } else {
            Vec::new()
        },
        readout_second_moment: if cfg.store_weights {
            Mat::zeros(nl, nl)
        } else {
            Mat::zeros(0, 0)
        },
        input_second_moment: if cfg.store_weights {
            Mat::zeros(net.d, net.d)
        } else {
            Mat::zeros(0, 0)
        },
        traces: vec![Vec::with_capacity(cfg.n_samples.min(1 << 16)); TRACE_NAMES.len()],
        final_theta: Vec::new(),
        train_trace: Vec::new(),
        test_trace: Vec::new(),
    };
    let mut log_eta = cfg.step_size.ln();
    let total = cfg.burn_in + cfg.n_samples * cfg.thin;
    let mut xi = vec![0.0; n];
    for step in 0..total {
        if ctl.is_cancelled() {
            res.interrupted = true;
            break;
        }
        let eta = log_eta.exp();
        rng.fill_normal(&mut xi);
        xi[..frozen].fill(0.0);
        let prop = langevin_proposal(&theta, &grad, &xi, eta);
        let (u_prop, _, fw_prop) =
            net.potential_and_gradient(&prop, x, y, beta, 1.0, &mut grad_prop, par);
        grad_prop[..frozen].fill(0.0);
        let accept_prob = if !u_prop.is_finite() {
            if !cfg.metropolis {
                return Err(AkError::NonFinite {
                    name: "step_size",
                    msg: format!("unadjusted Langevin diverged at step {step} (chain {chain}); reduce step_size (now {eta:.3e})"),
                });
            }
            0.0
        } else if cfg.metropolis {
            mala_log_ratio(u, u_prop, &theta, &prop, &grad, &grad_prop, eta)
                .min(0.0)
                .exp()
        } else {
            1.0
        };
        let accept = !cfg.metropolis || rng.uniform() < accept_prob;
        if step >= cfg.burn_in {
            res.proposed += 1;
        }
        if accept {
            theta = prop;
            std::mem::swap(&mut grad, &mut grad_prop);
            u = u_prop;
            fw = fw_prop;
            if step >= cfg.burn_in {
                res.accepted += 1;
            }
        }
        if step < cfg.burn_in && cfg.adapt_step_size && cfg.metropolis {
            let rate = 1.0 / ((step + 10) as f64).powf(0.6);
            log_eta += rate * (accept_prob - cfg.target_accept);
        }
        if step >= cfg.burn_in && (step - cfg.burn_in) % cfg.thin == 0 {
            record(net, &theta, &fw, u, x_test, &lay, &mut res, n1, nl);
        }
        ctl.advance(1);
    }
    res.step_size = log_eta.exp();
    res.final_theta = theta;
    Ok(res)
}

#[allow(clippy::too_many_arguments)]
fn record(
    net: &FiniteMlp,
    theta: &[f64],
    fw: &Forward,
    u: f64,
    x_test: Option<MatRef<'_, f64>>,
    lay: &crate::finite::network::Layout,
    res: &mut ChainResult,
    n1: usize,
    nl: usize,
) {
    let par = Par::Seq;
    add_squares(&mut res.train_sum, &mut res.train_sq, fw.f.as_ref());
    push_rows(&mut res.train_trace, fw.f.as_ref());
    if let Some(xt) = x_test {
        let ft = net.forward(theta, xt, par);
        add_squares(&mut res.test_sum, &mut res.test_sq, ft.f.as_ref());
        push_rows(&mut res.test_trace, ft.f.as_ref());
    }
    if !res.kernels.is_empty() {
        for (acc, a) in res.kernels.iter_mut().zip(&fw.a) {
            crate::linalg::matmul(
                acc.as_mut(),
                Accum::Add,
                a.as_ref(),
                a.transpose(),
                1.0 / a.ncols() as f64,
                par,
            );
        }
    }
    let c = net.n_out;
    let wout = MatRef::from_column_major_slice(&theta[lay.w_out..lay.w_out + c * nl], c, nl);
    if res.readout_second_moment.nrows() > 0 {
        crate::linalg::matmul(
            res.readout_second_moment.as_mut(),
            Accum::Add,
            wout.transpose(),
            wout,
            1.0 / c as f64,
            par,
        );
        let (off, r, cols) = lay.w[0];
        let w0 = MatRef::from_column_major_slice(&theta[off..off + r * cols], r, cols);
        crate::linalg::matmul(
            res.input_second_moment.as_mut(),
            Accum::Add,
            w0.transpose(),
            w0,
            1.0 / n1 as f64,
            par,
        );
    }
    let mean_out = (0..fw.f.nrows()).map(|i| fw.f[(i, 0)]).sum::<f64>() / fw.f.nrows() as f64;
    let scale = (0..nl)
        .map(|j| (0..c).map(|k| wout[(k, j)].powi(2)).sum::<f64>())
        .sum::<f64>()
        / (nl * c) as f64;
    res.traces[0].push(u);
    res.traces[1].push(mean_out);
    res.traces[2].push(scale);
    res.n_kept += 1;
}

fn push_rows(trace: &mut Vec<f64>, f: MatRef<'_, f64>) {
    for i in 0..f.nrows() {
        for j in 0..f.ncols() {
            trace.push(f[(i, j)]);
        }
    }
}

/// Monte-Carlo standard errors of the posterior means of the outputs: for each output entry,
/// `sqrt(var / sum_chains ESS_chain)`, with each chain's ESS from its own autocorrelation.
fn output_standard_errors(
    chains: &[ChainResult],
    var: &Mat<f64>,
    pick: impl Fn(&ChainResult) -> &Vec<f64>,
) -> Mat<f64> {
    let (rows, cols) = (var.nrows(), var.ncols());
    let width = rows * cols;
    Mat::from_fn(rows, cols, |i, j| {
        let k = i * cols + j;
        let ess: f64 = chains
            .iter()
            .map(|c| {
                let tr = pick(c);
                let n = if width == 0 { 0 } else { tr.len() / width };
                let series: Vec<f64> = (0..n).map(|t| tr[t * width + k]).collect();
                if n == 0 {
                    0.0
                } else {
                    effective_sample_size(&series)
                }
            })
            .sum();
        if ess > 0.0 {
            (var[(i, j)] / ess).sqrt()
        } else {
            f64::NAN
        }
    })
}

fn moments(
    chains: &[ChainResult],
    pick: impl Fn(&ChainResult) -> (&Mat<f64>, &Mat<f64>),
    n: usize,
) -> (Mat<f64>, Mat<f64>) {
    let (r0, _) = pick(&chains[0]);
    let (rows, cols) = (r0.nrows(), r0.ncols());
    let mut mean = Mat::<f64>::zeros(rows, cols);
    let mut var = Mat::<f64>::zeros(rows, cols);
    if n == 0 {
        return (
            Mat::from_fn(rows, cols, |_, _| f64::NAN),
            Mat::from_fn(rows, cols, |_, _| f64::NAN),
        );
    }
    for ch in chains {
        let (s, sq) = pick(ch);
        for j in 0..cols {
            for i in 0..rows {
                mean[(i, j)] += s[(i, j)];
                var[(i, j)] += sq[(i, j)];
            }
        }
    }
    let nf = n as f64;
    for j in 0..cols {
        for i in 0..rows {
            let m = mean[(i, j)] / nf;
            mean[(i, j)] = m;
            var[(i, j)] = (var[(i, j)] / nf - m * m).max(0.0);
        }
    }
    (mean, var)
}

/// Runs `cfg.n_chains` chains and combines them.
pub fn sample_posterior(
    net: &FiniteMlp,
    x: MatRef<'_, f64>,
    y: MatRef<'_, f64>,
    x_test: Option<MatRef<'_, f64>>,
    cfg: &SamplerConfig,
    ctl: &Control,
) -> Result<PosteriorSummary> {
    net.validate()?;
    cfg.validate()?;
    crate::finite::network::check_data(x, y)?;
    net.check_memory(
        cfg.n_chains,
        6,
        x.nrows() + x_test.map_or(0, |t| t.nrows()),
        if cfg.store_kernels { net.widths.len() } else { 0 },
        cfg.store_weights,
    )?;
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
    ctl.set_total((cfg.n_chains * (cfg.burn_in + cfg.n_samples * cfg.thin)) as u64);
    let chains: Vec<ChainResult> = (0..cfg.n_chains)
        .into_par_iter()
        .map(|c| run_chain(net, x, y, x_test, cfg, c, ctl))
        .collect::<Result<Vec<_>>>()?;
    let n_kept: usize = chains.iter().map(|c| c.n_kept).sum();
    let (train_mean, train_var) = moments(&chains, |c| (&c.train_sum, &c.train_sq), n_kept);
    let (test_mean, test_var) = moments(&chains, |c| (&c.test_sum, &c.test_sq), n_kept);
    let avg = |get: &dyn Fn(&ChainResult) -> &Mat<f64>| -> Mat<f64> {
        let first = get(&chains[0]);
        let mut acc = Mat::<f64>::zeros(first.nrows(), first.ncols());
        for ch in &chains {
            acc += get(ch);
        }
        acc * faer::Scale(1.0 / n_kept.max(1) as f64)
    };
    let kernels: Vec<Mat<f64>> = (0..chains[0].kernels.len())
        .map(|l| avg(&|c: &ChainResult| &c.kernels[l]))
        .collect();
    let spectrum = |m: Mat<f64>| -> Result<Vec<f64>> {
        if m.nrows() == 0 || n_kept == 0 {
            return Ok(Vec::new());
        }
        let sym = Mat::from_fn(m.nrows(), m.ncols(), |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
        let mut w = sym
            .self_adjoint_eigenvalues(faer::Side::Lower)
            .map_err(|e| AkError::LinAlg {
                name: "weights",
                msg: format!("eigenvalues did not converge ({e:?})"),
            })?;
        w.reverse();
        Ok(w)
    };
    let readout_spectrum = spectrum(avg(&|c: &ChainResult| &c.readout_second_moment))?;
    let input_spectrum = spectrum(avg(&|c: &ChainResult| &c.input_second_moment))?;
    let ess = chains
        .iter()
        .map(|c| c.traces.iter().map(|t| effective_sample_size(t)).collect())
        .collect();
    let rhat_classic = (0..TRACE_NAMES.len())
        .map(|k| {
            split_rhat(
                &chains
                    .iter()
                    .map(|c| c.traces[k].clone())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    // the rank diagnostics need equally long chains (an interrupted run may leave them unequal)
    let shortest = chains.iter().map(|c| c.traces[0].len()).min().unwrap_or(0);
    let rank: Vec<_> = (0..TRACE_NAMES.len())
        .map(|k| {
            let x: Vec<f64> = chains
                .iter()
                .flat_map(|c| c.traces[k][..shortest].iter().copied())
                .collect();
            rank_diagnostics(&x, chains.len())
        })
        .collect();
    let rhat = rank.iter().map(|d| d.rhat).collect();
    let ess_bulk = rank.iter().map(|d| d.ess_bulk).collect();
    let ess_tail = rank.iter().map(|d| d.ess_tail).collect();
    let interrupted = chains.iter().any(|c| c.interrupted);
    let train_se = output_standard_errors(&chains, &train_var, |c| &c.train_trace);
    let test_se = output_standard_errors(&chains, &test_var, |c| &c.test_trace);
    Ok(PosteriorSummary {
        train_se,
        test_se,
        chains,
        n_kept,
        train_mean,
        train_var,
        test_mean,
        test_var,
        kernels,
        readout_spectrum,
        input_spectrum,
        ess,
        rhat,
        ess_bulk,
        ess_tail,
        rhat_classic,
        interrupted,
    })
}
