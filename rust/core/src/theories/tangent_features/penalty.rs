//! The scalar penalties induced by transforming features (LeJeune & Alemohammad 2024; digest
//! `lejeune_alemohammad_adaptive_tangent_features.md` §2).
//!
//! One-sided (a group's transform `M = I + (z - 1) u u^T`, cost `lam (z - 1)^2`, coefficients
//! `beta = theta / z`): `w1(v) = min_{z>0} lam (z - 1)^2 + v^2 / z^2`, stationary at
//! `lam z^3 (z - 1) = v^2` (one root in `[1, 1 + v / sqrt(lam)]`). Two-sided (a layer's update
//! `M1 B M2` with both transforms scaling one singular direction): `w2(s) = min_{z>0}
//! 2 lam (z - 1)^2 + s^2 / z^4`, stationary at `lam z^5 (z - 1) = s^2` (root in
//! `[1, 1 + sqrt(s / sqrt(lam))]`, see [`two_sided`]). Both are ridge-like (`v^2`) for
//! `v << sqrt(lam)`; for large `v`, `w1 ~ 2 sqrt(lam) v` (group lasso / nuclear norm) and
//! `w2 ~ 3 lam^(2/3) s^(2/3)` (Schatten-2/3). `w(sqrt(t))` is concave in `t` (a minimum of
//! functions affine in `t`), with slope `1 / z*^2`.

/// Root of `lam z^k (z - 1) = v^2` on `[1, hi]` (increasing there): bisection-safeguarded Newton.
fn root(lam: f64, k: i32, v2: f64, hi: f64) -> f64 {
    if v2 == 0.0 {
        return 1.0;
    }
    let g = |z: f64| lam * z.powi(k) * (z - 1.0) - v2;
    let (mut lo, mut hi) = (1.0_f64, hi);
    let mut z = 0.5 * (lo + hi);
    for _ in 0..200 {
        let gz = g(z);
        if gz > 0.0 {
            hi = z;
        } else {
            lo = z;
        }
        let dg = lam * z.powi(k - 1) * ((k + 1) as f64 * z - k as f64);
        let mut next = z - gz / dg;
        if !(next > lo && next < hi) {
            next = 0.5 * (lo + hi);
        }
        if (next - z).abs() <= 1e-15 * z || hi - lo <= 1e-15 * hi {
            return next;
        }
        z = next;
    }
    z
}

/// Beyond this `q = v / sqrt(lam)` the root's `z^(k+1)` would leave f64's range; there the
/// leading asymptotic root `z = q^(2/(k+1))` is used, exact to `O(1/z)` in `z` and, `w` being
/// stationary in `z`, to `O(1/z^2)` (below 1e-60) in `w`.
const Q_ASYMPTOTIC: f64 = 1e100;

/// One-sided induced penalty: `(w1(v), z*)` (module docs). `lam > 0`, `v >= 0`. Computed in
/// `q = v / sqrt(lam)` (`z^3 (z - 1) = q^2`, `w1 = lam ((z - 1)^2 + q^2 / z^2)`), so that neither
/// `v^2` nor `lam` overflows; `w1` is infinite only when it exceeds f64's range.
pub fn one_sided(v: f64, lam: f64) -> (f64, f64) {
    let q = v.abs() / lam.sqrt();
    let z = if q > Q_ASYMPTOTIC { q.sqrt() } else { root(1.0, 3, q * q, 1.0 + q + 1e-300) };
    (lam * ((z - 1.0).powi(2) + (q / z).powi(2)), z)
}

/// Two-sided induced penalty of a singular value `s`: `(w2(s), z*)` (module docs); the optimum
/// is symmetric in the two transforms. In `q = s / sqrt(lam)`: `z^5 (z - 1) = q^2`,
/// `w2 = lam (2 (z - 1)^2 + q^2 / z^4)`. Upper bracket: at `z = 1 + t`, `t = sqrt(q)`,
/// `z^5 (z - 1) >= t^2 z^4 >= t^4 = q^2`.
pub fn two_sided(s: f64, lam: f64) -> (f64, f64) {
    let q = s.abs() / lam.sqrt();
    let z = if q > Q_ASYMPTOTIC { q.cbrt() } else { root(1.0, 5, q * q, 1.0 + q.sqrt() + 1e-300) };
    (lam * (2.0 * (z - 1.0).powi(2) + (q / (z * z)).powi(2)), z)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid_min(f: impl Fn(f64) -> f64) -> f64 {
        // golden section on log z over [1, 1e4] (the objective is unimodal in z >= 1)
        let (mut a, mut b) = (0.0_f64, 1e4_f64.ln());
        let r = 0.5 * (5f64.sqrt() - 1.0);
        for _ in 0..200 {
            let (c, d) = (b - r * (b - a), a + r * (b - a));
            if f(c.exp()) < f(d.exp()) { b = d } else { a = c }
        }
        f((0.5 * (a + b)).exp())
    }

    #[test]
    fn penalties_match_direct_minimisation_and_digest_values() {
        for lam in [0.3, 1.0, 7.0] {
            for v in [0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 100.0] {
                let (w, _) = one_sided(v, lam);
                let g = grid_min(|z| lam * (z - 1.0) * (z - 1.0) + v * v / (z * z));
                assert!((w - g).abs() <= 1e-10 * (1.0 + g), "{v} {lam}: {w} {g}");
                let (w2, _) = two_sided(v, lam);
                let g2 = grid_min(|z| 2.0 * lam * (z - 1.0) * (z - 1.0) + v * v / z.powi(4));
                assert!((w2 - g2).abs() <= 1e-10 * (1.0 + g2), "{v} {lam}: {w2} {g2}");
            }
        }
        // digest section 2.4, lam = 1
        for (v, w) in [(0.1, 0.00990), (0.5, 0.21139), (1.0, 0.66950), (2.0, 1.86862), (5.0, 6.24653)] {
            assert!((one_sided(v, 1.0).0 - w).abs() < 6e-6);
        }
    }
}
