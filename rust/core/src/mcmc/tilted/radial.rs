//! Radius-integrated sampler of the rank-one relu tilt (the readout layer of a one-hidden-layer
//! network): `p(h) ∝ N(h; 0, K^0) exp(gamma^2 (a.phi(h))^2 / 2)` for positively homogeneous
//! `phi` of degree one (relu, linear).
//!
//! # Equations
//! Whiten `h = F z` (`K^0 = F F^T`, `z ∈ R^r`, r = rank K^0) and write `z = t u`, `|u| = 1`.
//! With `psi(u) = phi(F u)`, `phi(h) = t psi(u)`, so with `c(u) = gamma^2 (a.psi(u))^2` the
//! density of `z` is `∝ exp(-t^2 (1 - c(u)) / 2)`, in polar coordinates times `t^{r-1} dt du`.
//! The radial integral is closed form,
//! `∫_0^∞ t^{r-1} exp(-t^2 (1 - c) / 2) dt = 2^{r/2 - 1} Γ(r/2) (1 - c)^{-r/2}` (finite iff `c < 1`), so
//! * the direction has the law `π(u) ∝ (1 - c(u))^{-r/2}` on the unit sphere (normalizable iff
//!   `rho = sup_u c(u) < 1`, the domain of [`super::homogeneous`]);
//! * given `u`, `t^2 ~ Gamma(r/2, scale 2 / (1 - c(u)))`, so `E[t^2 | u] = r / (1 - c(u))` and
//!   (Rao-Blackwellised) `<phi phi^T> = E_π[r / (1 - c) psi psi^T]`,
//!   `<h h^T> = E_π[r / (1 - c) (F u)(F u)^T]`;
//! * `E_{N(0, K^0)} exp(gamma^2 (a.phi)^2 / 2) = E_{u uniform} (1 - c(u))^{-r/2}`.
//!
//! Directions are sampled as `u = z / |z|` with `z ∝ exp(-|z|^2 / 2) (1 - c(z / |z|))^{-r/2}`
//! (radius chi_r, independent of the direction, whose law is `π`), by MALA on
//! `U(z) = |z|^2 / 2 + (r/2) ln(1 - c(z))` (c is homogeneous of degree 0):
//! `grad U = z - (r/2) grad c / (1 - c)`, `grad c = 2 gamma^2 s (F^T (a ⊙ phi'(F z)) - s z / |z|^2) / |z|^2`,
//! `s = a.phi(F z)`. Chains run in fixed blocks with one RNG stream each (results do not depend
//! on the thread count); the step size adapts towards acceptance 0.574 during burn-in.
use super::sample::check_config;
use super::TiltConfig;
use crate::control::Control;
use crate::error::{invalid, Result};
use crate::kernels::activation::Activation;
use crate::linalg::{matmul, CovFactor};
use crate::mcmc::mala::mala_log_ratio;
use crate::rng::Rng;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

const CHAIN_BLOCK: usize = 4;

/// Rao-Blackwellised draws: row i of `phi` is `sqrt(r / (1 - c_i)) psi(u_i)` and of `h`
/// `sqrt(r / (1 - c_i)) F u_i`, so `<phi phi^T> = phi^T phi / n` and `<h h^T> = h^T h / n`.
#[derive(Debug, Clone)]
pub struct RadialSamples {
    pub phi: Mat<f64>,
    pub h: Mat<f64>,
    /// `c(u_i)` of every draw.
    pub c: Vec<f64>,
    pub acceptance: Vec<f64>,
    pub step_size: Vec<f64>,
}

