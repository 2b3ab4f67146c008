//! Typed results shared by the solver bindings: the `SolveReport` every theory returns.
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

/// How a solve went (the same fields for every solver; read by
/// `adaptive_kernels._results.SolveReport.from_core`).
#[pyclass(frozen, get_all, module = "adaptive_kernels._core")]
pub(crate) struct SolveReport {
    pub converged: bool,
    pub n_iter: usize,
    pub n_eval: Option<usize>,
    pub residual: f64,
    pub residual_history: Py<PyArray1<f64>>,
    pub stages: Py<PyArray1<f64>>,
    pub solver: String,
}

impl SolveReport {
    /// The core's report as a Python object.
    pub(crate) fn from_core(py: Python<'_>, r: ak_core::solve::SolveReport) -> PyResult<Py<SolveReport>> {
        Py::new(
            py,
            SolveReport {
                converged: r.converged,
                n_iter: r.n_iter,
                n_eval: Some(r.n_eval),
                residual: r.residual,
                residual_history: r.residual_history.into_pyarray(py).unbind(),
                stages: r.stages.into_pyarray(py).unbind(),
                solver: r.solver.to_string(),
            },
        )
    }
}

#[pymethods]
impl SolveReport {
    fn __repr__(&self) -> String {
        format!(
            "SolveReport(solver={:?}, converged={}, n_iter={}, residual={:.3e})",
            self.solver, self.converged, self.n_iter, self.residual
        )
    }
}
