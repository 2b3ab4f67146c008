//! Argument checks shared by the solvers, each naming the Python argument in its error (the
//! messages are part of the interface: Python tests match on them). Checks of one struct's
//! fields stay with the struct (`Mlp::validate`, `SamplerConfig::validate`, ...).
//!
//! Memory estimates ([`memory`], [`dense_memory`]): each entry point calls them before its
//! dense allocations of size O(P^2) or larger, with a count of the matrices it will allocate
//! from then on (what is already allocated is in the process's size, which
//! [`available_memory`] subtracts under an address-space limit). What they cover:
//! - the outputs and the solver's own P x P buffers (counted per entry point);
//! - faer's workspaces: an eigendecomposition's eigenvectors and `self_adjoint_evd_scratch`
//!   (~4 n x n matrices, `linalg::EIGEN_MATRICES`), counted by its callers and checked again
//!   inside `linalg::symmetric_eigen`, whose workspace is allocated fallibly; the Cholesky,
//!   triangular solves and products need O(n) or cache-sized (O(1)) workspaces only;
//! - Rayon's worker threads and faer's per-thread GEMM packing buffers: a flat reserve of
//!   1 GiB of address space per thread ([`available_memory`]; measured, see there).
//! What they do not cover: an allocation failure *inside* faer or Rayon (a per-thread buffer
//! or a scratch faer allocates itself) still aborts the process, since stable Rust has no
//! out-of-memory hook; the defence is estimates that count those buffers with headroom, not
//! a guarantee. Without an address-space limit, "available" is the system's `MemAvailable`,
//! so an overcommitting kernel may still kill the process later (the OOM killer, not an abort
//! of ours).
#![allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x > 0.0)` also rejects NaN
use crate::error::{invalid, shape, AkError, Result};
use crate::kernels::activation::Activation;
use crate::kernels::net::Mlp;
use faer::MatRef;

/// Fails with `InvalidArgument` naming `name` unless every entry is finite.
pub fn finite(name: &'static str, data: &[f64]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(invalid(
            name,
            format!("contains a non-finite value (NaN or inf) at flat index {i}"),
        )),
    }
}

/// Fails with `InvalidArgument` naming `name` unless every entry of `a` is finite.
pub fn finite_mat(name: &'static str, a: MatRef<'_, f64>) -> Result<()> {
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            if !a[(i, j)].is_finite() {
                return Err(invalid(
                    name,
                    format!("contains a non-finite value (NaN or inf) at ({i}, {j})"),
                ));
            }
        }
    }
    Ok(())
}

/// `gamma` and `temperature`: finite and > 0.
pub fn gamma_temperature(gamma: f64, t: f64) -> Result<()> {
    if !(gamma.is_finite() && gamma > 0.0) {
        return Err(invalid(
            "gamma",
            format!("must be finite and > 0, got {gamma}"),
        ));
    }
    scale("gamma", gamma)?;
    temperature(t)
}

/// `temperature`: finite and > 0.
pub fn temperature(t: f64) -> Result<()> {
    if !(t.is_finite() && t > 0.0) {
        return Err(invalid(
            "temperature",
            format!("must be finite and > 0, got {t}"),
        ));
    }
    scale("temperature", t)
}

/// The range of the scalar knobs `gamma`, `chi` and `temperature`: beyond it the loss scales
/// (`chi / T`, `N gamma^2 / T`) and the kernels' quadratic forms leave float64's range.
pub const SCALE_RANGE: (f64, f64) = (1e-100, 1e100);

/// [`SCALE_RANGE`] check of a positive finite knob.
pub fn scale(name: &'static str, v: f64) -> Result<()> {
    if !(SCALE_RANGE.0..=SCALE_RANGE.1).contains(&v) {
        return Err(invalid(
            name,
            format!(
                "must be in [1e-100, 1e100] (beyond, the loss scales and quadratic forms leave float64's range), got {v}"
            ),
        ));
    }
    Ok(())
}

/// The scaling knob `chi` (readout variance and noise both divided by chi): finite and > 0.
pub fn chi(chi: f64) -> Result<()> {
    if !(chi.is_finite() && chi > 0.0) {
        return Err(invalid(
            "chi",
            format!("must be finite and > 0, got {chi}"),
        ));
    }
    scale("chi", chi)
}

/// A solver tolerance `tol`: finite and > 0.
pub fn tol(tol: f64) -> Result<()> {
    if !(tol.is_finite() && tol > 0.0) {
        return Err(invalid(
            "tol",
            format!("must be finite and > 0, got {tol}"),
        ));
    }
    Ok(())
}

/// Hidden-layer widths (argument `width`): one per layer, each > 0 (inf allowed).
pub fn widths(widths: &[f64], depth: usize) -> Result<()> {
    if widths.len() != depth {
        return Err(shape(
            "width",
            format!(
                "needs one width per hidden layer ({depth}), got {}",
                widths.len()
            ),
        ));
    }
    if let Some(w) = widths.iter().find(|w| !(**w > 0.0) || w.is_nan()) {
        return Err(invalid(
            "width",
            format!("widths must be > 0 (inf allowed), got {w}"),
        ));
    }
    Ok(())
}

/// Per-layer order parameters (argument `name`, e.g. `Q`): one per hidden layer, finite, > 0.
pub fn layer_scales(name: &'static str, q: &[f64], depth: usize) -> Result<()> {
    if q.len() != depth || q.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(invalid(name, format!("needs {depth} finite values > 0, got {q:?}")));
    }
    Ok(())
}

