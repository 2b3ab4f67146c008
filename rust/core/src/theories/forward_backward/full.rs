//! Nonlinear activations, full solution (`Method::Full`): the forward-backward fixed point with
//! the tilted expectations sampled.
//!
//! Layer l's single-site density over the P training preactivations is
//! `p_l(h) ∝ N(h; 0, C^{l-1}) exp(g phi(h)^T Ct^l phi(h))` (the tilted density of
//! [`crate::mcmc::tilted`] with `hatPhi = -2 g Ct^l`), and
//!
//! * forward  `C^l = g <phi phi^T>_{p_l} + b`;
//! * backward `Ct^{l-1} = 1/2 C^{-1} (<h h^T>_{p_l} - C) C^{-1}` (`C = C^{l-1}`), used in its
//!   first-order Stein form `Ct^{l-1} = g sym(C^{-1} <h (phi' ⊙ Ct^l phi)^T>_{p_l})`;
//! * terminal `Ct^L = (Z Z^T - C G^{-1}) / (2N)` (the linear module's).
//!
//! For linear phi the tilted density is `N(0, C (I - 2 g Ct C)^{-1})` and these are the linear
//! module's closed forms (tested through this code path).
//!
//! # Estimator
//! Each layer keeps a sample set in whitened coordinates: `z_s` (rank of the prior) drawn from
//! a reference density (prior `C_ref`, tilt `Ct_ref`), with its reference tilt energies
//! `e_ref`. At an iterate the samples are `h_s = F z_s` (`F F^T = C^{l-1}`: Cholesky, or the
//! support factor of a singular `K^0`), so the Gaussian part moves with `C` (reparameterised;
//! the `|z|^2` terms of target and reference cancel) and only the tilt is reweighted:
//! `log w_s = g phi_s^T Ct phi_s - e_ref,s` (log-domain self-normalised weights, Kish fraction,
//! [`crate::tilted::normalized_weights`]). The kernel is estimated with the exact untilted map
//! as a control variate, `F_l = F_nngp(C^{l-1}) + g sum_s (w_s - w0_s) phi_s phi_s^T` with
//! `w0` the weights of zero tilt, so the Monte-Carlo error is proportional to the shift from the
//! NNGP map (`O(1/(N sqrt S))` near the NNGP) rather than `O(1/sqrt S)`. Likewise the backward
//! step is `Ct^{l-1} = J_l^T[Ct^l] + g sym(C^{-1} sum_s (w_s - w0_s) h_s v_s^T)`,
//! `v = phi' ⊙ Ct^l phi`, with the exact adjoint Jacobian of the untilted map at `C^{l-1}`
//! (Price's theorem: the untilted Stein average is `J^T[Ct]`). The first draw uses the first-order
//! solution's normals (`standard_normals(n_samples, P, seed)` in every layer); then the two
//! agree to first order on the samples, and their difference is `O(1/N^2)` (tested) without
//! `O(1/(N sqrt S))` noise (for a full-rank `K^0`; a singular one is sampled on its support).
//! With fixed samples the map is smooth and deterministic (common random numbers), so
//! Newton-Krylov converges on it. The first draw is i.i.d. `z ~ N(0, I)` (the NNGP's densities);
//! after each converged stage whose Kish fraction is below `min_kish` in some layer the samples
//! are redrawn at the solution by the MALA sampler ([`crate::mcmc::tilted`]) and the stage
//! solved again (at most `max_refresh` times). Trial iterates with a Kish fraction below
//! `MIN_TRIAL_KISH`, a prior `C^{l-1}` that is not positive definite, or `C^L + T I` not PD
//! are rejected. Width annealing as the linear solver (`super::Problem::anneal`).
use super::nonlinear::{standard_normals, LayerMap};
use super::{frob, sym, Options, Problem, Solution};
use crate::control::Control;
use crate::error::{invalid, Result};
use crate::kernels::activation::Activation;
use crate::linalg::{cholesky, matmul, solve_upper_triangular_in_place, CovFactor};
use crate::mcmc::tilted::{apply_phi, weighted_gram, TiltConfig, TiltedDensity};
use crate::optim::newton_krylov::{self, newton_krylov};
use crate::solve::continuation::Continuation;
use crate::solve::SolveReport;
use crate::tilted::{normalized_weights, tilt_energy};
use faer::{Accum, Mat, Par};

/// Trial iterates whose weights fall below this Kish fraction in some layer are rejected.
pub const MIN_TRIAL_KISH: f64 = 0.05;
/// MALA chains of a redraw (the per-chain count is `ceil(n_samples / chains)`).
pub const CHAINS: usize = 16;

