//! Rank-normalized MCMC diagnostics (Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021,
//! "Rank-normalization, folding, and localization: an improved R-hat for assessing convergence
//! of MCMC", Bayesian Analysis 16(2)), computed as ArviZ computes them (`arviz.rhat(method="rank")`,
//! `arviz.ess(method="bulk")`, `arviz.ess(method="tail")`).
//!
//! Draws of one scalar: `m` chains of `n` draws, chain-major (`x[c * n + t]`).
//! * **Split chains**: each chain's first and last `h = floor(n / 2)` draws (the middle draw of
//!   an odd chain is dropped), stacked as `2m` chains: all first halves, then all second halves.
//! * **Normal scores**: `z = Phi^-1((r - 3/8) / (S + 1/4))`, `r` the rank of a draw among all
//!   `S` draws (ties get their average rank), `Phi^-1` by Wichura's AS241.
//! * **R-hat** of `M` chains of `N` draws: `sqrt((B / W + N - 1) / N)`, `B = N var(chain means)`,
//!   `W = mean of the chain variances` (both with `ddof = 1`).
//! * **Rank-normalized R-hat** = `max(R-hat(z(split)), R-hat(z(|split - median(split)|)))`
//!   (bulk and folded / tail); NaN with fewer than 2 chains or 4 draws.
//! * **ESS** of `M` chains of `N` draws (Geyer's initial monotone sequence, as Stan):
//!   `acov_c(t)` per chain ([`autocovariance`]), `W' = mean_c acov_c(0) N / (N - 1)`,
//!   `var+ = W' (N - 1) / N + var(chain means)` (the last term only for `M > 1`),
//!   `rho_t = 1 - (W' - mean_c acov_c(t)) / var+`; pairs `rho_{2k} + rho_{2k+1}` kept while
//!   positive, then made non-increasing; `tau = -1 + 2 sum_{t <= K} rho_t + rho_{K+1}` (the
//!   last term when positive), `ESS = M N / max(tau, 1 / log10(M N))`; `M N` when the draws
//!   span less than `1e-15`.
//! * **Bulk ESS** = ESS(z(split)); **tail ESS** = `min_q ESS(split(1[x <= Q_q]))` over
//!   `q = 0.05, 0.95`, `Q_q` the type-7 (linear) quantile of all `m n` draws. NaN with fewer
//!   than 4 draws.
//!
//! Any non-finite draw makes the three diagnostics of that scalar NaN. Everything is
//! sequential per scalar (the many-scalar entry point runs scalars in parallel), so results
//! do not depend on the number of threads.
use super::autocov::autocovariance;
use crate::error::Result;
use crate::validate;
use rayon::prelude::*;

/// ArviZ's threshold on `max - min` below which a chain counts as constant (NumPy's
/// `finfo(float).resolution`).
const RESOLUTION: f64 = 1e-15;
/// Quantiles whose indicator ESS is the tail ESS.
const TAIL_PROBS: [f64; 2] = [0.05, 0.95];

/// The rank-normalized diagnostics of one scalar quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankDiagnostics {
    pub rhat: f64,
    pub ess_bulk: f64,
    pub ess_tail: f64,
}

/// Standard normal quantile `Phi^-1(p)`, `0 < p < 1` (Wichura 1988, algorithm AS241 PPND16,
/// relative accuracy about 1e-16).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 8] = [
        3.3871328727963666080e0, 1.3314166789178437745e2, 1.9715909503065514427e3,
        1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
        3.3430575583588128105e4, 2.5090809287301226727e3,
    ];
    const B: [f64; 8] = [
        1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
        2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4,
        5.2264952788528545610e3,
    ];
    const C: [f64; 8] = [
        1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
        3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
        2.27238449892691845833e-2, 7.74545014278341407640e-4,
    ];
    const D: [f64; 8] = [
        1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
        1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
        1.05075007164441684324e-9,
    ];
    const E: [f64; 8] = [
        6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
        2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
        2.71155556874348757815e-5, 2.01033439929228813265e-7,
    ];
    const F: [f64; 8] = [
        1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
        7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
        2.04426310338993978564e-15,
    ];
    let poly = |c: &[f64; 8], r: f64| c.iter().rev().fold(0.0, |acc, &k| acc * r + k);
    if !(p > 0.0 && p < 1.0) {
        return match p {
            0.0 => f64::NEG_INFINITY,
            1.0 => f64::INFINITY,
            _ => f64::NAN,
        };
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q * poly(&A, r) / poly(&B, r);
    }
    let r = (-(if q < 0.0 { p } else { 1.0 - p }).ln()).sqrt();
    let z = if r <= 5.0 {
        poly(&C, r - 1.6) / poly(&D, r - 1.6)
    } else {
        poly(&E, r - 5.0) / poly(&F, r - 5.0)
    };
    if q < 0.0 {
        -z
    } else {
        z
    }
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample variance (`ddof = 1`).
fn var1(x: &[f64]) -> f64 {
    let mu = mean(x);
    x.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / (x.len() as f64 - 1.0)
}

