//! The symmetric Gauss-Hermite rules of the Hermite expansion: [`GH_NODES`] nodes for the
//! coefficients (callables at every variance, the built-in activations at variances up to
//! [`super::mesh::GH_MAX_VARIANCE`]) and [`GH_CHECK_NODES`] for the callables' check, with the
//! normalized Hermite values at the main rule's nodes precomputed.
use super::{derivative_k, exact_parity, suffix_tails, PointCoeffs, GH_CHECK_NODES, GH_NODES, MAX_ORDER};
use crate::kernels::activation::Activation;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};
use rayon::prelude::*;
use std::sync::OnceLock;

/// A symmetric Gauss-Hermite rule for `E[f(z)]`, `z ~ N(0, 1)`: positive nodes and their
/// weights (each node stands for `+z` and `-z`; the weights sum to 1/2).
#[derive(Debug, Clone)]
pub struct HalfRule {
    pub z: Vec<f64>,
    pub w: Vec<f64>,
}

/// Normalized Hermite values `h_n(x) = He_n(x) / sqrt(n!)` for n = 0..=n_max.
pub(crate) fn hermite_values(x: f64, n_max: usize, out: &mut [f64]) {
    out[0] = 1.0;
    if n_max >= 1 {
        out[1] = x;
    }
    for n in 1..n_max {
        out[n + 1] = (x * out[n] - (n as f64).sqrt() * out[n - 1]) / ((n + 1) as f64).sqrt();
    }
}

/// Gauss-Hermite rule of `m` (even) nodes: Golub-Welsch eigenvalues polished by Newton on
/// the normalized recurrence; weights `1 / (m h_{m-1}(z)^2)`.
pub fn gauss_hermite(m: usize) -> HalfRule {
    use faer::Mat;
    assert!(m >= 2 && m % 2 == 0);
    let j = Mat::<f64>::from_fn(m, m, |r, c| {
        if r.abs_diff(c) == 1 {
            (r.max(c) as f64).sqrt()
        } else {
            0.0
        }
    });
    let ev = j
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .expect("eigenvalues of a small tridiagonal matrix");
    let mut pos: Vec<f64> = ev.into_iter().filter(|x| *x > 0.0).collect();
    pos.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(pos.len(), m / 2);
    let mut h = vec![0.0; m + 1];
    let mut w = Vec::with_capacity(m / 2);
    for x in pos.iter_mut() {
        for _ in 0..20 {
            hermite_values(*x, m, &mut h);
            let dx = h[m] / ((m as f64).sqrt() * h[m - 1]);
            *x -= dx;
            if dx.abs() <= 1e-16 * x.abs() {
                break;
            }
        }
        hermite_values(*x, m, &mut h);
        w.push(1.0 / (m as f64 * h[m - 1] * h[m - 1]));
    }
    HalfRule { z: pos, w }
}

pub(crate) struct Rules {
    pub(crate) main: HalfRule,
    pub(crate) check: HalfRule,
    /// `hw[n][k] = w_k h_n(z_k)` of the main rule (n-major), for n = 0..=MAX_ORDER.
    pub(crate) hw: Vec<f64>,
    /// `h[n][k] = h_n(z_k)` of the main rule (n-major): the residuals of the tails.
    pub(crate) h: Vec<f64>,
}

pub(crate) fn rules() -> &'static Rules {
    static R: OnceLock<Rules> = OnceLock::new();
    R.get_or_init(|| {
        let main = gauss_hermite(GH_NODES);
        let check = gauss_hermite(GH_CHECK_NODES);
        let k = main.z.len();
        let mut hw = vec![0.0; (MAX_ORDER + 1) * k];
        let mut hv = vec![0.0; (MAX_ORDER + 1) * k];
        let mut h = vec![0.0; MAX_ORDER + 1];
        for (i, (&z, &w)) in main.z.iter().zip(&main.w).enumerate() {
            hermite_values(z, MAX_ORDER, &mut h);
            for n in 0..=MAX_ORDER {
                hw[n * k + i] = w * h[n];
                hv[n * k + i] = h[n];
            }
        }
        Rules { main, check, hw, h: hv }
    })
}

