//! The relu closed form on slices: a branch-free `acos` so that the entrywise layer maps of the
//! lazy kernels vectorise (issue #20: relu NNGP at P = 10000 spent ~2.3 s of 3.4 s in scalar
//! musl `acos`, `sqrt` and divisions).
use std::f64::consts::PI;

pub(super) const PIO2_HI: f64 = 1.570_796_326_794_896_558_00e+00;
pub(super) const PIO2_LO: f64 = 6.123_233_995_736_766_035_87e-17;

/// fdlibm's `R(z) = z P(z) / Q(z)`, the rational approximation of `asin(s) / s - 1` for
/// `z = s^2 <= 1/4`.
#[inline(always)]
pub(super) fn asin_r(z: f64) -> f64 {
    const PS: [f64; 6] = [
        1.666_666_666_666_666_574_15e-01,
        -3.255_658_186_224_009_154_05e-01,
        2.012_125_321_348_629_258_81e-01,
        -4.005_553_450_067_941_140_27e-02,
        7.915_349_942_898_145_321_76e-04,
        3.479_331_075_960_211_675_70e-05,
    ];
    const QS: [f64; 4] = [
        -2.403_394_911_734_414_218_78e+00,
        2.020_945_760_233_505_694_71e+00,
        -6.882_839_716_054_532_930_30e-01,
        7.703_815_055_590_193_527_91e-02,
    ];
    let p = z * (PS[0] + z * (PS[1] + z * (PS[2] + z * (PS[3] + z * (PS[4] + z * PS[5])))));
    let q = 1.0 + z * (QS[0] + z * (QS[1] + z * (QS[2] + z * QS[3])));
    p / q
}

/// `acos(x)` for `x` in [-1, 1] with selects instead of branches, so that loops over slices
/// vectorise (musl's acos branches on |x|). fdlibm's rational approximation
/// `R(z) = z P(z) / Q(z)` of `asin(s) / s - 1` (`z = s^2 <= 1/4`): for `|x| <= 1/2`,
/// `acos x = pi/2 - (x + x R(x^2))`; otherwise with `z = (1 - |x|) / 2`, `s = sqrt(z)`,
/// `acos x = 2 (s + s R(z))` (x > 0) or `pi - 2 (s + s R(z))` (x < 0). No FMA contraction, so the
/// result is the same on every instruction set; within 2 ulp of musl's acos (test
/// `acos_select_is_within_two_ulp_of_musl`; musl keeps < 1 ulp with a split of `s`).
#[inline(always)]
pub(crate) fn acos_select(x: f64) -> f64 {
    let ax = x.abs();
    let small = ax <= 0.5;
    let z = if small { x * x } else { (1.0 - ax) * 0.5 };
    let r = asin_r(z);
    let s = z.sqrt();
    let near_zero = PIO2_HI - (x - (PIO2_LO - x * r));
    let positive = 2.0 * (s + s * r);
    let negative = 2.0 * PIO2_HI - 2.0 * (s + (s * r - PIO2_LO));
    if small {
        near_zero
    } else if x > 0.0 {
        positive
    } else {
        negative
    }
}

/// The relu (arc-cosine, Cho & Saul 2009) closed form `(E[phi phi], E[phi' phi'])` with the
/// correlation clamped to [-1, 1] and 0 where `a b <= 0`; branch-free (see [`acos_select`]).
#[inline(always)]
pub(super) fn relu_closed(a: f64, b: f64, c: f64) -> (f64, f64) {
    let ab = a * b;
    let pos = ab > 0.0;
    let sab = if pos { ab.sqrt() } else { 0.0 };
    let rho = if pos { (c / sab).max(-1.0).min(1.0) } else { 0.0 };
    let theta = acos_select(rho);
    let sin = (1.0 - rho * rho).max(0.0).sqrt();
    let e = sab / (2.0 * PI) * (sin + (PI - theta) * rho);
    (e, (PI - theta) / (2.0 * PI))
}

