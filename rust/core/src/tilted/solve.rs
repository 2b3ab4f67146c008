//! The saddle point at one gamma: MCMC draws layer by layer, Newton-Krylov on the fixed point of
//! each draw, redraws, and the gamma continuation (module docs of [`super`]).
#![allow(clippy::neg_cmp_op_on_partial_ord)]
use super::map::{measure, pack, unpack, MapOut, Setup};
use super::samples::LayerSamples;
use super::{Options, Solution};
use crate::control::Control;
use crate::error::{invalid, AkError, Result};
use crate::linalg::symmetrize;
use crate::mcmc::chains::chain_radius;
use crate::mcmc::tilted::{weighted_gram, TiltConfig, TiltedDensity};
use crate::optim::newton_krylov::{self, newton_krylov_stall};
use crate::solve::continuation::Continuation;
use crate::solve::SolveReport;
use crate::validate;
use crate::linalg::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// Draws every layer's samples at the iterate `(hidden, a)` (forward, layer by layer).
pub(super) fn draw(
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
    opts: &Options,
    init: Option<(&Solution, f64)>,
    par: Par,
    ctl: &Control,
) -> Result<Solution> {
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
                let (xn, rep) = newton_krylov_stall(res, xs, &nk_opts, opts.stall, ctl)?;
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
    Ok(Solution {
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