/// One layer's samples: whitened coordinates (S x r) and reference tilt energies.
#[derive(Debug, Clone)]
pub struct LayerDraw {
    pub z: Mat<f64>,
    pub e_ref: Vec<f64>,
}

/// One layer evaluated at an iterate.
struct LayerEval {
    f: Mat<f64>,
    /// `Ct^{l-1}` (only for l >= 2).
    back: Option<Mat<f64>>,
    kish: f64,
}

/// The stacked fixed-point map at one iterate.
pub struct Eval {
    pub forward: Vec<Mat<f64>>,
    pub conjugates: Vec<Mat<f64>>,
    pub kish: Vec<f64>,
}

impl Problem {
    pub(super) fn prior_factor(&self, l: usize, cs: &[Mat<f64>], k0f: &CovFactor) -> Option<CovFactor> {
        if l == 0 {
            Some(k0f.clone())
        } else {
            cholesky(cs[l - 1].as_ref()).map(CovFactor::Cholesky)
        }
    }

    /// The untilted map `F(C) = g E[phi phi^T] + b` with its Jacobian coefficients.
    pub(super) fn nngp_map(&self, c: &Mat<f64>) -> Result<LayerMap> {
        LayerMap::new(&self.act, &self.quad, self.g, self.b, c.as_ref())
    }

    /// Forward (and backward, `l >= 1`) map of layer `l + 1` (0-based `l`) on its samples.
    #[allow(clippy::too_many_arguments)]
    fn eval_layer(
        &self,
        l: usize,
        fac: &CovFactor,
        map: &LayerMap,
        ct: &Mat<f64>,
        draw: &LayerDraw,
        par: Par,
    ) -> Result<Option<LayerEval>> {
        let (s, p) = (draw.z.nrows(), self.p());
        let mut h = Mat::<f64>::zeros(s, p);
        matmul(h.as_mut(), Accum::Replace, draw.z.as_ref(), fac.f().transpose(), 1.0, par);
        let phi = apply_phi(&self.act, h.as_ref());
        let (fm, e) = tilt_energy(phi.as_ref(), ct.as_ref(), par);
        let logw: Vec<f64> = (0..s).map(|k| self.g * e[k] - draw.e_ref[k]).collect();
        let log0: Vec<f64> = draw.e_ref.iter().map(|v| -v).collect();
        let (Some((w, kish)), Some((w0, _))) = (normalized_weights(&logw), normalized_weights(&log0)) else {
            return Ok(None);
        };
        let dw: Vec<f64> = w.iter().zip(&w0).map(|(a, b)| a - b).collect();
        let shift = weighted_gram(phi.as_ref(), phi.as_ref(), Some(&dw), par);
        let f = Mat::from_fn(p, p, |i, j| map.f[(i, j)] + self.g * (shift[(i, j)] + shift[(j, i)]) * 0.5);
        let back = if l > 0 {
            // Stein: Ct^{l-1} = g sym(C^{-1} <h v^T>), v = phi' ⊙ Ct phi, C^{-1} h = L^{-T} z
            // (C = L L^T); the untilted expectation is the exact J^T[Ct] (Price), so the samples
            // carry only the difference, with weights w - w0
            let v = Mat::from_fn(s, p, |k, j| dw[k] * self.act.dphi(h[(k, j)]).unwrap_or(f64::NAN) * fm[(k, j)]);
            let mut m = Mat::<f64>::zeros(p, p);
            matmul(m.as_mut(), Accum::Replace, draw.z.transpose(), v.as_ref(), self.g, par);
            solve_upper_triangular_in_place(fac.f().transpose(), m.as_mut(), par);
            sym(&mut m);
            let exact = map.vjp(ct.as_ref());
            Some(Mat::from_fn(p, p, |i, j| m[(i, j)] + exact[(i, j)]))
        } else {
            None
        };
        Ok(Some(LayerEval { f, back, kish }))
    }

    /// The map at `cs` (`C^1..C^L`) on fixed samples; None for a rejected iterate.
    pub fn eval_sampled(
        &self,
        cs: &[Mat<f64>],
        width: f64,
        t: f64,
        draws: &[LayerDraw],
        k0f: &CovFactor,
        f1: &LayerMap,
        par: Par,
    ) -> Result<Option<Eval>> {
        let depth = cs.len();
        let Some(ctl_) = self.terminal(&cs[depth - 1], width, t, par) else {
            return Ok(None);
        };
        let mut cts = vec![Mat::zeros(0, 0); depth];
        cts[depth - 1] = ctl_;
        let mut fwd = vec![Mat::zeros(0, 0); depth];
        let mut kish = vec![0.0; depth];
        for l in (0..depth).rev() {
            let Some(fac) = self.prior_factor(l, cs, k0f) else {
                return Ok(None); // a non-PD prior C^{l-1}: rejected
            };
            let map_owned;
            let map = if l == 0 {
                f1
            } else {
                map_owned = self.nngp_map(&cs[l - 1])?;
                &map_owned
            };
            let Some(ev) = self.eval_layer(l, &fac, map, &cts[l], &draws[l], par)? else {
                return Ok(None);
            };
            fwd[l] = ev.f;
            kish[l] = ev.kish;
            if let Some(b) = ev.back {
                cts[l - 1] = b;
            }
        }
        Ok(Some(Eval { forward: fwd, conjugates: cts, kish }))
    }

