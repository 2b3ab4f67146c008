//! Autocovariance of a chain at every lag by FFT, `O(n log n)`:
//! `acov(t) = (1/n) sum_{s < n - t} (x_s - xbar)(x_{s+t} - xbar)` (the biased estimator, as in
//! Geyer 1992, Stan and ArviZ). The centred chain is zero-padded to a power of two `>= 2n`, so
//! the circular correlation `ifft(|fft(x)|^2)` equals the linear one on lags `0..n`.
//! Sequential and deterministic.

/// In-place iterative radix-2 FFT (`sign = -1`: forward, `+1`: unnormalized inverse) of
/// `(re, im)`, whose length is a power of two.
fn fft(re: &mut [f64], im: &mut [f64], sign: f64) {
    let n = re.len();
    debug_assert!(n.is_power_of_two() && im.len() == n);
    // bit-reversal permutation
    let mut j = 0usize;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    // twiddles exp(sign 2 pi i k / n), k < n/2, each from cos/sin directly (no recurrence drift)
    let half = n / 2;
    let tw: Vec<(f64, f64)> = (0..half)
        .map(|k| {
            let a = sign * 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            (a.cos(), a.sin())
        })
        .collect();
    let mut len = 2;
    while len <= n {
        let stride = n / len;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (wr, wi) = tw[k * stride];
                let (a, b) = (start + k, start + k + len / 2);
                let (xr, xi) = (re[b] * wr - im[b] * wi, re[b] * wi + im[b] * wr);
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
        len <<= 1;
    }
}

/// Biased autocovariance `acov(t)`, `t = 0..n`, of the chain `x` (length `n >= 1`).
pub fn autocovariance(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    if n == 0 {
        return Vec::new();
    }
    let mean = x.iter().sum::<f64>() / n as f64;
    let m = (2 * n).next_power_of_two();
    let mut re = vec![0.0; m];
    let mut im = vec![0.0; m];
    for (r, v) in re.iter_mut().zip(x) {
        *r = v - mean;
    }
    fft(&mut re, &mut im, -1.0);
    for (r, i) in re.iter_mut().zip(im.iter_mut()) {
        *r = *r * *r + *i * *i;
        *i = 0.0;
    }
    // |X|^2 is real and even, so the inverse transform is real
    fft(&mut re, &mut im, 1.0);
    let scale = 1.0 / (m as f64 * n as f64);
    re.truncate(n);
    re.iter_mut().for_each(|v| *v *= scale);
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_direct_sum() {
        for n in [1usize, 2, 3, 7, 64, 100, 257] {
            let x: Vec<f64> = (0..n)
                .map(|i| ((i * 7919) % 101) as f64 / 10.0 + (i as f64 * 0.37).sin())
                .collect();
            let mean = x.iter().sum::<f64>() / n as f64;
            let acov = autocovariance(&x);
            assert_eq!(acov.len(), n);
            for t in 0..n {
                let direct: f64 = (0..n - t)
                    .map(|s| (x[s] - mean) * (x[s + t] - mean))
                    .sum::<f64>()
                    / n as f64;
                assert!((acov[t] - direct).abs() < 1e-12 * acov[0].abs().max(1e-300), "n {n} t {t}");
            }
        }
    }
}
