//! `adaptive_kernels._core.mcmc`: the tilted single-site density of mean-field theories,
//! sampled by parallel MALA chains (see `adaptive_kernels.tilted_moments`), and the
//! rank-normalized chain diagnostics (see `adaptive_kernels.mcmc.chain_diagnostics`).
use crate::convert::{defaults_dict, view, Options};
use crate::errors::{to_pyerr, Failure};
use crate::runtime::{run, threads};
use ak_core::kernels::activation::Activation;
use ak_core::control::Control;
use ak_core::mcmc::rank;
use ak_core::mcmc::tilted::{sample_moments, TiltConfig};
use ak_core::threads::with_threads;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Monte-Carlo moments: `phi2` = `<phi phi^T>`, `h2` = `<h h^T>` (P, P), `acceptance` and
/// `step_size` per chain, `ess` (tilt energy, summed over chains).
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.mcmc")]
struct TiltedMoments {
    phi2: Py<PyArray2<f64>>,
    h2: Py<PyArray2<f64>>,
    acceptance: Py<PyArray1<f64>>,
    step_size: Py<PyArray1<f64>>,
    ess: f64,
}

/// The tilted sampler's settings as `(name, value)` pairs (for the `defaults()` dicts).
pub(crate) fn tilt_items<'py>(py: Python<'py>, s: &TiltConfig) -> PyResult<Vec<(&'static str, Bound<'py, PyAny>)>> {
    Ok(vec![
        ("n_chains", s.n_chains.into_pyobject(py)?.into_any()),
        ("n_samples", s.n_samples.into_pyobject(py)?.into_any()),
        ("burn_in", s.burn_in.into_pyobject(py)?.into_any()),
        ("thin", s.thin.into_pyobject(py)?.into_any()),
        ("step_size", s.step_size.into_pyobject(py)?.into_any()),
        ("seed", s.seed.into_pyobject(py)?.into_any()),
    ])
}

/// The tilted sampler's settings read from an options dict (`d` where absent).
pub(crate) fn tilt_config(o: &Options<'_>, d: &TiltConfig) -> PyResult<TiltConfig> {
    Ok(TiltConfig {
        n_chains: o.get("n_chains", d.n_chains)?,
        n_samples: o.get("n_samples", d.n_samples)?,
        burn_in: o.get("burn_in", d.burn_in)?,
        thin: o.get("thin", d.thin)?,
        step_size: o.get("step_size", d.step_size)?,
        seed: o.get("seed", d.seed)?,
    })
}

/// The core's default sampler settings (`n_chains`, `n_samples`, `burn_in`, `thin`,
/// `step_size`, `seed`).
#[pyfunction]
fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    defaults_dict(py, &tilt_items(py, &TiltConfig::default())?)
}

/// Moments of `N(h; 0, C) exp(-phi(h)^T hat_phi phi(h) / 2)` by MALA (options: the sampler
/// settings, the core's defaults where left out).
#[pyfunction]
#[pyo3(signature = (c, hat_phi, *, activation, options=None, n_threads=None, progress=None))]
fn tilted_moments(
    py: Python<'_>,
    c: PyReadonlyArray2<'_, f64>,
    hat_phi: PyReadonlyArray2<'_, f64>,
    activation: &str,
    options: Option<Bound<'_, PyDict>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<TiltedMoments> {
    let act = Activation::from_name(activation).map_err(|e| to_pyerr(py, e.into()))?;
    let o = Options::new(options)?;
    let cfg = tilt_config(&o, &TiltConfig::default())?;
    o.finish()?;
    let (cv, pv) = (view("C", &c)?, view("hat_phi", &hat_phi)?);
    let nt = threads(n_threads);
    let m = run(py, progress, |ctl: &Control| {
        sample_moments(&act, cv, pv, &cfg, nt, ctl).map_err(Failure::from)
    })?;
    let p = cv.nrows();
    Ok(TiltedMoments {
        phi2: Array2::from_shape_vec((p, p), m.phi2).unwrap().into_pyarray(py).unbind(),
        h2: Array2::from_shape_vec((p, p), m.h2).unwrap().into_pyarray(py).unbind(),
        acceptance: m.acceptance.into_pyarray(py).unbind(),
        step_size: m.step_size.into_pyarray(py).unbind(),
        ess: m.ess,
    })
}

/// Rank-normalized split R-hat, bulk and tail ESS per parameter, `(n_params,)` each.
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.mcmc")]
struct ChainDiagnostics {
    rhat: Py<PyArray1<f64>>,
    ess_bulk: Py<PyArray1<f64>>,
    ess_tail: Py<PyArray1<f64>>,
}

/// Diagnostics of draws `(n_chains, n_draws, n_params)` (C-contiguous float64).
#[pyfunction]
#[pyo3(signature = (chains, *, n_threads=None))]
fn chain_diagnostics(
    py: Python<'_>,
    chains: PyReadonlyArray3<'_, f64>,
    n_threads: Option<usize>,
) -> PyResult<ChainDiagnostics> {
    let (m, n, p) = (chains.shape()[0], chains.shape()[1], chains.shape()[2]);
    let x = chains.as_slice().map_err(|_| {
        pyo3::exceptions::PyValueError::new_err("chains: must be a C-contiguous float64 array")
    })?;
    let nt = threads(n_threads);
    let d = run(py, None, |_: &Control| {
        with_threads(nt, |_| rank::chain_diagnostics(x, m, n, p)).map_err(Failure::from)
    })?;
    let col = |f: fn(&rank::RankDiagnostics) -> f64| {
        d.iter().map(f).collect::<Vec<_>>().into_pyarray(py).unbind()
    };
    Ok(ChainDiagnostics {
        rhat: col(|v| v.rhat),
        ess_bulk: col(|v| v.ess_bulk),
        ess_tail: col(|v| v.ess_tail),
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TiltedMoments>()?;
    m.add_class::<ChainDiagnostics>()?;
    m.add_function(wrap_pyfunction!(chain_diagnostics, m)?)?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add_function(wrap_pyfunction!(tilted_moments, m)?)?;
    Ok(())
}
