//! Bindings of `ak_core::kernel_renormalization` (see `adaptive_kernels.KernelRenormalization`).
use crate::{callback_failure, make_mlp, run, slice, threads, to_pyerr, view, Failure};
use ak_core::control::Control;
use ak_core::theories::kernel_renormalization::{solve_path, Options, Point, Problem, Solver};
use ak_core::kernels::net::Rows;
use ak_core::threads::with_threads;
use numpy::{IntoPyArray, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Saddle points along a path of `(widths, temperature)` points, each warm-started from the
/// previous one. Returns one dict per point: `Q`, `converged`, `n_iter`, `n_eval`, `residual`,
/// `residual_history`, `action`, `gradient`, `solver`, `jitter`.
#[pyfunction]
#[pyo3(signature = (x, y, *, depth, activation, derivative, sigma_w, sigma_b, method, quadrature_order,
    widths, temperatures, q0=None, tol=1e-10, max_iter=200, solver="auto", n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn kr_solve<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    depth: usize,
    activation: Bound<'py, PyAny>,
    derivative: Option<Py<PyAny>>,
    sigma_w: f64,
    sigma_b: f64,
    method: &str,
    quadrature_order: usize,
    widths: Vec<Vec<f64>>,
    temperatures: Vec<f64>,
    q0: Option<Vec<f64>>,
    tol: f64,
    max_iter: usize,
    solver: &str,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let (net, slot) = make_mlp(
        py,
        depth,
        activation,
        derivative,
        sigma_w,
        sigma_b,
        method,
        quadrature_order,
    )?;
    let solver = Solver::from_name(solver).map_err(|e| to_pyerr(py, e.into()))?;
    if widths.len() != temperatures.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "widths: need one entry per temperature",
        ));
    }
    let points: Vec<Point> = widths
        .into_iter()
        .zip(temperatures)
        .map(|(w, t)| Point {
            widths: w,
            temperature: t,
        })
        .collect();
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let nt = threads(n_threads);
    let opts = Options {
        tol,
        max_iter,
        solver,
    };
    let sols = run(py, progress, |ctl: &Control| {
        let prob = Problem::new(&net, Rows::new("X", xs, p, d)?, yv, nt)?;
        solve_path(&prob, &points, q0.as_deref(), &opts, nt, ctl)
            .map_err(|e| callback_failure(e, &slot))
    })?;
    sols.into_iter()
        .map(|s| {
            let dct = PyDict::new(py);
            dct.set_item("Q", s.q.into_pyarray(py))?;
            dct.set_item("converged", s.report.converged)?;
            dct.set_item("n_iter", s.report.n_iter)?;
            dct.set_item("n_eval", s.report.n_eval)?;
            dct.set_item("residual", s.report.residual)?;
            dct.set_item("residual_history", s.report.residual_history.into_pyarray(py))?;
            dct.set_item("action", s.action)?;
            dct.set_item("gradient", s.gradient.into_pyarray(py))?;
            dct.set_item("solver", s.report.solver)?;
            dct.set_item("jitter", s.jitter)?;
            Ok(dct)
        })
        .collect()
}

/// The action `S(Q)` and its gradient with the Cholesky evaluator (for tests and users who
/// want to scan the landscape).
#[pyfunction]
#[pyo3(signature = (x, y, q, *, depth, activation, derivative, sigma_w, sigma_b, method, quadrature_order,
    widths, temperature, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn kr_action<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    q: Vec<f64>,
    depth: usize,
    activation: Bound<'py, PyAny>,
    derivative: Option<Py<PyAny>>,
    sigma_w: f64,
    sigma_b: f64,
    method: &str,
    quadrature_order: usize,
    widths: Vec<f64>,
    temperature: f64,
    n_threads: Option<usize>,
) -> PyResult<(f64, Bound<'py, numpy::PyArray1<f64>>)> {
    let (net, slot) = make_mlp(
        py,
        depth,
        activation,
        derivative,
        sigma_w,
        sigma_b,
        method,
        quadrature_order,
    )?;
    let (p, dim) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let nt = threads(n_threads);
    let (s, g) = run(py, None, |ctl: &Control| {
        let prob = Problem::new(&net, Rows::new("X", xs, p, dim)?, yv, nt)?;
        if q.len() != depth || q.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(Failure::from(ak_core::AkError::InvalidArgument {
                name: "Q",
                msg: format!("needs {depth} finite values > 0, got {q:?}"),
            }));
        }
        if widths.len() != depth || widths.iter().any(|w| !(*w > 0.0)) {
            return Err(Failure::from(ak_core::AkError::InvalidArgument {
                name: "width",
                msg: format!("needs {depth} widths > 0, got {widths:?}"),
            }));
        }
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(Failure::from(ak_core::AkError::InvalidArgument {
                name: "temperature",
                msg: format!("must be finite and > 0, got {temperature}"),
            }));
        }
        with_threads(nt, |par| {
            prob.action_and_gradient(&widths, temperature, &q, par, ctl)
        })
        .map(|(s, g, _)| (s, g))
        .map_err(|e| callback_failure(e, &slot))
    })?;
    Ok((s, g.into_pyarray(py)))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kr_solve, m)?)?;
    m.add_function(wrap_pyfunction!(kr_action, m)?)?;
    Ok(())
}
