//! The tilted single-site preactivation density of a Bayesian mean-field layer (Lauditi,
//! Bordelon, Pehlevan 2025; digest `lauditi_bordelon_pehlevan_2025.md` §2.2):
//! `p(h) ∝ N(h; 0, C) exp(-phi(h)^T hatPhi phi(h) / 2)`, `h ∈ R^P` (one neuron's preactivations
//! on all P training points). Its moments `<phi phi^T>` and `<h h^T>` are the saddle-point
//! kernels of nonlinear networks; they have no closed form beyond P ~ 2, so they are sampled.
//!
//! Sampling runs in whitened coordinates `h = L z` (`C = L L^T`), where the prior is standard
//! normal: `U(z) = |z|^2 / 2 + phi(Lz)^T hatPhi phi(Lz) / 2`,
//! `grad U = z + L^T (phi'(h) ⊙ hatPhi phi(h))`, by Metropolis-adjusted Langevin chains run in
//! parallel (one RNG stream per chain, results combined in chain order, so they do not depend
//! on the thread count). During burn-in the step size adapts towards acceptance 0.574.
//! [`smc`] samples the same density by sequential Monte Carlo along a tempering ladder
//! `exp(-beta phi^T hatPhi phi / 2)`, `beta: 0 -> 1` (also returns `ln` of the normaliser).
//!
//! For unbounded activations the tilt can overwhelm the Gaussian prior (then `p` is not
//! normalizable and any sampler returns garbage); [`check_normalizable`] decides it exactly for
//! linear phi and by a sufficient condition plus witness search for positively homogeneous relu
//! (sign patterns, [`homogeneous`]).
use crate::error::{invalid, shape, Result};
use crate::kernels::activation::Activation;
use crate::linalg::{check_symmetric, cholesky_with_jitter, CovFactor};
use crate::linalg::matmul;
use faer::{Accum, Mat, MatRef, Par};

pub mod homogeneous;
mod moments;
mod normalizable;
pub mod radial;
mod sample;
pub mod smc;

pub use moments::{apply_phi, sample_moments, weighted_gram};
pub use homogeneous::{rank_one_ratio, RayBound};
pub use normalizable::check_normalizable;
pub use sample::Samples;
pub use smc::{SmcConfig, SmcSamples};

/// Sampler settings.
#[derive(Debug, Clone, Copy)]
pub struct TiltConfig {
    pub n_chains: usize,
    pub n_samples: usize,
    pub burn_in: usize,
    pub thin: usize,
    pub step_size: f64,
    pub seed: u64,
}

impl Default for TiltConfig {
    /// The defaults of the tilted sampler (`adaptive_kernels.tilted_moments` and the sampled
    /// mean-field solver read them from here).
    fn default() -> Self {
        TiltConfig {
            n_chains: 16,
            n_samples: 1000,
            burn_in: 300,
            thin: 2,
            step_size: 0.2,
            seed: 0,
        }
    }
}

/// Monte-Carlo moments of the tilted density.
#[derive(Debug, Clone)]
pub struct TiltedMoments {
    /// `<phi(h) phi(h)^T>` (P x P row-major).
    pub phi2: Vec<f64>,
    /// `<h h^T>` (P x P row-major).
    pub h2: Vec<f64>,
    /// Acceptance rate per chain (after burn-in).
    pub acceptance: Vec<f64>,
    /// Adapted step size per chain.
    pub step_size: Vec<f64>,
    /// Effective sample size of the tilt energy `phi^T hatPhi phi`, summed over chains.
    pub ess: f64,
}

/// The density of one layer: activation, prior covariance factor and tilt.
pub struct TiltedDensity<'a> {
    act: &'a Activation,
    l: CovFactor,
    phat: MatRef<'a, f64>,
}