fn sorted(x: &[f64]) -> Vec<f64> {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// Split chains: `(draws, 2m, floor(n/2))`, all first halves then all second halves.
fn split(x: &[f64], m: usize, n: usize) -> (Vec<f64>, usize, usize) {
    let h = n / 2;
    let mut out = Vec::with_capacity(2 * m * h);
    for c in 0..m {
        out.extend_from_slice(&x[c * n..c * n + h]);
    }
    for c in 0..m {
        out.extend_from_slice(&x[(c + 1) * n - h..(c + 1) * n]);
    }
    (out, 2 * m, h)
}

/// Ranks `1..=S` of finite values, ties given their average rank.
fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && x[idx[j]] == x[idx[i]] {
            j += 1;
        }
        let r = (i + 1 + j) as f64 / 2.0;
        idx[i..j].iter().for_each(|&k| ranks[k] = r);
        i = j;
    }
    ranks
}

/// Normal scores `Phi^-1((r - 3/8) / (S + 1/4))` of the average ranks.
pub fn normal_scores(x: &[f64]) -> Vec<f64> {
    let s = x.len() as f64 + 0.25;
    average_ranks(x)
        .into_iter()
        .map(|r| normal_quantile((r - 0.375) / s))
        .collect()
}

/// Plain R-hat `sqrt((B / W + N - 1) / N)` of `m` chains of `n` draws.
fn rhat_plain(x: &[f64], m: usize, n: usize) -> f64 {
    let nf = n as f64;
    let chains: Vec<&[f64]> = x.chunks(n).take(m).collect();
    let means: Vec<f64> = chains.iter().map(|c| mean(c)).collect();
    let w = chains.iter().map(|c| var1(c)).sum::<f64>() / m as f64;
    let b = nf * var1(&means);
    ((b / w + nf - 1.0) / nf).sqrt()
}

/// ESS of `m` chains of `n >= 2` draws (Geyer's initial monotone sequence, as ArviZ's `_ess`).
fn ess_plain(x: &[f64], m: usize, n: usize) -> f64 {
    let size = (m * n) as f64;
    let (lo, hi) = x.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if hi - lo < RESOLUTION {
        return size;
    }
    let nf = n as f64;
    let chains: Vec<&[f64]> = x.chunks(n).take(m).collect();
    let acov: Vec<Vec<f64>> = chains.iter().map(|c| autocovariance(c)).collect();
    let mean_acov = |t: usize| acov.iter().map(|a| a[t]).sum::<f64>() / m as f64;
    let mean_var = mean_acov(0) * nf / (nf - 1.0);
    let mut var_plus = mean_var * (nf - 1.0) / nf;
    if m > 1 {
        var_plus += var1(&chains.iter().map(|c| mean(c)).collect::<Vec<_>>());
    }
    let rho = |t: usize| 1.0 - (mean_var - mean_acov(t)) / var_plus;
    let mut rho_t = vec![0.0; n];
    let (mut even, mut odd) = (1.0, rho(1));
    rho_t[0] = even;
    rho_t[1] = odd;
    // Geyer's initial positive sequence
    let mut t = 1;
    while t + 3 < n && even + odd > 0.0 {
        even = rho(t + 1);
        odd = rho(t + 2);
        if even + odd >= 0.0 {
            rho_t[t + 1] = even;
            rho_t[t + 2] = odd;
        }
        t += 2;
    }
    let k = t - 1; // max_t + 1 with ArviZ's max_t = t - 2 >= -1
    if even > 0.0 {
        rho_t[k] = even;
    }
    // Geyer's initial monotone sequence (pairs up to max_t)
    let mut t = 1;
    while t + 3 <= k {
        if rho_t[t + 1] + rho_t[t + 2] > rho_t[t - 1] + rho_t[t] {
            rho_t[t + 1] = (rho_t[t - 1] + rho_t[t]) / 2.0;
            rho_t[t + 2] = rho_t[t + 1];
        }
        t += 2;
    }
    if rho_t.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let tau = -1.0 + 2.0 * rho_t[..k].iter().sum::<f64>() + rho_t[k];
    size / tau.max(1.0 / size.log10())
}

