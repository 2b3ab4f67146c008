//! `adaptive_kernels._core.dmft` (see `adaptive_kernels.GradientFlowFixedPoint`): the
//! weight-decay fixed point of mean-field gradient flow, by particles, and its predictors.
use crate::convert::{defaults_dict, mat_to_numpy, mats_to_list, view, NetArg, Options};
use crate::errors::Failure;
use crate::results::SolveReport;
use crate::runtime::{run, run_interruptible, threads};
use ak_core::control::Control;
use ak_core::faer::Mat;
use ak_core::theories::dmft::{self, Form, InputMap};
use ak_core::threads::with_threads;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// One fixed point: `gamma`, `weight_decay`, `theta` (particles, flat), `feature_kernels`
/// (list over layers), `gradient_kernels` (list over outputs of lists over layers), `ntk` (list
/// over outputs), `train_output`, `dual_readout`, `dual_ntk` (None unless homogeneous), `dead`,
/// `time`, `n_steps`, `dt`, `loss_curve` ((n, 3): step, 1/2 |f - y|^2, J), `report`.
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.dmft")]
struct FixedPoint {
    gamma: f64,
    weight_decay: f64,
    theta: Py<PyArray1<f64>>,
    feature_kernels: Py<PyList>,
    gradient_kernels: Py<PyList>,
    ntk: Py<PyList>,
    train_output: Py<PyArray2<f64>>,
    dual_readout: Py<PyArray2<f64>>,
    dual_ntk: Option<Py<PyArray2<f64>>>,
    dead: bool,
    time: f64,
    n_steps: usize,
    dt: f64,
    loss_curve: Py<PyArray2<f64>>,
    report: Py<SolveReport>,
}

/// The core's default options (`n_particles`, `seed`, `dt`, `adaptive`, `max_steps`, `stall_steps`,
/// `switch_tol`, `tol`, `polish_iter`, `record_every`).
#[pyfunction]
fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = dmft::Options::default();
    defaults_dict(
        py,
        &[
            ("n_particles", d.n_particles.into_pyobject(py)?.into_any()),
            ("seed", d.seed.into_pyobject(py)?.into_any()),
            ("dt", d.dt.into_pyobject(py)?.into_any()),
            ("adaptive", pyo3::types::PyBool::new(py, d.adaptive).to_owned().into_any()),
            ("max_steps", d.max_steps.into_pyobject(py)?.into_any()),
            ("stall_steps", d.stall_steps.into_pyobject(py)?.into_any()),
            ("switch_tol", d.switch_tol.into_pyobject(py)?.into_any()),
            ("tol", d.tol.into_pyobject(py)?.into_any()),
            ("polish_iter", d.polish_iter.into_pyobject(py)?.into_any()),
            ("record_every", d.record_every.into_pyobject(py)?.into_any()),
        ],
    )
}

fn read_options(opts: Option<Bound<'_, PyDict>>) -> PyResult<dmft::Options> {
    let o = Options::new(opts)?;
    let d = dmft::Options::default();
    let out = dmft::Options {
        n_particles: o.get("n_particles", d.n_particles)?,
        seed: o.get("seed", d.seed)?,
        dt: o.get("dt", d.dt)?,
        adaptive: o.get("adaptive", d.adaptive)?,
        max_steps: o.get("max_steps", d.max_steps)?,
        stall_steps: o.get("stall_steps", d.stall_steps)?,
        switch_tol: o.get("switch_tol", d.switch_tol)?,
        tol: o.get("tol", d.tol)?,
        polish_iter: o.get("polish_iter", d.polish_iter)?,
        record_every: o.get("record_every", d.record_every)?,
    };
    o.finish()?;
    Ok(out)
}

fn curve_array<'py>(py: Python<'py>, c: &[(usize, f64, f64)]) -> Bound<'py, PyArray2<f64>> {
    Array2::from_shape_fn((c.len(), 3), |(i, j)| match j {
        0 => c[i].0 as f64,
        1 => c[i].1,
        _ => c[i].2,
    })
    .into_pyarray(py)
}

