//! Gauss rules and the polar, kink-aware product rule for bivariate Gaussian expectations.
//!
//! `E[f(u) g(v)]` with `(u, v) ~ N(0, [[a, c], [c, b]])`. With `rho = c / sqrt(ab)`,
//! `theta0 = arccos(rho)` and polar coordinates `(r, t)` of a standard 2-D normal,
//! `u = sqrt(a) r cos t`, `v = sqrt(b) r cos(t - theta0)`. Folding `t` and `t + pi`:
//!
//! `E = 1/(2 pi) int_0^pi dt int_0^inf ds e^{-s} [F(R, t) + F(-R, t)]`, `R = sqrt(2 s)`,
//!
//! where `F(R, t) = f(sqrt(a) R cos t) g(sqrt(b) R cos(t - theta0))`. The bracket is even in
//! `R`, hence smooth in `s` (Gauss-Laguerre), and pi-periodic in `t`. Its only kinks for
//! activations that are non-smooth at 0 (relu, step) lie at `t = pi/2` (u = 0) and
//! `t = theta0 + pi/2` (v = 0), so integrating over the period `[pi/2, 3pi/2]` split at
//! `theta0 + pi/2`, Gauss-Legendre on each piece, makes the rule exact for positively
//! homogeneous `f, g` and spectrally accurate in `t` for smooth ones. Starting the period at a
//! kink also makes the rule symmetric under swapping `(a, f)` and `(b, g)`.
//! Known limit: for large variances the Gauss-Laguerre radial rule resolves fast-decaying
//! factors (e.g. erf' = exp(-u^2)) slowly; the error vs order is measured in the tests. Plain
//! Gauss-Hermite on `(z1, z2)` converges only algebraically for relu (error ~1e-3 at 80^2
//! nodes); this rule reaches machine precision.
//!
//! # The graded polar rule ([`PolarRule::graded`])
//! At large variance a smooth activation's transition (`|u| <~ 1`) is a thin strip around
//! each kink line: at radius `R` it is `~1 / (sqrt(a) R)` wide in `t`, and along a ray it sits
//! at `R ~ 1 / (sqrt(a) |cos t|)`; the order-128 rule misses it (tanh: 3e-7 relative at
//! variance 10, 3e-4 at 50). The graded rule integrates `R e^{-R^2/2} dR dt` instead, with
//! [`GRADED_GL`]-point Gauss-Legendre panels:
//! * in `R`: `[0, 2^-K], [2^-K, 2^{1-K}], .., [1/2, 1]` (`2^-K <= 1 / sqrt(max(a, b))`), then
//!   unit panels up to [`GRADED_RMAX`];
//! * in `t`, per radial panel `[R0, R1]`: on each angular piece, panels growing geometrically
//!   (ratio 2) from both ends (the kinks) from the width `min(1/4, 1 / (2 sqrt(max(a, b)) R1))`.
//!
//! Functions of `sqrt(a) R cos t` near a kink are then resolved on every panel (each sits at a
//! distance of about its width from the activation's complex singularities, which lie on the
//! kink lines). Measured (benches/README.md, "Hermite"): tanh, gelu, softplus and their first
//! two derivatives agree with nested adaptive quadrature to <= 1e-15 relative at variances 2 to
//! 50 and with a refined graded rule (14 points, R to 13) to <= 5e-14 of the scale for variances
//! 0.1 to 1e8 and |rho| up to 1 - 1e-9; 15k-40k nodes per entry (the order-128 rule: 16k).
use std::f64::consts::PI;

/// Gauss-Legendre nodes and weights on [-1, 1] (Newton on the three-term recurrence).
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    for i in 0..n {
        // Tricomi's initial guess, then Newton; |dx| < 1e-16 within ~5 steps.
        let mut z = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (p, d) = legendre_and_derivative(n, z);
            dp = d;
            let dz = p / d;
            z -= dz;
            if dz.abs() < 1e-16 {
                break;
            }
        }
        let (_, d) = legendre_and_derivative(n, z);
        dp = if d != 0.0 { d } else { dp };
        // Ascending order.
        x[n - 1 - i] = z;
        w[n - 1 - i] = 2.0 / ((1.0 - z * z) * dp * dp);
    }
    (x, w)
}

fn legendre_and_derivative(n: usize, z: f64) -> (f64, f64) {
    let (mut p0, mut p1) = (1.0, z);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let kf = k as f64;
        let p2 = ((2.0 * kf - 1.0) * z * p1 - (kf - 1.0) * p0) / kf;
        p0 = p1;
        p1 = p2;
    }
    let d = n as f64 * (z * p1 - p0) / (z * z - 1.0);
    (p1, d)
}

