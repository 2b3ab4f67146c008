//! Bindings of `ak_core::bayesian_mean_field` (see `adaptive_kernels.BayesianMeanField`).
use crate::{
    callback_failure, make_mlp, mat_to_numpy, run, slice, threads, to_pyerr, view, Failure,
};
use ak_core::theories::mean_field::linear::{Options, Point, Problem, Solver};
use ak_core::control::Control;
use ak_core::faer::{Mat, MatRef};
use ak_core::kernels::net::Rows;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

fn mats_to_list<'py>(py: Python<'py>, ms: &[Mat<f64>]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, ms.iter().map(|m| mat_to_numpy(py, m.as_ref())))
}

fn kernel_views<'a>(ks: &'a [PyReadonlyArray2<'_, f64>]) -> PyResult<Vec<MatRef<'a, f64>>> {
    ks.iter().map(|k| view("kernels", k)).collect()
}

/// Saddle points along a path of `(gamma, temperature)` points; L-BFGS solves are warm-started
/// from the previous point (`init`, full kernels, starts the first; default NNGP). Returns one
/// dict per point: `kernels`, `conjugates` (lists of (P, P)), `action`, `converged`, `n_iter`,
/// `n_eval`, `residual`, `residual_history`, `solver`, `kappa` (closed form, else None),
/// `stationary` ((k, 2): kappa and F1 at every stationary point of the closed form), `rank`.
#[pyfunction]
#[pyo3(signature = (x, y, *, depth, activation, derivative, sigma_w, sigma_b, method, quadrature_order,
    gammas, temperatures, init=None, tol=1e-10, max_iter=5000, solver="auto", memory=0, n_threads=None,
    progress=None))]
#[allow(clippy::too_many_arguments)]
fn bmf_solve<'py>(
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
    gammas: Vec<f64>,
    temperatures: Vec<f64>,
    init: Option<Vec<PyReadonlyArray2<'py, f64>>>,
    tol: f64,
    max_iter: usize,
    solver: &str,
    memory: usize,
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
    if gammas.len() != temperatures.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "gammas: need one entry per temperature",
        ));
    }
    let points: Vec<Point> = gammas
        .into_iter()
        .zip(temperatures)
        .map(|(g, t)| Point {
            gamma: g,
            temperature: t,
        })
        .collect();
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let init_views = match &init {
        Some(ks) => Some(kernel_views(ks)?),
        None => None,
    };
    let nt = threads(n_threads);
    let opts = Options {
        tol,
        max_iter,
        solver,
        memory,
    };
    let sols = run(py, progress, |ctl: &Control| {
        let prob = Problem::new(&net, Rows::new("X", xs, p, d)?, yv, nt)
            .map_err(|e| callback_failure(e, &slot))?;
        prob.solve_path(&points, init_views.as_deref(), &opts, nt, ctl)
            .map_err(Failure::from)
    })?;
    sols.into_iter()
        .map(|s| {
            let dct = PyDict::new(py);
            dct.set_item("kernels", mats_to_list(py, &s.kernels)?)?;
            dct.set_item("conjugates", mats_to_list(py, &s.conjugates)?)?;
            dct.set_item("action", s.action)?;
            dct.set_item("converged", s.report.converged)?;
            dct.set_item("n_iter", s.report.n_iter)?;
            dct.set_item("n_eval", s.report.n_eval)?;
            dct.set_item("residual", s.report.residual)?;
            dct.set_item("residual_history", s.report.residual_history.into_pyarray(py))?;
            dct.set_item("solver", s.report.solver)?;
            dct.set_item("kappa", s.kappa)?;
            let st = Array2::from_shape_fn((s.stationary.len(), 2), |(i, j)| {
                if j == 0 {
                    s.stationary[i].0
                } else {
                    s.stationary[i].1
                }
            });
            dct.set_item("stationary", st.into_pyarray(py))?;
            dct.set_item("rank", s.rank)?;
            Ok(dct)
        })
        .collect()
}

