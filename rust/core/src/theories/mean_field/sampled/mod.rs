//! Bayesian mean-field saddle point of *nonlinear* networks (Lauditi, Bordelon, Pehlevan 2025;
//! digest `lauditi_bordelon_pehlevan_2025.md` §2.2, §2.5, §4.3): conventions of
//! [`crate::theories::mean_field::linear`] (mean-field readout `f = w . phi(h^L) / (gamma N)`, temperature T,
//! `C^{l-1} = sigma_w^2 Phi^{l-1} + sigma_b^2`, `C^0 = K^0`).
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
//!   The default `min_kish = 0.5` sits below the Monte-Carlo floor: at low T the fixed points of
//!   two independent sample sets differ by enough (MC noise in `Phi^L` amplified by
//!   `(Phi^L + T I)^{-1}`) that redraws at the solution give Kish 0.5–0.9 at random, so 0.9 made
//!   the continuation redraw for ever; a self-normalised estimate at Kish 0.5 only halves the
//!   effective sample number, which `ess` reports.
//! * The final samples' chains are checked for drift ([`chain_radius`]): under a strong relu
//!   readout tilt the density has a soft direction that MALA (stepping at the scale of the stiff
//!   ones) crosses slowly, and where the tilt is not normalizable (a copositivity question the
//!   witness search can miss) the chains run away; either way the moments are biased, and the
//!   caller is told (a warning in Python), since importance weights cannot see a tail the samples
//!   never visited.
//! * Monte-Carlo limit for L >= 2: each hidden conjugate is a P x P matrix estimated from S
//!   samples, so its noise (whitened, Frobenius) grows like P / sqrt(S_eff) times the tilt
//!   strength, and so does the log-weight spread between two sample sets' fixed points. Beyond
//!   some richness the redraws' fixed points stop agreeing (Kish < `min_kish` at every redraw).
//!   Measured, relu L = 2 on MNIST, T = 0.1, S = 16 x 500: P = 250 reaches gamma = 0.1 in 33 s;
//!   P = 500 reaches 0.025 in 10 s but had not got past gamma ~ 0.06 after 10 min; at P = 2000
//!   (3.7 s per map, S / P = 4) the draws' own fixed points differ by ~55% in A (a redraw at one
//!   draw's fixed point starts at |A' - A| ~ 100, |A| ~ 190): a one-draw fit converges at
//!   gamma = 0.0025 (5 Newton iterations), while at 0.005 the fixed point of a draw made from the
//!   0.0025 solution has Kish 0.41 and the next draw disagrees; the Newton solve on one sample
//!   set then creeps (full steps cutting |r| by 10%, ~1 min each) towards a fixed point whose
//!   Kish fraction is below `min_kish`. Ending such a solve early and redrawing was tried: it
//!   helped there and on MNIST relu L = 1 at gamma = 4, but stopped the digits relu path at
//!   gamma = 0.5 (a creep on one sample set is what gets that path through), so it was not
//!   kept. The authors used S / P = 800 and 1000 (digest, "Sample counts"); S must grow with P.
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
use crate::kernels::activation::Activation;
use crate::kernels::input::{input_kernel, input_kernel_diag};
use crate::kernels::net::{Mlp, Rows};
use crate::linalg::{cholesky, symmetrize, CovFactor};
use crate::mcmc::chains::chain_radius;
use crate::mcmc::tilted::{apply_phi, weighted_gram, TiltConfig, TiltedDensity};
use crate::optim::newton_krylov::{self, newton_krylov};
use crate::rng::Rng;
use crate::solve::continuation::Continuation;
use crate::solve::SolveReport;
use crate::validate;
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

/// Settings of the sampled solver.
#[derive(Debug, Clone, Copy)]
pub struct SampledOptions {
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
}

impl Default for SampledOptions {
    fn default() -> Self {
        SampledOptions {
            sampler: TiltConfig::default(),
            tol: 1e-8,
            max_iter: 50,
            krylov: 30,
            forcing: 1e-2,
            min_kish: 0.5,
            min_trial_kish: 0.1,
            max_refresh: 8,
            max_stages: 40,
        }
    }
}