/// `(U, grad U, c, F z)` of the k columns of `z` (module docs); `U = inf` where `c >= 1`.
pub fn potentials(act: &Activation, f: MatRef<'_, f64>, a: &[f64], g2: f64, z: MatRef<'_, f64>) -> (Vec<f64>, Mat<f64>, Vec<f64>, Mat<f64>) {
    let (p, r, k) = (f.nrows(), f.ncols(), z.ncols());
    let mut h = Mat::<f64>::zeros(p, k);
    matmul(h.as_mut(), Accum::Replace, f, z, 1.0, Par::Seq);
    let w = Mat::from_fn(p, k, |i, j| a[i] * act.dphi(h[(i, j)]).unwrap());
    let mut ds = Mat::<f64>::zeros(r, k);
    matmul(ds.as_mut(), Accum::Replace, f.transpose(), w.as_ref(), 1.0, Par::Seq);
    let (mut u, mut cs) = (vec![0.0; k], vec![0.0; k]);
    let mut grad = Mat::<f64>::zeros(r, k);
    for j in 0..k {
        let s: f64 = (0..p).map(|i| a[i] * act.phi(h[(i, j)]).unwrap()).sum();
        let n2: f64 = z.col(j).iter().map(|x| x * x).sum();
        let c = g2 * s * s / n2;
        cs[j] = c;
        if !(c < 1.0) || !(n2 > 0.0) {
            u[j] = f64::INFINITY;
            continue;
        }
        u[j] = 0.5 * n2 + 0.5 * r as f64 * (1.0 - c).ln();
        let q = r as f64 * g2 * s / ((1.0 - c) * n2);
        for i in 0..r {
            grad[(i, j)] = z[(i, j)] - q * (ds[(i, j)] - s * z[(i, j)] / n2);
        }
    }
    (u, grad, cs, h)
}