/// The objective `F` and its gradients `dF/dPhi^l` (list of (P, P)) at kernels `Phi^l`.
#[pyfunction]
#[pyo3(signature = (x, y, kernels, *, depth, activation, derivative, sigma_w, sigma_b, method, quadrature_order,
    gamma, temperature, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn bmf_objective<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    kernels: Vec<PyReadonlyArray2<'py, f64>>,
    depth: usize,
    activation: Bound<'py, PyAny>,
    derivative: Option<Py<PyAny>>,
    sigma_w: f64,
    sigma_b: f64,
    method: &str,
    quadrature_order: usize,
    gamma: f64,
    temperature: f64,
    n_threads: Option<usize>,
) -> PyResult<(f64, Bound<'py, PyList>)> {
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
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let kv = kernel_views(&kernels)?;
    let nt = threads(n_threads);
    let (f, g) = run(py, None, |_| {
        let prob = Problem::new(&net, Rows::new("X", xs, p, d)?, yv, nt)
            .map_err(|e| callback_failure(e, &slot))?;
        prob.objective(gamma, temperature, &kv, nt)
            .map_err(Failure::from)
    })?;
    Ok((f, mats_to_list(py, &g)?))
}

/// Predictive mean (Q, C) at `x_test` from saddle-point kernels, and with `return_var` the
/// adapted-kernel GP variance (Q,).
#[pyfunction]
#[pyo3(signature = (x, y, kernels, x_test, *, depth, activation, derivative, sigma_w, sigma_b, method,
    quadrature_order, temperature, return_var=false, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn bmf_predict<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    kernels: Vec<PyReadonlyArray2<'py, f64>>,
    x_test: PyReadonlyArray2<'py, f64>,
    depth: usize,
    activation: Bound<'py, PyAny>,
    derivative: Option<Py<PyAny>>,
    sigma_w: f64,
    sigma_b: f64,
    method: &str,
    quadrature_order: usize,
    temperature: f64,
    return_var: bool,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Option<Bound<'py, PyArray1<f64>>>)> {
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
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let (q, dt) = (x_test.shape()[0], x_test.shape()[1]);
    let xs = slice("X", &x)?;
    let xts = slice("X_test", &x_test)?;
    let yv = view("y", &y)?;
    let kv = kernel_views(&kernels)?;
    let nt = threads(n_threads);
    let (mean, var) = run(py, progress, |ctl: &Control| {
        let prob = Problem::new(&net, Rows::new("X", xs, p, d)?, yv, nt)
            .map_err(|e| callback_failure(e, &slot))?;
        prob.predict(
            &kv,
            temperature,
            Rows::new("X_test", xts, q, dt)?,
            return_var,
            nt,
            ctl,
        )
        .map_err(Failure::from)
    })?;
    Ok((
        mat_to_numpy(py, mean.as_ref()),
        var.map(|v| v.into_pyarray(py)),
    ))
}

/// Monte-Carlo moments of the tilted preactivation density `N(h; 0, C) exp(-phi^T hatPhi phi / 2)`
/// (see `ak_core::tilted_density`): a dict with `phi2`, `h2` (P, P), `acceptance`, `step_size`
/// (per chain) and `ess`.
#[pyfunction]
#[pyo3(signature = (c, hat_phi, *, activation, n_chains, n_samples, burn_in, thin, step_size, seed,
    n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn tilted_moments<'py>(
    py: Python<'py>,
    c: PyReadonlyArray2<'py, f64>,
    hat_phi: PyReadonlyArray2<'py, f64>,
    activation: &str,
    n_chains: usize,
    n_samples: usize,
    burn_in: usize,
    thin: usize,
    step_size: f64,
    seed: u64,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let act = ak_core::kernels::activation::Activation::from_name(activation)
        .map_err(|e| to_pyerr(py, e.into()))?;
    let (cv, pv) = (view("C", &c)?, view("hat_phi", &hat_phi)?);
    let cfg = ak_core::mcmc::tilted::TiltConfig {
        n_chains,
        n_samples,
        burn_in,
        thin,
        step_size,
        seed,
    };
    let nt = threads(n_threads);
    let m = run(py, progress, |ctl: &Control| {
        ak_core::mcmc::tilted::sample_moments(&act, cv, pv, &cfg, nt, ctl).map_err(Failure::from)
    })?;
    let p = cv.nrows();
    let d = PyDict::new(py);
    d.set_item(
        "phi2",
        Array2::from_shape_vec((p, p), m.phi2)
            .unwrap()
            .into_pyarray(py),
    )?;
    d.set_item(
        "h2",
        Array2::from_shape_vec((p, p), m.h2)
            .unwrap()
            .into_pyarray(py),
    )?;
    d.set_item("acceptance", m.acceptance.into_pyarray(py))?;
    d.set_item("step_size", m.step_size.into_pyarray(py))?;
    d.set_item("ess", m.ess)?;
    Ok(d)
}

