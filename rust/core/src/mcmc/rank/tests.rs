use super::*;
use crate::mcmc::chains::split_rhat;
use crate::rng::Rng;
use crate::threads::with_threads;

/// `m` AR(1) chains `x_t = a x_{t-1} + sqrt(1 - a^2) e_t` (stationary start), chain-major,
/// chain `c` scaled by `scale[c]` and shifted by `shift[c]`.
fn ar1(m: usize, n: usize, a: f64, shift: &[f64], scale: &[f64], seed: u64) -> Vec<f64> {
    let mut out = Vec::with_capacity(m * n);
    for c in 0..m {
        let mut r = Rng::new(seed, c as u64);
        let mut x = r.normal();
        for _ in 0..n {
            out.push(shift[c] + scale[c] * x);
            x = a * x + (1.0 - a * a).sqrt() * r.normal();
        }
    }
    out
}

#[test]
fn normal_quantile_values_and_inverse() {
    assert_eq!(normal_quantile(0.5), 0.0);
    assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-15);
    assert!((normal_quantile(1e-10) + 6.361340902404056).abs() < 1e-13);
    assert!((normal_quantile(0.3) + 0.5244005127080407).abs() < 1e-15);
    for i in 1..1000 {
        let p = i as f64 / 1000.0;
        let z = normal_quantile(p);
        assert!((z + normal_quantile(1.0 - p)).abs() < 1e-14, "symmetric at {p}");
        let cdf = 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2);
        assert!((cdf - p).abs() < 2e-16 + 1e-15 * p, "p {p}: Phi(z) = {cdf}");
    }
    assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
    assert!(normal_quantile(1.5).is_nan());
}

#[test]
fn ties_get_the_average_rank() {
    assert_eq!(average_ranks(&[3.0, 1.0, 3.0, 2.0, 3.0]), vec![4.0, 1.0, 4.0, 2.0, 4.0]);
    assert_eq!(average_ranks(&[0.0, -0.0, 1.0]), vec![1.5, 1.5, 3.0]);
    let z = normal_scores(&[5.0, 5.0]);
    assert_eq!(z, vec![0.0, 0.0]);
}

#[test]
fn type7_quantile_and_median() {
    let x: Vec<f64> = (1..=10).map(f64::from).collect();
    assert!((quantile7(&x, 0.05) - 1.45).abs() < 1e-15);
    assert!((quantile7(&x, 0.95) - 9.55).abs() < 1e-14);
    assert_eq!(quantile7(&[2.0], 0.05), 2.0);
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
}

#[test]
fn split_drops_the_middle_draw_of_odd_chains() {
    let x: Vec<f64> = (0..10).map(f64::from).collect(); // 2 chains of 5
    let (s, m, n) = split(&x, 2, 5);
    assert_eq!((m, n), (4, 2));
    assert_eq!(s, vec![0.0, 1.0, 5.0, 6.0, 3.0, 4.0, 8.0, 9.0]);
}

#[test]
fn iid_and_ar1_chains() {
    let (m, n) = (4, 4000);
    let iid = ar1(m, n, 0.0, &[0.0; 4], &[1.0; 4], 3);
    let d = rank_diagnostics(&iid, m);
    assert!((d.rhat - 1.0).abs() < 0.01, "{d:?}");
    assert!((d.ess_bulk / (m * n) as f64 - 1.0).abs() < 0.1, "{d:?}");
    assert!((d.ess_tail / (m * n) as f64 - 1.0).abs() < 0.15, "{d:?}");
    // AR(1): ESS ~ m n (1 - a) / (1 + a)
    let a = 0.8;
    let x = ar1(m, n, a, &[0.0; 4], &[1.0; 4], 4);
    let d = rank_diagnostics(&x, m);
    let expect = (m * n) as f64 * (1.0 - a) / (1.0 + a);
    assert!((d.ess_bulk / expect - 1.0).abs() < 0.2, "{d:?} vs {expect}");
    assert!(d.ess_tail < (m * n) as f64 / 2.0, "{d:?}");
    assert!(d.rhat < 1.02, "{d:?}");
}

