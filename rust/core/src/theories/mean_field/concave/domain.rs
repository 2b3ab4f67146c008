//! The domain of the concave objective for relu-like phi (relu; gelu and softplus grow like it).
//!
//! relu is positively homogeneous, so along a ray `h = t h_0` the tilted exponent is
//! `-t^2 (h_0^T K^{0+} h_0 - gamma^2 (a.relu(h_0))^2) / 2`: the tilt `N(h; 0, K^0)
//! exp(gamma^2 (a.relu(h))^2 / 2)` is normalizable iff
//! `rho(a) = gamma^2 sup_h (a.relu(h))^2 / h^T K^{0+} h < 1` (h on the support of `K^0`; at
//! `rho = 1` the boundary). Since `(a.relu(h))^2 = max(b.relu(h))^2` over `b = +-a` where it is
//! positive, `rho = gamma^2 max_{b = +-a} sup_h (b.relu(h))_+^2 / h^T K^{0+} h`. With
//! `h = K^0 v`: `h^T K^{0+} h = v^T K^0 v`. For a fixed sign pattern `S = {h > 0}`,
//! `b.relu(h) = b_S.h <= sqrt(b_S^T K^0 b_S) sqrt(v^T K^0 v)`, with equality at `v = b_S`; so
//! the supremum is a maximum over patterns `S` consistent with their own `h = K^0 b_S` — the
//! stationarity condition of the ratio (`v ∝ b ⊙ 1[K^0 v > 0]`). [`ratio`] iterates that
//! fixed point from several starts (`b`, `b_+`, the row of `K^0` of the largest `|b_i|`) and
//! keeps the best ratio it *evaluates*: a lower bound on `rho` (exact whenever the iteration
//! finds the maximising pattern), so `ratio >= 1` proves non-normalizability.
use faer::MatRef;

fn value(k0: MatRef<'_, f64>, b: &[f64], v: &[f64]) -> (f64, Vec<f64>) {
    let p = b.len();
    let h: Vec<f64> = (0..p).map(|i| (0..p).map(|j| k0[(i, j)] * v[j]).sum()).collect();
    let q: f64 = v.iter().zip(&h).map(|(v, h)| v * h).sum();
    let n: f64 = (0..p).filter(|&i| h[i] > 0.0).map(|i| b[i] * h[i]).sum();
    let r = if q > 0.0 && n > 0.0 { n * n / q } else { 0.0 };
    (r, h)
}

fn one_side(k0: MatRef<'_, f64>, b: &[f64]) -> f64 {
    let p = b.len();
    let imax = (0..p).max_by(|&i, &j| b[i].abs().total_cmp(&b[j].abs())).unwrap_or(0);
    let starts: Vec<Vec<f64>> = vec![
        b.to_vec(),
        b.iter().map(|v| v.max(0.0)).collect(),
        (0..p).map(|j| if j == imax { b[j].signum() } else { 0.0 }).collect(),
    ];
    let mut best = 0.0f64;
    for mut v in starts {
        let mut last_pattern: Vec<bool> = Vec::new();
        for _ in 0..60 {
            let (r, h) = value(k0, b, &v);
            best = best.max(r);
            let pattern: Vec<bool> = h.iter().map(|x| *x > 0.0).collect();
            if pattern == last_pattern {
                break;
            }
            v = (0..p).map(|i| if pattern[i] { b[i] } else { 0.0 }).collect();
            last_pattern = pattern;
        }
    }
    best
}

/// Lower bound on `rho(a)` (module docs); `>= 1`: the tilt at `a` is not normalizable.
pub fn ratio(k0: MatRef<'_, f64>, a: &[f64], gamma: f64) -> f64 {
    let neg: Vec<f64> = a.iter().map(|v| -v).collect();
    gamma * gamma * one_side(k0, a).max(one_side(k0, &neg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn positive_kernel_and_positive_a_give_the_linear_bound() {
        // K^0 entrywise positive, a > 0: the maximising pattern is all of h, rho = gamma^2 a^T K a
        let k = Mat::from_fn(3, 3, |i, j| if i == j { 1.0 } else { 0.3 });
        let a = [0.5, 0.2, 0.1];
        let want: f64 = (0..3).map(|i| (0..3).map(|j| a[i] * k[(i, j)] * a[j]).sum::<f64>()).sum();
        assert!((ratio(k.as_ref(), &a, 2.0) - 4.0 * want).abs() < 1e-12);
    }

    #[test]
    fn identity_kernel_keeps_only_one_sign() {
        // K = I: sup (a.relu(h))^2 / |h|^2 = max(|a_+|^2, |a_-|^2)
        let k = Mat::<f64>::identity(4, 4);
        let a = [1.0, -2.0, 0.5, -0.1];
        assert!((ratio(k.as_ref(), &a, 1.0) - 4.01).abs() < 1e-12);
    }
}
