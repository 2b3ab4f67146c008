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

/// `_core._testing.tilted_check_normalizable(c, hat_phi, activation, support=False)`: the shared
/// normalizability check of the tilted density (raises naming `hat_phi`); `support`: `C` by its
/// support factor (a singular `C`, as the mean-field solvers pass `K^0`), else by Cholesky.
#[pyfunction]
#[pyo3(signature = (c, hat_phi, *, activation, support=false))]
fn tilted_check_normalizable(
    py: Python<'_>,
    c: PyReadonlyArray2<'_, f64>,
    hat_phi: PyReadonlyArray2<'_, f64>,
    activation: &str,
    support: bool,
) -> PyResult<()> {
    use ak_core::mcmc::tilted::TiltedDensity;
    let act = Activation::from_name(activation).map_err(|e| to_pyerr(py, e.into()))?;
    let (cv, pv) = (view("C", &c)?, view("hat_phi", &hat_phi)?);
    run(py, None, |_: &Control| {
        let par = ak_core::faer::Par::Seq;
        let dens = if support {
            TiltedDensity::with_factor(&act, ak_core::linalg::CovFactor::psd("C", cv, par)?, pv)?
        } else {
            TiltedDensity::new(&act, cv, pv, par)?
        };
        dens.check_normalizable(cv, par).map_err(Failure::from)
    })
}

/// `_core._testing.rank_one_tilt_moments(k0, a, *, gamma, sampler, ...)`: `(<phi phi^T>, <h h^T>,
/// acceptance)` of `N(h; 0, K^0) exp(gamma^2 (a.phi)^2 / 2)` with `K^0` by its support factor,
/// `sampler="radial"` (radius-integrated, `mcmc::tilted::radial`) or `"mala"` (MALA on `h`, the
/// sampler of the mean-field solvers) at the same settings (for tests and benches).
#[pyfunction]
#[pyo3(signature = (k0, a, *, gamma, sampler, activation="relu", n_chains=16, n_samples=1000, burn_in=300, thin=2, step_size=0.2, seed=0, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn rank_one_tilt_moments<'py>(
    py: Python<'py>,
    k0: PyReadonlyArray2<'py, f64>,
    a: numpy::PyReadonlyArray1<'py, f64>,
    gamma: f64,
    sampler: &str,
    activation: &str,
    n_chains: usize,
    n_samples: usize,
    burn_in: usize,
    thin: usize,
    step_size: f64,
    seed: u64,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<f64>>)> {
    use ak_core::faer::Mat;
    use ak_core::mcmc::tilted::{apply_phi, radial::sample_radial, weighted_gram, TiltedDensity};
    let act = Activation::from_name(activation).map_err(|e| to_pyerr(py, e.into()))?;
    let kv = view("k0", &k0)?;
    let av: Vec<f64> = a.as_slice().map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("a: {e}")))?.to_vec();
    if sampler != "radial" && sampler != "mala" {
        return Err(pyo3::exceptions::PyValueError::new_err("sampler: expected 'radial' or 'mala'"));
    }
    let cfg = TiltConfig { n_chains, n_samples, burn_in, thin, step_size, seed };
    let nt = threads(n_threads);
    let radial = sampler == "radial";
    let (phi2, h2, acc) = run(py, None, |ctl: &Control| {
        with_threads(nt, |par| -> ak_core::Result<(Mat<f64>, Mat<f64>, Vec<f64>)> {
            let fac = ak_core::linalg::CovFactor::psd("k0", kv, par)?;
            let p = kv.nrows();
            if radial {
                let s = sample_radial(&act, &fac, &av, gamma, &cfg, ctl)?;
                Ok((weighted_gram(s.phi.as_ref(), s.phi.as_ref(), None, par), weighted_gram(s.h.as_ref(), s.h.as_ref(), None, par), s.acceptance))
            } else {
                let g2 = gamma * gamma;
                let phat = Mat::from_fn(p, p, |i, j| -g2 * av[i] * av[j]);
                let dens = TiltedDensity::with_factor(&act, fac, phat.as_ref())?;
                let s = dens.sample(&cfg, ctl)?;
                let f = apply_phi(&act, s.h.as_ref());
                Ok((weighted_gram(f.as_ref(), f.as_ref(), None, par), weighted_gram(s.h.as_ref(), s.h.as_ref(), None, par), s.acceptance))
            }
        })
        .map_err(Failure::from)
    })?;
    Ok((crate::convert::mat_to_numpy(py, phi2.as_ref()), crate::convert::mat_to_numpy(py, h2.as_ref()), acc.into_pyarray(py)))
}