/// Laguerre polynomials L_n(x) and L_{n-1}(x) by the recurrence.
fn laguerre_pair(n: usize, x: f64) -> (f64, f64) {
    let (mut l0, mut l1) = (1.0, 1.0 - x);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 1..n {
        let kf = k as f64;
        let l2 = ((2.0 * kf + 1.0 - x) * l1 - kf * l0) / (kf + 1.0);
        l0 = l1;
        l1 = l2;
    }
    (l1, l0)
}

/// Gauss-Laguerre nodes and weights for `int_0^inf f(s) e^{-s} ds` (weights sum to 1).
/// Initial guesses from the Golub-Welsch eigenvalues, polished by Newton.
pub fn gauss_laguerre(n: usize) -> (Vec<f64>, Vec<f64>) {
    use faer::Mat;
    // Jacobi matrix: diag 2k+1, off-diagonal k.
    let j = Mat::<f64>::from_fn(n, n, |r, c| {
        if r == c {
            2.0 * r as f64 + 1.0
        } else if r.abs_diff(c) == 1 {
            r.max(c) as f64
        } else {
            0.0
        }
    });
    let mut x = j
        .self_adjoint_eigenvalues(faer::Side::Lower)
        .expect("eigenvalues of a small tridiagonal matrix");
    let mut w = vec![0.0; n];
    let nf = n as f64;
    for (xi, wi) in x.iter_mut().zip(w.iter_mut()) {
        for _ in 0..20 {
            let (ln, lm1) = laguerre_pair(n, *xi);
            // x L_n'(x) = n (L_n - L_{n-1})
            let d = nf * (ln - lm1) / *xi;
            let dz = ln / d;
            *xi -= dz;
            if dz.abs() <= 1e-15 * xi.abs() {
                break;
            }
        }
        // w_i = x_i / ((n+1)^2 L_{n+1}(x_i)^2)
        let (ln1, _) = laguerre_pair(n + 1, *xi);
        *wi = *xi / ((nf + 1.0) * (nf + 1.0) * ln1 * ln1);
    }
    (x, w)
}

/// Level K of a mesh graded dyadically towards 0 for the scale `sq = sqrt(q)`: the smallest
/// K >= 0 with `2^-K <= 1 / sq` (0 for `sq <= 1`), capped at 400 (keeps the panel loops finite
/// for any finite variance). Shared by the graded polar rule and the 1-D mesh rule
/// (`kernels::hermite::mesh`).
pub fn dyadic_level(sq: f64) -> i32 {
    if !(sq > 1.0) {
        return 0;
    }
    (sq.log2().ceil() as i32).clamp(0, 400)
}

/// Gauss-Legendre points per panel of the graded polar rule.
pub const GRADED_GL: usize = 10;
/// Largest radius of the graded polar rule (`e^{-R^2/2}` = 5e-32 there).
pub const GRADED_RMAX: f64 = 12.0;

/// The precomputed 1-D rules of a polar product rule of a given order, or the graded rule
/// (see the module doc).
#[derive(Debug, Clone)]
pub struct PolarRule {
    /// Radii `R_k = sqrt(2 s_k)` of the Gauss-Laguerre nodes and their weights (empty for the
    /// graded rule).
    pub radii: Vec<f64>,
    pub radial_weights: Vec<f64>,
    /// Gauss-Legendre nodes on [-1, 1] and weights, mapped onto each angular piece (and each
    /// panel of the graded rule).
    pub legendre_x: Vec<f64>,
    pub legendre_w: Vec<f64>,
    /// Whether this is the graded rule.
    pub graded: bool,
}

impl PolarRule {
    /// `order` q: q radial nodes and max(q/2, 4) angular nodes per piece.
    pub fn new(order: usize) -> Self {
        let (s, ws) = gauss_laguerre(order);
        let (lx, lw) = gauss_legendre((order / 2).max(4));
        PolarRule {
            radii: s.iter().map(|s| (2.0 * s).sqrt()).collect(),
            radial_weights: ws,
            legendre_x: lx,
            legendre_w: lw,
            graded: false,
        }
    }

    /// The graded rule for smooth activations whose transitions lie at 0 (the built-in ones).
    pub fn graded() -> Self {
        let (lx, lw) = gauss_legendre(GRADED_GL);
        PolarRule { radii: Vec::new(), radial_weights: Vec::new(), legendre_x: lx, legendre_w: lw, graded: true }
    }

    /// Number of (angle, radius) nodes used for one expectation (before the +- fold); for the
    /// graded rule a typical count (it depends on the variances).
    pub fn nodes_per_expectation(&self) -> usize {
        if self.graded {
            return 30_000;
        }
        2 * self.legendre_x.len() * self.radii.len()
    }

