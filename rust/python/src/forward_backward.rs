//! `adaptive_kernels._core.forward_backward` (see `adaptive_kernels.ForwardBackwardKernels`).
use crate::convert::{
    defaults_dict, factor_and_solve, mat_to_numpy, mats_to_list, square_to_numpy, view, NetArg,
    Options,
};
use crate::errors::to_pyerr;
use crate::results::SolveReport;
use crate::runtime::{run, run_interruptible, threads};
use ak_core::control::Control;
use ak_core::faer::Mat;
use ak_core::theories::forward_backward::{self as fb, solve_path, Method, Point, Problem};
use ak_core::threads::with_threads;
use numpy::{PyArray2, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// The MAP kernels at one point: `kernels` `C^1..C^L`, `conjugates` `Ct^1..Ct^L`,
/// `input_conjugate` `Ct^0`, `report`, and the GP predictor on `C^L`: `factor` (`U = L^T` of
/// `C^L + T I`), `factor_jitter`, `dual_coef` (`(C^L + T I)^{-1} Y`); for nonlinear nets with
/// `method="full"` the Kish fraction of each layer's weights and the number of sample sets
/// drawn (`kish`, `n_draws`; empty and 0 otherwise) and the final sample sets (`draws_z`, whitened
/// S x r per layer, `draws_e` their reference tilt energies; empty otherwise) that
/// `sampled_forward` reweights for test rows.
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.forward_backward")]
struct Solution {
    kernels: Py<PyList>,
    conjugates: Py<PyList>,
    input_conjugate: Py<PyArray2<f64>>,
    report: Py<SolveReport>,
    factor: Py<PyArray2<f64>>,
    factor_jitter: f64,
    dual_coef: Py<PyArray2<f64>>,
    kish: Vec<f64>,
    n_draws: usize,
    draws_z: Py<PyList>,
    draws_e: Vec<Vec<f64>>,
}

/// The core's default options.
#[pyfunction]
fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = fb::Options::default();
    defaults_dict(
        py,
        &[
            ("tol", d.tol.into_pyobject(py)?.into_any()),
            ("max_iter", d.max_iter.into_pyobject(py)?.into_any()),
            ("krylov", d.krylov.into_pyobject(py)?.into_any()),
            ("forcing", d.forcing.into_pyobject(py)?.into_any()),
            ("start", d.start.into_pyobject(py)?.into_any()),
            ("n_anneal", d.n_anneal.into_pyobject(py)?.into_any()),
            ("max_stages", d.max_stages.into_pyobject(py)?.into_any()),
            ("method", d.method.name().into_pyobject(py)?.into_any()),
            ("n_samples", d.n_samples.into_pyobject(py)?.into_any()),
            ("seed", d.seed.into_pyobject(py)?.into_any()),
            ("min_kish", d.min_kish.into_pyobject(py)?.into_any()),
            ("max_refresh", d.max_refresh.into_pyobject(py)?.into_any()),
        ],
    )
}

fn options_of(py: Python<'_>, opts: Option<Bound<'_, PyDict>>) -> PyResult<fb::Options> {
    let o = Options::new(opts)?;
    let d = fb::Options::default();
    let method: String = o.get("method", d.method.name().to_string())?;
    let out = fb::Options {
        tol: o.get("tol", d.tol)?,
        max_iter: o.get("max_iter", d.max_iter)?,
        krylov: o.get("krylov", d.krylov)?,
        forcing: o.get("forcing", d.forcing)?,
        start: o.get("start", d.start)?,
        n_anneal: o.get("n_anneal", d.n_anneal)?,
        max_stages: o.get("max_stages", d.max_stages)?,
        method: Method::from_name(&method).map_err(|e| to_pyerr(py, e.into()))?,
        n_samples: o.get("n_samples", d.n_samples)?,
        seed: o.get("seed", d.seed)?,
        min_kish: o.get("min_kish", d.min_kish)?,
        max_refresh: o.get("max_refresh", d.max_refresh)?,
    };
    o.finish()?;
    Ok(out)
}

/// MAP kernels along a path of `(width, temperature)` points (a point anneals on from the
/// previous one when its width is not larger and the temperature is the same), and whether a
/// Ctrl-C stopped the path early. Progress counts converged annealing stages.
#[pyfunction]
#[pyo3(signature = (x, y, net, *, widths, temperatures, options=None, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn solve<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    widths: Vec<f64>,
    temperatures: Vec<f64>,
    options: Option<Bound<'py, PyDict>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Vec<Solution>, bool)> {
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
        .map(|(w, t)| Point {
            width: w,
            temperature: t,
        })
        .collect();
    let xv = view("X", &x)?;
    let yv = view("y", &y)?;
    let nt = threads(n_threads);
    let (out, interrupted) = run_interruptible(py, progress, |ctl: &Control| {
        let prob = with_threads(nt, |par| Problem::new(&arg.net, xv, yv, par))
            .map_err(|e| arg.failure(e))?;
        let path = solve_path(&prob, &points, &opts, nt, ctl).map_err(|e| arg.failure(e))?;
        let mut sols = Vec::with_capacity(path.solutions.len());
        for (s, pt) in path.solutions.into_iter().zip(&points) {
            let cl = s.kernels.last().expect("depth >= 1").as_ref();
            let (u, jit, dual) =
                with_threads(nt, |par| factor_and_solve(cl, pt.temperature, yv, par))
                    .map_err(|e| arg.failure(e))?;
            sols.push((s, u, jit, dual));
        }
        Ok((sols, path.interrupted))
    })?;
    let (sols, path_interrupted) = out;
    let p = x.shape()[0];
    let sols = sols
        .into_iter()
        .map(
            |(s, u, jit, dual): (fb::Solution, Vec<f64>, f64, Mat<f64>)| {
                Ok(Solution {
                    kernels: mats_to_list(py, &s.kernels)?.unbind(),
                    conjugates: mats_to_list(py, &s.conjugates)?.unbind(),
                    input_conjugate: mat_to_numpy(py, s.input_conjugate.as_ref()).unbind(),
                    report: SolveReport::from_core(py, s.report)?,
                    factor: square_to_numpy(py, u, p).unbind(),
                    factor_jitter: jit,
                    dual_coef: mat_to_numpy(py, dual.as_ref()).unbind(),
                    draws_z: mats_to_list(py, &s.draws.iter().map(|d| d.z.clone()).collect::<Vec<_>>())?.unbind(),
                    draws_e: s.draws.iter().map(|d| d.e_ref.clone()).collect(),
                    kish: s.kish,
                    n_draws: s.n_draws,
                })
            },
        )
        .collect::<PyResult<Vec<_>>>()?;
    Ok((sols, interrupted || path_interrupted))
}

