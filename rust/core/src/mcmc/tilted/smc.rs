//! Sequential Monte Carlo along a tempering ladder (Del Moral, Doucet & Jasra 2006; the adaptive
//! ladder of Jasra et al. 2011) for the tilted density of [`super`], any activation and tilt.
//!
//! # Equations
//! In whitened coordinates `h = F z` the target is `pi_1(z) ∝ N(z; 0, I) exp(-E(z) / 2)`,
//! `E = phi(h)^T hatPhi phi(h)`; the ladder `pi_beta(z) ∝ N(z; 0, I) exp(-beta E(z) / 2)`,
//! `beta ∈ [0, 1]`, joins the prior (sampled exactly) to it. For the readout tilt
//! `hatPhi = -gamma^2 a a^T` of relu (positively homogeneous) `beta = t^2` is the tilt at
//! `t gamma a`, so `rho(beta) = beta rho(1)`: every rung is normalizable when the target is.
//! * **Reweight.** Particles `z_i ~ pi_beta` (equal weights) get the incremental weights
//!   `w_i = exp(-(beta' - beta) E_i / 2)`; `beta'` is the largest value in `(beta, 1]` whose Kish
//!   fraction `(sum w)^2 / (N sum w^2)` is at least `kish` (bisection, [`next_beta`]), and
//!   `ln (Z_beta' / Z_beta) ≈ ln(sum_i w_i / N)`, so the sum over rungs estimates
//!   `ln E_{N(0, I)} exp(-E / 2)` (`log_z`).
//! * **Resample** systematically ([`systematic_resample`], one uniform per rung).
//! * **Move**: `n_moves` preconditioned MALA sweeps at `beta'` with `Sigma = L L^T` the particles'
//!   covariance before the sweep (plus `1e-6 I`; re-estimated every sweep, so the proposal widens
//!   as the particles spread into the new rung's soft directions): `z' = z - eta Sigma g(z) + sqrt(2 eta) L xi`,
//!   `U_beta = |z|^2 / 2 + beta E / 2`, `g = grad U_beta = (1 - beta) z + beta grad U_1`, accepted
//!   with probability `min(1, exp(U_beta(z) - U_beta(z') - |L^{-1}(z - z' + eta Sigma g(z'))|^2 /
//!   (4 eta) + |xi|^2 / 2))` ([`move_block`]); `ln eta += acc - 0.574` after every sweep (`acc`:
//!   the mean acceptance probability), carried to the next rung.
//!
//! Particle `i` draws its prior point from RNG stream `(seed, i)` and its rung-k noise from
//! `(seed, k 2^32 + i)`; rung k resamples with `(seed, 2^63 + k)`; particles move in fixed blocks
//! and block sums are added in block order, so the results depend on the seed only, not on the
//! thread count.
use super::{Potentials, TiltedDensity};
use crate::control::Control;
use crate::error::{invalid, AkError, Result};
use crate::linalg::{cholesky, matmul, solve_lower_triangular_in_place};
use crate::rng::Rng;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

/// Particles per block (fixed: results do not depend on the thread count).
const BLOCK: usize = 32;

/// Settings of the tempered SMC sampler.
#[derive(Debug, Clone, Copy)]
pub struct SmcConfig {
    pub n_particles: usize,
    /// MALA sweeps per rung.
    pub n_moves: usize,
    /// Kish fraction of the incremental weights that sets the next rung.
    pub kish: f64,
    /// Initial MALA step `eta` (in units of the particle covariance).
    pub step_size: f64,
    pub max_rungs: usize,
    pub seed: u64,
}

impl Default for SmcConfig {
    fn default() -> Self {
        SmcConfig { n_particles: 4096, n_moves: 10, kish: 0.8, step_size: 0.3, max_rungs: 500, seed: 0 }
    }
}

/// Equally weighted draws at `beta = 1` and the ladder's diagnostics.
#[derive(Debug, Clone)]
pub struct SmcSamples {
    /// `n_particles` rows of P preactivations.
    pub h: Mat<f64>,
    /// `ln E_{N(0, C)} exp(-phi^T hatPhi phi / 2)`.
    pub log_z: f64,
    /// The rungs `beta_1 < ... < beta_K = 1`.
    pub betas: Vec<f64>,
    /// Mean acceptance probability of each rung's sweeps.
    pub acceptance: Vec<f64>,
    /// `eta` at the end of each rung.
    pub step_size: Vec<f64>,
}

