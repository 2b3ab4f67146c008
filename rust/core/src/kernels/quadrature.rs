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

/// The precomputed 1-D rules of a polar product rule of a given order.
#[derive(Debug, Clone)]
pub struct PolarRule {
    /// Radii `R_k = sqrt(2 s_k)` of the Gauss-Laguerre nodes and their weights.
    pub radii: Vec<f64>,
    pub radial_weights: Vec<f64>,
    /// Gauss-Legendre nodes on [-1, 1] and weights, mapped onto each angular piece.
    pub legendre_x: Vec<f64>,
    pub legendre_w: Vec<f64>,
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
        }
    }

    /// Number of (angle, radius) nodes used for one expectation (before the +- fold).
    pub fn nodes_per_expectation(&self) -> usize {
        2 * self.legendre_x.len() * self.radii.len()
    }

    /// Visits every node of the rule for the covariance `(a, b, c)`: calls `visit(w, u, v)`
    /// once per node; the expectation is `sum w [F(u, v) + F(-u, -v)]` (the +- fold of `t` and
    /// `t + pi`), and the weights sum to 1/2. Callers evaluate both signs themselves, which
    /// lets odd/even activations reuse one transcendental evaluation for both.
    #[inline]
    pub fn for_each_node(&self, a: f64, b: f64, c: f64, mut visit: impl FnMut(f64, f64, f64)) {
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
}
