//! Nonlinear activations, to first order in `1/N` (`Method::Perturbative`).
//!
//! With `W_l(Ct | C) = b 1^T Ct 1 + ln E_{h ~ N(0, C)} exp(g phi(h)^T Ct phi(h))` (the linear
//! closed form `-1/2 ln det(I - 2 g Ct C)` is its Gaussian case), the forward map is the tilted
//! expectation `C^l = g <phi phi^T>_tilt + b` under `N(h; 0, C^{l-1}) exp(+g phi^T Ct^l phi)`,
//! and the backward map `Ct^{l-1} = dW_l / dC^{l-1}` (Stein form
//! `1/2 C^{-1} (<h h^T>_tilt - C) C^{-1}`). To first order in `Ct` (which is O(1/N)), around the
//! NNGP kernels `K^l = F(K^{l-1})`, `F(C) = g E[phi phi^T] + b`:
//!
//! * terminal `Ct^L = (Z Z^T - C G^{-1}) / (2N)` at `K^L`;
//! * backward `Ct^{l-1} = J_l^T[Ct^l]`, the adjoint of the NNGP map's Jacobian at `K^{l-1}`
//!   (Price's theorem: the gradient of `g E[phi^T Ct phi]` in `C`);
//! * forward `dC^l = J_l[dC^{l-1}] + g^2 V_l[Ct^l]`, `dC^0 = 0`, with the Gaussian 4-point
//!   covariance `V[A]_ab = Cov(phi_a phi_b, phi^T A phi)`, `h ~ N(0, K^{l-1})`.
//!
//! For linear phi, `J = g`, `V[A] = 2 K A K`, and this is the linear module's perturbative
//! solution. `V` has no closed form for nonlinear phi (a 4-dimensional expectation); it is
//! estimated by Monte Carlo with common random numbers: `h_s = L z_s`, `L L^T = K + eps diag(K)`
//! (lower Cholesky), the standard normals of point `j` from stream `j` of `seed`, so that the
//! training block of a joint (train + test) pass is the same sample as the training pass and
//! nothing depends on the number of threads. Its error is `O(|V| / sqrt(S))`.
//!
//! `J` uses the per-pair expectations `E[phi_a phi_b]`, `E[phi'_a phi'_b]`,
//! `E[phi''_a phi_b] / 2` of the lazy kernels' paths ([`Quad`]: closed forms for linear/relu/erf,
//! the Hermite expansion for tanh/gelu/softplus, the polar rule for callables). With `D_ab = E[phi'_a phi'_b]` and `A_ab = dE[phi_a phi_b]/dC_aa` (a != b),
//! `A_aa = E[phi'' phi]`: `J[dC]_ab = g (D_ab dC_ab + A_ab dC_aa + A_ba dC_bb)`,
//! `J[dC]_aa = g (D_aa + A_aa) dC_aa`, and its adjoint in the Frobenius product (symmetric
//! arguments) `J^T[M]_ab = g D_ab M_ab` (a != b), `J^T[M]_aa = g ((D_aa + A_aa) M_aa + 2 sum_{b != a} A_ab M_ab)`.
use crate::error::{invalid, Result};
use crate::kernels::activation::{Activation, ExpectationGrad};
use crate::kernels::hermite::grad::{grad_row, GradTable};
use crate::kernels::net::Mlp;
use crate::kernels::quadrature::PolarRule;
use crate::linalg::{cholesky, matmul};
use crate::rng::Rng;
use faer::{Accum, Mat, MatRef, Par};

/// How the per-pair Gaussian expectations of the layer maps are computed, as in the lazy
/// kernels: the Hermite (Mehler) expansion ([`GradTable`], [`grad_row`]) for the smooth built-in
/// activations without a closed form (tanh, gelu, softplus) with the net's fallback rule
/// ([`Mlp::hermite_fallback_rule`]) for the entries that miss its error bound; closed forms
/// (linear, relu, erf) or the polar rule of `max(quadrature_order, 64)` (callables) otherwise.
#[derive(Debug, Clone)]
pub struct Quad {
    pub rule: PolarRule,
    pub hermite: bool,
}

impl Quad {
    pub fn of(net: &Mlp) -> Self {
        use crate::kernels::activation::Method as Km;
        let hermite = matches!(net.method, Km::Hermite | Km::Auto)
            && !net.activation.has_closed_form()
            && !matches!(net.activation, Activation::Custom(_));
        if hermite {
            Quad { rule: net.hermite_fallback_rule(), hermite }
        } else {
            Quad::polar(net.quadrature_order.max(64))
        }
    }

