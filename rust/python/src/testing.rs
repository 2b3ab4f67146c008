//! `adaptive_kernels._core._testing`: single steps and maps of the core, exposed only for the
//! tests that compare them with the NumPy reference (and the benches that time them).
use crate::convert::{mat_to_numpy, mats_to_list, slice1, view};
use crate::errors::{to_pyerr, Failure};
use crate::finite::{finite_net, theta_slice};
use crate::runtime::{run, threads};
use ak_core::control::Control;
use ak_core::faer::{Mat, MatRef};
use ak_core::finite::gradient_descent::{self, GdConfig};
use numpy::ndarray::Array1;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `(U, grad U)` of the finite network at `theta` (flat parameter vector).
#[pyfunction]
#[pyo3(signature = (theta, x, y, *, net, widths, parameterization, gamma, beta, decay))]
#[allow(clippy::too_many_arguments)]
fn potential_and_gradient<'py>(
    py: Python<'py>,
    theta: PyReadonlyArray1<'py, f64>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    widths: Vec<usize>,
    parameterization: &str,
    gamma: f64,
    beta: f64,
    decay: f64,
) -> PyResult<(f64, Bound<'py, PyArray1<f64>>)> {
    let xv = view("X", &x)?;
    let yv = view("y", &y)?;
    let fnet = finite_net(&net, xv.ncols(), yv.ncols(), widths, parameterization, gamma, 1.0)?;
    let t = theta_slice(&fnet, &theta)?;
    check_xy(py, xv, yv)?;
    let (u, g) = run(py, None, |_| {
        let mut g = vec![0.0; t.len()];
        let (u, _, _) =
            fnet.potential_and_gradient(t, xv, yv, beta, decay, &mut g, ak_core::faer::Par::Seq);
        Ok::<_, Failure>((u, g))
    })?;
    Ok((u, Array1::from(g).into_pyarray(py)))
}

fn check_xy(py: Python<'_>, x: MatRef<'_, f64>, y: MatRef<'_, f64>) -> PyResult<()> {
    ak_core::finite::network::check_data(x, y).map_err(|e| to_pyerr(py, e.into()))
}

/// One unadjusted Langevin step `theta - eta grad U + sqrt(2 eta) xi` at `temperature`.
#[pyfunction]
#[pyo3(signature = (theta, x, y, xi, *, net, widths, parameterization, gamma, temperature, step_size))]
#[allow(clippy::too_many_arguments)]
fn langevin_step<'py>(
    py: Python<'py>,
    theta: PyReadonlyArray1<'py, f64>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    xi: PyReadonlyArray1<'py, f64>,
    net: Bound<'py, PyAny>,
    widths: Vec<usize>,
    parameterization: &str,
    gamma: f64,
    temperature: f64,
    step_size: f64,
) -> PyResult<(Bound<'py, PyArray1<f64>>, f64)> {
    let xv = view("X", &x)?;
    let yv = view("y", &y)?;
    let fnet = finite_net(&net, xv.ncols(), yv.ncols(), widths, parameterization, gamma, 1.0)?;
    let t = theta_slice(&fnet, &theta)?;
    let noise = slice1("xi", &xi)?;
    if noise.len() != t.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "xi: must have one entry per parameter",
        ));
    }
    check_xy(py, xv, yv)?;
    if !(temperature > 0.0 && step_size > 0.0) {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "temperature, step_size: must be > 0",
        ));
    }
    let (prop, log_ratio) = run(py, None, |_| {
        let beta = fnet.loss_scale(temperature);
        let mut g = vec![0.0; t.len()];
        let (u, _, _) =
            fnet.potential_and_gradient(t, xv, yv, beta, 1.0, &mut g, ak_core::faer::Par::Seq);
        let prop = ak_core::mcmc::mala::langevin_proposal(t, &g, noise, step_size);
        let mut gp = vec![0.0; t.len()];
        let (up, _, _) =
            fnet.potential_and_gradient(&prop, xv, yv, beta, 1.0, &mut gp, ak_core::faer::Par::Seq);
        let lr = ak_core::mcmc::mala::mala_log_ratio(u, up, t, &prop, &g, &gp, step_size);
        Ok::<_, Failure>((prop, lr))
    })?;
    Ok((Array1::from(prop).into_pyarray(py), log_ratio))
}

