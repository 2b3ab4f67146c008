//! The parallel MALA sampler of the tilted density (module docs of [`super`]).
use super::{TiltConfig, TiltedDensity};
use crate::control::Control;
use crate::error::{invalid, AkError, Result};
use crate::mcmc::chains::integrated_autocorrelation_time;
use crate::mcmc::mala::mala_log_ratio;
use crate::rng::Rng;
use faer::Mat;
use rayon::prelude::*;

/// Chains per lockstep block of the sampler (fixed, so results do not depend on the thread count).
const CHAIN_BLOCK: usize = 4;

/// Draws from the tilted density: `h` holds `n_chains * n_samples` rows of P preactivations
/// (chain-major: the rows of chain 0 first), with the sampler's diagnostics.
#[derive(Debug, Clone)]
pub struct Samples {
    pub h: Mat<f64>,
    pub acceptance: Vec<f64>,
    pub step_size: Vec<f64>,
    /// Effective sample size of the tilt energy, summed over chains.
    pub ess: f64,
}

pub(super) fn check_config(cfg: &TiltConfig) -> Result<()> {
    if cfg.n_chains == 0 || cfg.n_samples == 0 || cfg.thin == 0 {
        return Err(invalid(
            "n_samples",
            "n_chains, n_samples and thin must be >= 1",
        ));
    }
    if !(cfg.step_size.is_finite() && cfg.step_size > 0.0) {
        return Err(invalid(
            "step_size",
            format!("must be finite and > 0, got {}", cfg.step_size),
        ));
    }
    Ok(())
}

