//! `adaptive_kernels._core.tilted` (see `adaptive_kernels.tilted`): the tilted fixed point of
//! `ak_core::tilted` (tilted single-site densities sampled by MCMC, Newton-Krylov, continuation in
//! the tilt strength gamma), shared by `BayesianMeanField(solver="sampled")` and the nonlinear tree
//! level of `MultiScaleAdaptive`.
use crate::convert::{
    defaults_dict, mat_to_numpy, mats_to_list, readout_state, slice, slice1, square_to_numpy, view,
    views, NetArg, Options,
};
use crate::errors::Failure;
use crate::results::SolveReport;
use crate::runtime::{run, run_interruptible, threads};
use ak_core::control::Control;
use ak_core::faer::MatRef;
use ak_core::kernels::net::Rows;
use ak_core::tilted;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// One tilted fixed point: `gamma` (reached), `kernels`, `conjugates`, `dual` (the iterate's
/// `A`), `kish`, `ess`, `acceptance` (per layer and chain), `n_draws`, `chain_radius` ((L, 2)),
/// `samples` (S x P per layer) and `weights`, `rank`, `report` (with the continuation `stages`),
/// and the readout predictor (`factor`, `factor_jitter`, `dual_coef`).
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.tilted")]
struct Solution {
    gamma: f64,
    kernels: Py<PyList>,
    conjugates: Py<PyList>,
    dual: Py<PyArray2<f64>>,
    kish: Py<PyArray1<f64>>,
    ess: Py<PyArray1<f64>>,
    acceptance: Py<PyList>,
    n_draws: usize,
    chain_radius: Py<PyArray2<f64>>,
    samples: Py<PyList>,
    weights: Py<PyList>,
    rank: usize,
    report: Py<SolveReport>,
    factor: Py<PyArray2<f64>>,
    factor_jitter: f64,
    dual_coef: Py<PyArray2<f64>>,
}

/// The core's default options of the tilted fixed point (sampler and Newton-Krylov settings).
#[pyfunction]
fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = tilted::Options::default();
    let mut items = crate::mcmc::tilt_items(py, &d.sampler)?;
    items.extend([
        ("tol", d.tol.into_pyobject(py)?.into_any()),
        ("max_iter", d.max_iter.into_pyobject(py)?.into_any()),
        ("krylov", d.krylov.into_pyobject(py)?.into_any()),
        ("forcing", d.forcing.into_pyobject(py)?.into_any()),
        ("min_kish", d.min_kish.into_pyobject(py)?.into_any()),
        ("min_trial_kish", d.min_trial_kish.into_pyobject(py)?.into_any()),
        ("max_refresh", d.max_refresh.into_pyobject(py)?.into_any()),
        ("max_stages", d.max_stages.into_pyobject(py)?.into_any()),
        ("stall", d.stall.into_pyobject(py)?.into_any()),
    ]);
    defaults_dict(py, &items)
}

fn options_of(opts: Option<Bound<'_, PyDict>>) -> PyResult<tilted::Options> {
    let o = Options::new(opts)?;
    let d = tilted::Options::default();
    let out = tilted::Options {
        sampler: crate::mcmc::tilt_config(&o, &d.sampler)?,
        tol: o.get("tol", d.tol)?,
        max_iter: o.get("max_iter", d.max_iter)?,
        krylov: o.get("krylov", d.krylov)?,
        forcing: o.get("forcing", d.forcing)?,
        min_kish: o.get("min_kish", d.min_kish)?,
        min_trial_kish: o.get("min_trial_kish", d.min_trial_kish)?,
        max_refresh: o.get("max_refresh", d.max_refresh)?,
        max_stages: o.get("max_stages", d.max_stages)?,
        stall: o.get("stall", d.stall)?,
    };
    o.finish()?;
    Ok(out)
}