    /// Visits every node of the rule for the covariance `(a, b, c)`: calls `visit(w, u, v)`
    /// once per node; the expectation is `sum w [F(u, v) + F(-u, -v)]` (the +- fold of `t` and
    /// `t + pi`), and the weights sum to 1/2. Callers evaluate both signs themselves, which
    /// lets odd/even activations reuse one transcendental evaluation for both.
    #[inline]
    pub fn for_each_node(&self, a: f64, b: f64, c: f64, mut visit: impl FnMut(f64, f64, f64)) {
        if self.graded {
            return self.for_each_graded_node(a, b, c, visit);
        }
        let rho = correlation(a, b, c);
        let theta0 = libm::acos(rho);
        let (sa, sb) = (a.sqrt(), b.sqrt());
        let bps = [0.5 * PI, theta0 + 0.5 * PI, 1.5 * PI];
        for piece in 0..2 {
            let (lo, hi) = (bps[piece], bps[piece + 1]);
            if hi - lo <= 1e-15 {
                continue;
            }
            let half = 0.5 * (hi - lo);
            for (&xg, &wg) in self.legendre_x.iter().zip(&self.legendre_w) {
                let t = lo + half * (xg + 1.0);
                let wt = wg * half / (2.0 * PI);
                let (cu, cv) = (sa * t.cos(), sb * (t - theta0).cos());
                for (&r, &wr) in self.radii.iter().zip(&self.radial_weights) {
                    visit(wt * wr, cu * r, cv * r);
                }
            }
        }
    }
}

impl PolarRule {
    /// [`for_each_node`](Self::for_each_node) of the graded rule.
    fn for_each_graded_node(&self, a: f64, b: f64, c: f64, mut visit: impl FnMut(f64, f64, f64)) {
        let rho = correlation(a, b, c);
        let theta0 = libm::acos(rho);
        let (sa, sb) = (a.max(0.0).sqrt(), b.max(0.0).sqrt());
        let smax = sa.max(sb);
        let bps = [0.5 * PI, theta0 + 0.5 * PI, 1.5 * PI];
        let (x, w) = (&self.legendre_x, &self.legendre_w);
        // radial panels: [0, 2^-K], dyadic up to 1, then unit panels
        let k = dyadic_level(smax);
        let mut r0 = 0.0;
        let mut r1 = 2f64.powi(-k);
        while r0 < GRADED_RMAX {
            let dmin = (0.5 / (smax * r1)).min(0.25);
            let (rm, rh) = (0.5 * (r1 + r0), 0.5 * (r1 - r0));
            for piece in 0..2 {
                let (lo, hi) = (bps[piece], bps[piece + 1]);
                let len = hi - lo;
                if len <= 1e-15 {
                    continue;
                }
                // panels from both ends towards the middle, widths dmin, 2 dmin, 4 dmin, ..
                let half = 0.5 * len;
                let mut e0 = 0.0;
                let mut width = dmin.min(half);
                while e0 < half {
                    let e1 = if e0 + width >= half { half } else { e0 + width };
                    for (t0, t1) in [(lo + e0, lo + e1), (hi - e1, hi - e0)] {
                        let (tm, th) = (0.5 * (t1 + t0), 0.5 * (t1 - t0));
                        for (&xt, &wt) in x.iter().zip(w) {
                            let t = tm + th * xt;
                            let wt = wt * th / (2.0 * PI);
                            let (cu, cv) = (sa * t.cos(), sb * (t - theta0).cos());
                            for (&xr, &wr) in x.iter().zip(w) {
                                let r = rm + rh * xr;
                                visit(wt * wr * rh * r * (-0.5 * r * r).exp(), cu * r, cv * r);
                            }
                        }
                    }
                    e0 = e1;
                    width *= 2.0;
                }
            }
            r0 = r1;
            r1 = if r1 < 1.0 { 2.0 * r1 } else { r1 + 1.0 };
        }
    }
}