/// Type-7 (linear interpolation) quantile of sorted values, in the arithmetic of
/// `scipy.stats.mstats.mquantiles(alphap=1, betap=1)` (ArviZ's quantile).
fn quantile7(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0];
    }
    let aleph = n as f64 * p + (1.0 - p);
    let k = aleph.clamp(1.0, (n - 1) as f64).floor();
    let gamma = (aleph - k).clamp(0.0, 1.0);
    let k = k as usize;
    (1.0 - gamma) * sorted[k - 1] + gamma * sorted[k]
}

fn median(x: &[f64]) -> f64 {
    let s = sorted(x);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Draws that are usable: `m >= 1` equal chains, no non-finite value.
fn usable(x: &[f64], m: usize) -> bool {
    m >= 1 && !x.is_empty() && x.len() % m == 0 && x.iter().all(|v| v.is_finite())
}

/// Rank-normalized split R-hat of `n_chains` equally long chains (chain-major `x`).
pub fn rank_rhat(x: &[f64], n_chains: usize) -> f64 {
    if !usable(x, n_chains) || n_chains < 2 || x.len() / n_chains < 4 {
        return f64::NAN;
    }
    let (s, m, n) = split(x, n_chains, x.len() / n_chains);
    let bulk = rhat_plain(&normal_scores(&s), m, n);
    let med = median(&s);
    let folded: Vec<f64> = s.iter().map(|v| (v - med).abs()).collect();
    let tail = rhat_plain(&normal_scores(&folded), m, n);
    // Python's max(bulk, tail): bulk unless tail is larger (NaN bulk stays NaN)
    if tail > bulk {
        tail
    } else {
        bulk
    }
}

/// Bulk ESS: ESS of the normal scores of the split chains.
pub fn ess_bulk(x: &[f64], n_chains: usize) -> f64 {
    if !usable(x, n_chains) || x.len() / n_chains < 4 {
        return f64::NAN;
    }
    let (s, m, n) = split(x, n_chains, x.len() / n_chains);
    ess_plain(&normal_scores(&s), m, n)
}

/// Tail ESS: the smaller ESS of the split indicators `x <= Q_0.05` and `x <= Q_0.95`.
pub fn ess_tail(x: &[f64], n_chains: usize) -> f64 {
    if !usable(x, n_chains) || x.len() / n_chains < 4 {
        return f64::NAN;
    }
    let n = x.len() / n_chains;
    let s = sorted(x);
    let [lo, hi] = TAIL_PROBS.map(|p| {
        let q = quantile7(&s, p);
        let ind: Vec<f64> = x.iter().map(|&v| if v <= q { 1.0 } else { 0.0 }).collect();
        let (sp, m, h) = split(&ind, n_chains, n);
        ess_plain(&sp, m, h)
    });
    // Python's min(lo, hi)
    if hi < lo {
        hi
    } else {
        lo
    }
}

/// All three diagnostics of one scalar.
pub fn rank_diagnostics(x: &[f64], n_chains: usize) -> RankDiagnostics {
    RankDiagnostics {
        rhat: rank_rhat(x, n_chains),
        ess_bulk: ess_bulk(x, n_chains),
        ess_tail: ess_tail(x, n_chains),
    }
}

/// Diagnostics of each of `n_params` scalars from draws laid out `(n_chains, n_draws,
/// n_params)` in C order (`draws[(c * n_draws + t) * n_params + p]`); scalars run in parallel
/// on the current Rayon pool, each sequentially.
pub fn chain_diagnostics(
    draws: &[f64],
    n_chains: usize,
    n_draws: usize,
    n_params: usize,
) -> Result<Vec<RankDiagnostics>> {
    validate::chains("chains", draws.len(), n_chains, n_draws, n_params)?;
    Ok((0..n_params)
        .into_par_iter()
        .map(|p| {
            let x: Vec<f64> = (0..n_chains * n_draws).map(|i| draws[i * n_params + p]).collect();
            rank_diagnostics(&x, n_chains)
        })
        .collect())
}

#[cfg(test)]
mod tests;