    /// [`Self::eval_sampled`] with the first layer's factor and map computed here (tests).
    pub fn eval_sampled_public(
        &self,
        cs: &[Mat<f64>],
        width: f64,
        t: f64,
        draws: &[LayerDraw],
        par: Par,
    ) -> Result<Option<Eval>> {
        if cs.len() != self.depth || draws.len() != self.depth {
            return Err(invalid("kernels", format!("need {} kernels and sample sets", self.depth)));
        }
        let k0f = CovFactor::psd("X", self.k0.as_ref(), par)?;
        for (d, c) in draws.iter().zip(cs) {
            if d.z.ncols() != c.nrows() || d.e_ref.len() != d.z.nrows() || c.nrows() != self.p() {
                return Err(invalid("z", "need S x P samples and S reference energies per layer"));
            }
        }
        let f1 = self.nngp_map(&self.k0)?;
        self.eval_sampled(cs, width, t, draws, &k0f, &f1, par)
    }

    /// Samples of every layer at the iterate `cs` with conjugates `cts`: i.i.d. prior draws when
    /// `cts` is None (the NNGP's densities), else MALA draws of the tilted densities.
    #[allow(clippy::too_many_arguments)]
    pub fn draw_sampled(
        &self,
        cs: &[Mat<f64>],
        cts: Option<&[Mat<f64>]>,
        k0f: &CovFactor,
        opts: &Options,
        draw_index: usize,
        par: Par,
        ctl: &Control,
    ) -> Result<Vec<LayerDraw>> {
        let depth = cs.len();
        let mut out = Vec::with_capacity(depth);
        for l in 0..depth {
            let fac = self
                .prior_factor(l, cs, k0f)
                .ok_or_else(|| invalid("X", "a layer's kernel is not positive definite (Cholesky failed)"))?;
            let seed = opts.seed.wrapping_add(0x9E37_79B9_7F4A_7C15u64.wrapping_mul((draw_index * depth + l + 1) as u64));
            let Some(cts) = cts else {
                // the first-order solution's normals in every layer (common random numbers:
                // the two agree to first order on these samples)
                let z = standard_normals(opts.n_samples, fac.rank(), opts.seed);
                out.push(LayerDraw { e_ref: vec![0.0; z.nrows()], z });
                continue;
            };
            let hat = Mat::from_fn(self.p(), self.p(), |i, j| -2.0 * self.g * cts[l][(i, j)]);
            let dens = TiltedDensity::with_factor(&self.act, fac.clone(), hat.as_ref())?;
            let prior = Mat::from_fn(self.p(), self.p(), |i, j| if l == 0 { self.k0[(i, j)] } else { cs[l - 1][(i, j)] });
            dens.check_normalizable(prior.as_ref(), par)?;
            let cfg = TiltConfig {
                n_chains: CHAINS,
                n_samples: opts.n_samples.div_ceil(CHAINS),
                seed,
                ..TiltConfig::default()
            };
            let smp = dens.sample(&cfg, ctl)?;
            let z = fac.whiten(smp.h.transpose(), par).transpose().to_owned();
            let phi = apply_phi(&self.act, smp.h.as_ref());
            let (_, e) = tilt_energy(phi.as_ref(), cts[l].as_ref(), par);
            out.push(LayerDraw { z, e_ref: e.iter().map(|v| self.g * v).collect() });
        }
        Ok(out)
    }

