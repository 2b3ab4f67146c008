//! One-hidden-layer Bayesian mean-field saddle point as a concave maximisation (issue 21;
//! digest `lauditi_bordelon_pehlevan_2025.md` §2.2), conventions of [`super::linear`]
//! (one output, temperature T, `K^0 = sigma_w^2 X X^T / d + sigma_b^2`).
//!
//! # Equations
//! For L = 1 the readout conjugate is rank one, `hatPhi = -gamma^2 a a^T`, `a = (Phi + T I)^{-1} y`,
//! and the saddle point is the unique maximiser of the strictly concave
//! `g(a) = a.y - T|a|^2/2 - gamma^{-2} ln E_{h~N(0,K^0)} exp(gamma^2 (a.phi(h))^2 / 2)`:
//! `grad g = y - T a - Phi(a) a` with `Phi(a) = <phi phi^T>` under the tilted density
//! `N(h; 0, K^0) exp(gamma^2 (a.phi)^2/2)`, so `grad g = 0` is the saddle point, and
//! `-Hess g = T I + Phi(a) + gamma^2 Cov(s phi)` (`s = a.phi`) is positive definite. `ln E exp(..)`
//! is convex in `a` (a log-mean-exp of convex quadratics), so `g` is concave on its domain
//! (where the tilt is normalizable; `g = -inf` outside, a convex set), and it tends to `-inf`
//! at the domain's edge, so the maximiser is interior. The kernel is `Phi(a*)`,
//! `dual_coef = a*`, the predictor `f(x*) = Phi(x*, X) a* = <phi(h_*) s>`.
//!
//! # Algorithm
//! * Expectations are self-normalised importance sums over draws with log ratios
//!   `l = ln(prior / proposal)` ([`samples`]). Nonlinear phi (default): MALA draws of the exact
//!   tilt at a reference `a_ref` (`l = -gamma^2 (a_ref.phi)^2 / 2`), started from the saddle point
//!   of the Gaussian-equivalent model (features Gaussian with the untilted `Phi0`: the linear
//!   closed form with `K -> Phi0`). Linear phi: Gaussian draws `z ~ N(0, I + (sigma^2-1) u u^T)`
//!   refitted by cross-entropy (`u ∝ <s z>`, `sigma^2 = <(u.z)^2>`), the exact tilted law.
//! * On a fixed sample set (common random numbers) the sample-average objective is itself
//!   strictly concave and smooth, so damped Newton with an exact Hessian ([`saa`]) converges
//!   quadratically; trial points whose weights keep a Kish fraction below `min_trial_kish` are
//!   not trusted (the step is cut and the draws are renewed there). No gamma continuation.
//! * Unbounded phi: before MALA the tilt at `a_ref` must pass the normalizability check of
//!   [`crate::mcmc::tilted`] and, for relu-like phi, the rank-one domain bound
//!   [`crate::mcmc::tilted::RayBound`] `< 1` (pattern witness and ray ascent, one per solve; it
//!   also backtracks Newton trial points: `g = -inf` outside);
//!   otherwise `a_ref` is pulled back towards the last draw point.
//! * Stages: redraw at the new iterate; while the Kish fraction is below `min_kish` at the same
//!   size, after three trust-region-cut stages with twice the draws, else grow towards the size
//!   that the fixed-`a` estimate `sum_i w_i^2 |phi_i phi_i^T - Phi|_F^2 / |Phi|_F^2` says reaches
//!   `rtol` (or to the given `n_samples`). The final stage is split into `n_batches` batches of
//!   whole chunks / chains, the maximiser re-solved on each (warm start), and the spread of the
//!   batch kernels gives the reported standard error (it includes the noise of `a`). A final stage
//!   whose batch error exceeds `1.25 rtol` is followed by a larger one, up to `max_samples`.
#![allow(clippy::neg_cmp_op_on_partial_ord)]
use crate::control::Control;
use crate::error::{invalid, shape, Result};
use crate::kernels::activation::Activation;
use crate::kernels::input::input_kernel;
use crate::kernels::net::{Mlp, Rows};
use crate::linalg::CovFactor;
use crate::mcmc::tilted::weighted_gram;
use crate::solve::SolveReport;
use crate::validate;
use super::linear::closed_form_kappa;
use faer::{Mat, MatRef, Par};

pub mod predict;
pub mod saa;
pub mod samples;

pub use predict::predict_rows;
use samples::{Proposal, CHUNK};

