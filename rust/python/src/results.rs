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
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        py: Python<'_>,
        converged: bool,
        n_iter: usize,
        n_eval: Option<usize>,
        residual: f64,
        residual_history: Vec<f64>,
        stages: Vec<f64>,
        solver: &str,
    ) -> PyResult<Py<SolveReport>> {
        Py::new(
            py,
            SolveReport {
                converged,
                n_iter,
                n_eval,
                residual,
                residual_history: residual_history.into_pyarray(py).unbind(),
                stages: stages.into_pyarray(py).unbind(),
                solver: solver.to_string(),
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