/// `(U(z), grad U(z))` of the tilted density in whitened coordinates `h = L z`, `C = L L^T`.
#[pyfunction]
#[pyo3(signature = (z, c, hat_phi, *, activation))]
fn tilted_potential<'py>(
    py: Python<'py>,
    z: numpy::PyReadonlyArray1<'py, f64>,
    c: PyReadonlyArray2<'py, f64>,
    hat_phi: PyReadonlyArray2<'py, f64>,
    activation: &str,
) -> PyResult<(f64, Bound<'py, PyArray1<f64>>)> {
    let act = ak_core::kernels::activation::Activation::from_name(activation)
        .map_err(|e| to_pyerr(py, e.into()))?;
    let (cv, pv) = (view("C", &c)?, view("hat_phi", &hat_phi)?);
    let zs = crate::slice1("z", &z)?;
    if zs.len() != cv.nrows() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "z: needs {} entries",
            cv.nrows()
        )));
    }
    let (u, g) = run(py, None, |_: &Control| {
        let dens =
            ak_core::mcmc::tilted::TiltedDensity::new(&act, cv, pv, ak_core::faer::Par::Seq)?;
        let (u, g, _, _) = dens.potential(zs);
        Ok::<_, Failure>((u, g))
    })?;
    Ok((u, g.into_pyarray(py)))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tilted_moments, m)?)?;
    m.add_function(wrap_pyfunction!(tilted_potential, m)?)?;
    m.add_function(wrap_pyfunction!(bmf_solve, m)?)?;
    m.add_function(wrap_pyfunction!(bmf_objective, m)?)?;
    m.add_function(wrap_pyfunction!(bmf_predict, m)?)?;
    m.add_function(wrap_pyfunction!(bmf_tilted_solve, m)?)?;
    m.add_function(wrap_pyfunction!(bmf_tilted_map, m)?)?;
    m.add_function(wrap_pyfunction!(bmf_tilted_predict, m)?)?;
    Ok(())
}

fn tilted_dict<'py>(
    py: Python<'py>,
    s: ak_core::theories::mean_field::sampled::SampledSolution,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("gamma", s.gamma)?;
    d.set_item("kernels", mats_to_list(py, &s.kernels)?)?;
    d.set_item("conjugates", mats_to_list(py, &s.conjugates)?)?;
    d.set_item("dual", mat_to_numpy(py, s.a.as_ref()))?;
    d.set_item("converged", s.report.converged)?;
    d.set_item("n_iter", s.report.n_iter)?;
    d.set_item("residual", s.report.residual)?;
    d.set_item("residual_history", s.report.residual_history.into_pyarray(py))?;
    d.set_item("kish", s.kish.into_pyarray(py))?;
    d.set_item("ess", s.ess.into_pyarray(py))?;
    d.set_item(
        "acceptance",
        PyList::new(py, s.acceptance.into_iter().map(|a| a.into_pyarray(py)))?,
    )?;
    d.set_item("stages", s.report.stages.into_pyarray(py))?;
    d.set_item("rank", s.support_rank)?;
    d.set_item("n_draws", s.n_draws)?;
    d.set_item(
        "chain_radius",
        s.chain_radius
            .iter()
            .map(|v| v.to_vec())
            .collect::<Vec<_>>(),
    )?;
    d.set_item("samples", mats_to_list(py, &s.samples)?)?;
    d.set_item(
        "weights",
        PyList::new(py, s.weights.into_iter().map(|w| w.into_pyarray(py)))?,
    )?;
    Ok(d)
}