fn log_sum_exp(l: &[f64]) -> f64 {
    let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + l.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// Kish fraction `(sum w)^2 / (N sum w^2)` of the weights `exp(log_w)`.
pub fn kish_fraction(log_w: &[f64]) -> f64 {
    let n = log_w.len() as f64;
    let l1 = log_sum_exp(log_w);
    let l2 = log_sum_exp(&log_w.iter().map(|v| 2.0 * v).collect::<Vec<_>>());
    (2.0 * l1 - l2).exp() / n
}

/// The next rung: the largest `beta' ∈ (beta, 1]` with Kish fraction of
/// `exp(-(beta' - beta) E_i / 2)` at least `kish` (60 bisections; `1` when it already holds there).
pub fn next_beta(energy: &[f64], beta: f64, kish: f64) -> f64 {
    let frac = |b: f64| kish_fraction(&energy.iter().map(|e| -0.5 * (b - beta) * e).collect::<Vec<_>>());
    if frac(1.0) >= kish {
        return 1.0;
    }
    let (mut lo, mut hi) = (beta, 1.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if frac(mid) >= kish {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Systematic resampling: the index `j` with `W_{j-1} <= (i + u0) / N < W_j` for each `i`
/// (`W` the cumulative normalised weights `exp(log_w)`), `u0 ∈ [0, 1)`.
pub fn systematic_resample(log_w: &[f64], u0: f64) -> Vec<usize> {
    let n = log_w.len();
    let m = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|v| (v - m).exp()).collect();
    let total: f64 = w.iter().sum();
    let (mut idx, mut cum, mut j) = (Vec::with_capacity(n), w[0], 0);
    for i in 0..n {
        let target = (i as f64 + u0) / n as f64 * total;
        while j + 1 < n && cum <= target {
            j += 1;
            cum += w[j];
        }
        idx.push(j);
    }
    idx
}

/// `L (L^T g)`.
fn sigma_times(chol: MatRef<'_, f64>, g: MatRef<'_, f64>) -> Mat<f64> {
    let mut t = Mat::<f64>::zeros(g.nrows(), g.ncols());
    matmul(t.as_mut(), Accum::Replace, chol.transpose(), g, 1.0, Par::Seq);
    let mut out = Mat::<f64>::zeros(g.nrows(), g.ncols());
    matmul(out.as_mut(), Accum::Replace, chol, t.as_ref(), 1.0, Par::Seq);
    out
}

/// One preconditioned MALA sweep (module docs) of the k particles `z` (r x k, with their
/// potentials `pot` at `beta = 1`) at `beta`, with standard-normal noise `xi` (r x k) and
/// uniforms `unif` (k): moves the accepted columns in place and returns the acceptance
/// probabilities.
#[allow(clippy::too_many_arguments)]
pub fn move_block(
    dens: &TiltedDensity,
    beta: f64,
    chol: MatRef<'_, f64>,
    eta: f64,
    z: &mut Mat<f64>,
    pot: &mut Potentials,
    xi: MatRef<'_, f64>,
    unif: &[f64],
) -> Vec<f64> {
    let (r, k) = (z.nrows(), z.ncols());
    let grad_beta = |z: &Mat<f64>, p: &Potentials| Mat::from_fn(r, k, |i, j| (1.0 - beta) * z[(i, j)] + beta * p.grad[(i, j)]);
    let sg = sigma_times(chol, grad_beta(z, pot).as_ref());
    let mut noise = Mat::<f64>::zeros(r, k);
    matmul(noise.as_mut(), Accum::Replace, chol, xi, 1.0, Par::Seq);
    let s = (2.0 * eta).sqrt();
    let prop = Mat::from_fn(r, k, |i, j| z[(i, j)] - eta * sg[(i, j)] + s * noise[(i, j)]);
    let new = dens.potentials(prop.as_ref());
    let sgn = sigma_times(chol, grad_beta(&prop, &new).as_ref());
    let mut d = Mat::from_fn(r, k, |i, j| z[(i, j)] - prop[(i, j)] + eta * sgn[(i, j)]);
    solve_lower_triangular_in_place(chol, d.as_mut(), Par::Seq);
    let u_beta = |u: f64, e: f64| u - 0.5 * (1.0 - beta) * e;
    (0..k)
        .map(|j| {
            let (u0, u1) = (u_beta(pot.u[j], pot.energy[j]), u_beta(new.u[j], new.energy[j]));
            let d2: f64 = d.col(j).iter().map(|v| v * v).sum();
            let x2: f64 = xi.col(j).iter().map(|v| v * v).sum();
            let lr = u0 - u1 - d2 / (4.0 * eta) + 0.5 * x2;
            let acc = if lr.is_nan() || !u1.is_finite() { 0.0 } else { lr.min(0.0).exp() };
            if unif[j] < acc {
                z.col_as_slice_mut(j).copy_from_slice(prop.col_as_slice(j));
                pot.u[j] = new.u[j];
                pot.energy[j] = new.energy[j];
                pot.grad.col_as_slice_mut(j).copy_from_slice(new.grad.col_as_slice(j));
                pot.h.col_as_slice_mut(j).copy_from_slice(new.h.col_as_slice(j));
            }
            acc
        })
        .collect()
}

/// A block of particles: whitened points (r x k), their potentials, global index of column 0.
struct Block {
    z: Mat<f64>,
    pot: Potentials,
    start: usize,
}

/// Lower factor of the particles' covariance (plus `1e-6 I`; identity if it fails): block sums
/// added in block order.
fn particle_chol(blocks: &[Block], r: usize, n: usize) -> Mat<f64> {
    let sums: Vec<(Vec<f64>, Mat<f64>)> = blocks
        .par_iter()
        .map(|b| {
            let m: Vec<f64> = (0..r).map(|i| (0..b.z.ncols()).map(|j| b.z[(i, j)]).sum()).collect();
            let mut s = Mat::<f64>::zeros(r, r);
            matmul(s.as_mut(), Accum::Replace, b.z.as_ref(), b.z.transpose(), 1.0, Par::Seq);
            (m, s)
        })
        .collect();
    let mut mean = vec![0.0; r];
    let mut cov = Mat::<f64>::zeros(r, r);
    for (m, s) in &sums {
        mean.iter_mut().zip(m).for_each(|(a, b)| *a += b);
        for j in 0..r {
            for i in 0..r {
                cov[(i, j)] += s[(i, j)];
            }
        }
    }
    mean.iter_mut().for_each(|v| *v /= n as f64);
    let cov = Mat::from_fn(r, r, |i, j| cov[(i, j)] / n as f64 - mean[i] * mean[j] + if i == j { 1e-6 } else { 0.0 });
    cholesky(cov.as_ref()).unwrap_or_else(|| Mat::identity(r, r))
}

fn check(cfg: &SmcConfig) -> Result<()> {
    if cfg.n_particles < 2 || cfg.n_moves == 0 || cfg.max_rungs == 0 {
        return Err(invalid("n_particles", "n_particles must be >= 2, n_moves and max_rungs >= 1"));
    }
    if !(cfg.kish > 0.0 && cfg.kish < 1.0) {
        return Err(invalid("kish", format!("must lie in (0, 1), got {}", cfg.kish)));
    }
    if !(cfg.step_size.is_finite() && cfg.step_size > 0.0) {
        return Err(invalid("step_size", format!("must be finite and > 0, got {}", cfg.step_size)));
    }
    Ok(())
}

impl TiltedDensity<'_> {
    /// Tempered SMC draws of the density (module docs of [`self`]); run in parallel under the
    /// caller's Rayon pool. The caller checks normalizability first.
    pub fn sample_smc(&self, cfg: &SmcConfig, ctl: &Control) -> Result<SmcSamples> {
        check(cfg)?;
        let (p, r, n) = (self.dim(), self.l.rank(), cfg.n_particles);
        crate::validate::memory(
            "n_particles",
            "the SMC particles (whitened points, gradients, preactivations, twice)",
            16.0 * n as f64 * (2 * r + p) as f64,
            "use fewer particles (n_particles)",
        )?;
        let starts: Vec<usize> = (0..n).step_by(BLOCK).collect();
        let mut blocks: Vec<Block> = starts
            .par_iter()
            .map(|&c0| {
                let k = BLOCK.min(n - c0);
                let mut z = Mat::<f64>::zeros(r, k);
                for j in 0..k {
                    Rng::new(cfg.seed, (c0 + j) as u64).fill_normal(z.col_as_slice_mut(j));
                }
                let pot = self.potentials(z.as_ref());
                Block { z, pot, start: c0 }
            })
            .collect();
        let (mut beta, mut log_z, mut eta) = (0.0f64, 0.0f64, cfg.step_size);
        let (mut betas, mut acceptance, mut step_size) = (vec![], vec![], vec![]);
        for rung in 1..=cfg.max_rungs as u64 {
            ctl.checkpoint()?;
            let energy: Vec<f64> = blocks.iter().flat_map(|b| b.pot.energy.iter().cloned()).collect();
            if energy.iter().any(|e| !e.is_finite()) {
                return Err(AkError::NonFinite { name: "hat_phi", msg: "a tilt energy of the SMC particles is not finite".into() });
            }
            let b1 = next_beta(&energy, beta, cfg.kish);
            let log_w: Vec<f64> = energy.iter().map(|e| -0.5 * (b1 - beta) * e).collect();
            log_z += log_sum_exp(&log_w) - (n as f64).ln();
            let idx = systematic_resample(&log_w, Rng::new(cfg.seed, (1u64 << 63) + rung).uniform());
            beta = b1;
            // resampled blocks: gather columns
            let old = &blocks;
            let col = |i: usize| (i / BLOCK, i % BLOCK);
            let new_blocks: Vec<Block> = starts
                .par_iter()
                .map(|&c0| {
                    let k = BLOCK.min(n - c0);
                    let src = |j: usize| col(idx[c0 + j]);
                    let z = Mat::from_fn(r, k, |i, j| { let (b, c) = src(j); old[b].z[(i, c)] });
                    let grad = Mat::from_fn(r, k, |i, j| { let (b, c) = src(j); old[b].pot.grad[(i, c)] });
                    let h = Mat::from_fn(p, k, |i, j| { let (b, c) = src(j); old[b].pot.h[(i, c)] });
                    let u = (0..k).map(|j| { let (b, c) = src(j); old[b].pot.u[c] }).collect();
                    let energy = (0..k).map(|j| { let (b, c) = src(j); old[b].pot.energy[c] }).collect();
                    Block { z, pot: Potentials { u, grad, energy, h }, start: c0 }
                })
                .collect();
            blocks = new_blocks;
            let mut rngs: Vec<Rng> = (0..n).map(|i| Rng::new(cfg.seed, (rung << 32) + i as u64)).collect();
            let mut acc_rung = 0.0;
            for _ in 0..cfg.n_moves {
                let e = eta;
                let chol = particle_chol(&blocks, r, n);
                let accs: Vec<f64> = blocks
                    .par_iter_mut()
                    .zip(rngs.par_chunks_mut(BLOCK))
                    .map(|(b, rg)| {
                        let k = b.z.ncols();
                        let mut xi = Mat::<f64>::zeros(r, k);
                        let mut unif = vec![0.0; k];
                        for (j, g) in rg.iter_mut().enumerate() {
                            g.fill_normal(xi.col_as_slice_mut(j));
                            unif[j] = g.uniform();
                        }
                        debug_assert_eq!(b.start % BLOCK, 0);
                        move_block(self, beta, chol.as_ref(), e, &mut b.z, &mut b.pot, xi.as_ref(), &unif).iter().sum()
                    })
                    .collect();
                let acc = accs.iter().sum::<f64>() / n as f64;
                acc_rung += acc / cfg.n_moves as f64;
                eta = (eta.ln() + (acc - 0.574)).exp();
            }
            betas.push(beta);
            acceptance.push(acc_rung);
            step_size.push(eta);
            if beta >= 1.0 {
                let mut h = Mat::<f64>::zeros(n, p);
                for b in &blocks {
                    for j in 0..b.z.ncols() {
                        for i in 0..p {
                            h[(b.start + j, i)] = b.pot.h[(i, j)];
                        }
                    }
                }
                if (0..p).any(|j| h.col_as_slice(j).iter().any(|v| !v.is_finite())) {
                    return Err(AkError::NonFinite { name: "hat_phi", msg: "the SMC preactivations are not finite".into() });
                }
                return Ok(SmcSamples { h, log_z, betas, acceptance, step_size });
            }
        }
        Err(invalid(
            "max_rungs",
            format!("the tempering ladder reached beta = {beta:.3e} < 1 in {} rungs; raise max_rungs or n_particles", cfg.max_rungs),
        ))
    }
}
