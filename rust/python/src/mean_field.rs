//! `adaptive_kernels._core.mean_field` (see `adaptive_kernels.BayesianMeanField`): the deep
//! linear saddle point (closed form, L-BFGS) and the concave L = 1 solver; nonlinear networks'
//! sampled solver is `_core.tilted` (shared with the multi-scale theory).
use crate::convert::{
    defaults_dict, mat_to_numpy, mats_to_list, readout_state, slice, slice1, square_to_numpy, view,
    views, NetArg, Options,
};
use crate::errors::{to_pyerr, Failure};
use crate::results::SolveReport;
use crate::runtime::{run, run_interruptible, threads};
use ak_core::theories::mean_field::linear::{self, Point, Problem, Solver};
use ak_core::control::Control;
use ak_core::faer::{Mat, MatRef};
use ak_core::kernels::net::Rows;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// One deep-linear saddle point: `kernels`, `conjugates` (lists of (P, P)), `action`, `kappa`
/// (closed form, else None), `stationary` ((k, 2): kappa and F1 at every stationary point of the
/// closed form), `rank` (of `K^0`), `report`, the readout predictor (`factor`,
/// `factor_jitter`, `dual_coef`) and `mean_predictor`: the fitted mean's state (a dict of
/// arrays, for [`predict`]).
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.mean_field")]
struct LinearSolution {
    kernels: Py<PyList>,
    conjugates: Py<PyList>,
    action: f64,
    kappa: Option<f64>,
    stationary: Py<PyArray2<f64>>,
    rank: usize,
    report: Py<SolveReport>,
    factor: Py<PyArray2<f64>>,
    factor_jitter: f64,
    dual_coef: Py<PyArray2<f64>>,
    mean_predictor: Py<PyDict>,
}

/// The core's default options of the deep-linear solver (`tol`, `max_iter`, `solver`, `memory`).
#[pyfunction]
fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = linear::Options::default();
    defaults_dict(
        py,
        &[
        ("tol", d.tol.into_pyobject(py)?.into_any()),
        ("max_iter", d.max_iter.into_pyobject(py)?.into_any()),
            ("solver", d.solver.name().into_pyobject(py)?.into_any()),
            ("memory", d.memory.into_pyobject(py)?.into_any()),
        ],
    )
}

fn linear_options(py: Python<'_>, opts: Option<Bound<'_, PyDict>>) -> PyResult<linear::Options> {
    let o = Options::new(opts)?;
    let d = linear::Options::default();
    let solver: String = o.get("solver", d.solver.name().to_string())?;
    let out = linear::Options {
        tol: o.get("tol", d.tol)?,
        max_iter: o.get("max_iter", d.max_iter)?,
        solver: Solver::from_name(&solver).map_err(|e| to_pyerr(py, e.into()))?,
        memory: o.get("memory", d.memory)?,
    };
    o.finish()?;
    Ok(out)
}

fn stationary_array<'py>(py: Python<'py>, st: &[(f64, f64)]) -> Bound<'py, PyArray2<f64>> {
    Array2::from_shape_fn((st.len(), 2), |(i, j)| if j == 0 { st[i].0 } else { st[i].1 })
        .into_pyarray(py)
}

