//! Normalizability of the tilted density: exact for linear phi, a sufficient condition plus a
//! witness search for relu-like activations (module docs of [`super`]); the witnesses include
//! the sign-pattern directions of [`super::homogeneous`] along the most negative eigenvectors of
//! `hatPhi` (exact for the rank-one readout tilt whenever the pattern iteration finds the
//! maximising pattern).
#![allow(clippy::neg_cmp_op_on_partial_ord)]
use super::TiltedDensity;
use crate::error::{invalid, Result};
use crate::kernels::activation::Activation;
use crate::linalg::{symmetric_eigen, CovFactor};
use crate::linalg::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// Fails with `InvalidArgument` naming `hat_phi` when the tilt makes the density
/// non-normalizable: linear phi exactly (`C^{-1} + hatPhi` must be positive definite); relu
/// and softplus/gelu (asymptotically relu) when the sufficient
/// condition `lambda_max(C) max(0, -lambda_min(hatPhi)) < 1` fails and a direction `h` with
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
                // (positive definite M proves only the linear case: for relu a.relu(h) can exceed
                // |a.h|, e.g. hatPhi = -gamma^2 a a^T with mixed-sign a is refused by the pattern
                // witness below while M > 0)
                if matches!(act, Activation::Linear) && w[0] > 0.0 {
                    return Ok(());
                }
                if matches!(act, Activation::Linear) {
                    return bad(format!(
                        "C^-1 + hatPhi has eigenvalue {:.3e} <= 0 (in whitened units)",
                        w[0]
                    ));
                }
                // relu-like: phi(h)^T hatPhi phi(h) >= lambda_min(hatPhi) |h_+|^2 >= -mu |h|^2
                let (wp, vp) = symmetric_eigen("hat_phi", phat, par)?;
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
                // sign patterns along the (at most 3) most negative eigenvectors of hatPhi: for
                // hatPhi = -gamma^2 a a^T the direction of the supremum rho (homogeneous.rs)
                for k in (0..p.min(3)).filter(|k| wp[*k] < 0.0) {
                    for sign in [1.0, -1.0] {
                        let b: Vec<f64> = (0..p).map(|i| sign * vp[(i, k)]).collect();
                        cands.push(super::homogeneous::pattern_witness(c, &b).1);
                        // random-start ascent on the whitened sphere (the pattern witness can
                        // stop far below the supremum at P ~ 100)
                        cands.push(super::homogeneous::ray_ascent(lf, &b, 8).1);
                    }
                }
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
