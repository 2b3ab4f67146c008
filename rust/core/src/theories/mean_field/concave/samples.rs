//! Importance samples of the readout-tilted density (module docs of [`super`]): either whitened
//! Gaussian draws `z ~ N(0, I + (sigma^2 - 1) u u^T)` (`|u| = 1`), `h = F z` (`K^0 = F F^T`), or
//! MALA draws of the exact tilt `N(h; 0, K^0) exp(gamma^2 (a_ref.phi)^2 / 2)` at a reference
//! `a_ref` (the sampler of [`crate::mcmc::tilted`]); with the log ratios `l = ln(prior / proposal)`
//! up to a constant. Gaussian draws come in fixed chunks, each from its own RNG stream; both
//! kinds are fixed by the seed alone (not the thread count), so prediction regenerates them.
use crate::control::Control;
use crate::error::Result;
use crate::kernels::activation::Activation;
use crate::mcmc::tilted::{TiltConfig, TiltedDensity};
use crate::linalg::{matmul, CovFactor};
use crate::rng::Rng;
use faer::{Accum, Mat, Par};
use rayon::prelude::*;

/// Rows per chunk (one RNG stream each).
pub const CHUNK: usize = 256;

/// The Gaussian proposal in whitened coordinates and where its draws come from.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// Unit direction `u` (length rank K^0) of the inflated variance; empty: the prior.
    pub dir: Vec<f64>,
    /// Standard deviation along `u` (>= 1).
    pub sigma: f64,
    /// Stage number: the RNG streams of stage k are `(seed, k * 2^32 + chunk)`.
    pub stage: u64,
    /// Number of chunks (S = chunks * CHUNK).
    pub chunks: usize,
    /// Non-empty: MALA draws of the tilt at this `a` (then `dir`, `sigma` are unused).
    pub a_ref: Vec<f64>,
    /// MALA chains (a divisor of S; batches are groups of whole chains).
    pub n_chains: usize,
}

impl Proposal {
    pub fn n(&self) -> usize {
        self.chunks * CHUNK
    }

    /// Chunk `c`: whitened draws (CHUNK x r) and their log ratios `ln N(z;0,I) - ln q(z)` up to
    /// a constant, `-(1 - 1/sigma^2) (u.z)^2 / 2`.
    pub fn chunk(&self, seed: u64, r: usize, c: usize) -> (Mat<f64>, Vec<f64>) {
        let mut rng = Rng::new(seed, (self.stage << 32) + c as u64);
        let mut buf = vec![0.0; CHUNK * r];
        rng.fill_normal(&mut buf);
        let mut z = Mat::from_fn(CHUNK, r, |i, k| buf[i * r + k]);
        let mut log_r = vec![0.0; CHUNK];
        if !self.dir.is_empty() && self.sigma != 1.0 {
            let c2 = 1.0 - 1.0 / (self.sigma * self.sigma);
            for i in 0..CHUNK {
                let t: f64 = (0..r).map(|k| z[(i, k)] * self.dir[k]).sum();
                for k in 0..r {
                    z[(i, k)] += (self.sigma - 1.0) * t * self.dir[k];
                }
                log_r[i] = -0.5 * c2 * (self.sigma * t) * (self.sigma * t);
            }
        }
        (z, log_r)
    }
}

/// MALA burn-in, thinning and initial step of the MCMC proposal.
pub const MCMC: (usize, usize, f64) = (300, 2, 0.2);

/// All preactivations of a proposal (S x P, chain-major for MCMC) and their log ratios.
pub fn preacts(
    act: &Activation,
    factor: &CovFactor,
    prop: &Proposal,
    seed: u64,
    gamma: f64,
    ctl: &Control,
) -> Result<(Mat<f64>, Vec<f64>)> {
    let (p, r) = (factor.f().nrows(), factor.rank());
    if prop.a_ref.is_empty() {
        let parts: Vec<(Mat<f64>, Vec<f64>)> = (0..prop.chunks)
            .into_par_iter()
            .map(|c| {
                let (z, lr) = prop.chunk(seed, r, c);
                let mut h = Mat::<f64>::zeros(CHUNK, p);
                matmul(h.as_mut(), Accum::Replace, z.as_ref(), factor.f().transpose(), 1.0, Par::Seq);
                (h, lr)
            })
            .collect();
        let mut h = Mat::<f64>::zeros(prop.n(), p);
        let mut log_r = Vec::with_capacity(prop.n());
        for (c, (hc, lr)) in parts.into_iter().enumerate() {
            h.as_mut().subrows_mut(c * CHUNK, CHUNK).copy_from(hc.as_ref());
            log_r.extend(lr);
        }
        return Ok((h, log_r));
    }
    let g2 = gamma * gamma;
    let phat = Mat::from_fn(p, p, |i, j| -g2 * prop.a_ref[i] * prop.a_ref[j]);
    let dens = TiltedDensity::with_factor(act, factor.clone(), phat.as_ref())?;
    let (burn_in, thin, step_size) = MCMC;
    let cfg = TiltConfig { n_chains: prop.n_chains, n_samples: prop.n() / prop.n_chains, burn_in, thin, step_size, seed: seed.wrapping_add(prop.stage << 32) };
    let smp = ctl.quietly(|| dens.sample(&cfg, ctl))?;
    let log_r = (0..prop.n())
        .map(|i| {
            let s: f64 = (0..p).map(|k| prop.a_ref[k] * act.phi(smp.h[(i, k)]).unwrap()).sum();
            -0.5 * g2 * s * s
        })
        .collect();
    Ok((smp.h, log_r))
}

/// `phi(h)` of all draws and their log ratios.
pub fn draw(
    act: &Activation,
    factor: &CovFactor,
    prop: &Proposal,
    seed: u64,
    gamma: f64,
    ctl: &Control,
) -> Result<(Mat<f64>, Vec<f64>)> {
    let (h, log_r) = preacts(act, factor, prop, seed, gamma, ctl)?;
    Ok((crate::mcmc::tilted::apply_phi(act, h.as_ref()), log_r))
}

/// Refits the proposal to the weighted draws (cross-entropy step): `u ∝ sum_i w_i s_i z_i`
/// (the direction the tilt pulls along) and `sigma^2 = sum_i w_i (u.z_i)^2`, clamped to
/// `[1, 1e8]`. Regenerates the whitened draws chunk by chunk.
pub fn refit(prop: &Proposal, seed: u64, r: usize, w: &[f64], s: &[f64]) -> (Vec<f64>, f64) {
    let zs: Vec<Mat<f64>> = (0..prop.chunks)
        .into_par_iter()
        .map(|c| prop.chunk(seed, r, c).0)
        .collect();
    let mut u = vec![0.0; r];
    for (c, z) in zs.iter().enumerate() {
        for i in 0..CHUNK {
            let ws = w[c * CHUNK + i] * s[c * CHUNK + i];
            for k in 0..r {
                u[k] += ws * z[(i, k)];
            }
        }
    }
    let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt();
    if !(norm > 0.0 && norm.is_finite()) {
        return (Vec::new(), 1.0);
    }
    u.iter_mut().for_each(|v| *v /= norm);
    let mut var = 0.0;
    for (c, z) in zs.iter().enumerate() {
        for i in 0..CHUNK {
            let t: f64 = (0..r).map(|k| z[(i, k)] * u[k]).sum();
            var += w[c * CHUNK + i] * t * t;
        }
    }
    (u, var.clamp(1.0, 1e8).sqrt())
}
