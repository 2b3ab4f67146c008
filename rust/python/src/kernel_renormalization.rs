//! `adaptive_kernels._core.kernel_renormalization` (see `adaptive_kernels.KernelRenormalization`).
use crate::convert::{
    defaults_dict, factor_and_solve, mat_to_numpy, slice, square_to_numpy, view, NetArg, Options,
};
use crate::errors::to_pyerr;
use crate::results::SolveReport;
use crate::runtime::{run, run_interruptible, threads};
use ak_core::control::Control;
use ak_core::faer::{Mat, MatRef};
use ak_core::theories::kernel_renormalization::{self as kr, solve_path_then, Point, Problem, Solver};
use ak_core::kernels::lazy::lazy_kernels_scaled;
use ak_core::kernels::net::Rows;
use ak_core::threads::with_threads;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// One saddle point `Q*` and the fitted predictor there: `kernel` `K^L(Q*)` on the training
/// points, `factor` (`U = L^T` of `K^L + T I`), `factor_jitter`, `dual_coef`
/// (`(K^L + T I)^{-1} Y`).
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.kernel_renormalization")]
struct Saddle {
    q: Py<PyArray1<f64>>,
    action: f64,
    gradient: Py<PyArray1<f64>>,
    jitter: f64,
    report: Py<SolveReport>,
    kernel: Py<PyArray2<f64>>,
    factor: Py<PyArray2<f64>>,
    factor_jitter: f64,
    dual_coef: Py<PyArray2<f64>>,
}

/// The core's default options (`tol`, `max_iter`, `solver`).
#[pyfunction]
fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = kr::Options::default();
    defaults_dict(
        py,
        &[
            ("tol", d.tol.into_pyobject(py)?.into_any()),
            ("max_iter", d.max_iter.into_pyobject(py)?.into_any()),
            ("solver", d.solver.name().into_pyobject(py)?.into_any()),
        ],
    )
}

fn options_of(py: Python<'_>, opts: Option<Bound<'_, PyDict>>) -> PyResult<kr::Options> {
    let o = Options::new(opts)?;
    let d = kr::Options::default();
    let solver: String = o.get("solver", d.solver.name().to_string())?;
    let out = kr::Options {
        tol: o.get("tol", d.tol)?,
        max_iter: o.get("max_iter", d.max_iter)?,
        solver: Solver::from_name(&solver).map_err(|e| to_pyerr(py, e.into()))?,
    };
    o.finish()?;
    Ok(out)
}

/// Saddle points along a path of `(widths, temperature)` points, each warm-started from the
/// previous one (`q0` starts the first; default all ones), each with its fitted predictor, and
/// whether a Ctrl-C stopped the path early (then the points solved before it; none solved:
/// `KeyboardInterrupt`). Progress counts action evaluations.
#[pyfunction]
#[pyo3(signature = (x, y, net, *, widths, temperatures, q0=None, options=None, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn solve<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    widths: Vec<Vec<f64>>,
    temperatures: Vec<f64>,
    q0: Option<Vec<f64>>,
    options: Option<Bound<'py, PyDict>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Vec<Saddle>, bool)> {
    let arg = NetArg::new(&net)?;
    let opts = options_of(py, options)?;
    if widths.len() != temperatures.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "widths: need one entry per temperature",
        ));
    }
    let points: Vec<Point> = widths
        .into_iter()
        .zip(temperatures)
        .map(|(w, t)| Point { widths: w, temperature: t })
        .collect();
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let nt = threads(n_threads);
    let (path, interrupted) = run_interruptible(py, progress, |ctl: &Control| {
        let prob = Problem::new(&arg.net, Rows::new("X", xs, p, d)?, yv, nt, ctl)
            .map_err(|e| arg.failure(e))?;
        // each point's predictor is built right after it is solved, so that an interrupt keeps
        // every finished point
        let finish = |pt: &Point, s: &kr::Saddle| {
            let mut k = vec![0.0; p * p];
            lazy_kernels_scaled(&arg.net, Some(&s.q), Rows::new("X", xs, p, d)?, None, &mut k, None, nt, ctl)?;
            let kv = MatRef::from_column_major_slice(&k, p, p);
            let (u, jit, dual) = with_threads(nt, |par| factor_and_solve(kv, pt.temperature, yv, par))?;
            Ok((k, u, jit, dual))
        };
        if points.len() > 1 {
            return solve_path_then(&prob, &points, q0.as_deref(), &opts, nt, ctl, finish)
                .map_err(|e| arg.failure(e));
        }
        // one point (fit): the problem's M^1 is freed before the predictor's K^L and factor
        // are built, so the peak stays at two P x P buffers
        let path = kr::solve_path(&prob, &points, q0.as_deref(), &opts, nt, ctl).map_err(|e| arg.failure(e))?;
        drop(prob);
        let mut solutions = Vec::with_capacity(path.solutions.len());
        for s in path.solutions {
            let extra = ctl.quietly(|| finish(&points[0], &s))?;
            solutions.push((s, extra));
        }
        Ok(ak_core::solve::Path { solutions, interrupted: path.interrupted })
    })?;
    let sols = path
        .solutions
        .into_iter()
        .map(|(s, (k, u, jit, dual)): (kr::Saddle, (Vec<f64>, Vec<f64>, f64, Mat<f64>))| {
            Ok(Saddle {
                q: s.q.into_pyarray(py).unbind(),
                action: s.action,
                gradient: s.gradient.into_pyarray(py).unbind(),
                jitter: s.jitter,
                report: SolveReport::from_core(py, s.report)?,
                kernel: square_to_numpy(py, k, p).unbind(),
                factor: square_to_numpy(py, u, p).unbind(),
                factor_jitter: jit,
                dual_coef: mat_to_numpy(py, dual.as_ref()).unbind(),
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((sols, interrupted || path.interrupted))
}

/// The action `S(Q)` and its gradient with the Cholesky evaluator (to scan the landscape).
#[pyfunction]
#[pyo3(signature = (x, y, q, net, *, widths, temperature, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn action<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    q: Vec<f64>,
    net: Bound<'py, PyAny>,
    widths: Vec<f64>,
    temperature: f64,
    n_threads: Option<usize>,
) -> PyResult<(f64, Bound<'py, PyArray1<f64>>)> {
    let arg = NetArg::new(&net)?;
    let (p, dim) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let nt = threads(n_threads);
    let (s, g) = run(py, None, |ctl: &Control| {
        let prob = Problem::new(&arg.net, Rows::new("X", xs, p, dim)?, yv, nt, ctl)?;
        prob.action(&widths, temperature, &q, nt, ctl).map_err(|e| arg.failure(e))
    })?;
    Ok((s, g.into_pyarray(py)))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Saddle>()?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(action, m)?)?;
    Ok(())
}