/// Settings of the concave solver.
#[derive(Debug, Clone, Copy)]
pub struct ConcaveOptions {
    /// Target relative Monte-Carlo error (Frobenius) of the kernel; sets the sample number.
    pub rtol: f64,
    /// Final sample number; 0: chosen from `rtol`.
    pub n_samples: usize,
    /// Newton stopping rule `|grad g| / |y| < tol` on each sample set.
    pub tol: f64,
    /// Newton iterations per sample set.
    pub max_iter: usize,
    pub min_samples: usize,
    pub max_samples: usize,
    /// Kish fraction required before the sample number grows.
    pub min_kish: f64,
    /// Newton trial points whose draws keep a smaller Kish fraction are not trusted.
    pub min_trial_kish: f64,
    pub max_stages: usize,
    /// Batches of the final stage for the error bars.
    pub n_batches: usize,
    pub seed: u64,
    /// Draws after the first (prior) stage: MALA on the exact tilt (`true`; nonlinear default)
    /// or the refitted Gaussian (`false`; exact for linear phi).
    pub mcmc: Option<bool>,
    /// MALA chains (a multiple of `n_batches`).
    pub n_chains: usize,
}

impl Default for ConcaveOptions {
    fn default() -> Self {
        ConcaveOptions {
            rtol: 0.01,
            n_samples: 0,
            tol: 1e-9,
            max_iter: 50,
            min_samples: 4096,
            max_samples: 262_144,
            min_kish: 0.3,
            min_trial_kish: 0.1,
            max_stages: 60,
            n_batches: 8,
            seed: 0,
            mcmc: None,
            n_chains: 16,
        }
    }
}

/// A fitted saddle point.
#[derive(Debug, Clone)]
pub struct ConcaveSolution {
    pub gamma: f64,
    pub kernel: Mat<f64>,
    /// Batch standard error of every kernel entry.
    pub kernel_stderr: Mat<f64>,
    /// `|kernel_stderr|_F / |kernel|_F`.
    pub kernel_rel_err: f64,
    /// The maximiser (= dual coefficients).
    pub a: Vec<f64>,
    /// Batch maximisers (B x P) and their `ln sum exp(l + gamma^2 s^2/2)` over the batch, and
    /// the same for the full set: what prediction needs to rebuild the weights.
    pub batch_a: Mat<f64>,
    pub batch_lse: Vec<f64>,
    pub lse: f64,
    /// The final stage's proposal (its draws are regenerated by prediction).
    pub proposal: Proposal,
    pub kish: f64,
    pub n_samples: usize,
    /// Sample numbers of the stages, in order.
    pub stage_samples: Vec<usize>,
    /// converged: the final Newton solve converged and the error target was met;
    /// `stages`: the sample numbers of the stages.
    pub report: SolveReport,
    pub support_rank: usize,
    pub seed: u64,
}

fn check(opts: &ConcaveOptions, gamma: f64, temperature: f64) -> Result<()> {
    validate::gamma_temperature(gamma, temperature)?;
    validate::tol(opts.tol)?;
    if !(opts.rtol > 0.0 && opts.rtol < 1.0) {
        return Err(invalid("rtol", format!("must be in (0, 1), got {}", opts.rtol)));
    }
    if opts.max_iter == 0 || opts.max_stages == 0 {
        return Err(invalid("max_iter", "max_iter >= 1 and max_stages >= 1 are required"));
    }
    if opts.n_batches < 2 || opts.min_samples < CHUNK * opts.n_batches || opts.max_samples < opts.min_samples {
        return Err(invalid(
            "n_samples",
            format!("need n_batches >= 2 and {} <= min_samples <= max_samples", CHUNK * opts.n_batches),
        ));
    }
    if opts.n_chains == 0 || !opts.n_chains.is_multiple_of(opts.n_batches) {
        return Err(invalid("n_chains", format!("must be a positive multiple of n_batches = {}", opts.n_batches)));
    }
    if !(opts.min_kish > 0.0 && opts.min_kish <= 1.0) {
        return Err(invalid("min_kish", format!("must be in (0, 1], got {}", opts.min_kish)));
    }
    Ok(())
}

/// Chunks for `n` samples, a multiple of `b` (batches are groups of whole chunks, and of
/// whole chains when `b` is the chain number).
fn chunks_for(n: usize, b: usize) -> usize {
    n.div_ceil(CHUNK).div_ceil(b) * b
}