/// `_core._testing.radial_potential(z, f, a, *, gamma, activation)`: `(U, grad U)` of the
/// direction sampler of `mcmc::tilted::radial` at whitened `z` (factor `f`, P x r).
#[pyfunction]
#[pyo3(signature = (z, f, a, *, gamma, activation="relu"))]
fn radial_potential<'py>(
    py: Python<'py>,
    z: numpy::PyReadonlyArray1<'py, f64>,
    f: PyReadonlyArray2<'py, f64>,
    a: numpy::PyReadonlyArray1<'py, f64>,
    gamma: f64,
    activation: &str,
) -> PyResult<(f64, Bound<'py, PyArray1<f64>>)> {
    let act = Activation::from_name(activation).map_err(|e| to_pyerr(py, e.into()))?;
    let fv = view("f", &f)?;
    let zs = z.as_slice().map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("z: {e}")))?;
    let av = a.as_slice().map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("a: {e}")))?;
    if zs.len() != fv.ncols() || av.len() != fv.nrows() {
        return Err(pyo3::exceptions::PyValueError::new_err("z, a: need f.shape[1] and f.shape[0] entries"));
    }
    let (u, g, _, _) = ak_core::mcmc::tilted::radial::potentials(&act, fv, av, gamma * gamma, ak_core::faer::MatRef::from_column_major_slice(zs, zs.len(), 1));
    Ok((u[0], g.col_as_slice(0).to_vec().into_pyarray(py)))
}

/// `_core._testing.tilted_smc(c, hat_phi, *, activation, support=True, n_particles, n_moves, kish,
/// step_size, max_rungs, seed, n_threads)`: tempered SMC draws of `N(h; 0, C) exp(-phi^T hatPhi
/// phi / 2)` (`mcmc::tilted::smc`) as `(<phi phi^T>, <h h^T>, log_z, betas, acceptance)`.
#[pyfunction]
#[pyo3(signature = (c, hat_phi, *, activation, support=true, n_particles=4096, n_moves=10, kish=0.8, step_size=0.3, max_rungs=500, seed=0, n_threads=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn tilted_smc<'py>(
    py: Python<'py>,
    c: PyReadonlyArray2<'py, f64>,
    hat_phi: PyReadonlyArray2<'py, f64>,
    activation: &str,
    support: bool,
    n_particles: usize,
    n_moves: usize,
    kish: f64,
    step_size: f64,
    max_rungs: usize,
    seed: u64,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Bound<'py, PyArray2<f64>>, f64, Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>)> {
    use ak_core::faer::Mat;
    use ak_core::mcmc::tilted::{apply_phi, weighted_gram, SmcConfig, TiltedDensity};
    let act = Activation::from_name(activation).map_err(|e| to_pyerr(py, e.into()))?;
    let (cv, pv) = (view("C", &c)?, view("hat_phi", &hat_phi)?);
    let cfg = SmcConfig { n_particles, n_moves, kish, step_size, max_rungs, seed };
    let nt = threads(n_threads);
    let (phi2, h2, log_z, betas, acc) = run(py, None, |ctl: &Control| {
        with_threads(nt, |par| -> ak_core::Result<(Mat<f64>, Mat<f64>, f64, Vec<f64>, Vec<f64>)> {
            let dens = if support {
                TiltedDensity::with_factor(&act, ak_core::linalg::CovFactor::psd("C", cv, par)?, pv)?
            } else {
                TiltedDensity::new(&act, cv, pv, par)?
            };
            dens.check_normalizable(cv, par)?;
            let s = dens.sample_smc(&cfg, ctl)?;
            let f = apply_phi(&act, s.h.as_ref());
            Ok((weighted_gram(f.as_ref(), f.as_ref(), None, par), weighted_gram(s.h.as_ref(), s.h.as_ref(), None, par), s.log_z, s.betas, s.acceptance))
        })
        .map_err(Failure::from)
    })?;
    Ok((crate::convert::mat_to_numpy(py, phi2.as_ref()), crate::convert::mat_to_numpy(py, h2.as_ref()), log_z, betas.into_pyarray(py), acc.into_pyarray(py)))
}