/// First-order kernels `C^1..C^L` of a nonlinear net on the joint set `x` (training rows
/// first) from the training conjugates `Ct^1..Ct^L`, zero-padded on the other rows (the
/// predictions of `method="perturbative"`; the training block equals the fit's kernels).
#[pyfunction]
#[pyo3(signature = (x, conjugates, net, *, options=None, n_threads=None))]
fn perturbative_forward<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    conjugates: Vec<PyReadonlyArray2<'py, f64>>,
    net: Bound<'py, PyAny>,
    options: Option<Bound<'py, PyDict>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyList>> {
    let arg = NetArg::new(&net)?;
    let opts = options_of(py, options)?;
    let xv = view("X", &x)?;
    let cts = conjugates
        .iter()
        .map(|c| view("conjugates", c).map(|v| v.to_owned()))
        .collect::<PyResult<Vec<Mat<f64>>>>()?;
    let nt = threads(n_threads);
    let out = run(py, None, |_ctl: &Control| {
        with_threads(nt, |par| {
            let k0 = ak_core::kernels::input::input_kernel(xv, xv, arg.net.sigma_w, arg.net.sigma_b, par);
            fb::nonlinear::joint_first_order(&arg.net, &k0, &cts, opts.n_samples, opts.seed, par)
        })
        .map_err(|e| arg.failure(e))
    })?;
    mats_to_list(py, &out)
}

/// Test rows of every layer's kernel of a nonlinear `method="full"` fit: a list of
/// `(C^l(X_test, X) (n x P), C^l(x, x) (n,))`, l = 1..L, from the fit's kernels, conjugates and
/// final sample sets (`draws_z`, `draws_e`).
#[pyfunction]
#[pyo3(signature = (x, y, x_test, net, kernels, conjugates, draws_z, draws_e, *, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn sampled_forward<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    x_test: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    kernels: Vec<PyReadonlyArray2<'py, f64>>,
    conjugates: Vec<PyReadonlyArray2<'py, f64>>,
    draws_z: Vec<PyReadonlyArray2<'py, f64>>,
    draws_e: Vec<Vec<f64>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyList>> {
    let arg = NetArg::new(&net)?;
    let (xv, yv, xt) = (view("X", &x)?, view("y", &y)?, view("X", &x_test)?);
    let owned = |name: &'static str, ms: &[PyReadonlyArray2<'py, f64>]| {
        ms.iter().map(|m| view(name, m).map(|v| v.to_owned())).collect::<PyResult<Vec<Mat<f64>>>>()
    };
    if x_test.shape()[1] != x.shape()[1] {
        return Err(pyo3::exceptions::PyValueError::new_err("X: the test inputs' feature count differs from the training inputs'"));
    }
    let (cs, cts, zs) = (owned("kernels", &kernels)?, owned("conjugates", &conjugates)?, owned("draws", &draws_z)?);
    if zs.len() != draws_e.len() {
        return Err(pyo3::exceptions::PyValueError::new_err("draws: need one energy vector per sample set"));
    }
    let draws: Vec<fb::LayerDraw> = zs.into_iter().zip(draws_e).map(|(z, e_ref)| fb::LayerDraw { z, e_ref }).collect();
    let nt = threads(n_threads);
    let out = run(py, None, |_ctl: &Control| {
        with_threads(nt, |par| {
            let prob = Problem::new(&arg.net, xv, yv, par)?;
            let (sw, sb) = (arg.net.sigma_w, arg.net.sigma_b);
            let kx = ak_core::kernels::input::input_kernel(xt, xv, sw, sb, par);
            let kd = ak_core::kernels::input::input_kernel_diag(xt, sw, sb);
            prob.sampled_test_rows(&cs, &cts, &draws, kx.as_ref(), &kd, par)
        })
        .map_err(|e| arg.failure(e))
    })?;
    let list = PyList::empty(py);
    for (cross, diag) in out {
        list.append((mat_to_numpy(py, cross.as_ref()), numpy::IntoPyArray::into_pyarray(diag, py)))?;
    }
    Ok(list)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Solution>()?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(perturbative_forward, m)?)?;
    m.add_function(wrap_pyfunction!(sampled_forward, m)?)?;
    Ok(())
}