/// Warm start of the MALA stages: the saddle point of the Gaussian-equivalent model whose
/// features are Gaussian with the untilted second moment `Phi0`, i.e. the linear closed form
/// (`linear::closed_form_kappa`, one layer) with `K -> Phi0`:
/// `a = (Phi0 / (1 - kappa) + T I)^{-1} y`, in the eigenbasis of `Phi0`.
fn gaussian_equivalent(phi0: MatRef<'_, f64>, y: &[f64], gamma: f64, temperature: f64, par: Par) -> Result<Vec<f64>> {
    let p = y.len();
    let (lam, u) = crate::linalg::symmetric_eigen("Phi0", phi0, par)?;
    let yt: Vec<f64> = (0..p).map(|k| (0..p).map(|i| u[(i, k)] * y[i]).sum()).collect();
    let q: Vec<f64> = yt.iter().map(|v| v * v).collect();
    let (kappa, _) = closed_form_kappa(&lam, &q, 1, 1.0, gamma, temperature);
    let c: Vec<f64> = (0..p).map(|k| yt[k] / (lam[k].max(0.0) / (1.0 - kappa) + temperature)).collect();
    Ok((0..p).map(|i| (0..p).map(|k| u[(i, k)] * c[k]).sum()).collect())
}

/// The next proposal after a solve at `a` with weights `w` and tilt variables `s`.
#[allow(clippy::too_many_arguments)]
fn next(prop: &Proposal, mcmc: bool, seed: u64, r: usize, a: &[f64], w: &[f64], s: &[f64], chunks: usize) -> Proposal {
    if mcmc {
        return Proposal { dir: Vec::new(), sigma: 1.0, stage: 0, chunks, a_ref: a.to_vec(), n_chains: prop.n_chains };
    }
    let (dir, sigma) = samples::refit(prop, seed, r, w, s);
    Proposal { dir, sigma, stage: 0, chunks, a_ref: Vec::new(), n_chains: prop.n_chains }
}

/// Fixed-`a` relative Frobenius error estimate of `Phi = sum_i w_i phi_i phi_i^T`.
fn kernel_error(f: MatRef<'_, f64>, w: &[f64], phi: MatRef<'_, f64>, par: Par) -> f64 {
    let (n, p) = (f.nrows(), f.ncols());
    let mut fp = Mat::<f64>::zeros(n, p);
    crate::linalg::matmul(fp.as_mut(), faer::Accum::Replace, f, phi, 1.0, par);
    let fro2: f64 = (0..p).map(|j| phi.col(j).iter().map(|v| v * v).sum::<f64>()).sum();
    let mut var = 0.0;
    for i in 0..n {
        let mut n2 = 0.0;
        let mut q = 0.0;
        for j in 0..p {
            n2 += f[(i, j)] * f[(i, j)];
            q += fp[(i, j)] * f[(i, j)];
        }
        var += w[i] * w[i] * (n2 * n2 - 2.0 * q + fro2);
    }
    (var.max(0.0) / fro2.max(f64::MIN_POSITIVE)).sqrt()
}