/// Sampled saddle points of a nonlinear network along `gammas` (see
/// `ak_core::bayesian_mean_field_tilted`): one dict per gamma with `gamma` (reached), `kernels`,
/// `conjugates`, `dual`, `converged`, `n_iter`, `residual`, `residual_history`, `kish`, `ess`,
/// `acceptance`, `stages`, `n_draws`, `samples` (S x P per layer) and `weights`. Solver settings
/// left as None take `SampledOptions::default()`.
#[pyfunction]
#[pyo3(signature = (x, y, *, depth, activation, derivative, sigma_w, sigma_b, method, quadrature_order,
    gammas, temperature, n_chains, n_samples, burn_in, thin, step_size, seed, tol=None, max_iter=None, krylov=None,
    forcing=None, min_kish=None, min_trial_kish=None, max_refresh=None, max_stages=None, n_threads=None,
    progress=None))]
#[allow(clippy::too_many_arguments)]
fn bmf_tilted_solve<'py>(
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
    gammas: Vec<f64>,
    temperature: f64,
    n_chains: usize,
    n_samples: usize,
    burn_in: usize,
    thin: usize,
    step_size: f64,
    seed: u64,
    tol: Option<f64>,
    max_iter: Option<usize>,
    krylov: Option<usize>,
    forcing: Option<f64>,
    min_kish: Option<f64>,
    min_trial_kish: Option<f64>,
    max_refresh: Option<usize>,
    max_stages: Option<usize>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    use ak_core::theories::mean_field::sampled::{solve_path, SampledOptions};
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
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let nt = threads(n_threads);
    let sampler = ak_core::mcmc::tilted::TiltConfig {
        n_chains,
        n_samples,
        burn_in,
        thin,
        step_size,
        seed,
    };
    let dflt = SampledOptions::default();
    let opts = SampledOptions {
        sampler,
        tol: tol.unwrap_or(dflt.tol),
        max_iter: max_iter.unwrap_or(dflt.max_iter),
        krylov: krylov.unwrap_or(dflt.krylov),
        forcing: forcing.unwrap_or(dflt.forcing),
        min_kish: min_kish.unwrap_or(dflt.min_kish),
        min_trial_kish: min_trial_kish.unwrap_or(dflt.min_trial_kish),
        max_refresh: max_refresh.unwrap_or(dflt.max_refresh),
        max_stages: max_stages.unwrap_or(dflt.max_stages),
    };
    let sols = run(py, progress, |ctl: &Control| {
        let rows = Rows::new("X", xs, p, d)?;
        solve_path(&net, &rows, yv, &gammas, temperature, &opts, nt, ctl)
            .map_err(|e| callback_failure(e, &slot))
    })?;
    sols.into_iter().map(|s| tilted_dict(py, s)).collect()
}

