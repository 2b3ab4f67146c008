//! Kernel alignment metrics.
//!
//! Kernel-target alignment (Cristianini et al. 2002): `A(K, Y) = <K, Y Y^T>_F /
//! (||K||_F ||Y Y^T||_F)`. Centered kernel alignment (Cortes et al. 2012; CKA of Kornblith et
//! al. 2019): the same cosine between the double-centered kernels `H K H`, `H = I - 11^T/P`.
//!
//! Both are invariant to positive scaling of each argument, so every argument is first
//! rescaled by a power of two close to its largest absolute entry (exact, no rounding): the
//! sums then neither overflow for huge kernels (1e200) nor underflow for tiny ones (1e-300),
//! and results for ordinary scales are unchanged bit for bit.
//! All reductions sum rows sequentially and then the row sums in order, so results do not
//! depend on the number of threads.
use crate::error::{invalid, shape, Result};
use faer::MatRef;
use rayon::prelude::*;

fn square(name: &'static str, k: MatRef<'_, f64>) -> Result<usize> {
    if k.nrows() != k.ncols() || k.nrows() == 0 {
        return Err(shape(
            name,
            format!(
                "must be a non-empty square matrix, got ({}, {})",
                k.nrows(),
                k.ncols()
            ),
        ));
    }
    Ok(k.nrows())
}

fn ordered_sum(parts: impl Iterator<Item = f64>) -> f64 {
    parts.fold(0.0, |s, v| s + v)
}

/// Exact power-of-two rescaling `x -> x * f1 * f2` that brings the largest absolute entry
/// into `[1, 2)`. Two factors because `2^k` for a subnormal maximum is not representable.
#[derive(Debug, Clone, Copy)]
struct Scale {
    f1: f64,
    f2: f64,
}

impl Scale {
    /// `m` must be finite and > 0.
    fn new(m: f64) -> Scale {
        debug_assert!(m.is_finite() && m > 0.0);
        // floor(log2(m)) exactly, subnormals included.
        let e = if m >= f64::MIN_POSITIVE {
            ((m.to_bits() >> 52) & 0x7ff) as i32 - 1023
        } else {
            (((m * 2f64.powi(64)).to_bits() >> 52) & 0x7ff) as i32 - 1023 - 64
        };
        let k = -e; // in [-1023, 1074]
        let (k1, k2) = (k / 2, k - k / 2);
        Scale {
            f1: pow2(k1),
            f2: pow2(k2),
        }
    }
    #[inline(always)]
    fn apply(self, x: f64) -> f64 {
        x * self.f1 * self.f2
    }
}

/// `2^k` for `k` in the normal exponent range.
fn pow2(k: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&k));
    f64::from_bits(((1023 + k) as u64) << 52)
}

/// Largest absolute entry of `a` (rows in parallel; max is order independent), or an
/// `InvalidArgument` naming `name` at the first non-finite entry (row-major order).
fn max_abs(name: &'static str, a: MatRef<'_, f64>) -> Result<f64> {
    let rows: Vec<(f64, bool)> = (0..a.nrows())
        .into_par_iter()
        .map(|i| {
            let (mut m, mut bad) = (0.0f64, false);
            for j in 0..a.ncols() {
                let v = a[(i, j)];
                bad |= !v.is_finite();
                m = m.max(v.abs());
            }
            (m, bad)
        })
        .collect();
    if let Some(i) = rows.iter().position(|r| r.1) {
        let j = (0..a.ncols())
            .position(|j| !a[(i, j)].is_finite())
            .unwrap_or(0);
        return Err(invalid(
            name,
            format!("contains a non-finite value (NaN or inf) at ({i}, {j})"),
        ));
    }
    Ok(rows.iter().fold(0.0f64, |m, r| m.max(r.0)))
}