/// One layer's sample set: preactivations, their images, and the reference log density.
#[derive(Debug, Clone)]
pub struct LayerSamples {
    /// S x P preactivations.
    pub h: Mat<f64>,
    /// `phi(h)` and `phi'(h)`.
    pub phi: Mat<f64>,
    pub dphi: Mat<f64>,
    /// `+h^T C_ref^{-1} h / 2 + phi^T hatPhi_ref phi / 2` (minus the reference log density).
    pub base: Vec<f64>,
    /// `h^T C_ref^{-1} h` (reused in layer 1, whose prior is always `K^0`).
    q_ref: Vec<f64>,
    /// MCMC diagnostics of the draw (NaN when the samples were given).
    pub ess: f64,
    pub acceptance: Vec<f64>,
}

/// Columns' squared norms `|z_s|^2 = h_s^T C^{-1} h_s`.
fn quad_forms(z: &Mat<f64>) -> Vec<f64> {
    (0..z.ncols())
        .map(|s| z.col_as_slice(s).iter().map(|v| v * v).sum())
        .collect()
}

/// `F = phi M` (S x P) and the rows `phi_s^T M phi_s` (M symmetric P x P).
fn tilt_energy(phi: MatRef<'_, f64>, m: MatRef<'_, f64>, par: Par) -> (Mat<f64>, Vec<f64>) {
    let mut fm = Mat::<f64>::zeros(phi.nrows(), phi.ncols());
    matmul(fm.as_mut(), Accum::Replace, phi, m, 1.0, par);
    let e = (0..phi.nrows())
        .map(|s| (0..phi.ncols()).map(|j| fm[(s, j)] * phi[(s, j)]).sum())
        .collect();
    (fm, e)
}

/// `B = phi A` (S x C) and the rows `|B_s|^2`.
fn readout_energy(phi: MatRef<'_, f64>, a: MatRef<'_, f64>, par: Par) -> (Mat<f64>, Vec<f64>) {
    let mut b = Mat::<f64>::zeros(phi.nrows(), a.ncols());
    matmul(b.as_mut(), Accum::Replace, phi, a, 1.0, par);
    let e = (0..phi.nrows())
        .map(|s| (0..a.ncols()).map(|j| b[(s, j)] * b[(s, j)]).sum())
        .collect();
    (b, e)
}

fn factor(name: &'static str, c: MatRef<'_, f64>) -> Result<Mat<f64>> {
    cholesky(c).ok_or_else(|| AkError::NotPositiveDefinite {
        name,
        msg: "Cholesky failed".into(),
    })
}

impl LayerSamples {
    /// Wraps samples `h` (S x P) drawn from the density with prior `c_ref` and tilt `hat_ref`.
    pub fn new(
        act: &Activation,
        h: Mat<f64>,
        c_ref: MatRef<'_, f64>,
        hat_ref: MatRef<'_, f64>,
        par: Par,
    ) -> Result<Self> {
        let lc = CovFactor::psd("C_ref", c_ref, par)?;
        Self::with_factor(act, h, &lc, hat_ref, par)
    }

    /// [`LayerSamples::new`] with the factor of `C_ref` given (a singular `K^0`'s support factor:
    /// `h^T C_ref^+ h` on its support).
    pub fn with_factor(
        act: &Activation,
        h: Mat<f64>,
        c_ref: &CovFactor,
        hat_ref: MatRef<'_, f64>,
        par: Par,
    ) -> Result<Self> {
        let p = c_ref.f().nrows();
        if h.ncols() != p || hat_ref.nrows() != p || hat_ref.ncols() != p || h.nrows() == 0 {
            return Err(shape(
                "samples",
                format!("need S x {p} samples and {p} x {p} reference matrices"),
            ));
        }
        let phi = apply_phi(act, h.as_ref());
        let dphi = Mat::from_fn(h.nrows(), p, |i, j| act.dphi(h[(i, j)]).unwrap());
        let q_ref = quad_forms(&c_ref.whiten(h.transpose(), par));
        let (_, t) = tilt_energy(phi.as_ref(), hat_ref, par);
        let base = q_ref.iter().zip(&t).map(|(q, t)| 0.5 * (q + t)).collect();
        Ok(LayerSamples {
            h,
            phi,
            dphi,
            base,
            q_ref,
            ess: f64::NAN,
            acceptance: vec![],
        })
    }
}