    /// Width annealing of the sampled equations from the NNGP at `N * start` to `width`.
    pub fn anneal_sampled(&self, width: f64, t: f64, opts: &Options, par: Par, ctl: &Control) -> Result<Solution> {
        if matches!(self.act, Activation::Custom(_)) {
            return Err(invalid(
                "activation",
                "method='full' samples the tilted densities and supports the built-in activations only; \
                 use method='perturbative' for a callable",
            ));
        }
        let k0f = CovFactor::psd("X", self.k0.as_ref(), par)?;
        let f1 = self.nngp_map(&self.k0)?;
        let mut cs = self.nngp_kernels()?;
        let mut draws = self.draw_sampled(&cs, None, &k0f, opts, 0, par, ctl)?;
        let mut n_draws = 1;
        let from = width * opts.start.max(1.0);
        let span = (from / width).ln();
        let width_at = |s: f64| width * (span * (1.0 - s)).exp();
        let mut cont = Continuation::new(0.0, 1.0, opts.max_stages);
        if span > 0.0 {
            cont.step = 1.0 / opts.n_anneal.max(1) as f64;
        }
        let nk = newton_krylov::Options { tol: opts.tol, max_iter: opts.max_iter, krylov: opts.krylov, forcing: opts.forcing };
        let (mut n_iter, mut n_eval, mut hist) = (0, 0, Vec::new());
        let mut converged = false;
        while let Some(s) = cont.next() {
            let w = width_at(s);
            let mut stage_ok = false;
            let mut start = cs.clone();
            let mut stage_draws = draws.clone();
            for refresh in 0..=opts.max_refresh {
                let resid = |x: &[f64], measure: bool| -> Result<Option<(Vec<f64>, f64)>> {
                    ctl.checkpoint()?;
                    let c = self.unpack(x);
                    let Some(ev) = self.eval_sampled(&c, w, t, &stage_draws, &k0f, &f1, par)? else {
                        return Ok(None);
                    };
                    if ev.kish.iter().any(|k| !(*k >= MIN_TRIAL_KISH)) {
                        return Ok(None);
                    }
                    let res: Vec<Mat<f64>> = c.iter().zip(&ev.forward).map(|(a, f)| a - f).collect();
                    let m = if measure {
                        res.iter().zip(&c).map(|(r, c)| frob(r) / frob(c).max(1e-300)).fold(0.0, f64::max)
                    } else {
                        0.0
                    };
                    let v = self.pack(&res);
                    if v.iter().any(|a| !a.is_finite()) || !m.is_finite() {
                        return Ok(None);
                    }
                    Ok(Some((v, m)))
                };
                let (x, rep) = newton_krylov(resid, self.pack(&start), &nk, ctl)?;
                n_iter += rep.n_iter;
                n_eval += rep.n_eval;
                hist.extend_from_slice(&rep.residual_history);
                if !rep.converged {
                    break;
                }
                let c = self.unpack(&x);
                let ev = self
                    .eval_sampled(&c, w, t, &stage_draws, &k0f, &f1, par)?
                    .ok_or_else(|| invalid("temperature", "C^L + T I is not positive definite"))?;
                if ev.kish.iter().all(|k| *k >= opts.min_kish) || refresh == opts.max_refresh {
                    stage_ok = ev.kish.iter().all(|k| *k >= opts.min_kish);
                    if stage_ok {
                        cs = c;
                        draws = stage_draws.clone();
                    }
                    break;
                }
                stage_draws = self.draw_sampled(&c, Some(&ev.conjugates), &k0f, opts, n_draws, par, ctl)?;
                n_draws += 1;
                start = c;
            }
            if stage_ok {
                ctl.advance(1);
                if cont.succeeded(s) {
                    converged = true;
                    break;
                }
            } else if cont.failed(s) {
                break;
            }
        }
        // the measure and conjugates at the last accepted iterate, at the target width
        let ev = self
            .eval_sampled(&cs, width, t, &draws, &k0f, &f1, par)?
            .ok_or_else(|| invalid("temperature", "C^L + T I is not positive definite"))?;
        let last = ev.forward.iter().zip(&cs).map(|(f, c)| frob(&(c - f)) / frob(c).max(1e-300)).fold(0.0, f64::max);
        let mut report = SolveReport::new("newton_krylov_sampled", converged, n_iter, n_eval, last, hist);
        report.stages = cont.stages.iter().map(|&s| if s >= 0.0 { width_at(s) } else { -width_at(-s) }).collect();
        Ok(Solution {
            kernels: cs,
            conjugates: ev.conjugates,
            input_conjugate: Mat::zeros(self.p(), self.p()),
            kish: ev.kish,
            n_draws,
            draws,
            report,
        })
    }

    /// NNGP kernels `K^1..K^L` of any activation.
    pub fn nngp_kernels(&self) -> Result<Vec<Mat<f64>>> {
        let mut out: Vec<Mat<f64>> = Vec::with_capacity(self.depth);
        for l in 0..self.depth {
            let prev = if l == 0 { &self.k0 } else { &out[l - 1] };
            let next = self.nngp_map(prev)?;
            out.push(next.f);
        }
        Ok(out)
    }
}