/// One gradient-descent step with weight decay.
#[pyfunction]
#[pyo3(signature = (theta, x, y, *, net, widths, parameterization, gamma, lr, weight_decay))]
#[allow(clippy::too_many_arguments)]
fn gd_step<'py>(
    py: Python<'py>,
    theta: PyReadonlyArray1<'py, f64>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    widths: Vec<usize>,
    parameterization: &str,
    gamma: f64,
    lr: f64,
    weight_decay: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let xv = view("X", &x)?;
    let yv = view("y", &y)?;
    let fnet = finite_net(&net, xv.ncols(), yv.ncols(), widths, parameterization, gamma, 1.0)?;
    let t = theta_slice(&fnet, &theta)?;
    check_xy(py, xv, yv)?;
    let cfg = GdConfig {
        weight_decay,
        lr,
        max_steps: 1,
        tol: 0.0,
        record_every: 1,
        n_ensemble: 1,
        seed: 0,
    };
    let out = run(py, None, |_| {
        let mut th = t.to_vec();
        let mut g = vec![0.0; t.len()];
        gradient_descent::gd_step(&fnet, &mut th, xv, yv, &cfg, &mut g);
        Ok::<_, Failure>(th)
    })?;
    Ok(Array1::from(out).into_pyarray(py))
}

/// Number of parameters of the finite network.
#[pyfunction]
#[pyo3(signature = (*, d, n_out, net, widths, parameterization, gamma))]
fn param_count(
    d: usize,
    n_out: usize,
    net: Bound<'_, PyAny>,
    widths: Vec<usize>,
    parameterization: &str,
    gamma: f64,
) -> PyResult<usize> {
    Ok(finite_net(&net, d, n_out, widths, parameterization, gamma, 1.0)?.layout().len)
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
    let zs = slice1("z", &z)?;
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

/// One outer iteration of the sampled solver on given samples (for testing against the NumPy
/// reference): layer l's samples `samples[l]` were drawn with prior `c_refs[l]` and tilt
/// `hat_refs[l]`. Returns a dict with `hidden`, `dual`, `kernels`, `kish`, and `seconds`: the
/// fastest of `repeat` evaluations of the map alone (the sample-set setup excluded), for benches.
#[pyfunction]
#[pyo3(signature = (k0, y, hidden, a, samples, c_refs, hat_refs, *, activation, sigma_w, sigma_b, gamma, temperature,
    repeat=1, n_threads=None))]
#[allow(clippy::too_many_arguments)]
fn tilted_map<'py>(
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
    use ak_core::tilted::{LayerSamples, Setup};
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

/// One evaluation of the sampled forward-backward map of a nonlinear net
/// (`theories::forward_backward::full`): at kernels `C^1..C^L`, on fixed whitened samples
/// `z` (S x P per layer) with reference tilt energies `e_ref`; returns the forward maps
/// `F_1..F_L`, the conjugates `Ct^1..Ct^L` and the Kish fractions (None: a rejected iterate).
#[pyfunction]
#[pyo3(signature = (x, y, net, kernels, z, e_ref, *, width, temperature))]
#[allow(clippy::too_many_arguments)]
fn fb_sampled_map<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    kernels: Vec<PyReadonlyArray2<'py, f64>>,
    z: Vec<PyReadonlyArray2<'py, f64>>,
    e_ref: Vec<Vec<f64>>,
    width: f64,
    temperature: f64,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    use ak_core::theories::forward_backward::{LayerDraw, Problem};
    let arg = crate::convert::NetArg::new(&net)?;
    let xv = view("X", &x)?;
    let yv = view("y", &y)?;
    let cs: Vec<Mat<f64>> = kernels.iter().map(|m| view("kernels", m).map(|v| v.to_owned())).collect::<PyResult<_>>()?;
    let draws: Vec<LayerDraw> = z
        .iter()
        .zip(e_ref)
        .map(|(m, e)| view("z", m).map(|v| LayerDraw { z: v.to_owned(), e_ref: e }))
        .collect::<PyResult<_>>()?;
    let out = run(py, None, |_: &Control| {
        let par = ak_core::faer::Par::Seq;
        (|| -> ak_core::Result<_> {
            let prob = Problem::new(&arg.net, xv, yv, par)?;
            prob.eval_sampled_public(&cs, width, temperature, &draws, par)
        })()
        .map_err(|e| arg.failure(e))
    })?;
    let Some(ev) = out else { return Ok(None) };
    let d = PyDict::new(py);
    d.set_item("forward", mats_to_list(py, &ev.forward)?)?;
    d.set_item("conjugates", mats_to_list(py, &ev.conjugates)?)?;
    d.set_item("kish", ev.kish.into_pyarray(py))?;
    Ok(Some(d))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fb_sampled_map, m)?)?;
    m.add_function(wrap_pyfunction!(potential_and_gradient, m)?)?;
    crate::mean_field_concave::register_testing(m)?;
    crate::mcmc::register_testing(m)?;
    m.add_function(wrap_pyfunction!(langevin_step, m)?)?;
    m.add_function(wrap_pyfunction!(gd_step, m)?)?;
    m.add_function(wrap_pyfunction!(param_count, m)?)?;
    m.add_function(wrap_pyfunction!(tilted_potential, m)?)?;
    m.add_function(wrap_pyfunction!(tilted_map, m)?)?;
    Ok(())
}