impl<'a> TiltedDensity<'a> {
    /// `c`: prior covariance (P x P, positive definite), `phat`: the tilt (P x P, symmetric).
    pub fn new(
        act: &'a Activation,
        c: MatRef<'_, f64>,
        phat: MatRef<'a, f64>,
        par: Par,
    ) -> Result<Self> {
        let p = c.nrows();
        if p == 0 || c.ncols() != p {
            return Err(shape(
                "C",
                format!("must be square and non-empty, got ({p}, {})", c.ncols()),
            ));
        }
        // the factor, the factorization's work copy and the tilt in the factor's coordinates
        crate::validate::dense_memory("C", "the factor of C and the tilt in its coordinates", 3.0, p, p, "use fewer points")?;
        let mut l = Mat::<f64>::zeros(p, p);
        cholesky_with_jitter("C", c, 0.0, l.as_mut(), par)?;
        Self::with_factor(act, CovFactor::Cholesky(l), phat)
    }

    /// The density with prior `C = F F^T` given by its factor (e.g. the support factor of a
    /// singular `K^0`: the samples then lie on the support).
    pub fn with_factor(act: &'a Activation, l: CovFactor, phat: MatRef<'a, f64>) -> Result<Self> {
        if matches!(act, Activation::Custom(_)) {
            return Err(invalid(
                "activation",
                "the tilted-density sampler supports the built-in activations only",
            ));
        }
        let p = l.f().nrows();
        if p == 0 || phat.nrows() != p || phat.ncols() != p {
            return Err(shape(
                "hat_phi",
                format!(
                    "must be {p} x {p} like C, got ({}, {})",
                    phat.nrows(),
                    phat.ncols()
                ),
            ));
        }
        check_symmetric("hat_phi", phat)?;
        Ok(TiltedDensity { act, l, phat })
    }

    /// P, the number of preactivations.
    pub fn dim(&self) -> usize {
        self.l.f().nrows()
    }

    /// `(U(z), grad U(z), tilt energy phi^T hatPhi phi, h)` at whitened coordinates `z` (length
    /// rank C).
    pub fn potential(&self, z: &[f64]) -> (f64, Vec<f64>, f64, Vec<f64>) {
        let b = self.potentials(MatRef::from_column_major_slice(z, z.len(), 1));
        (
            b.u[0],
            b.grad.col_as_slice(0).to_vec(),
            b.energy[0],
            b.h.col_as_slice(0).to_vec(),
        )
    }

    /// [`Self::potential`] at the k columns of `z` (r x k) at once: three GEMMs (`F Z`,
    /// `hatPhi phi(H)`, `F^T (phi'(H) ⊙ hatPhi phi(H))`) read each P x P matrix once for all k
    /// chains, where k matrix-vector products would stream it k times (memory-bound at large P).
    /// Sequential; callers parallelise over blocks of chains.
    pub fn potentials(&self, z: MatRef<'_, f64>) -> Potentials {
        let (p, k) = (self.dim(), z.ncols());
        let mut h = Mat::<f64>::zeros(p, k);
        matmul(h.as_mut(), Accum::Replace, self.l.f(), z, 1.0, Par::Seq);
        let phi = Mat::from_fn(p, k, |i, j| self.act.phi(h[(i, j)]).unwrap());
        let mut v = Mat::<f64>::zeros(p, k);
        matmul(
            v.as_mut(),
            Accum::Replace,
            self.phat,
            phi.as_ref(),
            1.0,
            Par::Seq,
        );
        let energy: Vec<f64> = (0..k)
            .map(|j| (0..p).map(|i| phi[(i, j)] * v[(i, j)]).sum())
            .collect();
        let t = Mat::from_fn(p, k, |i, j| self.act.dphi(h[(i, j)]).unwrap() * v[(i, j)]);
        let mut grad = z.to_owned();
        matmul(
            grad.as_mut(),
            Accum::Add,
            self.l.f().transpose(),
            t.as_ref(),
            1.0,
            Par::Seq,
        );
        let u = (0..k)
            .map(|j| 0.5 * z.col(j).iter().map(|x| x * x).sum::<f64>() + 0.5 * energy[j])
            .collect();
        Potentials { u, grad, energy, h }
    }
}

/// [`TiltedDensity::potentials`] of k points: `U`, `grad U` (r x k), tilt energies, `h` (P x k).
pub struct Potentials {
    pub u: Vec<f64>,
    pub grad: Mat<f64>,
    pub energy: Vec<f64>,
    pub h: Mat<f64>,
}

#[cfg(test)]
mod tests;