    /// The polar rule of `order` for every entry (closed forms where they exist).
    pub fn polar(order: usize) -> Self {
        Quad { rule: PolarRule::new(order), hermite: false }
    }
}

/// Relative diagonal jitter of the sampling factor `L L^T = K + eps diag(K)`.
pub const SAMPLING_JITTER: f64 = 1e-9;

/// The NNGP layer map `F(C) = g E[phi phi^T] + b` at one `C`, with its Jacobian coefficients.
pub struct LayerMap {
    pub g: f64,
    pub b: f64,
    /// `F(C)`.
    pub f: Mat<f64>,
    /// `D_ab = E[phi'_a phi'_b]`.
    pub d: Mat<f64>,
    /// `A_ab = dE[phi_a phi_b] / dC_aa` (a != b), `A_aa = E[phi'' phi]`.
    pub a: Mat<f64>,
}

impl LayerMap {
    /// The map and its coefficients at `c` (P x P, symmetric PSD).
    pub fn new(act: &Activation, quad: &Quad, g: f64, b: f64, c: MatRef<'_, f64>) -> Result<Self> {
        let p = c.nrows();
        let m = p * (p + 1) / 2;
        let (mut e, mut dc, mut da, mut db) = (vec![0.0; m], vec![0.0; m], vec![0.0; m], vec![0.0; m]);
        let eg = ExpectationGrad { act, rule: &quad.rule };
        if quad.hermite {
            // row j of the lazy kernels' expansion, columns i <= j: the packed upper triangle
            // (a = C_jj is the row's variance: dE/dC_jj is `da` there, dE/dC_ii is `db`)
            let diag: Vec<f64> = (0..p).map(|i| c[(i, i)].max(0.0)).collect();
            let table = GradTable::new(act, &diag)?;
            let mut k = 0;
            for j in 0..p {
                let n = j + 1;
                let krow: Vec<f64> = (0..n).map(|i| c[(j, i)]).collect();
                let (er, dcr) = (&mut e[k..k + n], &mut dc[k..k + n]);
                let (mut dar, mut dbr) = (vec![0.0; n], vec![0.0; n]);
                grad_row(&table, j, &diag, &krow, er, dcr, &mut dar, &mut dbr, &eg)?;
                // in the packed (i, j) order: da = dE/dC_ii, db = dE/dC_jj
                da[k..k + n].copy_from_slice(&dbr);
                db[k..k + n].copy_from_slice(&dar);
                k += n;
            }
        } else {
            let (mut va, mut vb, mut vc) = (Vec::with_capacity(m), Vec::with_capacity(m), Vec::with_capacity(m));
            for j in 0..p {
                for i in 0..=j {
                    va.push(c[(i, i)].max(0.0));
                    vb.push(c[(j, j)].max(0.0));
                    vc.push(c[(i, j)]);
                }
            }
            eg.batch(&va, &vb, &vc, &mut e, &mut dc, &mut da, Some(&mut db))?;
        }
        let (mut f, mut d, mut a) = (Mat::zeros(p, p), Mat::zeros(p, p), Mat::zeros(p, p));
        let mut k = 0;
        for j in 0..p {
            for i in 0..=j {
                if !(e[k].is_finite() && dc[k].is_finite() && da[k].is_finite() && db[k].is_finite()) {
                    return Err(invalid(
                        "net",
                        "the Gaussian expectations of the activation are not finite at the NNGP kernels",
                    ));
                }
                f[(i, j)] = g * e[k] + b;
                f[(j, i)] = f[(i, j)];
                d[(i, j)] = dc[k];
                d[(j, i)] = dc[k];
                if i == j {
                    a[(i, i)] = da[k] + db[k];
                } else {
                    a[(i, j)] = da[k];
                    a[(j, i)] = db[k];
                }
                k += 1;
            }
        }
        Ok(LayerMap { g, b, f, d, a })
    }

    /// `J[dC]` (symmetric `dc`).
    pub fn jvp(&self, dc: MatRef<'_, f64>) -> Mat<f64> {
        let p = dc.nrows();
        Mat::from_fn(p, p, |i, j| {
            if i == j {
                self.g * (self.d[(i, i)] + self.a[(i, i)]) * dc[(i, i)]
            } else {
                self.g
                    * (self.d[(i, j)] * dc[(i, j)]
                        + self.a[(i, j)] * dc[(i, i)]
                        + self.a[(j, i)] * dc[(j, j)])
            }
        })
    }