/// [`relu_closed`] over slices (`out_d` optional), compiled for AVX-512F or AVX2 where the CPU
/// has them and for the baseline otherwise; the same IEEE operations either way, so the same bits.
pub(super) fn relu_batch(a: &[f64], b: &[f64], c: &[f64], out_e: &mut [f64], out_d: Option<&mut [f64]>) {
    #[inline(always)]
    fn body(a: &[f64], b: &[f64], c: &[f64], out_e: &mut [f64], out_d: Option<&mut [f64]>) {
        match out_d {
            Some(od) => {
                for ((((e, d), &x), &y), &z) in out_e.iter_mut().zip(od.iter_mut()).zip(a).zip(b).zip(c) {
                    (*e, *d) = relu_closed(x, y, z);
                }
            }
            None => {
                for (((e, &x), &y), &z) in out_e.iter_mut().zip(a).zip(b).zip(c) {
                    *e = relu_closed(x, y, z).0;
                }
            }
        }
    }
    crate::kernels::simd::simd_dispatch!(body(a: &[f64], b: &[f64], c: &[f64], out_e: &mut [f64], out_d: Option<&mut [f64]>))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Asserts `f` within 2 ulp of musl's `want` on [-1, 1]: a grid, random points, `|x| -> 1`,
    /// tiny and subnormal `x`, the neighbourhood of the `|x| = 1/2` switch, and special values.
    pub(in crate::kernels::activation) fn within_two_ulp(name: &str, f: fn(f64) -> f64, want: fn(f64) -> f64, seed: u64) {
        let check = |x: f64| {
            let (got, w) = (f(x), want(x));
            let u = (got.to_bits() as i64 - w.to_bits() as i64).unsigned_abs();
            assert!(u <= 2, "{name}({x:e}): {got:e} vs musl {w:e} ({u} ulp)");
        };
        for k in 0..=200_000 {
            check(-1.0 + 2.0 * k as f64 / 200_000.0);
        }
        let mut rng = crate::rng::Rng::new(seed, 0);
        for _ in 0..200_000 {
            let u = rng.uniform();
            check(2.0 * u - 1.0);
            check(1.0 - u * 1e-12); // rho -> 1, where the relu kernel's theta -> 0
            check(-1.0 + u * 1e-12);
            check((u - 0.5) * 1e-9);
            check((u - 0.5) * 1e-300);
            check(0.5 + (u - 0.5) * 1e-6);
        }
        for x in [-1.0, -0.5, -0.0, 0.0, 0.5, 1.0, f64::EPSILON, 1.0 - f64::EPSILON / 2.0, 5e-324] {
            check(x);
        }
    }

    /// Covariances `(a, b, c)` for the slice-vs-scalar tests: some zero variances, correlations
    /// just beyond 1 (clamped), the rest uniform in (-1, 1).
    pub(in crate::kernels::activation) fn closed_form_inputs(seed: u64, n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut rng = crate::rng::Rng::new(seed, 0);
        let a: Vec<f64> = (0..n).map(|i| if i % 97 == 0 { 0.0 } else { 0.1 + 3.0 * rng.uniform() }).collect();
        let b: Vec<f64> = (0..n).map(|_| 0.1 + 3.0 * rng.uniform()).collect();
        let c: Vec<f64> = (0..n)
            .map(|i| {
                let r = if i % 13 == 0 { 1.0 + 1e-9 } else { 2.0 * rng.uniform() - 1.0 };
                r * (a[i] * b[i]).sqrt()
            })
            .collect();
        (a, b, c)
    }

    #[test]
    fn acos_select_is_within_two_ulp_of_musl() {
        within_two_ulp("acos", acos_select, libm::acos, 3);
    }

    #[test]
    fn relu_batch_equals_the_scalar_closed_form_bitwise() {
        // the dispatched (AVX-512/AVX2) loop and the scalar function are the same IEEE operations
        let n = 1037;
        let (a, b, c) = closed_form_inputs(5, n);
        let (mut e, mut d, mut e2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        relu_batch(&a, &b, &c, &mut e, Some(&mut d));
        relu_batch(&a, &b, &c, &mut e2, None);
        for i in 0..n {
            let (x, y) = relu_closed(a[i], b[i], c[i]);
            assert_eq!(e[i].to_bits(), x.to_bits(), "{i}");
            assert_eq!(e2[i].to_bits(), x.to_bits(), "{i}");
            assert_eq!(d[i].to_bits(), y.to_bits(), "{i}");
            assert!(x.is_finite() && y.is_finite());
        }
    }
}
