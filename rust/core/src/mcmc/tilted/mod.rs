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
//!
//! For unbounded activations the tilt can overwhelm the Gaussian prior (then `p` is not
//! normalizable and any sampler returns garbage); [`check_normalizable`] decides it exactly for
//! linear phi and by a sufficient condition plus witness search for positively homogeneous relu.
use crate::kernels::activation::Activation;
use crate::control::Control;
use crate::error::{invalid, shape, AkError, Result};
use crate::linalg::{check_symmetric, cholesky_with_jitter, symmetric_eigen, symmetrize, CovFactor};
use crate::mcmc::chains::integrated_autocorrelation_time;
use crate::mcmc::mala::mala_log_ratio;
use crate::rng::Rng;
use crate::threads::with_threads;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

/// Chains per lockstep block of the sampler (fixed, so results do not depend on the thread count).
const CHAIN_BLOCK: usize = 4;

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
    /// The sampler of the sampled mean-field solver's defaults.
    fn default() -> Self {
        TiltConfig {
            n_chains: 16,
            n_samples: 500,
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

/// Fails with `InvalidArgument` naming `hat_phi` when the tilt makes the density
/// non-normalizable: linear phi exactly (`C^{-1} + hatPhi` must be positive definite); relu
/// and softplus/gelu (asymptotically relu) when `hatPhi` is indefinite enough that the sufficient
/// condition `lambda_max(C) max(0, -lambda_min(hatPhi)) < 1` fails and a direction `h >= 0` with
/// `h^T (C^{-1} + hatPhi) h <= 0` is found. Bounded activations (erf, tanh) are always fine.
pub fn check_normalizable(
    act: &Activation,
    c: MatRef<'_, f64>,
    phat: MatRef<'_, f64>,
    par: Par,
) -> Result<()> {
    TiltedDensity::new(act, c, phat, par)?.check_normalizable(c, par)
}

impl TiltedDensity<'_> {
    /// [`check_normalizable`] with the factor of `C` this density already holds.
    pub fn check_normalizable(&self, c: MatRef<'_, f64>, par: Par) -> Result<()> {
        let (act, phat, lf) = (self.act, self.phat, self.l.f());
        let (p, r) = (c.nrows(), self.l.rank());
        let bad = |what: String| {
            Err(invalid(
                "hat_phi",
                format!("the tilted density exp(-phi^T hatPhi phi / 2) N(0, C) is not normalizable: {what}"),
            ))
        };
        match act {
            // (custom activations are refused by `TiltedDensity::new`)
            Activation::Erf | Activation::Tanh | Activation::Custom(_) => Ok(()),
            Activation::Linear | Activation::Relu | Activation::Gelu | Activation::Softplus => {
                // M = C^{-1} + hatPhi, via C = L L^T: M ~ I + L^T hatPhi L (congruent, same inertia)
                let mut t = Mat::<f64>::zeros(p, r);
                matmul(t.as_mut(), Accum::Replace, phat, lf, 1.0, par);
                let mut m = Mat::<f64>::identity(r, r);
                matmul(m.as_mut(), Accum::Add, lf.transpose(), t.as_ref(), 1.0, par);
                let m = Mat::from_fn(r, r, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
                let (w, mv) = symmetric_eigen("hat_phi", m.as_ref(), par)?;
                if w[0] > 0.0 {
                    return Ok(()); // positive definite: normalizable for any phi with |phi(h)| <= |h|-like growth
                }
                if matches!(act, Activation::Linear) {
                    return bad(format!(
                        "C^-1 + hatPhi has eigenvalue {:.3e} <= 0 (in whitened units)",
                        w[0]
                    ));
                }
                // relu-like: phi(h)^T hatPhi phi(h) >= lambda_min(hatPhi) |h_+|^2 >= -mu |h|^2
                let (wp, _) = symmetric_eigen("hat_phi", phat, par)?;
                let (wc, _) = symmetric_eigen("C", c, par)?;
                let mu = (-wp[0]).max(0.0);
                if mu * wc[p - 1] < 1.0 {
                    return Ok(());
                }
                // Witness search: along the ray t h (h on the support of C, h = F z) relu-like phi
                // grows like t h_+, so the exponent is -t^2 (|z|^2 + h_+^T hatPhi h_+) / 2 and a
                // direction with |z|^2 + h_+^T hatPhi h_+ <= 0 proves non-normalizability.
                let quad = |h: &[f64]| -> Option<(f64, usize)> {
                    let z = self.l.whiten(MatRef::from_column_major_slice(h, p, 1), par);
                    let mut hs = Mat::<f64>::zeros(p, 1);
                    matmul(hs.as_mut(), Accum::Replace, lf, z.as_ref(), 1.0, par);
                    let scale = h.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                    // off the support of C: no witness
                    if (0..p).any(|i| (hs[(i, 0)] - h[i]).abs() > 1e-8 * scale) {
                        return None;
                    }
                    let mut s: f64 = (0..r).map(|k| z[(k, 0)] * z[(k, 0)]).sum();
                    for i in (0..p).filter(|i| h[*i] > 0.0) {
                        for j in (0..p).filter(|j| h[*j] > 0.0) {
                            s += h[i] * phat[(i, j)] * h[j];
                        }
                    }
                    Some((s, h.iter().filter(|x| **x > 0.0).count()))
                };
                let mut cands: Vec<Vec<f64>> = vec![vec![1.0; p]];
                for i in 0..p {
                    let mut e = vec![0.0; p];
                    e[i] = 1.0;
                    cands.push(e);
                }
                match &self.l {
                    CovFactor::Cholesky(_) => {
                        // positive and negative parts of the most negative eigenvector of C^-1 + hatPhi
                        let ci = self.l.solve(Mat::<f64>::identity(p, p).as_ref(), par);
                        let cphat = Mat::from_fn(p, p, |i, j| ci[(i, j)] + phat[(i, j)]);
                        let (_, v) = symmetric_eigen("hat_phi", cphat.as_ref(), par)?;
                        cands.push((0..p).map(|i| v[(i, 0)].max(0.0)).collect());
                        cands.push((0..p).map(|i| (-v[(i, 0)]).max(0.0)).collect());
                        // mixed signs: the tilt sees only h_+, while negative entries elsewhere
                        // can lower the prior cost h^T C^-1 h (e.g. h_1 alone is penalised by
                        // 1 / C_11 only once the other coordinates follow it). For each candidate
                        // h_+, minimise over h_- >= 0 on its zero set by coordinate descent; for
                        // the eigenvector parts and the (at most 8) unit vectors e_i of most
                        // negative hatPhi_ii C_ii (O(P^2) per sweep each).
                        let mut risk: Vec<(f64, usize)> = (0..p)
                            .map(|i| (phat[(i, i)] * c[(i, i)], i))
                            .filter(|(v, _)| *v < 0.0)
                            .collect();
                        risk.sort_by(|a, b| a.0.total_cmp(&b.0));
                        let n = cands.len();
                        let mut mixed: Vec<Vec<f64>> = risk
                            .iter()
                            .take(8)
                            .map(|(_, i)| lower_prior_cost(&cands[1 + i], ci.as_ref()))
                            .collect();
                        mixed.extend(
                            cands[n - 2..]
                                .iter()
                                .map(|h| lower_prior_cost(h, ci.as_ref())),
                        );
                        cands.extend(mixed);
                    }
                    CovFactor::Support { .. } => {
                        // on the support: h = +-F v for the most negative eigenvector v of M
                        let mut hv = Mat::<f64>::zeros(p, 1);
                        matmul(
                            hv.as_mut(),
                            Accum::Replace,
                            lf,
                            mv.col(0).as_mat(),
                            1.0,
                            par,
                        );
                        cands.push((0..p).map(|i| hv[(i, 0)]).collect());
                        cands.push((0..p).map(|i| -hv[(i, 0)]).collect());
                    }
                }
                if let Some((q, nz)) = cands
                    .iter()
                    .filter(|h| h.iter().any(|x| *x > 0.0))
                    .filter_map(|h| quad(h))
                    .find(|(q, _)| *q <= 0.0)
                {
                    return bad(format!(
                        "h^T (C^-1 + hatPhi) h = {q:.3e} <= 0 along a direction with {nz} positive entries, where \
                     the tilt grows like |h|^2"
                    ));
                }
                Ok(()) // undecided by the witnesses; the sampler's diagnostics are the last line of defence
            }
        }
    }
}

/// `h_+ - h_-` with `h_- >= 0` on the zero set of `h` (entries of `h` that are > 0 stay fixed)
/// minimising `(h_+ - h_-)^T C^{-1} (h_+ - h_-)`, by cyclic coordinate descent (a convex quadratic
/// under bounds: each coordinate moves to its clipped minimiser).
fn lower_prior_cost(h: &[f64], ci: MatRef<'_, f64>) -> Vec<f64> {
    let p = h.len();
    let mut x: Vec<f64> = h.iter().map(|v| v.max(0.0)).collect();
    let mut g: Vec<f64> = (0..p)
        .map(|i| (0..p).map(|j| ci[(i, j)] * x[j]).sum())
        .collect();
    let scale = x.iter().fold(0.0f64, |a, v| a.max(*v));
    // (a witness need not be optimal: capped, not iterated to round-off)
    for _ in 0..100 {
        let mut moved = 0.0f64;
        for j in (0..p).filter(|j| !(h[*j] > 0.0)) {
            if !(ci[(j, j)] > 0.0) {
                continue;
            }
            let new = (x[j] - g[j] / ci[(j, j)]).min(0.0);
            let d = new - x[j];
            if d != 0.0 {
                x[j] = new;
                for (i, gi) in g.iter_mut().enumerate() {
                    *gi += d * ci[(i, j)];
                }
                moved = moved.max(d.abs());
            }
        }
        if moved <= 1e-10 * scale {
            break;
        }
    }
    x
}

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

fn check_config(cfg: &TiltConfig) -> Result<()> {
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
        let steps = cfg.burn_in + cfg.n_samples * cfg.thin;
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
                for step in 0..steps {
                    if step % 256 == 0 {
                        ctl.checkpoint()?;
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
                ctl.advance((steps * k) as u64);
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

/// `F^T diag(w) G` for S x P sample matrices (`w = None`: uniform `1/S`), symmetrised when F = G.
pub fn weighted_gram(
    f: MatRef<'_, f64>,
    g: MatRef<'_, f64>,
    w: Option<&[f64]>,
    par: Par,
) -> Mat<f64> {
    let s = f.nrows();
    let scaled = match w {
        Some(w) => Mat::from_fn(s, g.ncols(), |i, j| w[i] * g[(i, j)]),
        None => Mat::from_fn(s, g.ncols(), |i, j| g[(i, j)] / s as f64),
    };
    let mut out = Mat::<f64>::zeros(f.ncols(), g.ncols());
    matmul(
        out.as_mut(),
        Accum::Replace,
        f.transpose(),
        scaled.as_ref(),
        1.0,
        par,
    );
    if f.ncols() == g.ncols() && std::ptr::eq(f.as_ptr(), g.as_ptr()) {
        symmetrize(&mut out);
    }
    out
}

/// `phi` applied entrywise.
pub fn apply_phi(act: &Activation, h: MatRef<'_, f64>) -> Mat<f64> {
    Mat::from_fn(h.nrows(), h.ncols(), |i, j| act.phi(h[(i, j)]).unwrap())
}

/// Samples the tilted density with `cfg.n_chains` MALA chains and returns its moments; see the module docs.
pub fn sample_moments(
    act: &Activation,
    c: MatRef<'_, f64>,
    phat: MatRef<'_, f64>,
    cfg: &TiltConfig,
    n_threads: usize,
    ctl: &Control,
) -> Result<TiltedMoments> {
    check_config(cfg)?;
    check_symmetric("C", c)?;
    with_threads(n_threads, |par| -> Result<TiltedMoments> {
        let dens = TiltedDensity::new(act, c, phat, par)?;
        dens.check_normalizable(c, par)?;
        let smp = dens.sample(cfg, ctl)?;
        let f = apply_phi(act, smp.h.as_ref());
        let p = dens.dim();
        let phi2 = weighted_gram(f.as_ref(), f.as_ref(), None, par);
        let h2 = weighted_gram(smp.h.as_ref(), smp.h.as_ref(), None, par);
        let flat = |m: &Mat<f64>| -> Vec<f64> { (0..p * p).map(|k| m[(k / p, k % p)]).collect() };
        let (phi2, h2) = (flat(&phi2), flat(&h2));
        if phi2.iter().chain(&h2).any(|v| !v.is_finite()) {
            return Err(AkError::NonFinite {
                name: "hat_phi",
                msg: "the sampled moments are not finite".into(),
            });
        }
        Ok(TiltedMoments {
            phi2,
            h2,
            acceptance: smp.acceptance,
            step_size: smp.step_size,
            ess: smp.ess,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::no_control;

    fn spd(p: usize, seed: u64) -> Mat<f64> {
        let mut rng = Rng::new(seed, 0);
        let a = Mat::from_fn(p, p + 2, |_, _| rng.normal());
        let mut c = Mat::<f64>::zeros(p, p);
        matmul(
            c.as_mut(),
            Accum::Replace,
            a.as_ref(),
            a.transpose(),
            1.0 / (p + 2) as f64,
            Par::Seq,
        );
        c
    }

    #[test]
    fn linear_tilt_gives_the_gaussian_moments() {
        let p = 4;
        let c = spd(p, 1);
        // hatPhi = -0.3 C^{-1}-ish negative tilt stays normalizable: exact <hh^T> = (C^-1 + hatPhi)^-1
        let phat = Mat::from_fn(p, p, |i, j| if i == j { -0.4 } else { 0.05 });
        let cfg = TiltConfig {
            n_chains: 4,
            n_samples: 20000,
            burn_in: 2000,
            thin: 2,
            step_size: 0.5,
            seed: 3,
        };
        let m = sample_moments(
            &Activation::Linear,
            c.as_ref(),
            phat.as_ref(),
            &cfg,
            2,
            no_control(),
        )
        .unwrap();
        let mut ci = Mat::<f64>::identity(p, p);
        let mut l = Mat::<f64>::zeros(p, p);
        cholesky_with_jitter("C", c.as_ref(), 0.0, l.as_mut(), Par::Seq).unwrap();
        crate::linalg::cholesky_solve_in_place(l.as_ref(), ci.as_mut(), Par::Seq).unwrap();
        let prec = Mat::from_fn(p, p, |i, j| ci[(i, j)] + phat[(i, j)]);
        let mut cov = Mat::<f64>::identity(p, p);
        cholesky_with_jitter("M", prec.as_ref(), 0.0, l.as_mut(), Par::Seq).unwrap();
        crate::linalg::cholesky_solve_in_place(l.as_ref(), cov.as_mut(), Par::Seq).unwrap();
        for i in 0..p {
            for j in 0..p {
                let se = 5.0 * (cov[(i, i)] * cov[(j, j)]).sqrt() / (m.ess / 4.0).sqrt();
                assert!(
                    (m.h2[i * p + j] - cov[(i, j)]).abs() < se,
                    "({i},{j}) {} vs {}",
                    m.h2[i * p + j],
                    cov[(i, j)]
                );
            }
        }
        assert!(
            m.acceptance.iter().all(|a| (0.4..0.8).contains(a)),
            "{:?}",
            m.acceptance
        );
    }

    #[test]
    fn non_normalizable_tilts_are_refused() {
        let c = spd(3, 2);
        let phat = Mat::from_fn(3, 3, |i, j| if i == j { -50.0 } else { 0.0 });
        for act in [Activation::Linear, Activation::Relu] {
            let e = check_normalizable(&act, c.as_ref(), phat.as_ref(), Par::Seq).unwrap_err();
            assert!(e.to_string().contains("not normalizable"), "{e}");
        }
        assert!(check_normalizable(&Activation::Tanh, c.as_ref(), phat.as_ref(), Par::Seq).is_ok());
        // relu tolerates a tilt that only penalises negative directions' images (phi >= 0): -hatPhi on
        // the off-diagonal with positive diagonal is fine
        let ok = Mat::from_fn(3, 3, |i, j| if i == j { 1.0 } else { -0.2 });
        assert!(check_normalizable(&Activation::Relu, c.as_ref(), ok.as_ref(), Par::Seq).is_ok());
    }

    #[test]
    fn relu_witness_with_mixed_signs() {
        // C_11 = 1, rho = -1/2: relu tilt a h_1+^2 / 2 is normalizable iff a < 1 / C_11 = 1. The
        // witness h = (1, -1/2) (h_2 following h_1) costs h^T C^-1 h = 1; every h >= 0 costs at
        // least (C^-1)_11 = 4/3, so a = 1.2 was missed by a search over h >= 0
        let c = Mat::from_fn(2, 2, |i, j| if i == j { 1.0 } else { -0.5 });
        for (a, normalizable) in [(1.2, false), (0.9, true)] {
            let phat = Mat::from_fn(2, 2, |i, j| if i + j == 0 { -a } else { 0.0 });
            let r = check_normalizable(&Activation::Relu, c.as_ref(), phat.as_ref(), Par::Seq);
            assert_eq!(r.is_ok(), normalizable, "a = {a}: {r:?}");
        }
    }

    #[test]
    fn thread_count_does_not_change_moments() {
        let c = spd(5, 4);
        let phat = Mat::from_fn(5, 5, |i, j| if i == j { -0.5 } else { 0.1 });
        let cfg = TiltConfig {
            n_chains: 3,
            n_samples: 500,
            burn_in: 100,
            thin: 1,
            step_size: 0.3,
            seed: 9,
        };
        let a = sample_moments(
            &Activation::Tanh,
            c.as_ref(),
            phat.as_ref(),
            &cfg,
            1,
            no_control(),
        )
        .unwrap();
        let b = sample_moments(
            &Activation::Tanh,
            c.as_ref(),
            phat.as_ref(),
            &cfg,
            2,
            no_control(),
        )
        .unwrap();
        assert_eq!(a.phi2, b.phi2);
        assert_eq!(a.h2, b.h2);
    }
}
