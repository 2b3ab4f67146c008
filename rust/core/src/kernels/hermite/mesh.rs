//! The 1-D rule of the built-in activations: composite Gauss-Legendre in `z` on a mesh graded
//! towards `z = 0`.
//!
//! `E[f(sqrt(q) z) g(z)]`, `z ~ N(0, 1)`, for the built-in activations and their derivatives:
//! they change on the scale `|u| ~ 1` around `u = sqrt(q) z = 0` only (tanh and softplus have
//! their complex poles on the imaginary axis, gelu none). At large variance that transition is
//! narrow in `z` (width `1 / sqrt(q)`) and a Gauss-Hermite rule under-resolves it: with 400
//! nodes `E[tanh^2]` is off by 7e-8 at q = 10 and 4e-3 at q = 100, `E[tanh'^2]` by 23% at
//! q = 100 (measured against adaptive quadrature). The mesh rule:
//!
//! * panels `[0, 2^-K], [2^-K, 2^{1-K}], .., [1/2, 1]` with `K = ceil(log2 sqrt(q))` (K = 0 for
//!   q <= 1): the first panel is at most `1 / sqrt(q)` wide, and each panel `[x, 2x]` sits at
//!   a distance from the poles of about its own width (Gauss-Legendre error ~ 6^-2n);
//! * unit panels `[1, 2], .., [29, 30]`: they resolve the Hermite functions `h_n(z) pdf(z)^(1/2)`
//!   up to n = [`MAX_ORDER`] (the rule integrates `h_n h_m pdf` to ~3e-15 for n, m <= 128),
//!   whose mass ends well inside |z| = 30;
//! * [`MESH_GL`] Gauss-Legendre nodes per panel, mirrored to `z < 0`.
//!
//! About 600 + 20 K positive nodes (tanh, gelu, softplus and their first two derivatives agree
//! with a mesh of half the panel widths to <= 5e-16 of `sqrt(E[f^2])` for q from 1e-2 to 1e30,
//! coefficients included; tests against adaptive quadrature in `tests/kernels/test_hermite.py`).
//! Callables keep the Gauss-Hermite rule (their transitions may lie anywhere) and its check.
use super::{derivative_k, hermite_values, PointCoeffs, MAX_ORDER};
use crate::kernels::activation::Activation;
use crate::kernels::quadrature::gauss_legendre;
use std::sync::OnceLock;

/// Gauss-Legendre nodes per panel.
pub const MESH_GL: usize = 20;
/// End of the mesh: unit panels on `[1, MESH_ZMAX]`.
pub const MESH_ZMAX: usize = 30;
/// Deepest level of the graded part: it keeps the loop finite for any finite variance (the
/// first panel is `1/sqrt(q)` wide for `sqrt(q)` up to 2^400).
const MAX_LEVEL: i32 = 400;

struct Unit {
    /// Gauss-Legendre nodes on [-1, 1] and weights.
    x: Vec<f64>,
    w: Vec<f64>,
    /// The unit panels' positive nodes and weights (the density included).
    z: Vec<f64>,
    wz: Vec<f64>,
}

fn unit() -> &'static Unit {
    static U: OnceLock<Unit> = OnceLock::new();
    U.get_or_init(|| {
        let (x, w) = gauss_legendre(MESH_GL);
        let (mut z, mut wz) = (Vec::new(), Vec::new());
        for j in 1..MESH_ZMAX {
            panel(j as f64, (j + 1) as f64, &x, &w, &mut z, &mut wz);
        }
        Unit { x, w, z, wz }
    })
}

/// Appends the nodes and density-weighted weights of `[lo, hi]` (`pdf(z) = e^{-z^2/2}/sqrt(2 pi)`).
fn panel(lo: f64, hi: f64, x: &[f64], w: &[f64], z: &mut Vec<f64>, wz: &mut Vec<f64>) {
    let (m, h) = ((hi + lo) / 2.0, (hi - lo) / 2.0);
    let norm = 1.0 / (2.0 * std::f64::consts::PI).sqrt();
    for (&x, &w) in x.iter().zip(w) {
        let t = m + h * x;
        z.push(t);
        wz.push(h * w * norm * (-0.5 * t * t).exp());
    }
}

/// Level K of the graded part: the smallest K >= 0 with `2^-K <= 1 / sqrt(q)` (`sq = sqrt(q)`).
fn level(sq: f64) -> i32 {
    if !(sq > 1.0) {
        return 0;
    }
    (sq.log2().ceil() as i32).clamp(0, MAX_LEVEL)
}

/// Positive nodes and weights (density included; each node stands for `+z` and `-z`, the
/// weights sum to 1/2) of the mesh rule for the scale `sq = sqrt(q)`.
pub fn mesh_rule(sq: f64) -> (Vec<f64>, Vec<f64>) {
    let u = unit();
    let k = level(sq);
    let n = (k as usize + 1) * MESH_GL + u.z.len();
    let (mut z, mut wz) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut hi = 2f64.powi(-k);
    panel(0.0, hi, &u.x, &u.w, &mut z, &mut wz);
    while hi < 1.0 {
        panel(hi, 2.0 * hi, &u.x, &u.w, &mut z, &mut wz);
        hi *= 2.0;
    }
    z.extend_from_slice(&u.z);
    wz.extend_from_slice(&u.wz);
    (z, wz)
}

