//! Bindings of `ak_core::exact_linear`: the exact finite-width posterior of a one-hidden-layer
//! linear network (see `adaptive_kernels.exact_linear_posterior`).
use crate::{mat_to_numpy, run, threads, view};
use ak_core::finite::exact_linear::{exact_linear_posterior as core_exact, ExactLinearProblem};
use ak_core::finite::network::Parameterization;
use numpy::PyReadonlyArray2;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Exact posterior (Gamma scale mixture of GPs); returns a dict of arrays and scalars:
/// `train_mean`, `train_var` (P, C), `test_mean`, `test_var` (Q, C) or None,
/// `kernel_scale_mean`, `kernel_scale_std`, `log_evidence`, `prior_scale`, `kappa`,
/// `log_u_mode`, `log_u_sd`, `n_grid`.
#[pyfunction]
#[pyo3(signature = (x, y, x_test, *, sigma_w, width, temperature, parameterization, gamma, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn exact_linear_posterior<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    x_test: Option<PyReadonlyArray2<'py, f64>>,
    sigma_w: f64,
    width: usize,
    temperature: f64,
    parameterization: &str,
    gamma: f64,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let param = match parameterization {
        "standard" => Parameterization::Standard,
        "mean_field" => Parameterization::MeanField { gamma },
        other => {
            return Err(PyValueError::new_err(format!(
                "parameterization: expected 'standard' or 'mean_field', got {other:?}"
            )))
        }
    };
    let prob = ExactLinearProblem {
        x: view("X", &x)?,
        y: view("y", &y)?,
        x_test: match &x_test {
            Some(t) => Some(view("X_test", t)?),
            None => None,
        },
        sigma_w,
        width,
        temperature,
        param,
    };
    let nt = threads(n_threads);
    let res = run(py, progress, |ctl| Ok(core_exact(&prob, nt, ctl)?))?;
    let d = PyDict::new(py);
    d.set_item("train_mean", mat_to_numpy(py, res.train_mean.as_ref()))?;
    d.set_item("train_var", mat_to_numpy(py, res.train_var.as_ref()))?;
    d.set_item(
        "test_mean",
        res.test_mean.as_ref().map(|m| mat_to_numpy(py, m.as_ref())),
    )?;
    d.set_item(
        "test_var",
        res.test_var.as_ref().map(|m| mat_to_numpy(py, m.as_ref())),
    )?;
    d.set_item("kernel_scale_mean", res.kernel_scale_mean)?;
    d.set_item("kernel_scale_std", res.kernel_scale_std)?;
    d.set_item("log_evidence", res.log_evidence)?;
    d.set_item("prior_scale", res.prior_scale)?;
    d.set_item("kappa", res.kappa)?;
    d.set_item("log_u_mode", res.log_u_mode)?;
    d.set_item("log_u_sd", res.log_u_sd)?;
    d.set_item("n_grid", res.n_grid)?;
    Ok(d)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(exact_linear_posterior, m)?)?;
    Ok(())
}