/// Tilted fixed points (sampled saddle points) of a network along `gammas` (continuation in gamma from the
/// NNGP, warm-started along the list); options left out take the core's defaults. Returns the
/// solutions and whether a Ctrl-C stopped the path early (as `solve`).
#[pyfunction]
#[pyo3(signature = (x, y, net, *, gammas, temperature, options=None, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn solve<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    gammas: Vec<f64>,
    temperature: f64,
    options: Option<Bound<'py, PyDict>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Vec<Solution>, bool)> {
    let arg = NetArg::new(&net)?;
    let opts = options_of(options)?;
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let nt = threads(n_threads);
    let ((sols, cut), interrupted) = run_interruptible(py, progress, |ctl: &Control| {
        let rows = Rows::new("X", xs, p, d)?;
        let path = tilted::solve_path(&arg.net, &rows, yv, &gammas, temperature, &opts, nt, ctl)
            .map_err(|e| arg.failure(e))?;
        let sols = path
            .solutions
            .into_iter()
            .map(|s| {
                let st = readout_state(s.kernels.last().unwrap(), temperature, yv, nt)?;
                Ok::<_, Failure>((s, st))
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        Ok((sols, path.interrupted))
    })?;
    let sols = sols
        .into_iter()
        .map(|(s, (u, jit, dual))| {
            let cr = Array2::from_shape_fn((s.chain_radius.len(), 2), |(i, j)| s.chain_radius[i][j]);
            Ok(Solution {
                gamma: s.gamma,
                kernels: mats_to_list(py, &s.kernels)?.unbind(),
                conjugates: mats_to_list(py, &s.conjugates)?.unbind(),
                dual: mat_to_numpy(py, s.a.as_ref()).unbind(),
                kish: s.kish.into_pyarray(py).unbind(),
                ess: s.ess.into_pyarray(py).unbind(),
                acceptance: PyList::new(py, s.acceptance.into_iter().map(|a| a.into_pyarray(py)))?
                    .unbind(),
                n_draws: s.n_draws,
                chain_radius: cr.into_pyarray(py).unbind(),
                samples: mats_to_list(py, &s.samples)?.unbind(),
                weights: PyList::new(py, s.weights.into_iter().map(|w| w.into_pyarray(py)))?
                    .unbind(),
                rank: s.support_rank,
                report: SolveReport::from_core(py, s.report)?,
                factor: square_to_numpy(py, u, p).unbind(),
                factor_jitter: jit,
                dual_coef: mat_to_numpy(py, dual.as_ref()).unbind(),
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((sols, interrupted || cut))
}

/// Predictive mean (Q, C) and optionally the adapted-kernel variance (Q,) of a sampled saddle
/// point: test rows conditionally Gaussian given each layer's weighted training samples.
#[pyfunction]
#[pyo3(signature = (x, y, kernels, samples, weights, x_test, net, *, temperature, seed, return_var=false, n_threads=None))]
#[allow(clippy::type_complexity)]
#[allow(clippy::too_many_arguments)]
fn predict<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    kernels: Vec<PyReadonlyArray2<'py, f64>>,
    samples: Vec<PyReadonlyArray2<'py, f64>>,
    weights: Vec<PyReadonlyArray1<'py, f64>>,
    x_test: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    temperature: f64,
    seed: u64,
    return_var: bool,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Option<Bound<'py, PyArray1<f64>>>)> {
    let arg = NetArg::new(&net)?;
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let (q, dt) = (x_test.shape()[0], x_test.shape()[1]);
    let xs = slice("X", &x)?;
    let xts = slice("X_test", &x_test)?;
    let yv = view("y", &y)?;
    let kv = views("kernels", &kernels)?;
    let sv: Vec<MatRef<f64>> = samples
        .iter()
        .map(|m| view("samples", m))
        .collect::<PyResult<_>>()?;
    let wv: Vec<&[f64]> = weights
        .iter()
        .map(|w| slice1("weights", w))
        .collect::<PyResult<_>>()?;
    let nt = threads(n_threads);
    let (mean, var) = run(py, None, |_: &Control| {
        let rows = Rows::new("X", xs, p, d)?;
        let trows = Rows::new("X_test", xts, q, dt)?;
        tilted::predict_rows(
            &arg.net,
            &rows,
            &trows,
            &kv,
            &sv,
            &wv,
            yv,
            temperature,
            seed,
            return_var,
            nt,
        )
        .map_err(|e| arg.failure(e))
    })?;
    Ok((
        mat_to_numpy(py, mean.as_ref()),
        var.map(|v| v.into_pyarray(py)),
    ))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Solution>()?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(predict, m)?)?;
    Ok(())
}