/// One outer iteration of the sampled solver on given samples (for testing against the NumPy
/// reference): layer l's samples `samples[l]` were drawn with prior `c_refs[l]` and tilt
/// `hat_refs[l]`. Returns a dict with `hidden`, `dual`, `kernels`, `kish`, and `seconds`: the
/// fastest of `repeat` evaluations of the map alone (the sample-set setup excluded), for benches.
#[pyfunction]
#[pyo3(signature = (k0, y, hidden, a, samples, c_refs, hat_refs, *, activation, sigma_w, sigma_b, gamma, temperature,
    repeat=1, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn bmf_tilted_map<'py>(
    py: Python<'py>,
    k0: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    hidden: Vec<PyReadonlyArray2<'py, f64>>,
    a: PyReadonlyArray2<'py, f64>,
    samples: Vec<PyReadonlyArray2<'py, f64>>,
    c_refs: Vec<PyReadonlyArray2<'py, f64>>,
    hat_refs: Vec<PyReadonlyArray2<'py, f64>>,
    activation: &str,
    sigma_w: f64,
    sigma_b: f64,
    gamma: f64,
    temperature: f64,
    repeat: usize,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    use ak_core::theories::mean_field::sampled::{LayerSamples, Setup};
    let act = ak_core::kernels::activation::Activation::from_name(activation)
        .map_err(|e| to_pyerr(py, e.into()))?;
    if samples.len() != c_refs.len() || samples.len() != hat_refs.len() || samples.is_empty() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "samples: need one sample set, C_ref and hatPhi_ref per layer",
        ));
    }
    let k0v = view("K0", &k0)?;
    let yv = view("y", &y)?;
    let av = view("A", &a)?;
    let hv: Vec<Mat<f64>> = hidden
        .iter()
        .map(|m| view("hidden", m).map(|v| v.to_owned()))
        .collect::<PyResult<_>>()?;
    let sv: Vec<MatRef<f64>> = samples
        .iter()
        .map(|m| view("samples", m))
        .collect::<PyResult<_>>()?;
    let cv: Vec<MatRef<f64>> = c_refs
        .iter()
        .map(|m| view("c_refs", m))
        .collect::<PyResult<_>>()?;
    let pv: Vec<MatRef<f64>> = hat_refs
        .iter()
        .map(|m| view("hat_refs", m))
        .collect::<PyResult<_>>()?;
    let nt = threads(n_threads);
    let (out, seconds) = run(py, None, |_: &Control| {
        ak_core::threads::with_threads(nt, |par| {
            let ls: Vec<LayerSamples> = (0..sv.len())
                .map(|l| LayerSamples::new(&act, sv[l].to_owned(), cv[l], pv[l], par))
                .collect::<ak_core::Result<_>>()?;
            let k0f = ak_core::linalg::CovFactor::psd("K0", k0v, par)?;
            let setup = Setup {
                act: &act,
                k0: k0v,
                k0_factor: &k0f,
                y: yv,
                sigma_w,
                sigma_b,
                gamma,
                temperature,
            };
            let mut best = f64::INFINITY;
            let mut out = None;
            for _ in 0..repeat.max(1) {
                let t0 = std::time::Instant::now();
                out = Some(setup.map(&hv, av, &ls, par)?);
                best = best.min(t0.elapsed().as_secs_f64());
            }
            Ok::<_, ak_core::AkError>((out.unwrap(), best))
        })
        .map_err(Failure::from)
    })?;
    let d = PyDict::new(py);
    d.set_item("hidden", mats_to_list(py, &out.hidden)?)?;
    d.set_item("dual", mat_to_numpy(py, out.a.as_ref()))?;
    d.set_item("kernels", mats_to_list(py, &out.kernels)?)?;
    d.set_item("kish", out.kish.into_pyarray(py))?;
    d.set_item("seconds", seconds)?;
    Ok(d)
}

/// Predictive mean (Q, C) and optionally the adapted-kernel variance (Q,) of a sampled saddle
/// point: test rows conditionally Gaussian given each layer's weighted training samples.
#[pyfunction]
#[pyo3(signature = (x, y, kernels, samples, weights, x_test, *, depth, activation, derivative, sigma_w, sigma_b,
    method, quadrature_order, temperature, seed, return_var=false, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn bmf_tilted_predict<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    kernels: Vec<PyReadonlyArray2<'py, f64>>,
    samples: Vec<PyReadonlyArray2<'py, f64>>,
    weights: Vec<numpy::PyReadonlyArray1<'py, f64>>,
    x_test: PyReadonlyArray2<'py, f64>,
    depth: usize,
    activation: Bound<'py, PyAny>,
    derivative: Option<Py<PyAny>>,
    sigma_w: f64,
    sigma_b: f64,
    method: &str,
    quadrature_order: usize,
    temperature: f64,
    seed: u64,
    return_var: bool,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Option<Bound<'py, PyArray1<f64>>>)> {
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
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let (q, dt) = (x_test.shape()[0], x_test.shape()[1]);
    let xs = slice("X", &x)?;
    let xts = slice("X_test", &x_test)?;
    let yv = view("y", &y)?;
    let kv = kernel_views(&kernels)?;
    let sv: Vec<MatRef<f64>> = samples
        .iter()
        .map(|m| view("samples", m))
        .collect::<PyResult<_>>()?;
    let wv: Vec<&[f64]> = weights
        .iter()
        .map(|w| crate::slice1("weights", w))
        .collect::<PyResult<_>>()?;
    let nt = threads(n_threads);
    let (mean, var) = run(py, None, |_: &Control| {
        let rows = Rows::new("X", xs, p, d)?;
        let trows = Rows::new("X_test", xts, q, dt)?;
        ak_core::theories::mean_field::sampled::predict_rows(
            &net,
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
        .map_err(|e| callback_failure(e, &slot))
    })?;
    Ok((
        mat_to_numpy(py, mean.as_ref()),
        var.map(|v| v.into_pyarray(py)),
    ))
}