/// `c / sqrt(ab)` clipped to [-1, 1]; 0 when a variance vanishes.
#[inline]
pub fn correlation(a: f64, b: f64, c: f64) -> f64 {
    let ab = a * b;
    if ab <= 0.0 {
        0.0
    } else {
        (c / ab.sqrt()).clamp(-1.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legendre_integrates_polynomials() {
        let (x, w) = gauss_legendre(10);
        let s: f64 = w.iter().sum();
        assert!((s - 2.0).abs() < 1e-14);
        let m: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(18)).sum();
        assert!((m - 2.0 / 19.0).abs() < 1e-14);
    }

    #[test]
    fn laguerre_moments() {
        let (x, w) = gauss_laguerre(20);
        // int s^k e^-s = k!
        let mut fact = 1.0;
        for k in 0..30 {
            if k > 0 {
                fact *= k as f64;
            }
            let m: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(k)).sum();
            assert!((m - fact).abs() < 1e-11 * fact, "k={k}: {m} vs {fact}");
        }
    }

    #[test]
    fn polar_rule_second_moments() {
        let rule = PolarRule::new(24);
        for &(a, b, c) in &[(1.0, 1.0, 0.3), (2.0, 0.5, -0.9), (1.5, 1.5, 1.5)] {
            let (mut m0, mut uv, mut uu, mut vv) = (0.0, 0.0, 0.0, 0.0);
            rule.for_each_node(a, b, c, |w, u, v| {
                // F(u, v) + F(-u, -v) for F = 1, uv, u^2, v^2
                m0 += 2.0 * w;
                uv += 2.0 * w * u * v;
                uu += 2.0 * w * u * u;
                vv += 2.0 * w * v * v;
            });
            assert!((m0 - 1.0).abs() < 1e-13);
            assert!((uv - c).abs() < 1e-13, "uv {uv} vs {c}");
            assert!((uu - a).abs() < 1e-13);
            assert!((vv - b).abs() < 1e-13);
        }
    }

    /// `E[f(u) g(v)]` by the graded rule.
    fn graded(f: impl Fn(f64) -> f64, g: impl Fn(f64) -> f64, a: f64, b: f64, c: f64) -> f64 {
        let mut e = 0.0;
        PolarRule::graded().for_each_node(a, b, c, |w, u, v| e += w * (f(u) * g(v) + f(-u) * g(-v)));
        e
    }

    #[test]
    fn graded_rule_against_closed_forms_at_large_variances() {
        // erf: E[erf erf] = (2/pi) asin(2c / sqrt((1+2a)(1+2b))), and erf' = (2/sqrt(pi)) e^{-u^2}
        // (the fast-decaying factor the Gauss-Laguerre rule resolves slowly) with
        // E[erf' erf'] = (4/pi) / sqrt((1+2a)(1+2b) - 4c^2); second moments exactly
        let erf = |x: f64| libm::erf(x);
        let derf = |x: f64| 2.0 / PI.sqrt() * (-x * x).exp();
        let mut worst = [0.0f64; 3];
        for &(a, b) in &[(0.1, 0.2), (2.0, 2.0), (5.0, 300.0), (1e4, 1e4), (1e8, 3.0)] {
            for &rho in &[0.3, -0.85, 0.95, -0.999, 0.99999, 1.0 - 1e-9, 1.0] {
                let c = rho * f64::sqrt(a * b);
                let q = (1.0 + 2.0 * a) * (1.0 + 2.0 * b);
                let e = graded(erf, erf, a, b, c);
                let want = 2.0 / PI * (2.0 * c / q.sqrt()).asin();
                worst[0] = worst[0].max((e - want).abs());
                assert!((e - want).abs() <= 1e-12, "erf a={a} b={b} rho={rho}: {e} vs {want}");
                let d = graded(derf, derf, a, b, c);
                let want = 4.0 / PI / (q - 4.0 * c * c).sqrt();
                let scale = 4.0 / PI / ((1.0 + 4.0 * a) * (1.0 + 4.0 * b)).sqrt().sqrt();
                worst[1] = worst[1].max((d - want).abs() / scale);
                assert!((d - want).abs() <= 1e-12 * scale, "erf' a={a} b={b} rho={rho}: {d} vs {want}");
                let uv = graded(|x| x, |x| x, a, b, c);
                worst[2] = worst[2].max((uv - c).abs() / (a * b).sqrt());
                assert!((uv - c).abs() <= 1e-12 * (a * b).sqrt(), "uv a={a} b={b} rho={rho}: {uv} vs {c}");
            }
        }
        eprintln!("graded rule, worst errors (erf, erf' / scale, uv / scale): {worst:?}");
        assert!(worst[0] <= 1e-13 && worst[1] <= 1e-12 && worst[2] <= 1e-13, "{worst:?}");
    }

    #[test]
    fn graded_rule_against_nested_adaptive_quadrature() {
        // E[tanh(u) tanh(v)], a = b = q: scipy quad over x of tanh(sqrt(q) x) E[tanh(sqrt(q) y) | x]
        // split at the zeros of both arguments (epsrel 1e-12 / 1e-13); the order-128 polar rule
        // is off by 3.6e-13 (q = 2), 1.4e-9 (5), 3.4e-7 (10), 2.3e-4 (50) at rho = 0.99
        let cases = [
            (2.0, 0.5, 0.2360073345513688),
            (2.0, 0.99, 0.5130344367206903),
            (5.0, 0.9, 0.5684589553059509),
            (5.0, 0.99, 0.6571232525253772),
            (10.0, 0.5, 0.3063232555503035),
            (10.0, 0.99, 0.7413001275533326),
            (50.0, 0.9, 0.6924820613006085),
            (50.0, 0.99, 0.8558496009374345),
        ];
        for (q, rho, want) in cases {
            let e = graded(f64::tanh, f64::tanh, q, q, rho * q);
            assert!((e - want).abs() <= 1e-13 * want, "q={q} rho={rho}: {e} vs {want}");
        }
    }
}