/// Result of one outer iteration.
#[derive(Debug, Clone)]
pub struct MapOut {
    /// `hatPhi_1' .. hatPhi_{L-1}'`.
    pub hidden: Vec<Mat<f64>>,
    /// `A' = (Phi^L + T I)^{-1} Y`.
    pub a: Mat<f64>,
    pub kernels: Vec<Mat<f64>>,
    /// Kish effective fraction per layer.
    pub kish: Vec<f64>,
    /// Normalised weights per layer.
    pub weights: Vec<Vec<f64>>,
    /// Lower Cholesky factors of the priors of the deeper layers, `C^1 .. C^{L-1}`.
    pub prior_factors: Vec<Mat<f64>>,
}

/// The fixed data of a fit.
pub struct Setup<'a> {
    pub act: &'a Activation,
    pub k0: MatRef<'a, f64>,
    /// `CovFactor::psd` of `K^0` (layer 1's prior never changes).
    pub k0_factor: &'a CovFactor,
    pub y: MatRef<'a, f64>,
    pub sigma_w: f64,
    pub sigma_b: f64,
    pub gamma: f64,
    pub temperature: f64,
}

impl Setup<'_> {
    /// `C^l = sigma_w^2 Phi^l + sigma_b^2`.
    fn prior(&self, phi: &Mat<f64>) -> Mat<f64> {
        let (sw2, sb2) = (self.sigma_w * self.sigma_w, self.sigma_b * self.sigma_b);
        Mat::from_fn(phi.nrows(), phi.ncols(), |i, j| sw2 * phi[(i, j)] + sb2)
    }

    /// One outer iteration on a fixed sample set (module docs): forward by reweighting, backward
    /// by the stationarity conditions.
    pub fn map(
        &self,
        hidden: &[Mat<f64>],
        a: MatRef<'_, f64>,
        samples: &[LayerSamples],
        par: Par,
    ) -> Result<MapOut> {
        let l_count = samples.len();
        let p = self.k0.nrows();
        if hidden.len() + 1 != l_count || a.nrows() != p || a.ncols() != self.y.ncols() {
            return Err(shape(
                "conjugates",
                format!(
                    "need {} hidden conjugates and A of shape ({p}, {})",
                    l_count - 1,
                    self.y.ncols()
                ),
            ));
        }
        let mut c = self.k0.to_owned();
        let g2 = self.gamma * self.gamma;
        let sw2 = self.sigma_w * self.sigma_w;
        let (mut kernels, mut kish, mut weights, mut factors) = (vec![], vec![], vec![], vec![]);
        let mut hidden_new = Vec::with_capacity(l_count - 1);
        for (l, smp) in samples.iter().enumerate() {
            // layer 1's prior is K^0, the one it was drawn with; deeper layers are whitened by
            // the current prior (needed by the backward step too)
            let lz = if l > 0 {
                let lc = CovFactor::Cholesky(factor("C", c.as_ref())?);
                let z = lc.whiten(smp.h.transpose(), par);
                Some((lc, z))
            } else {
                None
            };
            let q = match &lz {
                Some((_, z)) => quad_forms(z),
                None => smp.q_ref.clone(),
            };
            // tilt energies and the tilt's gradient factor  hatPhi phi  (S x P)
            let (grad_factor, t) = if l + 1 == l_count {
                let (b, e) = readout_energy(smp.phi.as_ref(), a, par);
                // (only the backward step of a hidden layer needs it: not for L = 1)
                let mut gf = Mat::<f64>::zeros(if l > 0 { smp.h.nrows() } else { 0 }, p);
                if l > 0 {
                    matmul(
                        gf.as_mut(),
                        Accum::Replace,
                        b.as_ref(),
                        a.transpose(),
                        -g2,
                        par,
                    );
                }
                (gf, e.into_iter().map(|e| -g2 * e).collect::<Vec<f64>>())
            } else {
                tilt_energy(smp.phi.as_ref(), hidden[l].as_ref(), par)
            };
            let logw: Vec<f64> = (0..smp.h.nrows())
                .map(|s| smp.base[s] - 0.5 * (q[s] + t[s]))
                .collect();
            let mx = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if !mx.is_finite() {
                return Err(AkError::NonFinite {
                    name: "conjugates",
                    msg: "importance weights are not finite".into(),
                });
            }
            let mut w: Vec<f64> = logw.iter().map(|v| (v - mx).exp()).collect();
            let sum: f64 = w.iter().sum();
            w.iter_mut().for_each(|v| *v /= sum);
            kish.push(1.0 / (w.len() as f64 * w.iter().map(|v| v * v).sum::<f64>()));
            let k = weighted_gram(smp.phi.as_ref(), smp.phi.as_ref(), Some(&w), par);
            if let Some((lc, z)) = lz {
                // backward step of layer l-1 by the first-order Stein identity (module docs):
                // C^{-1}(C - H)C^{-1} = C^{-1} <h grad V^T>,  grad V = phi'(h) ⊙ hatPhi phi(h)
                let gv = Mat::from_fn(smp.h.nrows(), p, |s, j| {
                    w[s] * smp.dphi[(s, j)] * grad_factor[(s, j)]
                });
                let mut m = Mat::<f64>::zeros(p, p);
                matmul(
                    m.as_mut(),
                    Accum::Replace,
                    z.as_ref(),
                    gv.as_ref(),
                    sw2,
                    par,
                );
                solve_upper_triangular_in_place(lc.f().transpose(), m.as_mut(), par);
                symmetrize(&mut m);
                hidden_new.push(m);
                if let CovFactor::Cholesky(l) = lc {
                    factors.push(l);
                }
            }
            c = self.prior(&k);
            kernels.push(k);
            weights.push(w);
        }
        // backward, last layer: A' = (Phi^L + T I)^{-1} Y
        let mut m = kernels[l_count - 1].clone();
        for i in 0..p {
            m[(i, i)] += self.temperature;
        }
        let lm = factor("Phi^L + T I", m.as_ref())?;
        let mut a_new = self.y.to_owned();
        crate::linalg::cholesky_solve_in_place(lm.as_ref(), a_new.as_mut(), par)?;
        Ok(MapOut {
            hidden: hidden_new,
            a: a_new,
            kernels,
            kish,
            weights,
            prior_factors: factors,
        })
    }
}