/// Points per batch of [`builtin_coeffs`] (fixed, so the numbers do not depend on the thread
/// count: each batch is one sequential product).
const BATCH: usize = 64;

/// Coefficients, `E[f^2]` and relative tails of the `k`-th derivative `f` of a built-in
/// activation on the main Gauss-Hermite rule, at variances `s` (the built-ins' rule up to
/// [`super::mesh::GH_MAX_VARIANCE`]), batched: with the even and odd weighted values
/// `E[q, i] = w_q (f(sqrt(s_i) z_q) + f(-sqrt(s_i) z_q))` (and `O` with the difference), the
/// coefficients are the products `H_even E`, `H_odd O` (`H[n, q] = h_n(z_q)`), the truncated
/// series at the nodes `H^T C`, and the tails [`suffix_tails`] of the residual's mean square.
pub(crate) fn builtin_coeffs(act: &Activation, s: &[f64], k: u8) -> Vec<PointCoeffs> {
    let r = rules();
    let nk = r.main.z.len();
    let (ne, no) = (MAX_ORDER / 2 + 1, (MAX_ORDER + 1) / 2);
    let he = Mat::<f64>::from_fn(ne, nk, |j, q| r.h[2 * j * nk + q]);
    let ho = Mat::<f64>::from_fn(no, nk, |j, q| r.h[(2 * j + 1) * nk + q]);
    let batches: Vec<Vec<PointCoeffs>> = s
        .par_chunks(BATCH)
        .map(|chunk| {
            let m = chunk.len();
            let sq: Vec<f64> = chunk.iter().map(|s| s.max(0.0).sqrt()).collect();
            let fp = Mat::<f64>::from_fn(nk, m, |q, i| derivative_k(act, sq[i] * r.main.z[q], k));
            let fm = match exact_parity(act, k) {
                Some(sign) => Mat::<f64>::from_fn(nk, m, |q, i| sign * fp[(q, i)]),
                None => Mat::<f64>::from_fn(nk, m, |q, i| derivative_k(act, -sq[i] * r.main.z[q], k)),
            };
            let w = &r.main.w;
            let e = Mat::<f64>::from_fn(nk, m, |q, i| w[q] * (fp[(q, i)] + fm[(q, i)]));
            let o = Mat::<f64>::from_fn(nk, m, |q, i| w[q] * (fp[(q, i)] - fm[(q, i)]));
            let (mut ce, mut co) = (Mat::<f64>::zeros(ne, m), Mat::<f64>::zeros(no, m));
            matmul(ce.as_mut(), Accum::Replace, he.as_ref(), e.as_ref(), 1.0, Par::Seq);
            matmul(co.as_mut(), Accum::Replace, ho.as_ref(), o.as_ref(), 1.0, Par::Seq);
            let (mut se, mut so) = (Mat::<f64>::zeros(nk, m), Mat::<f64>::zeros(nk, m));
            matmul(se.as_mut(), Accum::Replace, he.transpose(), ce.as_ref(), 1.0, Par::Seq);
            matmul(so.as_mut(), Accum::Replace, ho.transpose(), co.as_ref(), 1.0, Par::Seq);
            (0..m)
                .map(|i| {
                    let c: Vec<f64> = (0..=MAX_ORDER)
                        .map(|n| if n % 2 == 0 { ce[(n / 2, i)] } else { co[(n / 2, i)] })
                        .collect();
                    let (mut m0, mut t_max) = (0.0, 0.0);
                    for q in 0..nk {
                        let (a, b) = (fp[(q, i)], fm[(q, i)]);
                        m0 += w[q] * (a * a + b * b);
                        let (rp, rm) = (a - se[(q, i)] - so[(q, i)], b - se[(q, i)] + so[(q, i)]);
                        t_max += w[q] * (rp * rp + rm * rm);
                    }
                    let finite = m0.is_finite() && c.iter().all(|v| v.is_finite());
                    let tails = if finite {
                        suffix_tails(&c, m0, t_max)
                    } else {
                        vec![f64::INFINITY; MAX_ORDER + 1]
                    };
                    PointCoeffs { c, m0, tails }
                })
                .collect()
        })
        .collect();
    batches.into_iter().flatten().collect()
}
