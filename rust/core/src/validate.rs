//! Argument checks shared by the solvers, each naming the Python argument in its error (the
//! messages are part of the interface: Python tests match on them). Checks of one struct's
//! fields stay with the struct (`Mlp::validate`, `SamplerConfig::validate`, ...).
#![allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x > 0.0)` also rejects NaN
use crate::error::{invalid, shape, Result};
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
    if !(t.is_finite() && t > 0.0) {
        return Err(invalid(
            "temperature",
            format!("must be finite and > 0, got {t}"),
        ));
    }
    Ok(())
}

/// `temperature`: finite and > 0.
pub fn temperature(t: f64) -> Result<()> {
    if !(t.is_finite() && t > 0.0) {
        return Err(invalid(
            "temperature",
            format!("must be finite and > 0, got {t}"),
        ));
    }
    Ok(())
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