/// Flattens `(hidden, A)` column-major.
fn pack(hidden: &[Mat<f64>], a: MatRef<'_, f64>) -> Vec<f64> {
    let mut x = Vec::new();
    for m in hidden {
        for j in 0..m.ncols() {
            x.extend_from_slice(m.col_as_slice(j));
        }
    }
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            x.push(a[(i, j)]);
        }
    }
    x
}

fn unpack(x: &[f64], depth: usize, p: usize, c: usize) -> (Vec<Mat<f64>>, Mat<f64>) {
    let hidden = (0..depth - 1)
        .map(|l| {
            let off = l * p * p;
            let mut m = Mat::from_fn(p, p, |i, j| x[off + j * p + i]);
            symmetrize(&mut m);
            m
        })
        .collect();
    let off = (depth - 1) * p * p;
    (hidden, Mat::from_fn(p, c, |i, j| x[off + j * p + i]))
}

/// Dimensionless residual: `max |A' - A| / max |A'|`, and over hidden layers the change of the
/// whitened tilt `max |L^T (hatPhi_l' - hatPhi_l) L|` (`L L^T = C^l`, the prior of the next
/// layer, the scale of the tilted features).
fn measure(hidden: &[Mat<f64>], a: MatRef<'_, f64>, out: &MapOut, par: Par) -> f64 {
    let (mut amax, mut r) = (0.0f64, 0.0f64);
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            amax = amax.max(out.a[(i, j)].abs());
            r = r.max((out.a[(i, j)] - a[(i, j)]).abs());
        }
    }
    r /= amax.max(1e-300);
    for (l, (old, new)) in hidden.iter().zip(&out.hidden).enumerate() {
        // hatPhi_{l+1} tilts phi(h^{l+1}), whose second moment Phi^{l+1} ~ C^{l+1} / sigma_w^2:
        // measured in units of that prior (as the reference does; the layer's own prior C^l
        // would be blind off the support of a singular K^0, which phi(h) does reach)
        let lc = out.prior_factors[l].as_ref();
        let p = old.nrows();
        let d = Mat::from_fn(p, p, |i, j| new[(i, j)] - old[(i, j)]);
        let mut t = Mat::<f64>::zeros(p, lc.ncols());
        matmul(t.as_mut(), Accum::Replace, d.as_ref(), lc, 1.0, par);
        let mut w = Mat::<f64>::zeros(lc.ncols(), lc.ncols());
        matmul(
            w.as_mut(),
            Accum::Replace,
            lc.transpose(),
            t.as_ref(),
            1.0,
            par,
        );
        for j in 0..w.ncols() {
            for i in 0..w.nrows() {
                r = r.max(w[(i, j)].abs());
            }
        }
    }
    r
}