/// Samples the directions of the tilt `N(h; 0, F F^T) exp(gamma^2 (a.phi(h))^2 / 2)` (module
/// docs). Refuses (naming `gamma`) activations that are not positively homogeneous of degree one
/// and tilts outside the domain (`RayBound` ratio `>= 1`: pattern witness or ray ascent).
pub fn sample_radial(act: &Activation, factor: &CovFactor, a: &[f64], gamma: f64, cfg: &TiltConfig, ctl: &Control) -> Result<RadialSamples> {
    check_config(cfg)?;
    if !matches!(act, Activation::Relu | Activation::Linear) {
        return Err(invalid("activation", "the radius-integrated sampler needs relu or linear (positively homogeneous of degree one)"));
    }
    let (f, p, r) = (factor.f(), factor.f().nrows(), factor.rank());
    if a.len() != p || a.iter().any(|v| !v.is_finite()) {
        return Err(invalid("a", format!("must hold {p} finite entries")));
    }
    let g2 = gamma * gamma;
    let k0 = Mat::from_fn(p, p, |i, j| (0..r).map(|k| f[(i, k)] * f[(j, k)]).sum::<f64>());
    let rho = match act {
        Activation::Linear => g2 * (0..p).map(|i| (0..p).map(|j| a[i] * k0[(i, j)] * a[j]).sum::<f64>()).sum::<f64>(),
        _ => super::RayBound::new(f).ratio(k0.as_ref(), a, gamma),
    };
    if !(rho < 1.0) {
        return Err(invalid(
            "gamma",
            format!("the tilt exp(gamma^2 (a.phi(h))^2 / 2) is not normalizable (rho = {rho:.4} >= 1); lower gamma or raise the temperature"),
        ));
    }
    crate::validate::memory("n_samples", "the radial sampler's draws", 24.0 * (cfg.n_chains * cfg.n_samples) as f64 * p as f64, "use fewer samples or chains (n_samples, n_chains)")?;
    let steps = cfg.burn_in + cfg.n_samples * cfg.thin;
    ctl.add_total((steps * cfg.n_chains) as u64);
    type Chain = (Vec<f64>, Vec<f64>, Vec<f64>, f64, f64);
    let blocks: Vec<Result<Vec<Chain>>> = (0..cfg.n_chains.div_ceil(CHAIN_BLOCK))
        .into_par_iter()
        .map(|b| {
            let c0 = b * CHAIN_BLOCK;
            let k = CHAIN_BLOCK.min(cfg.n_chains - c0);
            let mut rngs: Vec<Rng> = (c0..c0 + k).map(|c| Rng::new(cfg.seed, c as u64)).collect();
            let mut z = Mat::<f64>::zeros(r, k);
            for (j, rng) in rngs.iter_mut().enumerate() {
                rng.fill_normal(z.col_as_slice_mut(j));
            }
            let mut cur = potentials(act, f, a, g2, z.as_ref());
            let mut log_eta = vec![cfg.step_size.ln(); k];
            let (mut outp, mut outh, mut outc) = (vec![Vec::new(); k], vec![Vec::new(); k], vec![Vec::new(); k]);
            let (mut accepted, mut proposed) = (vec![0usize; k], 0usize);
            let mut prop = Mat::<f64>::zeros(r, k);
            let mut xi = vec![0.0; r];
            for step in 0..steps {
                if step % 256 == 0 {
                    ctl.checkpoint()?;
                    ctl.advance((256.min(steps - step) * k) as u64);
                }
                for (j, rng) in rngs.iter_mut().enumerate() {
                    let eta = log_eta[j].exp();
                    rng.fill_normal(&mut xi);
                    let s = (2.0 * eta).sqrt();
                    for i in 0..r {
                        prop[(i, j)] = z[(i, j)] - eta * cur.1[(i, j)] + s * xi[i];
                    }
                }
                let new = potentials(act, f, a, g2, prop.as_ref());
                let keep = step >= cfg.burn_in && (step - cfg.burn_in) % cfg.thin == 0;
                if step >= cfg.burn_in {
                    proposed += 1;
                }
                for (j, rng) in rngs.iter_mut().enumerate() {
                    let eta = log_eta[j].exp();
                    let acc = if new.0[j].is_finite() {
                        mala_log_ratio(cur.0[j], new.0[j], z.col_as_slice(j), prop.col_as_slice(j), cur.1.col_as_slice(j), new.1.col_as_slice(j), eta).min(0.0).exp()
                    } else {
                        0.0
                    };
                    let take = rng.uniform() < acc;
                    if step >= cfg.burn_in {
                        accepted[j] += take as usize;
                    } else {
                        log_eta[j] += (acc - 0.574) / ((step + 10) as f64).powf(0.6);
                    }
                    if take {
                        z.col_as_slice_mut(j).copy_from_slice(prop.col_as_slice(j));
                        cur.0[j] = new.0[j];
                        cur.1.col_as_slice_mut(j).copy_from_slice(new.1.col_as_slice(j));
                        cur.2[j] = new.2[j];
                        cur.3.col_as_slice_mut(j).copy_from_slice(new.3.col_as_slice(j));
                    }
                    if keep {
                        let n2: f64 = z.col(j).iter().map(|x| x * x).sum();
                        let m = (r as f64 / ((1.0 - cur.2[j]) * n2)).sqrt(); // sqrt(r / (1 - c)) / |z|
                        for i in 0..p {
                            let hi = cur.3[(i, j)];
                            outp[j].push(m * act.phi(hi).unwrap());
                            outh[j].push(m * hi);
                        }
                        outc[j].push(cur.2[j]);
                    }
                }
            }
            Ok((0..k)
                .map(|j| (std::mem::take(&mut outp[j]), std::mem::take(&mut outh[j]), std::mem::take(&mut outc[j]), accepted[j] as f64 / proposed.max(1) as f64, log_eta[j].exp()))
                .collect())
        })
        .collect();
    let n = cfg.n_chains * cfg.n_samples;
    let (mut phi, mut h) = (Mat::<f64>::zeros(n, p), Mat::<f64>::zeros(n, p));
    let (mut c, mut acceptance, mut step_size) = (Vec::with_capacity(n), vec![], vec![]);
    let mut row = 0;
    for b in blocks {
        for (rp, rh, rc, acc, eta) in b? {
            for s in 0..cfg.n_samples {
                for i in 0..p {
                    phi[(row, i)] = rp[s * p + i];
                    h[(row, i)] = rh[s * p + i];
                }
                row += 1;
            }
            c.extend(rc);
            acceptance.push(acc);
            step_size.push(eta);
        }
    }
    Ok(RadialSamples { phi, h, c, acceptance, step_size })
}
