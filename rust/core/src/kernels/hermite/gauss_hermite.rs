//! The symmetric Gauss-Hermite rules of the Hermite expansion: [`GH_NODES`] nodes for the
//! coefficients (callables at every variance, the built-in activations at variances up to
//! [`super::mesh::GH_MAX_VARIANCE`]) and [`GH_CHECK_NODES`] for the callables' check, with the
//! normalized Hermite values at the main rule's nodes precomputed.
use super::{GH_CHECK_NODES, GH_NODES, MAX_ORDER};
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