/// Deep-linear saddle points along a path of `(gamma, temperature)` points; L-BFGS solves are
/// warm-started from the previous point (`init`, full kernels, starts the first; default NNGP).
/// Returns the solutions and whether a Ctrl-C stopped the path early (then the points solved
/// before it; none solved: `KeyboardInterrupt`).
#[pyfunction]
#[pyo3(signature = (x, y, net, *, gammas, temperatures, init=None, options=None, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn solve<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    gammas: Vec<f64>,
    temperatures: Vec<f64>,
    init: Option<Vec<PyReadonlyArray2<'py, f64>>>,
    options: Option<Bound<'py, PyDict>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Vec<LinearSolution>, bool)> {
    let arg = NetArg::new(&net)?;
    let opts = linear_options(py, options)?;
    if gammas.len() != temperatures.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "gammas: need one entry per temperature",
        ));
    }
    let points: Vec<Point> = gammas
        .into_iter()
        .zip(temperatures)
        .map(|(g, t)| Point { gamma: g, temperature: t })
        .collect();
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let init_views = match &init {
        Some(ks) => Some(views("kernels", ks)?),
        None => None,
    };
    let nt = threads(n_threads);
    let ((sols, cut), interrupted) = run_interruptible(py, progress, |ctl: &Control| {
        let prob = Problem::new(&arg.net, Rows::new("X", xs, p, d)?, yv, nt)
            .map_err(|e| arg.failure(e))?;
        let path = prob
            .solve_path(&points, init_views.as_deref(), &opts, nt, ctl)
            .map_err(Failure::from)?;
        let sols = path
            .solutions
            .into_iter()
            .zip(&points)
            .map(|(s, pt)| {
                let st = readout_state(s.kernels.last().unwrap(), pt.temperature, yv, nt)?;
                let kv: Vec<MatRef<'_, f64>> = s.kernels.iter().map(|k| k.as_ref()).collect();
                let pred = prob.mean_predictor(&kv, pt.temperature, nt)?;
                Ok::<_, Failure>((s, st, pred))
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        Ok((sols, path.interrupted))
    })?;
    let sols = sols
        .into_iter()
        .map(|(s, (u, jit, dual), pred)| {
            Ok(LinearSolution {
                kernels: mats_to_list(py, &s.kernels)?.unbind(),
                conjugates: mats_to_list(py, &s.conjugates)?.unbind(),
                action: s.action,
                kappa: s.kappa,
                stationary: stationary_array(py, &s.stationary).unbind(),
                rank: s.rank,
                report: SolveReport::from_core(py, s.report)?,
                factor: square_to_numpy(py, u, p).unbind(),
                factor_jitter: jit,
                dual_coef: mat_to_numpy(py, dual.as_ref()).unbind(),
                mean_predictor: mean_state(py, &pred)?.unbind(),
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((sols, interrupted || cut))
}

fn mean_state<'py>(py: Python<'py>, p: &linear::MeanPredictor) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("sigma_w", p.sigma_w)?;
    d.set_item("sigma_b", p.sigma_b)?;
    d.set_item("weights", mat_to_numpy(py, p.weights.as_ref()))?;
    d.set_item("offset", p.offset.clone().into_pyarray(py))?;
    Ok(d)
}

fn variance_state<'py>(py: Python<'py>, p: &linear::VariancePredictor) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("sigma_w", p.sigma_w)?;
    d.set_item("sigma_b", p.sigma_b)?;
    d.set_item("u", p.u.as_ref().map(|u| mat_to_numpy(py, u.as_ref())))?;
    d.set_item("ones", p.ones.clone().into_pyarray(py))?;
    d.set_item("b", mats_to_list(py, &p.b)?)?;
    d.set_item("lc", mats_to_list(py, &p.lc)?)?;
    d.set_item("w", mats_to_list(py, &p.w)?)?;
    d.set_item("lt", mat_to_numpy(py, p.lt.as_ref()))?;
    Ok(d)
}

fn state_item<'py>(state: &Bound<'py, PyDict>, k: &'static str) -> PyResult<Bound<'py, PyAny>> {
    state.get_item(k)?.ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!("predictor: missing {k:?}"))
    })
}

fn state_mat(k: &'static str, v: Bound<'_, PyAny>) -> PyResult<Mat<f64>> {
    let a: PyReadonlyArray2<'_, f64> = v.extract().map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!("predictor: {k} must be a float64 matrix"))
    })?;
    Ok(view(k, &a)?.to_owned())
}

fn state_vec(k: &'static str, v: Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    let a: PyReadonlyArray1<'_, f64> = v.extract().map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!("predictor: {k} must be a float64 vector"))
    })?;
    Ok(slice1(k, &a)?.to_vec())
}

fn bad_state() -> PyErr {
    pyo3::exceptions::PyValueError::new_err("predictor: inconsistent shapes (not the state of one fit)")
}

fn mean_from_state(state: &Bound<'_, PyDict>) -> PyResult<linear::MeanPredictor> {
    let pred = linear::MeanPredictor {
        sigma_w: state_item(state, "sigma_w")?.extract()?,
        sigma_b: state_item(state, "sigma_b")?.extract()?,
        weights: state_mat("weights", state_item(state, "weights")?)?,
        offset: state_vec("offset", state_item(state, "offset")?)?,
    };
    if pred.offset.len() != pred.weights.ncols() {
        return Err(bad_state());
    }
    Ok(pred)
}