    /// `J^T[M]` (symmetric `m`).
    pub fn vjp(&self, m: MatRef<'_, f64>) -> Mat<f64> {
        let p = m.nrows();
        let mut out = Mat::from_fn(p, p, |i, j| if i == j { 0.0 } else { self.g * self.d[(i, j)] * m[(i, j)] });
        for i in 0..p {
            let mut s = (self.d[(i, i)] + self.a[(i, i)]) * m[(i, i)];
            for j in 0..p {
                if j != i {
                    s += 2.0 * self.a[(i, j)] * m[(i, j)];
                }
            }
            out[(i, i)] = self.g * s;
        }
        out
    }
}

/// Standard normals `S x P`, column `j` from stream `j` of `seed` (common random numbers).
pub fn standard_normals(n_samples: usize, p: usize, seed: u64) -> Mat<f64> {
    let mut z = Mat::zeros(n_samples, p);
    for j in 0..p {
        let mut rng = Rng::new(seed, j as u64);
        let mut col = vec![0.0; n_samples];
        rng.fill_normal(&mut col);
        for (s, v) in col.into_iter().enumerate() {
            z[(s, j)] = v;
        }
    }
    z
}

/// `phi(h)` of the samples `h = z L^T`, `L L^T = C + eps diag(C)`.
pub fn sample_features(act: &Activation, c: MatRef<'_, f64>, z: MatRef<'_, f64>, par: Par) -> Result<Mat<f64>> {
    let p = c.nrows();
    let cj = Mat::from_fn(p, p, |i, j| c[(i, j)] + if i == j { SAMPLING_JITTER * c[(i, i)].abs() } else { 0.0 });
    let l = cholesky(cj.as_ref()).ok_or_else(|| {
        invalid("X", "a layer's NNGP kernel is not positive semi-definite (Cholesky failed)")
    })?;
    let mut h = Mat::zeros(z.nrows(), p);
    matmul(h.as_mut(), Accum::Replace, z, l.transpose(), 1.0, par);
    match act {
        Activation::Custom(f) => {
            // one call of the (Python) callable for all samples
            let flat: Vec<f64> = (0..p).flat_map(|j| (0..h.nrows()).map(move |s| (s, j))).map(|(s, j)| h[(s, j)]).collect();
            let mut out = vec![0.0; flat.len()];
            f.eval(&flat, &mut out).map_err(crate::error::AkError::Callback)?;
            if out.iter().any(|v| !v.is_finite()) {
                return Err(invalid("activation", "the callable returned non-finite values at Gaussian samples"));
            }
            let s = h.nrows();
            Ok(Mat::from_fn(s, p, |r, j| out[j * s + r]))
        }
        _ => Ok(crate::mcmc::tilted::apply_phi(act, h.as_ref())),
    }
}

/// Monte-Carlo `V[M] = Cov(phi phi^T, phi^T M phi)` from features `phi` (S x P):
/// `phi^T diag(u - mean u) phi / S`, `u_s = phi_s^T M phi_s`.
pub fn fluctuation(phi: MatRef<'_, f64>, m: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let (s, p) = (phi.nrows(), phi.ncols());
    let mut fm = Mat::<f64>::zeros(s, p);
    matmul(fm.as_mut(), Accum::Replace, phi, m, 1.0, par);
    let u: Vec<f64> = (0..s).map(|r| (0..p).map(|j| fm[(r, j)] * phi[(r, j)]).sum()).collect();
    let mean = u.iter().sum::<f64>() / s as f64;
    let w = Mat::from_fn(s, p, |r, j| (u[r] - mean) * phi[(r, j)]);
    let mut v = Mat::<f64>::zeros(p, p);
    matmul(v.as_mut(), Accum::Replace, phi.transpose(), w.as_ref(), 1.0 / s as f64, par);
    for j in 0..p {
        for i in 0..j {
            let x = 0.5 * (v[(i, j)] + v[(j, i)]);
            v[(i, j)] = x;
            v[(j, i)] = x;
        }
    }
    v
}

/// NNGP kernels `K^0..K^L` (`K^0` given) and the layer maps at `K^0..K^{L-1}`.
pub fn nngp(act: &Activation, quad: &Quad, g: f64, b: f64, k0: &Mat<f64>, depth: usize) -> Result<(Vec<Mat<f64>>, Vec<LayerMap>)> {
    let mut ks = vec![k0.clone()];
    let mut maps = Vec::with_capacity(depth);
    for _ in 0..depth {
        let m = LayerMap::new(act, quad, g, b, ks.last().unwrap().as_ref())?;
        ks.push(m.f.clone());
        maps.push(m);
    }
    Ok((ks, maps))
}