/// Targets (argument `y`): P rows, >= 1 column, finite.
pub fn targets(y: MatRef<'_, f64>, p: usize) -> Result<()> {
    if y.nrows() != p || y.ncols() == 0 {
        return Err(shape(
            "y",
            format!(
                "has shape ({}, {}), expected {p} rows and >= 1 column",
                y.nrows(),
                y.ncols()
            ),
        ));
    }
    for j in 0..y.ncols() {
        for i in 0..p {
            if !y[(i, j)].is_finite() {
                return Err(invalid(
                    "y",
                    format!("contains a non-finite value at ({i}, {j})"),
                ));
            }
        }
    }
    Ok(())
}

/// MCMC draws (argument `name`) laid out `(n_chains, n_draws, n_params)`: a buffer of that
/// many values, at least one chain and one draw (fewer than 4 draws give NaN diagnostics, as
/// in ArviZ, rather than an error).
pub fn chains(name: &'static str, len: usize, n_chains: usize, n_draws: usize, n_params: usize) -> Result<()> {
    if n_chains == 0 || n_draws == 0 {
        return Err(shape(
            name,
            format!("needs at least one chain and one draw, got {n_chains} chains of {n_draws} draws"),
        ));
    }
    if Some(len) != n_chains.checked_mul(n_draws).and_then(|v| v.checked_mul(n_params)) {
        return Err(shape(
            name,
            format!("holds {len} values, expected {n_chains} x {n_draws} x {n_params}"),
        ));
    }
    Ok(())
}

/// Architecture checks shared by the mean-field solvers (linear and sampled): `net.validate()`,
/// depth >= 1, built-in activations, `sigma_w > 0`; `linear_only` for the linear solver.
pub fn mean_field_net(net: &Mlp, linear_only: bool) -> Result<()> {
    net.validate()?;
    if net.depth == 0 {
        return Err(invalid(
            "net",
            "the Bayesian mean-field saddle point needs at least one hidden layer (depth >= 1)",
        ));
    }
    if linear_only && !matches!(net.activation, Activation::Linear) {
        return Err(invalid(
            "net",
            "this solver needs linear activations; nonlinear networks use the sampled solver (solver=\"sampled\")",
        ));
    }
    if matches!(net.activation, Activation::Custom(_)) {
        return Err(invalid(
            "activation",
            "the mean-field solvers support the built-in activations only",
        ));
    }
    if !(net.sigma_w > 0.0) {
        return Err(invalid(
            "sigma_w",
            format!("must be > 0, got {}", net.sigma_w),
        ));
    }
    Ok(())
}

/// The network of the closed-form multi-scale adaptive theory (linear, any depth, no bias;
/// Python argument `net`) and one point of it: `width` (> 0, inf allowed), `temperature`, `chi`.
pub fn multi_scale(net: &Mlp, width: f64, temperature: f64, chi: f64) -> Result<()> {
    net.validate()?;
    if net.depth == 0 || !matches!(net.activation, Activation::Linear) || net.sigma_b != 0.0 {
        return Err(invalid(
            "net",
            format!(
                "the closed-form multi-scale adaptive theory is implemented for MLP(activation='linear', sigma_b=0), got depth={}, activation={:?}, sigma_b={}",
                net.depth,
                net.activation.name(),
                net.sigma_b
            ),
        ));
    }
    if !(net.sigma_w > 0.0) {
        return Err(invalid("sigma_w", format!("must be > 0, got {}", net.sigma_w)));
    }
    widths(&[width], 1)?;
    self::temperature(temperature)?;
    self::chi(chi)
}

/// Bytes as a short human-readable string.
fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn proc_kib(path: &str, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse::<f64>().ok().map(|v| v * 1024.0)
}

/// Memory this process can still allocate, where the platform says (Linux): the smaller of the
/// system's available memory and what the address-space limit (`ulimit -v`) leaves after a
/// reserve for the worker threads. `None`
/// where unknown (then only impossible sizes are refused).
pub fn available_memory() -> Option<f64> {
    let system = proc_kib("/proc/meminfo", "MemAvailable:");
    let limit = std::fs::read_to_string("/proc/self/limits").ok().and_then(|t| {
        let line = t.lines().find(|l| l.starts_with("Max address space"))?;
        line["Max address space".len()..].split_whitespace().next()?.parse::<f64>().ok()
    });
    let used = proc_kib("/proc/self/status", "VmSize:");
    // Under an address-space limit, each worker thread's allocator arena and the GEMM's
    // thread-local packing buffers reserve address space too: measured ~1 GiB per thread
    // (a P = 1500 Cholesky on 2 threads aborted inside the GEMM with 2 GiB of headroom, ran
    // with 2.5 GiB).
    let reserve = (1u64 << 30) as f64 * rayon::current_num_threads().max(1) as f64;
    let by_limit = match (limit, used) {
        (Some(l), Some(u)) => Some((l - u - reserve).max(0.0)),
        _ => None,
    };
    match (system, by_limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Refuses, before any allocation, a computation whose dense buffers need `bytes` (an estimate of
/// its peak) when that exceeds the available memory, naming the argument `name` to change
/// (`hint`: how) and `what` is being allocated. Sizes beyond `isize::MAX` are always refused.
pub fn memory(name: &'static str, what: &str, bytes: f64, hint: &str) -> Result<()> {
    let impossible = !(bytes.is_finite() && bytes < isize::MAX as f64);
    let available = available_memory();
    if impossible || available.is_some_and(|a| bytes > a) {
        return Err(AkError::OutOfMemory {
            name,
            what: what.to_string(),
            needed: human(bytes),
            available: available.map_or("less".into(), human),
            hint: hint.to_string(),
        });
    }
    Ok(())
}

/// [`memory`] for `count` dense `rows x cols` float64 matrices.
pub fn dense_memory(name: &'static str, what: &str, count: f64, rows: usize, cols: usize, hint: &str) -> Result<()> {
    memory(name, what, count * 8.0 * rows as f64 * cols as f64, hint)
}
