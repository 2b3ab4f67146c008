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
//!
//! At variances `q <=` [`GH_MAX_VARIANCE`] the transition is at least as wide as the
//! Gauss-Hermite rule's node spacing and the built-in activations take the [`super::GH_NODES`]
//! rule instead ([`builtin_rule`]; a third of the nodes): its error decays like
//! `exp(-tau sqrt(2 m))` with the poles' distance `tau = pi / (2 sqrt(q))` in `z` (tanh), below
//! rounding at `q <= 1`: it agrees with the mesh to <= 1.6e-15 of `E[f^2]` and 6e-16 of
//! `sqrt(E[f^2])` in the coefficients (the rounding of its weights; tested), and it integrates
//! `h_n h_m pdf` exactly for `n + m < 800`.
use super::{derivative_k, dot, exact_parity, residual_ms, rules, suffix_tails, PointCoeffs, MAX_ORDER};
use crate::kernels::activation::Activation;
use crate::kernels::quadrature::{dyadic_level, gauss_legendre};
use std::sync::OnceLock;

/// Gauss-Legendre nodes per panel.
pub const MESH_GL: usize = 20;
/// End of the mesh: unit panels on `[1, MESH_ZMAX]`.
pub const MESH_ZMAX: usize = 30;
struct Unit {
    /// Gauss-Legendre nodes on [-1, 1] and weights.
    x: Vec<f64>,
    w: Vec<f64>,
    /// The unit panels' positive nodes and weights (the density included).
    z: Vec<f64>,
    wz: Vec<f64>,
    /// `h_n(z_k)` at those nodes, n-major ([`hermite_table`]).
    h: Vec<f64>,
}

fn unit() -> &'static Unit {
    static U: OnceLock<Unit> = OnceLock::new();
    U.get_or_init(|| {
        let (x, w) = gauss_legendre(MESH_GL);
        let (mut z, mut wz) = (Vec::new(), Vec::new());
        for j in 1..MESH_ZMAX {
            panel(j as f64, (j + 1) as f64, &x, &w, &mut z, &mut wz);
        }
        let h = hermite_table(&z);
        Unit { x, w, z, wz, h }
    })
}