fn variance_from_state(state: &Bound<'_, PyDict>) -> PyResult<linear::VariancePredictor> {
    let mats = |k: &'static str| -> PyResult<Vec<Mat<f64>>> {
        state_item(state, k)?.try_iter()?.map(|v| state_mat(k, v?)).collect()
    };
    let u = state_item(state, "u")?;
    let pred = linear::VariancePredictor {
        sigma_w: state_item(state, "sigma_w")?.extract()?,
        sigma_b: state_item(state, "sigma_b")?.extract()?,
        u: if u.is_none() { None } else { Some(state_mat("u", u)?) },
        ones: state_vec("ones", state_item(state, "ones")?)?,
        b: mats("b")?,
        lc: mats("lc")?,
        w: mats("w")?,
        lt: state_mat("lt", state_item(state, "lt")?)?,
    };
    let r = pred.rank();
    let depth = pred.b.len();
    let square = |m: &Mat<f64>| m.nrows() == r && m.ncols() == r;
    if depth == 0
        || pred.lc.len() != depth
        || pred.w.len() != depth
        || !pred.b.iter().chain(&pred.lc).chain(&pred.w).all(square)
        || pred.ones.len() != r
        || pred.u.as_ref().is_some_and(|u| u.ncols() != r)
    {
        return Err(bad_state());
    }
    Ok(pred)
}

/// The variance state of a fitted deep-linear saddle point (the eigendecomposition of `K^0`
/// and the layer factors; computed once, at the first `predict(return_std=True)`).
#[pyfunction]
#[pyo3(signature = (x, y, kernels, net, *, temperature, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn variance_predictor<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    kernels: Vec<PyReadonlyArray2<'py, f64>>,
    net: Bound<'py, PyAny>,
    temperature: f64,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let arg = NetArg::new(&net)?;
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let kv = views("kernels", &kernels)?;
    let nt = threads(n_threads);
    let pred = run(py, None, |_| {
        let prob = Problem::new(&arg.net, Rows::new("X", xs, p, d)?, yv, nt)
            .map_err(|e| arg.failure(e))?;
        prob.variance_predictor(&kv, temperature, nt).map_err(Failure::from)
    })?;
    variance_state(py, &pred)
}

/// The action `F` and its gradients `dF/dPhi^l` (list of (P, P)) at kernels `Phi^l`.
#[pyfunction]
#[pyo3(signature = (x, y, kernels, net, *, gamma, temperature, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn action<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    kernels: Vec<PyReadonlyArray2<'py, f64>>,
    net: Bound<'py, PyAny>,
    gamma: f64,
    temperature: f64,
    n_threads: Option<usize>,
) -> PyResult<(f64, Bound<'py, PyList>)> {
    let arg = NetArg::new(&net)?;
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let kv = views("kernels", &kernels)?;
    let nt = threads(n_threads);
    let (f, g) = run(py, None, |_| {
        let prob = Problem::new(&arg.net, Rows::new("X", xs, p, d)?, yv, nt)
            .map_err(|e| arg.failure(e))?;
        prob.objective(gamma, temperature, &kv, nt).map_err(Failure::from)
    })?;
    Ok((f, mats_to_list(py, &g)?))
}

/// Predictive mean (Q, C) at `x_test` of a fitted deep-linear saddle point (`mean_state`: the
/// solution's `mean_predictor`; `x`: the training inputs) and, with a `variance_state` (from
/// [`variance_predictor`]), the adapted-kernel GP variance (Q,). Nothing is factored here.
#[pyfunction]
#[pyo3(signature = (mean_state, x, x_test, *, variance_state=None, n_threads=None, progress=None))]
#[allow(clippy::type_complexity)]
fn predict<'py>(
    py: Python<'py>,
    mean_state: Bound<'py, PyDict>,
    x: PyReadonlyArray2<'py, f64>,
    x_test: PyReadonlyArray2<'py, f64>,
    variance_state: Option<Bound<'py, PyDict>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Option<Bound<'py, PyArray1<f64>>>)> {
    let mean_pred = mean_from_state(&mean_state)?;
    let var_pred = variance_state.as_ref().map(variance_from_state).transpose()?;
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let (q, dt) = (x_test.shape()[0], x_test.shape()[1]);
    let xs = slice("X", &x)?;
    let xts = slice("X_test", &x_test)?;
    let nt = threads(n_threads);
    let (mean, var) = run(py, progress, |ctl: &Control| {
        let (xr, xt) = (Rows::new("X", xs, p, d)?, Rows::new("X_test", xts, q, dt)?);
        let mean = mean_pred.predict(xr, xt, nt)?;
        let var = match &var_pred {
            Some(v) => Some(v.variance(xr, xt, nt, ctl)?),
            None => None,
        };
        Ok::<_, Failure>((mean, var))
    })?;
    Ok((mat_to_numpy(py, mean.as_ref()), var.map(|v| v.into_pyarray(py))))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LinearSolution>()?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(action, m)?)?;
    m.add_function(wrap_pyfunction!(predict, m)?)?;
    m.add_function(wrap_pyfunction!(variance_predictor, m)?)?;
    crate::mean_field_concave::register(m)?;
    Ok(())
}