/// First-order forward pass: `C^l = K^l + dC^l`, `dC^l = J_l[dC^{l-1}] + g^2 V_l[Ct^l]`
/// (`ks` = `K^0..K^L`, `maps` at `K^0..K^{L-1}`, `cts` = `Ct^1..Ct^L`).
#[allow(clippy::too_many_arguments)]
pub fn forward_first_order(
    act: &Activation,
    ks: &[Mat<f64>],
    maps: &[LayerMap],
    cts: &[Mat<f64>],
    n_samples: usize,
    seed: u64,
    par: Par,
) -> Result<Vec<Mat<f64>>> {
    let p = ks[0].nrows();
    let z = standard_normals(n_samples, p, seed);
    let mut dc = Mat::<f64>::zeros(p, p);
    let mut out = Vec::with_capacity(maps.len());
    for (l, m) in maps.iter().enumerate() {
        let feats = sample_features(act, ks[l].as_ref(), z.as_ref(), par)?;
        let v = fluctuation(feats.as_ref(), cts[l].as_ref(), par);
        let mut next = m.jvp(dc.as_ref());
        for j in 0..p {
            for i in 0..p {
                next[(i, j)] += m.g * m.g * v[(i, j)];
            }
        }
        out.push(Mat::from_fn(p, p, |i, j| ks[l + 1][(i, j)] + next[(i, j)]));
        dc = next;
    }
    Ok(out)
}

impl super::Problem {
    pub fn is_linear(&self) -> bool {
        matches!(self.act, Activation::Linear)
    }

    /// First-order solution for any activation (module docs): `C^1..C^L`, `Ct^1..Ct^L`, and
    /// `Ct^0 = J_1^T[Ct^1]`. The report's residual is NaN (the full nonlinear equations are not
    /// evaluated).
    pub fn perturbative_nonlinear(
        &self,
        width: f64,
        t: f64,
        n_samples: usize,
        seed: u64,
        par: Par,
    ) -> Result<super::Solution> {
        let (ks, maps) = nngp(&self.act, &self.quad, self.g, self.b, &self.k0, self.depth)?;
        let mut ct = vec![Mat::zeros(0, 0); self.depth];
        ct[self.depth - 1] = self
            .terminal(&ks[self.depth], width, t, par)
            .ok_or_else(|| invalid("temperature", "K^L + T I is not positive definite"))?;
        for l in (1..self.depth).rev() {
            ct[l - 1] = maps[l].vjp(ct[l].as_ref());
        }
        let input_conjugate = maps[0].vjp(ct[0].as_ref());
        let kernels = forward_first_order(&self.act, &ks, &maps, &ct, n_samples, seed, par)?;
        let report = crate::solve::SolveReport::new("perturbative", true, 0, 1, f64::NAN, vec![]);
        Ok(super::Solution {
            kernels,
            conjugates: ct,
            input_conjugate,
            report,
            kish: vec![],
            n_draws: 0,
            draws: vec![],
        })
    }
}

/// First-order kernels `C^1..C^L` on a joint set (training points first) from the training
/// conjugates `Ct^1..Ct^L` (P x P), zero-padded on the other rows: the forward pass behind
/// predictions of [`super::Problem::perturbative_nonlinear`] (same samples on the training block).
pub fn joint_first_order(
    net: &crate::kernels::net::Mlp,
    k0: &Mat<f64>,
    conjugates: &[Mat<f64>],
    n_samples: usize,
    seed: u64,
    par: Par,
) -> Result<Vec<Mat<f64>>> {
    let q = k0.nrows();
    if conjugates.len() != net.depth {
        return Err(invalid("conjugates", format!("need {} matrices, got {}", net.depth, conjugates.len())));
    }
    let (g, b) = (net.sigma_w * net.sigma_w, net.sigma_b * net.sigma_b);
    let (ks, maps) = nngp(&net.activation, &Quad::of(net), g, b, k0, net.depth)?;
    let mut padded = Vec::with_capacity(net.depth);
    for c in conjugates {
        let p = c.nrows();
        if p != c.ncols() || p > q {
            return Err(invalid("conjugates", "need square matrices no larger than the joint set"));
        }
        padded.push(Mat::from_fn(q, q, |i, j| if i < p && j < p { c[(i, j)] } else { 0.0 }));
    }
    forward_first_order(&net.activation, &ks, &maps, &padded, n_samples, seed, par)
}