/// `h_n(z_k)` for n = 0..=MAX_ORDER, n-major (`h[n * z.len() + k]`): the normalized recurrence
/// `h_{n+1} = (z h_n - sqrt(n) h_{n-1}) / sqrt(n+1)` run over all nodes at once (its constants
/// precomputed; the same values as [`hermite_values`] to rounding).
fn hermite_table(z: &[f64]) -> Vec<f64> {
    let k = z.len();
    let mut h = vec![0.0; (MAX_ORDER + 1) * k];
    h[..k].fill(1.0);
    h[k..2 * k].copy_from_slice(z);
    for n in 1..MAX_ORDER {
        let (a, b) = (1.0 / ((n + 1) as f64).sqrt(), (n as f64).sqrt());
        let (lo, hi) = h.split_at_mut((n + 1) * k);
        let (prev, cur) = (&lo[(n - 1) * k..n * k], &lo[n * k..]);
        for (o, ((&z, &c), &p)) in hi[..k].iter_mut().zip(z.iter().zip(cur).zip(prev)) {
            *o = (z * c - b * p) * a;
        }
    }
    h
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

/// Largest variance at which the built-in activations use the Gauss-Hermite rule.
pub const GH_MAX_VARIANCE: f64 = 1.0;

/// The 1-D rule of the built-in activations at the scale `sq = sqrt(q)`: the Gauss-Hermite rule
/// for `q <=` [`GH_MAX_VARIANCE`], else [`mesh_rule`] (positive nodes and weights).
pub fn builtin_rule(sq: f64) -> (Vec<f64>, Vec<f64>) {
    if sq * sq <= GH_MAX_VARIANCE {
        let r = rules();
        (r.main.z.clone(), r.main.w.clone())
    } else {
        mesh_rule(sq)
    }
}

/// Positive nodes and weights (density included; each node stands for `+z` and `-z`, the
/// weights sum to 1/2) of the mesh rule for the scale `sq = sqrt(q)`.
pub fn mesh_rule(sq: f64) -> (Vec<f64>, Vec<f64>) {
    let u = unit();
    let (mut z, mut wz) = graded_part(sq);
    z.extend_from_slice(&u.z);
    wz.extend_from_slice(&u.wz);
    (z, wz)
}

/// The graded panels `[0, 2^-K], .., [1/2, 1]` of the scale `sq`: positive nodes and weights.
fn graded_part(sq: f64) -> (Vec<f64>, Vec<f64>) {
    let u = unit();
    let k = dyadic_level(sq);
    let (mut z, mut wz) = (Vec::with_capacity((k as usize + 1) * MESH_GL), Vec::new());
    let mut hi = 2f64.powi(-k);
    panel(0.0, hi, &u.x, &u.w, &mut z, &mut wz);
    while hi < 1.0 {
        panel(hi, 2.0 * hi, &u.x, &u.w, &mut z, &mut wz);
        hi *= 2.0;
    }
    (z, wz)
}

/// Coefficients `c_n = E[f(sqrt(s) z) h_n(z)]`, `E[f^2]` and the relative tails of the
/// `k`-th derivative `f` of a built-in activation, by [`builtin_rule`] (the Hermite values of the
/// Gauss-Hermite rule and of the mesh's unit panels shared, the graded panels' computed per
/// point). The tails are the rule's mean square of
/// the residual `f - sum_{n<=N} c_n h_n` without cancellation ([`suffix_tails`]), exact to the
/// rule's discrete orthogonality (~3e-15 relative, far below the accepted `TOL`).
pub(crate) fn mesh_coeffs(act: &Activation, s: f64, k: u8) -> PointCoeffs {
    let sq = s.max(0.0).sqrt();
    if s <= GH_MAX_VARIANCE {
        super::gauss_hermite::builtin_coeffs(act, &[s], k).pop().expect("one point")
    } else {
        let u = unit();
        let (zg, wg) = graded_part(sq);
        let hg = hermite_table(&zg);
        coeffs_on(act, sq, k, &[(&zg, &wg, &hg), (&u.z, &u.wz, &u.h)])
    }
}

/// [`mesh_coeffs`] on a rule given as segments `(positive nodes, weights, h_n at the nodes
/// n-major)`.
type Segment<'a> = (&'a [f64], &'a [f64], &'a [f64]);
fn coeffs_on(act: &Activation, sq: f64, k: u8, segs: &[Segment<'_>]) -> PointCoeffs {
    let vals: Vec<(Vec<f64>, Vec<f64>)> = segs
        .iter()
        .map(|(z, _, _)| {
            let fp: Vec<f64> = z.iter().map(|&z| derivative_k(act, sq * z, k)).collect();
            let fm = match exact_parity(act, k) {
                Some(sign) => fp.iter().map(|v| sign * v).collect(),
                None => z.iter().map(|&z| derivative_k(act, -sq * z, k)).collect(),
            };
            (fp, fm)
        })
        .collect();
    let mut c = vec![0.0; MAX_ORDER + 1];
    let mut m0 = 0.0;
    for ((_, w, h), (fp, fm)) in segs.iter().zip(&vals) {
        let nk = w.len();
        let even: Vec<f64> = (0..nk).map(|q| w[q] * (fp[q] + fm[q])).collect();
        let odd: Vec<f64> = (0..nk).map(|q| w[q] * (fp[q] - fm[q])).collect();
        for (n, cn) in c.iter_mut().enumerate() {
            *cn += dot(&h[n * nk..(n + 1) * nk], if n % 2 == 0 { &even } else { &odd });
        }
        m0 += (0..nk).map(|q| w[q] * (fp[q] * fp[q] + fm[q] * fm[q])).sum::<f64>();
    }
    let finite = m0.is_finite() && c.iter().all(|v| v.is_finite());
    let tails = if finite {
        let t_max = segs.iter().zip(&vals).map(|((_, w, h), (fp, fm))| residual_ms(&c, h, w, fp, fm)).sum();
        suffix_tails(&c, m0, t_max)
    } else {
        vec![f64::INFINITY; MAX_ORDER + 1]
    };
    PointCoeffs { c, m0, tails }
}

/// `E[f^(kf)(sqrt(a) z) f^(kg)(sign sqrt(b) z)]` for a built-in activation by [`builtin_rule`] of
/// the larger scale (the smaller one's transition is wider, so resolved as well).
pub(crate) fn mesh_collinear(act: &Activation, a: f64, b: f64, sign: f64, (kf, kg): (u8, u8)) -> f64 {
    let (qa, qb) = (a.max(0.0).sqrt(), sign * b.max(0.0).sqrt());
    let (z, w) = builtin_rule(qa.max(qb.abs()));
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
    use super::super::hermite_values;
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
    fn gauss_hermite_equals_the_mesh_up_to_variance_one() {
        // below GH_MAX_VARIANCE the built-ins take the Gauss-Hermite rule: same coefficients,
        // second moment and tails (where above rounding) as the mesh, to rounding
        let u = unit();
        for act in [Activation::Tanh, Activation::Gelu, Activation::Softplus] {
            for q in [1e-4, 0.01, 0.3, 0.77, 1.0] {
                for k in 0..3u8 {
                    let sq = f64::sqrt(q);
                    let gh = mesh_coeffs(&act, q, k);
                    let (zg, wg) = graded_part(sq);
                    let hg = hermite_table(&zg);
                    let me = coeffs_on(&act, sq, k, &[(&zg, &wg, &hg), (&u.z, &u.wz, &u.h)]);
                    let scale = me.m0.sqrt();
                    let dm = (gh.m0 - me.m0).abs() / me.m0;
                    let dc = (0..=MAX_ORDER).map(|n| (gh.c[n] - me.c[n]).abs()).fold(0.0, f64::max) / scale;
                    let dt = (0..=MAX_ORDER)
                        .map(|n| ((gh.tails[n] - me.tails[n]).abs() - 1e-14).max(0.0) / me.tails[n])
                        .fold(0.0, f64::max);
                    // measured: dm <= 1.6e-15, dc <= 5.8e-16, tails equal above 1e-14
                    assert!(dm <= 3e-15 && dc <= 1e-15 && dt <= 0.05, "{act:?} q={q} k={k}: {dm:e} {dc:e} {dt:e}");
                }
            }
        }
    }

    #[test]
    fn exact_parity_holds_bitwise() {
        let mut rng = crate::rng::Rng::new(11, 0);
        for act in [Activation::Tanh, Activation::Gelu, Activation::Softplus] {
            for k in 0..3u8 {
                let Some(sign) = exact_parity(&act, k) else { continue };
                for i in 0..20_000 {
                    let x = match i % 4 {
                        0 => 40.0 * rng.uniform(),
                        1 => 1e-300 * rng.uniform(),
                        2 => 0.55 + 0.01 * rng.uniform(),
                        _ => 3.0 * rng.uniform(),
                    };
                    let (a, b) = (derivative_k(&act, -x, k), sign * derivative_k(&act, x, k));
                    assert_eq!(a.to_bits(), b.to_bits(), "{act:?} k={k} x={x:e}");
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