/// Kernel-target alignment of `k` (P x P) with targets `y` (P x C).
pub fn kernel_alignment(k: MatRef<'_, f64>, y: MatRef<'_, f64>) -> Result<f64> {
    let p = square("K", k)?;
    if y.nrows() != p {
        return Err(shape(
            "y",
            format!("has {} rows, K is {p} x {p}", y.nrows()),
        ));
    }
    let c = y.ncols();
    if c == 0 {
        return Err(shape("y", "has no columns".to_string()));
    }
    let mk = max_abs("K", k)?;
    let my = max_abs("y", y)?;
    if mk == 0.0 {
        return Err(invalid("K", "is identically zero; alignment undefined"));
    }
    if my == 0.0 {
        return Err(invalid("y", "is identically zero; alignment undefined"));
    }
    let (sk, sy) = (Scale::new(mk), Scale::new(my));
    // Rescaled targets (P x C, small next to K), row-major.
    let ys: Vec<f64> = (0..p * c).map(|t| sy.apply(y[(t / c, t % c)])).collect();
    // <K, Y Y^T> = sum_ij K_ij (y_i . y_j); ||Y Y^T||_F = ||Y^T Y||_F.
    let rows: Vec<(f64, f64)> = (0..p)
        .into_par_iter()
        .map(|i| {
            let yi = &ys[i * c..(i + 1) * c];
            let (mut num, mut kk) = (0.0, 0.0);
            for j in 0..p {
                let kij = sk.apply(k[(i, j)]);
                let yj = &ys[j * c..(j + 1) * c];
                let mut yy = 0.0;
                for m in 0..c {
                    yy += yi[m] * yj[m];
                }
                num += kij * yy;
                kk += kij * kij;
            }
            (num, kk)
        })
        .collect();
    let num = ordered_sum(rows.iter().map(|r| r.0));
    let kk = ordered_sum(rows.iter().map(|r| r.1));
    let mut yy = 0.0;
    for a in 0..c {
        for b in 0..c {
            let s: f64 = (0..p).map(|i| ys[i * c + a] * ys[i * c + b]).sum();
            yy += s * s;
        }
    }
    // After rescaling kk >= 1 and yy >= 1 (the largest entry is in [1, 2)).
    let den = kk.sqrt() * yy.sqrt();
    if den == 0.0 || !den.is_finite() {
        return Err(invalid(
            if kk == 0.0 { "K" } else { "y" },
            "is identically zero; alignment undefined",
        ));
    }
    Ok(num / den)
}

/// Row means, column means and grand mean of the rescaled square matrix.
fn means(k: MatRef<'_, f64>, s: Scale) -> (Vec<f64>, Vec<f64>, f64) {
    let p = k.nrows();
    let pf = p as f64;
    let row: Vec<f64> = (0..p)
        .into_par_iter()
        .map(|i| (0..p).map(|j| s.apply(k[(i, j)])).sum::<f64>() / pf)
        .collect();
    let col: Vec<f64> = (0..p)
        .into_par_iter()
        .map(|j| (0..p).map(|i| s.apply(k[(i, j)])).sum::<f64>() / pf)
        .collect();
    let grand = row.iter().sum::<f64>() / pf;
    (row, col, grand)
}