/// A fitted saddle point.
#[derive(Debug, Clone)]
pub struct SampledSolution {
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
    /// Per layer, [`chain_radius`] of the final samples (first and last third of the chains).
    pub chain_radius: Vec<[f64; 2]>,
}

/// Draws every layer's samples at the iterate `(hidden, a)` (forward, layer by layer).
fn draw(
    setup: &Setup,
    hidden: &[Mat<f64>],
    a: MatRef<'_, f64>,
    depth: usize,
    cfg: &TiltConfig,
    draw_index: usize,
    par: Par,
    ctl: &Control,
) -> Result<Vec<LayerSamples>> {
    let p = setup.k0.nrows();
    let mut c = setup.k0.to_owned();
    let mut out = Vec::with_capacity(depth);
    for l in 0..depth {
        let hat = if l + 1 == depth {
            let g2 = setup.gamma * setup.gamma;
            let mut m = Mat::<f64>::zeros(p, p);
            matmul(m.as_mut(), Accum::Replace, a, a.transpose(), -g2, par);
            symmetrize(&mut m);
            m
        } else {
            hidden[l].clone()
        };
        let dens = if l == 0 {
            TiltedDensity::with_factor(setup.act, setup.k0_factor.clone(), hat.as_ref())?
        } else {
            TiltedDensity::new(setup.act, c.as_ref(), hat.as_ref(), par)?
        };
        dens.check_normalizable(c.as_ref(), par)?;
        let mut cfg_l = *cfg;
        cfg_l.seed = cfg.seed.wrapping_add(
            0x9E37_79B9_7F4A_7C15u64.wrapping_mul((draw_index * depth + l + 1) as u64),
        );
        let smp = dens.sample(&cfg_l, ctl)?;
        let mut ls = if l == 0 {
            LayerSamples::with_factor(setup.act, smp.h, setup.k0_factor, hat.as_ref(), par)?
        } else {
            LayerSamples::new(setup.act, smp.h, c.as_ref(), hat.as_ref(), par)?
        };
        ls.ess = smp.ess;
        ls.acceptance = smp.acceptance;
        let k = weighted_gram(ls.phi.as_ref(), ls.phi.as_ref(), None, par);
        c = setup.prior(&k);
        out.push(ls);
    }
    Ok(out)
}

/// Why a continuation stage failed.
enum StageEnd {
    Done(Vec<f64>, Vec<LayerSamples>, MapOut),
    Failed { normalizable: bool },
}

