//! `adaptive_kernels._core.multi_scale` (see `adaptive_kernels.MultiScaleAdaptive`).
use crate::convert::{
    defaults_dict, factor_and_solve, mat_to_numpy, square_to_numpy, view, NetArg, Options,
};
use crate::errors::to_pyerr;
use crate::results::SolveReport;
use crate::runtime::{run_interruptible, threads};
use ak_core::control::Control;
use ak_core::faer::Mat;
use ak_core::theories::multi_scale::{self as ms, solve_path, Order, Point, Problem};
use ak_core::threads::with_threads;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The solution at one point (NNGP units; see the core module docs): `scale` (the kernel
/// scale `U = Q^L`; `Q = u / c` for one hidden layer), `layer_scale` (`Q`), `minima` (every
/// minimum `(Q, S)` of the action found; deep nets),
/// `action`, `curvature` (`S''(Q)`), `kernel`, `dual` (`G^{-1} y`), `dual2` (`G^{-2} y`),
/// `discrepancy`, `train_mean`, `train_var`, `weight_covariance` (d x d), `weight_eigenvalues`
/// (descending), `weight_overlap`, `rank_one`, `report`, and the GP predictor on `kernel`:
/// `factor` (`U = L^T` of `kernel + T I`), `factor_jitter`, `dual_coef`.
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.multi_scale")]
struct Solution {
    scale: f64,
    layer_scale: f64,
    minima: Vec<(f64, f64)>,
    action: f64,
    curvature: f64,
    kernel: Py<PyArray2<f64>>,
    dual: Py<PyArray2<f64>>,
    dual2: Py<PyArray2<f64>>,
    discrepancy: Py<PyArray2<f64>>,
    train_mean: Py<PyArray2<f64>>,
    train_var: Py<PyArray2<f64>>,
    weight_covariance: Py<PyArray2<f64>>,
    weight_eigenvalues: Py<PyArray1<f64>>,
    weight_overlap: f64,
    rank_one: f64,
    report: Py<SolveReport>,
    factor: Py<PyArray2<f64>>,
    factor_jitter: f64,
    dual_coef: Py<PyArray2<f64>>,
}

/// The core's default options.
#[pyfunction]
fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = ms::Options::default();
    defaults_dict(
        py,
        &[
            ("order", d.order.name().into_pyobject(py)?.into_any()),
            ("tol", d.tol.into_pyobject(py)?.into_any()),
            ("max_iter", d.max_iter.into_pyobject(py)?.into_any()),
        ],
    )
}

/// The order a fit solves: `order` ("auto", "corrected" or "tree") resolved for the route,
/// `sampled` (the sampled tree level) or the closed form; "auto" is the core's rule.
#[pyfunction]
fn resolve_order(py: Python<'_>, order: &str, sampled: bool) -> PyResult<&'static str> {
    let o = Order::from_name(order).map_err(|e| to_pyerr(py, e.into()))?;
    Ok(o.resolve(sampled).name())
}

fn options_of(py: Python<'_>, opts: Option<Bound<'_, PyDict>>) -> PyResult<ms::Options> {
    let o = Options::new(opts)?;
    let d = ms::Options::default();
    let order: String = o.get("order", d.order.name().to_string())?;
    let out = ms::Options {
        order: Order::from_name(&order).map_err(|e| to_pyerr(py, e.into()))?,
        tol: o.get("tol", d.tol)?,
        max_iter: o.get("max_iter", d.max_iter)?,
    };
    o.finish()?;
    Ok(out)
}

/// Solutions along a path of `(width, temperature, chi)` points, each warm-started from the
/// previous scale (the first from `q0`, default the NNGP's 1), and whether a Ctrl-C stopped
/// the path early.
#[pyfunction]
#[pyo3(signature = (x, y, net, *, widths, temperatures, chis, q0=None, options=None, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn solve<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    widths: Vec<f64>,
    temperatures: Vec<f64>,
    chis: Vec<f64>,
    q0: Option<f64>,
    options: Option<Bound<'py, PyDict>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Vec<Solution>, bool)> {
    let arg = NetArg::new(&net)?;
    let opts = options_of(py, options)?;
    if widths.len() != temperatures.len() || widths.len() != chis.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "widths: need one entry per temperature and chi",
        ));
    }
    let points: Vec<Point> = (0..widths.len())
        .map(|i| Point {
            width: widths[i],
            temperature: temperatures[i],
            chi: chis[i],
        })
        .collect();
    let xv = view("X", &x)?;
    let yv = view("y", &y)?;
    let nt = threads(n_threads);
    let (out, interrupted) = run_interruptible(py, progress, |ctl: &Control| {
        let prob = with_threads(nt, |par| Problem::new(&arg.net, xv, yv, par))
            .map_err(|e| arg.failure(e))?;
        let path =
            solve_path(&prob, &arg.net, &points, &opts, q0, nt, ctl).map_err(|e| arg.failure(e))?;
        let mut sols = Vec::with_capacity(path.solutions.len());
        for (s, pt) in path.solutions.into_iter().zip(&points) {
            let (u, jit, dual) = with_threads(nt, |par| {
                factor_and_solve(s.kernel.as_ref(), pt.temperature, yv, par)
            })
            .map_err(|e| arg.failure(e))?;
            sols.push((s, u, jit, dual));
        }
        Ok((sols, path.interrupted))
    })?;
    let (sols, path_interrupted) = out;
    let p = x.shape()[0];
    let vec1 = |v: Vec<f64>| v.into_pyarray(py).unbind();
    let sols = sols
        .into_iter()
        .map(
            |(s, u, jit, dual): (ms::Solution, Vec<f64>, f64, Mat<f64>)| {
                Ok(Solution {
                    scale: s.scale,
                    layer_scale: s.layer_scale,
                    minima: s.minima,
                    action: s.action,
                    curvature: s.curvature,
                    kernel: mat_to_numpy(py, s.kernel.as_ref()).unbind(),
                    dual: mat_to_numpy(py, s.dual.as_ref()).unbind(),
                    dual2: mat_to_numpy(py, s.dual2.as_ref()).unbind(),
                    discrepancy: mat_to_numpy(py, s.discrepancy.as_ref()).unbind(),
                    train_mean: mat_to_numpy(py, s.train_mean.as_ref()).unbind(),
                    train_var: mat_to_numpy(py, s.train_var.as_ref()).unbind(),
                    weight_covariance: mat_to_numpy(py, s.weight_covariance.as_ref()).unbind(),
                    weight_eigenvalues: vec1(s.weight_eigenvalues),
                    weight_overlap: s.weight_overlap,
                    rank_one: s.rank_one,
                    report: SolveReport::from_core(py, s.report)?,
                    factor: square_to_numpy(py, u, p).unbind(),
                    factor_jitter: jit,
                    dual_coef: mat_to_numpy(py, dual.as_ref()).unbind(),
                })
            },
        )
        .collect::<PyResult<Vec<_>>>()?;
    Ok((sols, interrupted || path_interrupted))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Solution>()?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_order, m)?)?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    Ok(())
}