/// The saddle point at one gamma (module docs). `y` has one column.
#[allow(clippy::too_many_arguments)]
pub fn solve(
    net: &Mlp,
    x: &Rows,
    y: MatRef<'_, f64>,
    gamma: f64,
    temperature: f64,
    opts: &ConcaveOptions,
    n_threads: usize,
    ctl: &Control,
) -> Result<ConcaveSolution> {
    validate::mean_field_net(net, false)?;
    validate::targets(y, x.rows)?;
    if net.depth != 1 {
        return Err(invalid("net", format!("the concave solver needs one hidden layer (depth = 1), got depth {}", net.depth)));
    }
    if y.ncols() != 1 {
        return Err(shape("y", format!("the concave solver takes one output column, got {}", y.ncols())));
    }
    check(opts, gamma, temperature)?;
    let p = x.rows;
    let b = opts.n_batches;
    let cap = if opts.n_samples > 0 { opts.n_samples.max(opts.min_samples) } else { opts.max_samples };
    let mcmc = opts.mcmc.unwrap_or(!matches!(net.activation, crate::kernels::activation::Activation::Linear));
    let m = if mcmc { opts.n_chains } else { b }; // chunk counts are multiples of m
    let cap_chunks = chunks_for(cap, m);
    validate::memory(
        "n_samples",
        "the concave solver's draws and P x P matrices",
        8.0 * (3.0 * (cap_chunks * CHUNK) as f64 * p as f64 + (b as f64 + 6.0) * (p * p) as f64),
        "lower max_samples / n_samples or raise rtol, or use fewer training points",
    )?;
    let yv: Vec<f64> = y.col(0).iter().cloned().collect();
    crate::threads::with_threads(n_threads, |par| {
        let k0 = input_kernel(x.mat(), x.mat(), net.sigma_w, net.sigma_b, par);
        let fac = CovFactor::psd("X", k0.as_ref(), par)?;
        let r = fac.rank();
        let act = &net.activation;
        let mut prop = Proposal { dir: Vec::new(), sigma: 1.0, stage: 0, chunks: chunks_for(opts.min_samples, m), a_ref: Vec::new(), n_chains: opts.n_chains };
        let mut a = vec![0.0; p];
        let (mut n_iter, mut n_eval, mut stage_samples) = (0usize, 0usize, Vec::new());
        let mut hist = Vec::new();
        let mut repeats = 0usize;
        let mut unconverged = 0usize;
        let mut a_ok = vec![0.0; p]; // the last draw point (a normalizable tilt)
        let relu_like = matches!(act, Activation::Relu | Activation::Gelu | Activation::Softplus);
        // the domain test sees the best lower bound on rho (pattern witness and ray ascent, warm
        // started from the directions found at earlier trial points of this solve)
        let bound = std::cell::RefCell::new(crate::mcmc::tilted::RayBound::new(fac.f()));
        let inside = |a: &[f64]| !relu_like || bound.borrow_mut().ratio(k0.as_ref(), a, gamma) < 1.0;
        for stage in 0..opts.max_stages {
            ctl.checkpoint()?;
            prop.stage = stage as u64;
            if !prop.a_ref.is_empty() && !matches!(act, crate::kernels::activation::Activation::Tanh | crate::kernels::activation::Activation::Erf) {
                // unbounded phi: the tilt at a_ref must be normalizable (MALA runs away otherwise);
                // halve the step from the last draw point until the check passes (then shrink)
                let g2 = gamma * gamma;
                let mut tries = 0;
                bound.borrow_mut().explore();
                loop {
                    let phat = Mat::from_fn(p, p, |i, j| -g2 * prop.a_ref[i] * prop.a_ref[j]);
                    // (with the support factor the draws use, not a jittered Cholesky of the singular K^0)
                    let ok = inside(&prop.a_ref)
                        && crate::mcmc::tilted::TiltedDensity::with_factor(act, fac.clone(), phat.as_ref())
                            .and_then(|d| d.check_normalizable(k0.as_ref(), par))
                            .is_ok();
                    if ok {
                        break;
                    }
                    if tries >= 100 {
                        // (not reached: 0.9^80 a has rho < 1e-7 rho(a))
                        prop.a_ref.copy_from_slice(&a_ok);
                        break;
                    }
                    tries += 1;
                    if tries <= 20 {
                        for i in 0..p {
                            prop.a_ref[i] = 0.5 * (prop.a_ref[i] + a_ok[i]);
                        }
                    } else {
                        // the last draw point itself fails (the domain bound has found a better
                        // direction since it passed): shrink towards 0, which is inside
                        // (rho(t a) = t^2 rho(a))
                        prop.a_ref.iter_mut().for_each(|v| *v *= 0.9);
                    }
                }
                if std::env::var_os("AK_CONCAVE_DEBUG").is_some() {
                    eprintln!("stage {stage}: normalizability pull-backs {tries}");
                }
                a.copy_from_slice(&prop.a_ref);
            }
            if !prop.a_ref.is_empty() {
                a_ok.copy_from_slice(&prop.a_ref);
            }
            let (f, log_r) = samples::draw(act, &fac, &prop, opts.seed, gamma, ctl)?;
            if stage == 0 && mcmc {
                // prior draws: the Gaussian-equivalent saddle point starts the MALA stages
                let phi0 = weighted_gram(f.as_ref(), f.as_ref(), None, par);
                let a0 = gaussian_equivalent(phi0.as_ref(), &yv, gamma, temperature, par)?;
                stage_samples.push(prop.n());
                prop = Proposal { dir: Vec::new(), sigma: 1.0, stage: 0, chunks: prop.chunks, a_ref: a0.clone(), n_chains: opts.n_chains };
                a = a0;
                continue;
            }
            let saa = saa::Saa { f: f.as_ref(), log_r: &log_r, y: &yv, temperature, gamma };
            let (an, e, rep) = saa::maximise(&saa, &a, opts.tol, opts.max_iter, opts.min_trial_kish, &inside, par)?;
            n_iter += rep.n_iter;
            n_eval += rep.n_eval;
            hist.push(rep.residual);
            stage_samples.push(prop.n());
            a = an;
            let kish = saa::Saa::kish(&e);
            if std::env::var_os("AK_CONCAVE_DEBUG").is_some() {
                eprintln!("stage {stage} n {} conv {} it {} res {:.2e} kish {:.3} |a| {:.3} |a-aref| {:.3} rho {:.4}", prop.n(), rep.converged, rep.n_iter, rep.residual, kish,
                    a.iter().map(|v| v * v).sum::<f64>().sqrt(), a.iter().zip(&prop.a_ref).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt(), bound.borrow().clone().ratio(k0.as_ref(), &a, gamma));
            }
            let phi = weighted_gram(f.as_ref(), f.as_ref(), Some(&e.w), par);
            let err = kernel_error(f.as_ref(), &e.w, phi.as_ref(), par);
            let n = prop.n();
            let want = if opts.n_samples > 0 { opts.n_samples } else { (n as f64 * (err / opts.rtol).powi(2) * 1.1).ceil() as usize };
            let want_chunks = chunks_for(want.min(cap), m);
            let fitted = stage > 0;
            let last = stage + 1 == opts.max_stages;
            let good = rep.converged && (kish >= opts.min_kish || repeats >= 4);
            if (fitted && good && prop.chunks >= want_chunks) || last {
                // final stage: batch re-solves for the error bars
                let nb = prop.chunks / b * CHUNK;
                let mut batch_a = Mat::<f64>::zeros(b, p);
                let mut batch_lse = vec![0.0; b];
                let mut kb = Vec::with_capacity(b);
                for j in 0..b {
                    ctl.checkpoint()?;
                    let fb = f.as_ref().subrows(j * nb, nb);
                    let sb = saa::Saa { f: fb, log_r: &log_r[j * nb..(j + 1) * nb], y: &yv, temperature, gamma };
                    let (ab, eb, rb) = saa::maximise(&sb, &a, opts.tol, opts.max_iter, 0.0, &inside, par)?;
                    n_iter += rb.n_iter;
                    n_eval += rb.n_eval;
                    for i in 0..p {
                        batch_a[(j, i)] = ab[i];
                    }
                    batch_lse[j] = eb.lse;
                    kb.push(weighted_gram(fb, fb, Some(&eb.w), par));
                }
                let bf = b as f64;
                let stderr = Mat::from_fn(p, p, |i, k| {
                    let mean = kb.iter().map(|m| m[(i, k)]).sum::<f64>() / bf;
                    (kb.iter().map(|m| (m[(i, k)] - mean).powi(2)).sum::<f64>() / (bf * (bf - 1.0))).sqrt()
                });
                let fro = |m: &Mat<f64>| (0..p).map(|j| m.col(j).iter().map(|v| v * v).sum::<f64>()).sum::<f64>().sqrt();
                let rel = fro(&stderr) / fro(&phi).max(f64::MIN_POSITIVE);
                let grow = opts.n_samples == 0 && rel > 1.25 * opts.rtol && prop.chunks < cap_chunks && !last;
                if !grow {
                    let converged = rep.converged && (opts.n_samples > 0 || rel <= 1.25 * opts.rtol) && kish >= opts.min_kish;
                    let mut report = SolveReport::new("concave", converged, n_iter, n_eval, rep.residual, hist);
                    report.stages = stage_samples.iter().map(|&s| s as f64).collect();
                    return Ok(ConcaveSolution {
                        gamma,
                        kernel: phi,
                        kernel_stderr: stderr,
                        kernel_rel_err: rel,
                        a,
                        batch_a,
                        batch_lse,
                        lse: e.lse,
                        proposal: prop,
                        kish,
                        n_samples: n,
                        stage_samples,
                        report,
                        support_rank: r,
                        seed: opts.seed,
                    });
                }
                let need = (n as f64 * (rel / opts.rtol).powi(2) * 1.1).ceil() as usize;
                let chunks = chunks_for(need.min(cap), m).max(prop.chunks + m).min(cap_chunks);
                prop = next(&prop, mcmc, opts.seed, r, &a, &e.w, &e.s, chunks);
                repeats = 0;
                continue;
            }
            let chunks = if !rep.converged {
                // the trust region cut the step: after 3 such stages in a row the draws are too
                // few for the noise of the maximiser (it grows like P / S): double them
                unconverged += 1;
                if unconverged % 3 == 0 { (prop.chunks * 2).min(cap_chunks) } else { prop.chunks }
            } else if good && fitted {
                repeats = 0;
                want_chunks.min(prop.chunks * 4).max(prop.chunks)
            } else {
                repeats += 1;
                prop.chunks
            };
            prop = next(&prop, mcmc, opts.seed, r, &a, &e.w, &e.s, chunks);
        }
        unreachable!("the last stage returns")
    })
}