/// The saddle point at `setup.gamma` by continuation from `init` (`(x, gamma)` of an earlier
/// solution) or from the NNGP. Runs under the caller's thread pool (`par`).
pub fn solve(
    setup: &Setup,
    depth: usize,
    opts: &SampledOptions,
    init: Option<(&SampledSolution, f64)>,
    par: Par,
    ctl: &Control,
) -> Result<SampledSolution> {
    let p = setup.k0.nrows();
    let c = setup.y.ncols();
    let target = setup.gamma;
    validate::gamma_temperature(target, setup.temperature)?;
    let (mut x, g_done) = match init {
        Some((s, g)) => {
            let hidden: Vec<Mat<f64>> = s.conjugates[..depth - 1].to_vec();
            (pack(&hidden, s.a.as_ref()), g)
        }
        None => (vec![0.0; (depth - 1) * p * p + p * c], 0.0),
    };
    let (mut n_iter, mut n_eval, mut hist, mut n_draws) = (0usize, 0usize, vec![], 0usize);
    let mut cont = Continuation::new(g_done, target, opts.max_stages);
    // the probe's NNGP samples, reused as the first stage's first draw (same densities)
    let mut probe: Option<Vec<LayerSamples>> = None;
    if init.is_none() {
        // first step from the NNGP: the densities at x = 0 carry no tilt at any gamma, so one draw
        // tells how far in gamma the NNGP's own A = (Phi^L + T I)^{-1} Y can be reached by
        // reweighting; halve the step until that keeps the stage's acceptance fraction, rather
        // than learn it by failed stages (each one or more draws)
        let (hidden, a) = unpack(&x, depth, p, c);
        let samples = draw(
            setup,
            &hidden,
            a.as_ref(),
            depth,
            &opts.sampler,
            n_draws,
            par,
            ctl,
        )?;
        n_draws += 1;
        let a_nngp = setup.map(&hidden, a.as_ref(), &samples, par)?.a;
        while cont.step > 1e-3 * target {
            let st = Setup {
                gamma: cont.step,
                ..*setup
            };
            match st.map(&hidden, a_nngp.as_ref(), &samples, par) {
                Ok(out) if out.kish.iter().all(|k| *k >= opts.min_kish) => break,
                _ => cont.step *= 0.5,
            }
        }
        probe = Some(samples);
    }
    let mut last: Option<(Vec<LayerSamples>, MapOut)> = None;
    let mut last_failure_normalizable = false;
    let nk_opts = newton_krylov::Options {
        tol: opts.tol,
        max_iter: opts.max_iter,
        krylov: opts.krylov,
        forcing: opts.forcing,
    };
    while let Some(g_try) = cont.next() {
        let g_done = cont.done;
        let st = Setup {
            gamma: g_try,
            ..*setup
        };
        let end = (|| -> Result<StageEnd> {
            // predictor: A scaled by gamma_done / gamma_try keeps the last layer's tilt
            // -gamma^2 A A^T, so the stage starts on the last solution's own densities (Kish 1,
            // a normalizable density by construction). Keeping A instead multiplies the tilt by
            // (gamma_try / gamma_done)^2 and collapses the weights at low T (Kish ~1e-4 for a 25%
            // step on MNIST relu); along the path gamma A is nearly constant (A ~ 1 / gamma).
            let mut xs = x.clone();
            if g_done > 0.0 {
                let off = (depth - 1) * p * p;
                let r = g_done / g_try;
                xs[off..].iter_mut().for_each(|v| *v *= r);
            }
            let mut prev_res = f64::INFINITY;
            for _ in 0..opts.max_refresh {
                let (hidden, a) = unpack(&xs, depth, p, c);
                // x = 0 on the first stage from the NNGP: the probe's samples are of these densities
                let drawn = match probe.take() {
                    Some(s) => Ok(s),
                    None => {
                        n_draws += 1;
                        draw(
                            &st,
                            &hidden,
                            a.as_ref(),
                            depth,
                            &opts.sampler,
                            n_draws - 1,
                            par,
                            ctl,
                        )
                    }
                };
                let samples = match drawn {
                    Ok(s) => s,
                    Err(AkError::InvalidArgument {
                        name: "hat_phi", ..
                    }) => {
                        return Ok(StageEnd::Failed {
                            normalizable: false,
                        })
                    }
                    Err(e) => return Err(e),
                };
                let res = |xv: &[f64], want_measure: bool| -> Result<Option<(Vec<f64>, f64)>> {
                    let (hd, av) = unpack(xv, depth, p, c);
                    match st.map(&hd, av.as_ref(), &samples, par) {
                        Ok(out) => {
                            if out.kish.iter().any(|k| !(*k >= opts.min_trial_kish)) {
                                return Ok(None);
                            }
                            let r: Vec<f64> = pack(&out.hidden, out.a.as_ref())
                                .iter()
                                .zip(xv)
                                .map(|(a, b)| a - b)
                                .collect();
                            let m = if want_measure {
                                measure(&hd, av.as_ref(), &out, par)
                            } else {
                                0.0
                            };
                            if !m.is_finite() || r.iter().any(|v| !v.is_finite()) {
                                return Ok(None);
                            }
                            Ok(Some((r, m)))
                        }
                        Err(AkError::NotPositiveDefinite { .. })
                        | Err(AkError::NonFinite { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                };
                let before = xs.clone();
                let (xn, rep) = newton_krylov(res, xs, &nk_opts, ctl)?;
                n_iter += rep.n_iter;
                n_eval += rep.n_eval;
                let h = rep.residual_history;
                hist.extend_from_slice(&h);
                xs = xn;
                let (hd, av) = unpack(&xs, depth, p, c);
                let out = st.map(&hd, av.as_ref(), &samples, par)?;
                let conv = *h.last().unwrap() < opts.tol;
                if conv && out.kish.iter().all(|k| *k >= opts.min_kish) {
                    return Ok(StageEnd::Done(xs, samples, out));
                }
                // a redraw that leaves the residual no smaller than the last one means the samples
                // of the stage's own iterates do not lead to its fixed point: the step is too long
                let last_res = *h.last().unwrap();
                if xs == before || (!conv && last_res >= prev_res) {
                    break;
                }
                prev_res = last_res;
            }
            Ok(StageEnd::Failed { normalizable: true })
        })()?;
        match end {
            StageEnd::Done(xn, samples, out) => {
                x = xn;
                last = Some((samples, out));
                if cont.succeeded(g_try) {
                    break;
                }
            }
            StageEnd::Failed { normalizable } => {
                last_failure_normalizable = !normalizable;
                if cont.failed(g_try) {
                    break;
                }
            }
        }
    }
    let converged = cont.reached();
    let g_done = cont.done;
    if !converged && last_failure_normalizable {
        return Err(invalid(
            "gamma",
            format!(
                "no normalizable saddle point found beyond gamma = {g_done:.6} (target {target}): the last layer's tilt \
                 exp(gamma^2 (A . phi(h))^2 / 2) overwhelms the Gaussian prior of this unbounded activation; \
                 lower gamma or raise the temperature"
            ),
        ));
    }
    let (samples, out) = match last {
        Some(v) => v,
        None => {
            return Err(invalid(
                "gamma",
                format!("the continuation from the NNGP made no progress towards gamma = {target} ({} stages)", cont.stages.len()),
            ))
        }
    };
    let (hidden, a) = unpack(&x, depth, p, c);
    let g2 = g_done * g_done;
    let mut conjugates = hidden;
    let mut last_c = Mat::<f64>::zeros(p, p);
    matmul(
        last_c.as_mut(),
        Accum::Replace,
        a.as_ref(),
        a.transpose(),
        -g2,
        par,
    );
    symmetrize(&mut last_c);
    conjugates.push(last_c);
    let residual = measure(&conjugates[..depth - 1], a.as_ref(), &out, par);
    let chain_radius = samples
        .iter()
        .enumerate()
        .map(|(l, s)| {
            let r = if l == 0 { setup.k0_factor.rank() } else { p };
            chain_radius(&s.q_ref, opts.sampler.n_chains, r)
        })
        .collect();
    Ok(SampledSolution {
        chain_radius,
        gamma: g_done,
        kernels: out.kernels,
        conjugates,
        a,
        report: SolveReport {
            converged,
            n_iter,
            n_eval,
            residual,
            residual_history: hist,
            stages: cont.stages,
            solver: "newton_krylov",
        },
        ess: samples
            .iter()
            .zip(&out.kish)
            .map(|(s, k)| s.ess * k)
            .collect(),
        kish: out.kish,
        acceptance: samples.iter().map(|s| s.acceptance.clone()).collect(),
        n_draws,
        weights: out.weights,
        samples: samples.into_iter().map(|s| s.h).collect(),
        support_rank: setup.k0_factor.rank(),
    })
}

/// Test-point kernels layer by layer (module docs) and the predictor. `k0_cross` (n x P) and
/// `k0_diag` (n) are the input kernel between test and training points and on the test points.
/// Returns the mean `(n x C)` and, with `return_var`, `Phi^L(*,*) - Phi^L(*,X)(Phi^L + T)^{-1}Phi^L(X,*)`.
#[allow(clippy::too_many_arguments)]
pub fn predict(
    act: &Activation,
    sigma_w: f64,
    sigma_b: f64,
    k0: MatRef<'_, f64>,
    k0_cross: MatRef<'_, f64>,
    k0_diag: &[f64],
    kernels: &[MatRef<'_, f64>],
    samples: &[MatRef<'_, f64>],
    weights: &[&[f64]],
    y: MatRef<'_, f64>,
    temperature: f64,
    seed: u64,
    return_var: bool,
    par: Par,
) -> Result<(Mat<f64>, Option<Vec<f64>>)> {
    let (n, p) = (k0_cross.nrows(), k0.nrows());
    let depth = kernels.len();
    if samples.len() != depth
        || weights.len() != depth
        || k0_cross.ncols() != p
        || k0_diag.len() != n
    {
        return Err(shape("samples", "one sample set and weight vector per layer, and test kernels matching the training points"));
    }
    let (sw2, sb2) = (sigma_w * sigma_w, sigma_b * sigma_b);
    let mut c_tr = k0.to_owned();
    let mut c_x = k0_cross.to_owned();
    let mut c_d = k0_diag.to_vec();
    let mut phi_x = Mat::<f64>::zeros(n, p);
    let mut phi_d = vec![0.0; n];
    for l in 0..depth {
        let h = samples[l];
        let w = weights[l];
        let s = h.nrows();
        if h.ncols() != p || w.len() != s {
            return Err(shape(
                "samples",
                format!("layer {l}: need S x {p} samples and S weights"),
            ));
        }
        // M^T = C^{-1} C(X, *)  (P x n); C^+ on the support of a singular K^0, exact for a
        // degenerate Gaussian because C(X, *) lies in the range of C
        let lc = if l == 0 {
            CovFactor::psd("K^0", c_tr.as_ref(), par)?
        } else {
            CovFactor::Cholesky(factor("C", c_tr.as_ref())?)
        };
        let mt = lc.solve(c_x.transpose(), par);
        let sd: Vec<f64> = (0..n)
            .map(|i| {
                (c_d[i] - (0..p).map(|k| c_x[(i, k)] * mt[(k, i)]).sum::<f64>())
                    .max(0.0)
                    .sqrt()
            })
            .collect();
        let mut ht = Mat::<f64>::zeros(s, n);
        matmul(ht.as_mut(), Accum::Replace, h, mt.as_ref(), 1.0, par);
        // conditional noise: one independent normal per sample and test point, seeded by layer
        let cols: Vec<Vec<f64>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut rng = Rng::new(seed, (l * n + i) as u64);
                let mut xi = vec![0.0; s];
                rng.fill_normal(&mut xi);
                xi
            })
            .collect();
        let ft = Mat::from_fn(s, n, |r, i| {
            act.phi(ht[(r, i)] + sd[i] * cols[i][r]).unwrap()
        });
        let fh = apply_phi(act, h);
        phi_x = weighted_gram(ft.as_ref(), fh.as_ref(), Some(w), par);
        phi_d = (0..n)
            .map(|i| (0..s).map(|r| w[r] * ft[(r, i)] * ft[(r, i)]).sum())
            .collect();
        c_tr = Mat::from_fn(p, p, |i, j| sw2 * kernels[l][(i, j)] + sb2);
        c_x = Mat::from_fn(n, p, |i, j| sw2 * phi_x[(i, j)] + sb2);
        c_d = phi_d.iter().map(|v| sw2 * v + sb2).collect();
    }
    let kl = kernels[depth - 1];
    let mut m = kl.to_owned();
    for i in 0..p {
        m[(i, i)] += temperature;
    }
    let lm = factor("Phi^L + T I", m.as_ref())?;
    let mut a = y.to_owned();
    crate::linalg::cholesky_solve_in_place(lm.as_ref(), a.as_mut(), par)?;
    let mut mean = Mat::<f64>::zeros(n, y.ncols());
    matmul(
        mean.as_mut(),
        Accum::Replace,
        phi_x.as_ref(),
        a.as_ref(),
        1.0,
        par,
    );
    let var = if return_var {
        let mut z = phi_x.transpose().to_owned();
        solve_lower_triangular_in_place(lm.as_ref(), z.as_mut(), par);
        Some(
            (0..n)
                .map(|i| (phi_d[i] - z.col_as_slice(i).iter().map(|v| v * v).sum::<f64>()).max(0.0))
                .collect(),
        )
    } else {
        None
    };
    Ok((mean, var))
}

/// Saddle points along `gammas` (each warm-started from the previous one) at one temperature.
pub fn solve_path(
    net: &Mlp,
    x: &Rows,
    y: MatRef<'_, f64>,
    gammas: &[f64],
    temperature: f64,
    opts: &SampledOptions,
    n_threads: usize,
    ctl: &Control,
) -> Result<Vec<SampledSolution>> {
    validate::mean_field_net(net, false)?;
    validate::targets(y, x.rows)?;
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
    crate::threads::with_threads(n_threads, |par| {
        let k0 = input_kernel(x.mat(), x.mat(), net.sigma_w, net.sigma_b, par);
        let k0f = CovFactor::psd("X", k0.as_ref(), par)?;
        let mut out: Vec<SampledSolution> = Vec::with_capacity(gammas.len());
        for &g in gammas {
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
            let sol = solve(&setup, net.depth, opts, init, par, ctl)?;
            out.push(sol);
        }
        Ok(out)
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