#[test]
fn shifted_and_rescaled_chains_are_flagged() {
    let (m, n) = (4, 1000);
    let shifted = ar1(m, n, 0.3, &[0.0, 0.0, 0.0, 1.0], &[1.0; 4], 5);
    assert!(rank_rhat(&shifted, m) > 1.1);
    // equal means, one chain four times wider: the classic split-R-hat misses it, the folded
    // (tail) R-hat does not
    let wide = ar1(m, n, 0.3, &[0.0; 4], &[1.0, 1.0, 1.0, 4.0], 6);
    let classic = split_rhat(&wide.chunks(n).map(|c| c.to_vec()).collect::<Vec<_>>());
    assert!(classic < 1.05, "{classic}");
    assert!(rank_rhat(&wide, m) > 1.1, "{}", rank_rhat(&wide, m));
}

#[test]
fn degenerate_inputs() {
    // constant draws: ESS = number of split draws, R-hat undefined
    let c = vec![2.0; 12];
    let d = rank_diagnostics(&c, 2);
    assert!(d.rhat.is_nan());
    assert_eq!((d.ess_bulk, d.ess_tail), (12.0, 12.0));
    // odd chains: split draws 2 x 2 x 3 = 12 of 14
    let d = rank_diagnostics(&[1.0; 14], 2);
    assert_eq!(d.ess_bulk, 12.0);
    // one chain: ESS defined, rank R-hat not (as ArviZ)
    let one = ar1(1, 100, 0.0, &[0.0], &[1.0], 7);
    let d = rank_diagnostics(&one, 1);
    assert!(d.rhat.is_nan() && d.ess_bulk.is_finite() && d.ess_tail.is_finite(), "{d:?}");
    // fewer than 4 draws, a NaN or an inf: NaN
    assert!(ess_bulk(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2).is_nan());
    let mut x = ar1(2, 10, 0.0, &[0.0; 2], &[1.0; 2], 8);
    x[3] = f64::NAN;
    assert!(rank_diagnostics(&x, 2).ess_tail.is_nan());
    x[3] = f64::INFINITY;
    assert!(rank_diagnostics(&x, 2).rhat.is_nan());
    // four draws per chain: the smallest case ArviZ computes
    let d = rank_diagnostics(&[0.1, 0.5, 0.3, 0.2, 0.9, 0.4, 0.8, 0.7], 2);
    assert!(d.rhat.is_finite() && d.ess_bulk > 0.0 && d.ess_tail > 0.0, "{d:?}");
}

#[test]
fn many_scalars_in_parallel_are_thread_independent() {
    let (m, n, p) = (3, 301, 5);
    let per: Vec<Vec<f64>> = (0..p)
        .map(|k| ar1(m, n, 0.2 * k as f64, &[0.0; 3], &[1.0; 3], 10 + k as u64))
        .collect();
    // (chain, draw, param) layout
    let draws: Vec<f64> = (0..m * n * p).map(|i| per[i % p][i / p]).collect();
    let one = with_threads(1, |_| chain_diagnostics(&draws, m, n, p).unwrap());
    let three = with_threads(3, |_| chain_diagnostics(&draws, m, n, p).unwrap());
    for k in 0..p {
        assert_eq!(one[k], rank_diagnostics(&per[k], m));
        let (a, b) = (one[k], three[k]);
        assert_eq!(
            (a.rhat.to_bits(), a.ess_bulk.to_bits(), a.ess_tail.to_bits()),
            (b.rhat.to_bits(), b.ess_bulk.to_bits(), b.ess_tail.to_bits())
        );
    }
    assert!(chain_diagnostics(&draws, m, n, p + 1).is_err());
    assert!(chain_diagnostics(&[], 0, 4, 1).is_err());
}
