//! Classic MCMC diagnostics: integrated autocorrelation time / effective sample size of one
//! chain (Geyer's initial monotone positive sequence, Geyer 1992), split-R-hat (Gelman et al.,
//! BDA3 sec. 11.4) and the chain radius. The rank-normalized R-hat and the bulk and tail ESS
//! pooled over chains (Vehtari et al. 2021, what `PosteriorSamples.rhat` reports) are in
//! [`super::rank`].

/// Integrated autocorrelation time `tau = 1 + 2 sum_k rho_k` of a trace (>= 1/n... clamped to >= 1/n).
pub fn integrated_autocorrelation_time(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 4 {
        return 1.0;
    }
    let m = x.iter().sum::<f64>() / n as f64;
    let c: Vec<f64> = x.iter().map(|v| v - m).collect();
    let acov = |k: usize| -> f64 { (0..n - k).map(|t| c[t] * c[t + k]).sum::<f64>() / n as f64 };
    let g0 = acov(0);
    if g0 <= 0.0 {
        return 1.0;
    }
    // Pairs Gamma_j = rho_{2j} + rho_{2j+1}, summed while positive and non-increasing.
    let mut tau = -1.0;
    let mut prev = f64::INFINITY;
    let mut j = 0;
    while 2 * j + 1 < n {
        let pair = (acov(2 * j) + acov(2 * j + 1)) / g0;
        if pair <= 0.0 {
            break;
        }
        let pair = pair.min(prev);
        tau += 2.0 * pair;
        prev = pair;
        j += 1;
    }
    tau.max(1.0 / n as f64)
}

/// Effective sample size `n / tau`.
pub fn effective_sample_size(x: &[f64]) -> f64 {
    x.len() as f64 / integrated_autocorrelation_time(x)
}

/// Split-R-hat of equally long chains (each split in halves). NaN with fewer than 4 draws.
pub fn split_rhat(chains: &[Vec<f64>]) -> f64 {
    let n = chains.iter().map(|c| c.len()).min().unwrap_or(0) / 2;
    if n < 2 || chains.is_empty() {
        return f64::NAN;
    }
    let mut seqs: Vec<&[f64]> = Vec::new();
    for c in chains {
        seqs.push(&c[..n]);
        seqs.push(&c[n..2 * n]);
    }
    let m = seqs.len() as f64;
    let nf = n as f64;
    let means: Vec<f64> = seqs.iter().map(|s| s.iter().sum::<f64>() / nf).collect();
    let vars: Vec<f64> = seqs
        .iter()
        .zip(&means)
        .map(|(s, mu)| s.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / (nf - 1.0))
        .collect();
    let grand = means.iter().sum::<f64>() / m;
    let b_over_n = means
        .iter()
        .map(|mu| (mu - grand) * (mu - grand))
        .sum::<f64>()
        / (m - 1.0);
    let w = vars.iter().sum::<f64>() / m;
    if w <= 0.0 {
        return if b_over_n <= 0.0 { 1.0 } else { f64::INFINITY };
    }
    let var_plus = (nf - 1.0) / nf * w + b_over_n;
    (var_plus / w).sqrt()
}

/// Mean whitened squared radius `|z|^2 / r` of the first and of the last third of every chain
/// (`q = |z|^2` chain-major, `r` whitened coordinates). Equilibrated chains give two equal values
/// (about 1 under a mild tilt); chains still drifting outward along a soft direction of a strong
/// relu readout tilt (which MALA, stepping at the scale of the stiff directions, crosses slowly)
/// or running away where the tilt is not normalizable give a growing pair.
pub fn chain_radius(q: &[f64], n_chains: usize, r: usize) -> [f64; 2] {
    let per = q.len() / n_chains.max(1);
    let third = (per / 3).max(1);
    let (mut first, mut last) = (0.0, 0.0);
    for c in 0..n_chains {
        let ch = &q[c * per..(c + 1) * per];
        first += ch[..third].iter().sum::<f64>();
        last += ch[per - third..].iter().sum::<f64>();
    }
    let norm = (third * n_chains * r.max(1)) as f64;
    [first / norm, last / norm]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn ar1_autocorrelation_time() {
        // AR(1) with coefficient a: tau = (1 + a) / (1 - a)
        let a = 0.8;
        let mut r = Rng::new(1, 0);
        let mut x = vec![0.0; 200_000];
        for t in 1..x.len() {
            x[t] = a * x[t - 1] + (1.0 - a * a as f64).sqrt() * r.normal();
        }
        let tau = integrated_autocorrelation_time(&x[..20_000]);
        assert!((tau - 9.0).abs() < 1.5, "tau = {tau}");
        let iid: Vec<f64> = (0..5000).map(|_| r.normal()).collect();
        assert!((effective_sample_size(&iid) - 5000.0).abs() < 600.0);
        let chains: Vec<Vec<f64>> = (0..4)
            .map(|_| (0..2000).map(|_| r.normal()).collect())
            .collect();
        assert!((split_rhat(&chains) - 1.0).abs() < 0.01);
        let shifted: Vec<Vec<f64>> = (0..4)
            .map(|c| (0..2000).map(|_| r.normal() + c as f64).collect())
            .collect();
        assert!(split_rhat(&shifted) > 1.2);
    }

    #[test]
    fn chain_radius_compares_the_first_and_last_thirds() {
        let (chains, per, r) = (4, 90, 50usize);
        let flat = vec![r as f64; chains * per];
        assert_eq!(chain_radius(&flat, chains, r), [1.0, 1.0]);
        // each chain's radius growing linearly: first third ~1/6, last third ~5/6 of the way
        let grow: Vec<f64> = (0..chains * per)
            .map(|i| r as f64 * (1.0 + 6.0 * (i % per) as f64 / per as f64))
            .collect();
        let [a, b] = chain_radius(&grow, chains, r);
        assert!((a - (1.0 + 6.0 * 14.5 / 90.0)).abs() < 1e-12, "{a}");
        assert!((b - (1.0 + 6.0 * 74.5 / 90.0)).abs() < 1e-12, "{b}");
    }
}
