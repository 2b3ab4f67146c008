//! The series sum of the Hermite expansions, `sum_n c_n(i) c_n(j) rho^n`, over a tile of columns.
use super::COL_MAX;

/// `out[k] = sum_{n <= order} ci_n cj_{n,k} rho_k^n`: Horner in `rho^2` over the even and the
/// odd `n` separately, skipping a parity whose coefficients all vanish (odd or even phi);
/// vectorizes over k.
/// Compiled for AVX-512F / AVX2 where present (the same IEEE operations: the same bits).
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn horner(
    ci: &[f64],
    pi: usize,
    i: usize,
    cj: &[f64],
    pj: usize,
    j0: usize,
    order: usize,
    rho: &[f64],
    rho2: &[f64],
    parity: u8,
    out: &mut [f64],
) {
    crate::kernels::simd::simd_dispatch!(horner_body(
        ci: &[f64], pi: usize, i: usize, cj: &[f64], pj: usize, j0: usize, order: usize,
        rho: &[f64], rho2: &[f64], parity: u8, out: &mut [f64]
    ))
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn horner_body(
    ci: &[f64],
    pi: usize,
    i: usize,
    cj: &[f64],
    pj: usize,
    j0: usize,
    order: usize,
    rho: &[f64],
    rho2: &[f64],
    parity: u8,
    out: &mut [f64],
) {
    let m = out.len();
    out.fill(0.0);
    for par in 0..2usize {
        if parity & (1 << par) == 0 || order < par {
            continue;
        }
        let top = order - (order - par) % 2;
        let mut acc = [0.0f64; COL_MAX];
        let acc = &mut acc[..m];
        let mut n = top;
        loop {
            let a = ci[n * pi + i];
            let col = &cj[n * pj + j0..n * pj + j0 + m];
            for ((o, &r2), &cjv) in acc.iter_mut().zip(rho2).zip(col) {
                *o = *o * r2 + a * cjv;
            }
            if n < par + 2 {
                break;
            }
            n -= 2;
        }
        if par == 1 {
            for ((o, &x), &r) in out.iter_mut().zip(acc.iter()).zip(rho) {
                *o += x * r;
            }
        } else {
            for (o, &x) in out.iter_mut().zip(acc.iter()) {
                *o += x;
            }
        }
    }
}