/// Centered kernel alignment of two P x P kernels.
pub fn cka(k1: MatRef<'_, f64>, k2: MatRef<'_, f64>) -> Result<f64> {
    let p = square("K1", k1)?;
    if square("K2", k2)? != p {
        return Err(shape(
            "K2",
            format!("must have the same shape as K1 ({p} x {p})"),
        ));
    }
    let m1 = max_abs("K1", k1)?;
    let m2 = max_abs("K2", k2)?;
    if m1 == 0.0 || m2 == 0.0 {
        return Err(invalid(
            if m1 == 0.0 { "K1" } else { "K2" },
            "is constant after centering; CKA undefined",
        ));
    }
    let (s1, s2) = (Scale::new(m1), Scale::new(m2));
    let (r1, c1, g1) = means(k1, s1);
    let (r2, c2, g2) = means(k2, s2);
    let rows: Vec<(f64, f64, f64)> = (0..p)
        .into_par_iter()
        .map(|i| {
            let (mut x12, mut x11, mut x22) = (0.0, 0.0, 0.0);
            for j in 0..p {
                let a = s1.apply(k1[(i, j)]) - r1[i] - c1[j] + g1;
                let b = s2.apply(k2[(i, j)]) - r2[i] - c2[j] + g2;
                x12 += a * b;
                x11 += a * a;
                x22 += b * b;
            }
            (x12, x11, x22)
        })
        .collect();
    let x12 = ordered_sum(rows.iter().map(|r| r.0));
    let x11 = ordered_sum(rows.iter().map(|r| r.1));
    let x22 = ordered_sum(rows.iter().map(|r| r.2));
    if x11 == 0.0 || x22 == 0.0 {
        return Err(invalid(
            if x11 == 0.0 { "K1" } else { "K2" },
            "is constant after centering; CKA undefined",
        ));
    }
    Ok(x12 / (x11.sqrt() * x22.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Mat;

    #[test]
    fn scale_is_exact_power_of_two_in_range() {
        for &m in &[
            1.0,
            1.5,
            3.0,
            1e200,
            1e-200,
            1e-300,
            5e-324,
            1e-310,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let s = Scale::new(m);
            let v = s.apply(m);
            assert!((1.0..2.0).contains(&v), "{m}: {v}");
        }
        // exact: rescaling then undoing gives the input back
        let s = Scale::new(1e200);
        assert_eq!(s.apply(3.0e199) / s.f1 / s.f2, 3.0e199);
    }

    #[test]
    fn alignment_and_cka_scale_invariant_at_extremes() {
        let k = Mat::<f64>::from_fn(3, 3, |i, j| if i == j { 1.0 } else { 0.0 });
        let y = Mat::<f64>::from_fn(3, 1, |_, _| 1.0);
        let base = kernel_alignment(k.as_ref(), y.as_ref()).unwrap();
        assert!((base - 1.0 / 3f64.sqrt()).abs() < 1e-15);
        for &s in &[1e200, 1e-200, 1e-300, 1e300, 4e-320] {
            let ks = Mat::<f64>::from_fn(3, 3, |i, j| k[(i, j)] * s);
            let ysc = Mat::<f64>::from_fn(3, 1, |_, _| s);
            let v = kernel_alignment(ks.as_ref(), y.as_ref()).unwrap();
            assert!((v - base).abs() < 1e-15, "K*{s}: {v}");
            let v = kernel_alignment(k.as_ref(), ysc.as_ref()).unwrap();
            assert!((v - base).abs() < 1e-15, "y*{s}: {v}");
        }
        // power-of-two scales are exact: bit-identical results
        for &s in &[2f64.powi(700), 2f64.powi(-1000), 2f64.powi(-1070)] {
            let ks = Mat::<f64>::from_fn(3, 3, |i, j| k[(i, j)] * s);
            assert_eq!(
                kernel_alignment(ks.as_ref(), y.as_ref()).unwrap(),
                base,
                "K*{s}"
            );
        }
        let a = Mat::<f64>::from_fn(3, 3, |i, j| if i == j { [1.0, 2.0, 0.0][i] } else { 0.0 });
        let b = Mat::<f64>::from_fn(3, 3, |i, j| if i == j { [1.0, 0.0, 3.0][i] } else { 0.0 });
        let base = cka(a.as_ref(), b.as_ref()).unwrap();
        assert!((base - 0.4514469490716345).abs() < 1e-14);
        for &s in &[1e300, 1e-300, 1e200, 1e-200] {
            let as_ = Mat::<f64>::from_fn(3, 3, |i, j| a[(i, j)] * s);
            let v = cka(as_.as_ref(), b.as_ref()).unwrap();
            assert!((v - base).abs() < 1e-14, "{s}: {v}");
        }
    }

    #[test]
    fn zero_and_non_finite_inputs_are_named() {
        let z = Mat::<f64>::zeros(3, 3);
        let y = Mat::<f64>::from_fn(3, 1, |_, _| 1.0);
        let e = kernel_alignment(z.as_ref(), y.as_ref()).unwrap_err();
        assert!(e.to_string().starts_with("K:"), "{e}");
        let k = Mat::<f64>::identity(3, 3);
        let e = kernel_alignment(k.as_ref(), Mat::<f64>::zeros(3, 1).as_ref()).unwrap_err();
        assert!(e.to_string().starts_with("y:"), "{e}");
        let mut bad = k.clone();
        bad[(1, 2)] = f64::NAN;
        let e = kernel_alignment(bad.as_ref(), y.as_ref()).unwrap_err();
        assert!(
            e.to_string().starts_with("K:") && e.to_string().contains("(1, 2)"),
            "{e}"
        );
        let ybad = Mat::<f64>::from_fn(3, 1, |i, _| if i == 2 { f64::INFINITY } else { 1.0 });
        let e = kernel_alignment(k.as_ref(), ybad.as_ref()).unwrap_err();
        assert!(e.to_string().starts_with("y:"), "{e}");
        let e = cka(k.as_ref(), bad.as_ref()).unwrap_err();
        assert!(e.to_string().starts_with("K2:"), "{e}");
        let e = cka(z.as_ref(), k.as_ref()).unwrap_err();
        assert!(e.to_string().starts_with("K1:"), "{e}");
    }
}