/// Coefficients `c_n = E[f(sqrt(s) z) h_n(z)]`, `E[f^2]` and the relative tails of the
/// `k`-th derivative `f` of a built-in activation, by the mesh rule. The tails are the rule's
/// mean square of the residual `f - sum_{n<=N} c_n h_n` (no cancellation), exact to the rule's
/// discrete orthogonality (~3e-15 relative, far below the accepted `TOL`).
pub(crate) fn mesh_coeffs(act: &Activation, s: f64, k: u8) -> PointCoeffs {
    let sq = s.max(0.0).sqrt();
    let (z, w) = mesh_rule(sq);
    let fp: Vec<f64> = z.iter().map(|&z| derivative_k(act, sq * z, k)).collect();
    let fm: Vec<f64> = z.iter().map(|&z| derivative_k(act, -sq * z, k)).collect();
    let mut c = vec![0.0; MAX_ORDER + 1];
    let mut h = vec![0.0; MAX_ORDER + 1];
    let mut m0 = 0.0;
    for q in 0..z.len() {
        hermite_values(z[q], MAX_ORDER, &mut h);
        let (even, odd) = (w[q] * (fp[q] + fm[q]), w[q] * (fp[q] - fm[q]));
        for n in (0..=MAX_ORDER).step_by(2) {
            c[n] += even * h[n];
        }
        for n in (1..=MAX_ORDER).step_by(2) {
            c[n] += odd * h[n];
        }
        m0 += w[q] * (fp[q] * fp[q] + fm[q] * fm[q]);
    }
    let mut t = vec![0.0; MAX_ORDER + 1];
    let finite = m0.is_finite() && c.iter().all(|v| v.is_finite());
    if finite {
        for q in 0..z.len() {
            hermite_values(z[q], MAX_ORDER, &mut h);
            let (mut rp, mut rm) = (fp[q], fm[q]);
            for n in 0..=MAX_ORDER {
                let ch = c[n] * h[n];
                rp -= ch;
                rm -= if n % 2 == 0 { ch } else { -ch };
                t[n] += w[q] * (rp * rp + rm * rm);
            }
        }
    }
    let tails = t
        .iter()
        .map(|&t| if !finite { f64::INFINITY } else if m0 > 0.0 { (t / m0).sqrt() } else { 0.0 })
        .collect();
    PointCoeffs { c, m0, tails }
}

/// `E[f^(kf)(sqrt(a) z) f^(kg)(sign sqrt(b) z)]` for a built-in activation by the mesh rule of
/// the larger scale (the smaller one's transition is wider, so resolved as well).
pub(crate) fn mesh_collinear(act: &Activation, a: f64, b: f64, sign: f64, (kf, kg): (u8, u8)) -> f64 {
    let (qa, qb) = (a.max(0.0).sqrt(), sign * b.max(0.0).sqrt());
    let (z, w) = mesh_rule(qa.max(qb.abs()));
    let mut e = 0.0;
    for (&z, &w) in z.iter().zip(&w) {
        e += w
            * (derivative_k(act, qa * z, kf) * derivative_k(act, qb * z, kg)
                + derivative_k(act, -qa * z, kf) * derivative_k(act, -qb * z, kg));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_rule_integrates_hermite_products() {
        // sum_k w_k h_n(z_k) h_m(z_k) = delta_nm (both signs of z): 3e-15 for n, m <= 128
        for q in [0.3, 4.0, 1e4, 1e30] {
            let (z, w) = mesh_rule(f64::sqrt(q));
            let mut h = vec![0.0; MAX_ORDER + 1];
            let mut g = vec![0.0; (MAX_ORDER + 1) * (MAX_ORDER + 1)];
            for (&z, &w) in z.iter().zip(&w) {
                hermite_values(z, MAX_ORDER, &mut h);
                for n in 0..=MAX_ORDER {
                    for m in 0..=MAX_ORDER {
                        if (n + m) % 2 == 0 {
                            g[n * (MAX_ORDER + 1) + m] += 2.0 * w * h[n] * h[m];
                        }
                    }
                }
            }
            for n in 0..=MAX_ORDER {
                for m in 0..=MAX_ORDER {
                    let want = if n == m { 1.0 } else { 0.0 };
                    let got = g[n * (MAX_ORDER + 1) + m];
                    assert!((got - want).abs() <= 1e-14, "q={q} n={n} m={m}: {got}");
                }
            }
        }
    }

    #[test]
    fn graded_panels_are_no_wider_than_the_transition() {
        for q in [0.5f64, 1.0, 1.5, 4.0, 17.0, 1e8] {
            let (z, _) = mesh_rule(q.sqrt());
            assert!(z[MESH_GL - 1] <= 1.0 / q.sqrt().max(1.0), "q={q}");
        }
    }
}