impl TiltedDensity<'_> {
    /// Runs `cfg.n_chains` MALA chains (in parallel under the caller's Rayon pool); see the module docs.
    pub fn sample(&self, cfg: &TiltConfig, ctl: &Control) -> Result<Samples> {
        check_config(cfg)?;
        let (p, r) = (self.dim(), self.l.rank());
        // the chains' stored draws, then the assembled sample matrix
        crate::validate::memory(
            "n_samples",
            "the stored draws of the tilted density",
            16.0 * cfg.n_chains as f64 * cfg.n_samples as f64 * p as f64,
            "use fewer samples or chains (n_samples, n_chains)",
        )?;
        let steps = cfg
            .n_samples
            .checked_mul(cfg.thin)
            .and_then(|s| s.checked_add(cfg.burn_in))
            .filter(|s| s.checked_mul(cfg.n_chains).is_some())
            .ok_or_else(|| invalid("n_samples", "burn_in + n_samples * thin (times n_chains) overflows"))?;
        ctl.add_total((steps * cfg.n_chains) as u64);
        type Chain = (Vec<f64>, f64, f64, Vec<f64>);
        // chains advance in lockstep in fixed blocks of CHAIN_BLOCK (one batched potential per
        // step, see `potentials`); blocks run in parallel. Each chain keeps its own RNG stream and
        // the blocks do not depend on the thread count, so neither do the results.
        let blocks: Vec<Result<Vec<Chain>>> = (0..cfg.n_chains.div_ceil(CHAIN_BLOCK))
            .into_par_iter()
            .map(|b| {
                let c0 = b * CHAIN_BLOCK;
                let k = CHAIN_BLOCK.min(cfg.n_chains - c0);
                let mut rngs: Vec<Rng> =
                    (c0..c0 + k).map(|c| Rng::new(cfg.seed, c as u64)).collect();
                let mut z = Mat::<f64>::zeros(r, k);
                for (j, rng) in rngs.iter_mut().enumerate() {
                    rng.fill_normal(z.col_as_slice_mut(j)); // a prior draw
                }
                let mut cur = self.potentials(z.as_ref());
                let mut log_eta = vec![cfg.step_size.ln(); k];
                let mut out = vec![Vec::with_capacity(cfg.n_samples * p); k];
                let mut trace = vec![Vec::with_capacity(cfg.n_samples); k];
                let (mut accepted, mut proposed) = (vec![0usize; k], 0usize);
                let mut prop = Mat::<f64>::zeros(r, k);
                let mut xi = vec![0.0; r];
                let mut counted = 0;
                for step in 0..steps {
                    if step % 256 == 0 {
                        ctl.checkpoint()?;
                        // progress in MCMC steps (of every chain), as the chains go
                        ctl.advance(((step - counted) * k) as u64);
                        counted = step;
                    }
                    for (j, rng) in rngs.iter_mut().enumerate() {
                        let eta = log_eta[j].exp();
                        rng.fill_normal(&mut xi);
                        let s = (2.0 * eta).sqrt();
                        let (zj, gj) = (z.col_as_slice(j), cur.grad.col_as_slice(j));
                        for (i, pv) in prop.col_as_slice_mut(j).iter_mut().enumerate() {
                            *pv = zj[i] - eta * gj[i] + s * xi[i];
                        }
                    }
                    let new = self.potentials(prop.as_ref());
                    let keep = step >= cfg.burn_in && (step - cfg.burn_in) % cfg.thin == 0;
                    if step >= cfg.burn_in {
                        proposed += 1;
                    }
                    for (j, rng) in rngs.iter_mut().enumerate() {
                        let eta = log_eta[j].exp();
                        let acc = if new.u[j].is_finite() {
                            mala_log_ratio(
                                cur.u[j],
                                new.u[j],
                                z.col_as_slice(j),
                                prop.col_as_slice(j),
                                cur.grad.col_as_slice(j),
                                new.grad.col_as_slice(j),
                                eta,
                            )
                            .min(0.0)
                            .exp()
                        } else {
                            0.0
                        };
                        let take = rng.uniform() < acc;
                        if step >= cfg.burn_in {
                            accepted[j] += take as usize;
                        } else {
                            let rate = 1.0 / ((step + 10) as f64).powf(0.6);
                            log_eta[j] += rate * (acc - 0.574);
                        }
                        if take {
                            z.col_as_slice_mut(j).copy_from_slice(prop.col_as_slice(j));
                            cur.u[j] = new.u[j];
                            cur.energy[j] = new.energy[j];
                            cur.grad
                                .col_as_slice_mut(j)
                                .copy_from_slice(new.grad.col_as_slice(j));
                            cur.h
                                .col_as_slice_mut(j)
                                .copy_from_slice(new.h.col_as_slice(j));
                        }
                        if keep {
                            out[j].extend_from_slice(cur.h.col_as_slice(j));
                            trace[j].push(cur.energy[j]);
                        }
                    }
                }
                ctl.advance(((steps - counted) * k) as u64);
                Ok((0..k)
                    .map(|j| {
                        (
                            std::mem::take(&mut out[j]),
                            accepted[j] as f64 / proposed.max(1) as f64,
                            log_eta[j].exp(),
                            std::mem::take(&mut trace[j]),
                        )
                    })
                    .collect())
            })
            .collect();
        let mut chains: Vec<Chain> = Vec::with_capacity(cfg.n_chains);
        for b in blocks {
            chains.extend(b?);
        }
        let n = cfg.n_chains * cfg.n_samples;
        let mut h = Mat::<f64>::zeros(n, p);
        let (mut acceptance, mut step_size, mut ess) = (vec![], vec![], 0.0);
        for (c, ch) in chains.into_iter().enumerate() {
            let (rows, acc, eta, trace) = ch;
            for k in 0..cfg.n_samples {
                for i in 0..p {
                    h[(c * cfg.n_samples + k, i)] = rows[k * p + i];
                }
            }
            acceptance.push(acc);
            step_size.push(eta);
            ess += trace.len() as f64 / integrated_autocorrelation_time(&trace).max(1.0);
        }
        if (0..p).any(|j| h.col_as_slice(j).iter().any(|v| !v.is_finite())) {
            return Err(AkError::NonFinite {
                name: "hat_phi",
                msg: "the sampled preactivations are not finite".into(),
            });
        }
        Ok(Samples {
            h,
            acceptance,
            step_size,
            ess,
        })
    }
}
