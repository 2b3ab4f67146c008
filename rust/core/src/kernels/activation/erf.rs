//! The erf closed form (Williams 1997) on slices: a branch-free `asin` so that the entrywise
//! layer maps vectorise (issue #20: kernel renormalization with erf spent ~25% of a fit in
//! scalar musl `asin`, square roots and divisions).
use super::relu::{asin_r, PIO2_HI, PIO2_LO};
use crate::kernels::simd::simd_dispatch;
use std::f64::consts::PI;

/// `asin(x)` for `x` in [-1, 1] with selects instead of branches (fdlibm's rational
/// approximation `R` shared with [`super::relu::acos_select`]): `asin x = x + x R(x^2)` for
/// `|x| < 1/2`, otherwise `sign(x) (pi/2 - 2 (s + s R(z)))` with `z = (1 - |x|) / 2`,
/// `s = sqrt(z)`. No FMA contraction (the same bits on every instruction set); within 2 ulp of
/// musl's asin (test `asin_select_is_within_two_ulp_of_musl`).
#[inline(always)]
pub(crate) fn asin_select(x: f64) -> f64 {
    let ax = x.abs();
    let small = ax < 0.5;
    let z = if small { x * x } else { (1.0 - ax) * 0.5 };
    let r = asin_r(z);
    let s = z.sqrt();
    let near_zero = x + x * r;
    let big = PIO2_HI - (2.0 * (s + s * r) - PIO2_LO);
    if small {
        near_zero
    } else {
        big.copysign(x)
    }
}

/// `(E[phi phi], E[phi' phi'])` of erf: `2/pi asin(2c / sqrt((1+2a)(1+2b)))` and
/// `4/pi / sqrt((1+2a)(1+2b) - 4c^2)` (argument clamped to [-1, 1], determinant to >= 0).
#[inline(always)]
pub(super) fn erf_closed(a: f64, b: f64, c: f64) -> (f64, f64) {
    let (pa, pb) = (1.0 + 2.0 * a, 1.0 + 2.0 * b);
    let q = (pa * pb).sqrt();
    let arg = (2.0 * c / q).clamp(-1.0, 1.0); // NaN passes (caught as an overflow)
    let det = (pa * pb - 4.0 * c * c).max(0.0);
    (2.0 / PI * asin_select(arg), 4.0 / PI / det.sqrt())
}

/// `(E, dE/dc, dE/da, dE/db)` of erf (`activation::closed_form_grad`).
#[inline(always)]
pub(super) fn erf_closed_grad(a: f64, b: f64, c: f64) -> (f64, f64, f64, f64) {
    let (pa, pb) = (1.0 + 2.0 * a, 1.0 + 2.0 * b);
    let det = (pa * pb - 4.0 * c * c).max(f64::MIN_POSITIVE);
    let sq = det.sqrt();
    let arg = (2.0 * c / (pa * pb).sqrt()).clamp(-1.0, 1.0);
    let k = -4.0 * c / (PI * sq);
    (2.0 / PI * asin_select(arg), 4.0 / PI / sq, k / pa, k / pb)
}

/// [`erf_closed`] over slices (`out_d` optional).
pub(super) fn erf_batch(a: &[f64], b: &[f64], c: &[f64], out_e: &mut [f64], out_d: Option<&mut [f64]>) {
    #[inline(always)]
    fn body(a: &[f64], b: &[f64], c: &[f64], out_e: &mut [f64], out_d: Option<&mut [f64]>) {
        match out_d {
            Some(od) => {
                for ((((e, d), &x), &y), &z) in out_e.iter_mut().zip(od.iter_mut()).zip(a).zip(b).zip(c) {
                    (*e, *d) = erf_closed(x, y, z);
                }
            }
            None => {
                for (((e, &x), &y), &z) in out_e.iter_mut().zip(a).zip(b).zip(c) {
                    *e = erf_closed(x, y, z).0;
                }
            }
        }
    }
    simd_dispatch!(body(a: &[f64], b: &[f64], c: &[f64], out_e: &mut [f64], out_d: Option<&mut [f64]>))
}

/// [`erf_closed_grad`] over slices (`db` optional).
#[allow(clippy::too_many_arguments)]
pub(super) fn erf_grad_batch(
    a: &[f64],
    b: &[f64],
    c: &[f64],
    e: &mut [f64],
    dc: &mut [f64],
    da: &mut [f64],
    db: Option<&mut [f64]>,
) {
    #[inline(always)]
    fn body(a: &[f64], b: &[f64], c: &[f64], e: &mut [f64], dc: &mut [f64], da: &mut [f64], db: Option<&mut [f64]>) {
        let n = c.len();
        let (a, b, e, dc, da) = (&a[..n], &b[..n], &mut e[..n], &mut dc[..n], &mut da[..n]);
        match db {
            Some(db) => {
                let db = &mut db[..n];
                for k in 0..n {
                    (e[k], dc[k], da[k], db[k]) = erf_closed_grad(a[k], b[k], c[k]);
                }
            }
            None => {
                for k in 0..n {
                    let (x, y, z, _) = erf_closed_grad(a[k], b[k], c[k]);
                    (e[k], dc[k], da[k]) = (x, y, z);
                }
            }
        }
    }
    simd_dispatch!(body(a: &[f64], b: &[f64], c: &[f64], e: &mut [f64], dc: &mut [f64], da: &mut [f64], db: Option<&mut [f64]>))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::kernels::activation::relu::tests::{closed_form_inputs, within_two_ulp};

    #[test]
    fn asin_select_is_within_two_ulp_of_musl() {
        within_two_ulp("asin", asin_select, libm::asin, 4);
        assert!(asin_select(-0.0).is_sign_negative());
    }

    #[test]
    fn erf_batches_equal_the_scalar_closed_forms_bitwise() {
        let n = 1037;
        let (a, b, c) = closed_form_inputs(6, n);
        let (mut e, mut d, mut e2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        erf_batch(&a, &b, &c, &mut e, Some(&mut d));
        erf_batch(&a, &b, &c, &mut e2, None);
        let (mut g, mut gc, mut ga, mut gb, mut g2, mut gc2, mut ga2) =
            (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        erf_grad_batch(&a, &b, &c, &mut g, &mut gc, &mut ga, Some(&mut gb));
        erf_grad_batch(&a, &b, &c, &mut g2, &mut gc2, &mut ga2, None);
        for i in 0..n {
            let (x, y) = erf_closed(a[i], b[i], c[i]);
            assert_eq!(e[i].to_bits(), x.to_bits(), "{i}");
            assert_eq!(e2[i].to_bits(), x.to_bits(), "{i}");
            assert_eq!(d[i].to_bits(), y.to_bits(), "{i}");
            let w = erf_closed_grad(a[i], b[i], c[i]);
            for (got, want) in [(g[i], w.0), (gc[i], w.1), (ga[i], w.2), (gb[i], w.3), (g2[i], w.0), (gc2[i], w.1), (ga2[i], w.2)] {
                assert_eq!(got.to_bits(), want.to_bits(), "{i}");
            }
            assert!(x.is_finite() && w.1.is_finite());
            // against musl's asin: a few ulp of the kernel
            let musl = 2.0 / PI * libm::asin((2.0 * c[i] / ((1.0 + 2.0 * a[i]) * (1.0 + 2.0 * b[i])).sqrt()).clamp(-1.0, 1.0));
            assert!((x - musl).abs() <= 4.0 * f64::EPSILON * musl.abs().max(f64::MIN_POSITIVE), "{i}: {x} vs {musl}");
        }
    }
}