/// `_core._testing.smc_next_beta(energy, beta, kish)` and `smc_resample(log_w, u0)`: the
/// reweighting rung and systematic resampling of `mcmc::tilted::smc`.
#[pyfunction]
fn smc_next_beta(energy: Vec<f64>, beta: f64, kish: f64) -> f64 {
    ak_core::mcmc::tilted::smc::next_beta(&energy, beta, kish)
}

#[pyfunction]
fn smc_resample(log_w: Vec<f64>, u0: f64) -> Vec<usize> {
    ak_core::mcmc::tilted::smc::systematic_resample(&log_w, u0)
}

/// `_core._testing.smc_move(f, hat_phi, z, xi, unif, chol, *, eta, beta, activation)`: one
/// preconditioned MALA sweep of `mcmc::tilted::smc` with given noise: particles are the columns
/// of `z` (r x k), prior factor `f` (P x r), `chol` the lower factor of the preconditioner.
/// Returns `(z_new, acceptance probabilities)`.
#[pyfunction]
#[pyo3(signature = (f, hat_phi, z, xi, unif, chol, *, eta, beta, activation))]
#[allow(clippy::too_many_arguments)]
fn smc_move<'py>(
    py: Python<'py>,
    f: PyReadonlyArray2<'py, f64>,
    hat_phi: PyReadonlyArray2<'py, f64>,
    z: PyReadonlyArray2<'py, f64>,
    xi: PyReadonlyArray2<'py, f64>,
    unif: Vec<f64>,
    chol: PyReadonlyArray2<'py, f64>,
    eta: f64,
    beta: f64,
    activation: &str,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<f64>>)> {
    use ak_core::mcmc::tilted::{smc::move_block, TiltedDensity};
    let act = Activation::from_name(activation).map_err(|e| to_pyerr(py, e.into()))?;
    let (fv, pv, zv, xv, lv) = (view("f", &f)?, view("hat_phi", &hat_phi)?, view("z", &z)?, view("xi", &xi)?, view("chol", &chol)?);
    let (r, k) = (fv.ncols(), zv.ncols());
    if zv.nrows() != r || xv.nrows() != r || xv.ncols() != k || unif.len() != k || lv.nrows() != r || lv.ncols() != r {
        return Err(pyo3::exceptions::PyValueError::new_err("z, xi, unif, chol: need shapes (r, k), (r, k), (k,), (r, r) with r = f.shape[1]"));
    }
    let dens = TiltedDensity::with_factor(&act, ak_core::linalg::CovFactor::Cholesky(fv.to_owned()), pv).map_err(|e| to_pyerr(py, e.into()))?;
    let mut zm = zv.to_owned();
    let mut pot = dens.potentials(zm.as_ref());
    let acc = move_block(&dens, beta, lv, eta, &mut zm, &mut pot, xv, &unif);
    Ok((crate::convert::mat_to_numpy(py, zm.as_ref()), acc.into_pyarray(py)))
}

pub(crate) fn register_testing(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tilted_smc, m)?)?;
    m.add_function(wrap_pyfunction!(smc_next_beta, m)?)?;
    m.add_function(wrap_pyfunction!(smc_resample, m)?)?;
    m.add_function(wrap_pyfunction!(smc_move, m)?)?;
    m.add_function(wrap_pyfunction!(radial_potential, m)?)?;
    m.add_function(wrap_pyfunction!(tilted_check_normalizable, m)?)?;
    m.add_function(wrap_pyfunction!(rank_one_tilt_moments, m)?)?;
    Ok(())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TiltedMoments>()?;
    m.add_class::<ChainDiagnostics>()?;
    m.add_function(wrap_pyfunction!(chain_diagnostics, m)?)?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add_function(wrap_pyfunction!(tilted_moments, m)?)?;
    Ok(())
}