/// Fixed points along `points` (pairs (gamma, weight_decay)), warm-started along the list;
/// `init` (flat particle parameters) starts the first instead of the seeded draw.
/// Returns `(input_map, fixed_points, interrupted)`: `input_map` is `V` (d, r) or None (see the
/// core docs); `interrupted`: a Ctrl-C stopped the path early, `fixed_points` are those solved
/// before it (none solved: `KeyboardInterrupt`).
#[pyfunction]
#[pyo3(signature = (x, y, net, *, points, init=None, options=None, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn solve<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    points: Vec<(f64, f64)>,
    init: Option<PyReadonlyArray1<'py, f64>>,
    options: Option<Bound<'py, PyDict>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Option<Bound<'py, PyArray2<f64>>>, Vec<FixedPoint>, bool)> {
    let arg = NetArg::new(&net)?;
    let opts = read_options(options)?;
    let (xv, yv) = (view("X", &x)?, view("y", &y)?);
    let init = match &init {
        Some(t) => Some(crate::convert::slice1("init", t)?),
        None => None,
    };
    let nt = threads(n_threads);
    let ((map, path), interrupted) = run_interruptible(py, progress, |ctl: &Control| {
        with_threads(nt, |par| dmft::solve_path(&arg.net, xv, yv, &points, init, &opts, par, ctl))
            .map_err(|e| arg.failure(e))
    })?;
    let fps = path
        .solutions
        .into_iter()
        .map(|f| {
            let grads = PyList::new(py, f.gradient_kernels.iter().map(|g| mats_to_list(py, g)).collect::<PyResult<Vec<_>>>()?)?;
            Ok(FixedPoint {
                gamma: f.gamma,
                weight_decay: f.weight_decay,
                theta: f.theta.into_pyarray(py).unbind(),
                feature_kernels: mats_to_list(py, &f.feature_kernels)?.unbind(),
                gradient_kernels: grads.unbind(),
                ntk: mats_to_list(py, &f.ntk)?.unbind(),
                train_output: mat_to_numpy(py, f.train_output.as_ref()).unbind(),
                dual_readout: mat_to_numpy(py, f.dual_readout.as_ref()).unbind(),
                dual_ntk: f.dual_ntk.as_ref().map(|d| mat_to_numpy(py, d.as_ref()).unbind()),
                dead: f.dead,
                time: f.time,
                n_steps: f.n_steps,
                dt: f.dt,
                loss_curve: curve_array(py, &f.loss_curve).unbind(),
                report: SolveReport::from_core(py, f.report)?,
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((map.v.as_ref().map(|v| mat_to_numpy(py, v.as_ref())), fps, interrupted || path.interrupted))
}

/// Predictions (Q, C) at `x_test` of a fitted fixed point (`theta`, `dual` of `form`, the
/// solve's `input_map`; `x`: the training inputs). Nothing is factored here.
#[pyfunction]
#[pyo3(signature = (x, x_test, net, *, theta, dual, input_map, gamma, n_particles, form, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn predict<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    x_test: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    theta: PyReadonlyArray1<'py, f64>,
    dual: PyReadonlyArray2<'py, f64>,
    input_map: Option<PyReadonlyArray2<'py, f64>>,
    gamma: f64,
    n_particles: usize,
    form: &str,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let arg = NetArg::new(&net)?;
    let form = Form::parse(form).map_err(|e| crate::errors::to_pyerr(py, e.into()))?;
    let (xv, xt, dv) = (view("X", &x)?, view("X", &x_test)?, view("dual", &dual)?);
    let th = crate::convert::slice1("theta", &theta)?;
    let map = InputMap { v: match &input_map { Some(v) => Some(view("input_map", v)?.to_owned()), None => None } };
    let nt = threads(n_threads);
    let out: Mat<f64> = run(py, None, |_| {
        with_threads(nt, |par| dmft::predict(&arg.net, &map, xv, xt, th, gamma, n_particles, dv, form, par))
            .map_err(Failure::from)
    })?;
    Ok(mat_to_numpy(py, out.as_ref()))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<FixedPoint>()?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(predict, m)?)?;
    Ok(())
}
