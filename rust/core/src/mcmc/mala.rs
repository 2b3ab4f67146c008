//! Metropolis-adjusted Langevin (MALA) moves (Roberts & Tweedie 1996): the overdamped Langevin
//! proposal `theta' = theta - eta grad U + sqrt(2 eta) xi` and its log acceptance ratio
//! `U - U' + log q(theta|theta') - log q(theta'|theta)`, `log q(b|a) = -|b - a + eta grad U(a)|^2 / (4 eta)`.

/// One Langevin proposal from `theta` (with gradient `grad`) and standard-normal noise `xi`:
/// `theta - eta grad + sqrt(2 eta) xi`.
pub fn langevin_proposal(theta: &[f64], grad: &[f64], xi: &[f64], eta: f64) -> Vec<f64> {
    let s = (2.0 * eta).sqrt();
    theta
        .iter()
        .zip(grad)
        .zip(xi)
        .map(|((t, g), x)| t - eta * g + s * x)
        .collect()
}

/// Log Metropolis-Hastings ratio of a MALA move `theta -> prop` (Roberts & Tweedie 1996).
pub fn mala_log_ratio(
    u: f64,
    u_prop: f64,
    theta: &[f64],
    prop: &[f64],
    grad: &[f64],
    grad_prop: &[f64],
    eta: f64,
) -> f64 {
    // log q(b|a) = -|b - a + eta grad U(a)|^2 / (4 eta)
    let fwd: f64 = prop
        .iter()
        .zip(theta)
        .zip(grad)
        .map(|((p, t), g)| (p - t + eta * g).powi(2))
        .sum();
    let bwd: f64 = theta
        .iter()
        .zip(prop)
        .zip(grad_prop)
        .map(|((t, p), g)| (t - p + eta * g).powi(2))
        .sum();
    (u - u_prop) + (fwd - bwd) / (4.0 * eta)
}
