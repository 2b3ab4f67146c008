//! Bindings of the finite-width ground truth: Langevin/MALA posterior sampling, gradient
//! descent with weight decay, and single steps (for the NumPy reference tests).
use crate::{mat_to_numpy, run, run_interruptible, slice1, threads, to_pyerr, view, Failure};
use ak_core::kernels::activation::Activation;
use ak_core::faer::{Mat, MatRef};
use ak_core::finite::network::{FiniteMlp, Parameterization};
use ak_core::finite::gradient_descent::{self, GdConfig};
use ak_core::finite::posterior_sampling::{self, SamplerConfig, TRACE_NAMES};
use ak_core::threads::with_threads;
use numpy::ndarray::Array1;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// Network description shared by the functions below.
#[allow(clippy::too_many_arguments)]
fn make_net(
    py: Python<'_>,
    d: usize,
    widths: Vec<usize>,
    n_out: usize,
    activation: &str,
    sigma_w: f64,
    sigma_b: f64,
    parameterization: &str,
    gamma: f64,
) -> PyResult<FiniteMlp> {
    let act = Activation::from_name(activation).map_err(|e| to_pyerr(py, e.into()))?;
    let param = match parameterization {
        "standard" => Parameterization::Standard,
        "mean_field" => Parameterization::MeanField { gamma },
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "parameterization: expected 'standard' or 'mean_field', got {other:?}"
            )))
        }
    };
    let net = FiniteMlp {
        d,
        widths,
        n_out,
        activation: act,
        sigma_w,
        sigma_b,
        param,
    };
    net.validate().map_err(|e| to_pyerr(py, e.into()))?;
    Ok(net)
}

fn mats_to_list<'py>(py: Python<'py>, ms: &[Mat<f64>]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, ms.iter().map(|m| mat_to_numpy(py, m.as_ref())))
}

/// Posterior sampling; returns a dict of NumPy arrays (see `adaptive_kernels.sample_posterior`).
#[pyfunction]
#[pyo3(signature = (x, y, x_test, *, widths, activation, sigma_w, sigma_b, parameterization, gamma, temperature,
    n_chains, n_samples, burn_in, thin, step_size, metropolis, adapt_step_size, target_accept, seed,
    store_kernels, store_weights, train_hidden=true, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn sample_posterior<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    x_test: Option<PyReadonlyArray2<'py, f64>>,
    widths: Vec<usize>,
    activation: &str,
    sigma_w: f64,
    sigma_b: f64,
    parameterization: &str,
    gamma: f64,
    temperature: f64,
    n_chains: usize,
    n_samples: usize,
    burn_in: usize,
    thin: usize,
    step_size: f64,
    metropolis: bool,
    adapt_step_size: bool,
    target_accept: f64,
    seed: u64,
    store_kernels: bool,
    store_weights: bool,
    train_hidden: bool,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let xv = view("X", &x)?;
    let yv = view("y", &y)?;
    let xt = match &x_test {
        Some(t) => Some(view("X_test", t)?),
        None => None,
    };
    let net = make_net(
        py,
        xv.ncols(),
        widths,
        yv.ncols(),
        activation,
        sigma_w,
        sigma_b,
        parameterization,
        gamma,
    )?;
    let cfg = SamplerConfig {
        temperature,
        n_chains,
        n_samples,
        burn_in,
        thin,
        step_size,
        metropolis,
        adapt_step_size,
        target_accept,
        seed,
        store_kernels,
        store_weights,
        train_hidden,
    };
    let nt = threads(n_threads);
    let (res, interrupted) = run_interruptible(py, progress, |ctl| {
        Ok(with_threads(nt, |_| {
            posterior_sampling::sample_posterior(&net, xv, yv, xt, &cfg, ctl)
        })?)
    })?;
    let d = PyDict::new(py);
    d.set_item("train_mean", mat_to_numpy(py, res.train_mean.as_ref()))?;
    d.set_item("train_var", mat_to_numpy(py, res.train_var.as_ref()))?;
    d.set_item("test_mean", mat_to_numpy(py, res.test_mean.as_ref()))?;
    d.set_item("test_var", mat_to_numpy(py, res.test_var.as_ref()))?;
    d.set_item("train_se", mat_to_numpy(py, res.train_se.as_ref()))?;
    d.set_item("test_se", mat_to_numpy(py, res.test_se.as_ref()))?;
    d.set_item("kernels", mats_to_list(py, &res.kernels)?)?;
    d.set_item(
        "readout_spectrum",
        Array1::from(res.readout_spectrum.clone()).into_pyarray(py),
    )?;
    d.set_item(
        "input_spectrum",
        Array1::from(res.input_spectrum.clone()).into_pyarray(py),
    )?;
    d.set_item(
        "ess",
        PyList::new(
            py,
            res.ess
                .iter()
                .map(|e| Array1::from(e.clone()).into_pyarray(py)),
        )?,
    )?;
    d.set_item("rhat", Array1::from(res.rhat.clone()).into_pyarray(py))?;
    d.set_item("trace_names", PyList::new(py, TRACE_NAMES)?)?;
    let traces = PyList::new(
        py,
        res.chains.iter().map(|c| {
            let n = c.traces[0].len();
            numpy::ndarray::Array2::from_shape_fn((TRACE_NAMES.len(), n), |(k, i)| c.traces[k][i])
                .into_pyarray(py)
        }),
    )?;
    d.set_item("traces", traces)?;
    d.set_item(
        "acceptance_rate",
        PyList::new(
            py,
            res.chains.iter().map(|c| {
                if c.proposed > 0 {
                    c.accepted as f64 / c.proposed as f64
                } else {
                    f64::NAN
                }
            }),
        )?,
    )?;
    d.set_item(
        "step_size",
        PyList::new(py, res.chains.iter().map(|c| c.step_size))?,
    )?;
    d.set_item(
        "n_kept",
        PyList::new(py, res.chains.iter().map(|c| c.n_kept))?,
    )?;
    d.set_item(
        "final_theta",
        PyList::new(
            py,
            res.chains
                .iter()
                .map(|c| Array1::from(c.final_theta.clone()).into_pyarray(py)),
        )?,
    )?;
    d.set_item("interrupted", interrupted || res.interrupted)?;
    Ok(d)
}

/// Gradient descent with weight decay; returns a list (one dict per ensemble member).
#[pyfunction]
#[pyo3(signature = (x, y, x_test, *, widths, activation, sigma_w, sigma_b, parameterization, gamma,
    weight_decay, lr, max_steps, tol, record_every, n_ensemble, seed, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn train_gd<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    x_test: Option<PyReadonlyArray2<'py, f64>>,
    widths: Vec<usize>,
    activation: &str,
    sigma_w: f64,
    sigma_b: f64,
    parameterization: &str,
    gamma: f64,
    weight_decay: f64,
    lr: f64,
    max_steps: usize,
    tol: f64,
    record_every: usize,
    n_ensemble: usize,
    seed: u64,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyList>, bool)> {
    let xv = view("X", &x)?;
    let yv = view("y", &y)?;
    let xt = match &x_test {
        Some(t) => Some(view("X_test", t)?),
        None => None,
    };
    let net = make_net(
        py,
        xv.ncols(),
        widths,
        yv.ncols(),
        activation,
        sigma_w,
        sigma_b,
        parameterization,
        gamma,
    )?;
    let cfg = GdConfig {
        weight_decay,
        lr,
        max_steps,
        tol,
        record_every,
        n_ensemble,
        seed,
    };
    let nt = threads(n_threads);
    let (res, interrupted) = run_interruptible(py, progress, |ctl| {
        Ok(with_threads(nt, |_| {
            gradient_descent::train_gd(&net, xv, yv, xt, &cfg, ctl)
        })?)
    })?;
    let out = PyList::empty(py);
    for r in &res {
        let d = PyDict::new(py);
        d.set_item("theta", Array1::from(r.theta.clone()).into_pyarray(py))?;
        d.set_item("n_steps", r.n_steps)?;
        d.set_item("converged", r.converged)?;
        d.set_item("interrupted", r.interrupted)?;
        d.set_item("grad_rms", r.grad_rms)?;
        let curve =
            numpy::ndarray::Array2::from_shape_fn((r.loss_curve.len(), 3), |(i, k)| match k {
                0 => r.loss_curve[i].0 as f64,
                1 => r.loss_curve[i].1,
                _ => r.loss_curve[i].2,
            });
        d.set_item("loss_curve", curve.into_pyarray(py))?;
        d.set_item("train_output", mat_to_numpy(py, r.train_output.as_ref()))?;
        d.set_item("test_output", mat_to_numpy(py, r.test_output.as_ref()))?;
        d.set_item("feature_kernels", mats_to_list(py, &r.feature_kernels)?)?;
        d.set_item("gradient_kernels", mats_to_list(py, &r.gradient_kernels)?)?;
        d.set_item("ntk", mat_to_numpy(py, r.ntk.as_ref()))?;
        out.append(d)?;
    }
    Ok((out, interrupted))
}

fn theta_slice<'a>(net: &FiniteMlp, theta: &'a PyReadonlyArray1<'_, f64>) -> PyResult<&'a [f64]> {
    let t = slice1("theta", theta)?;
    let n = net.layout().len;
    if t.len() != n {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "theta: has {} entries, the network has {n} parameters",
            t.len()
        )));
    }
    Ok(t)
}

/// `(U, grad U)` of the finite network at `theta` (flat parameter vector).
#[pyfunction]
#[pyo3(signature = (theta, x, y, *, widths, activation, sigma_w, sigma_b, parameterization, gamma, beta, decay))]
#[allow(clippy::too_many_arguments)]
fn finite_potential_and_gradient<'py>(
    py: Python<'py>,
    theta: PyReadonlyArray1<'py, f64>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    widths: Vec<usize>,
    activation: &str,
    sigma_w: f64,
    sigma_b: f64,
    parameterization: &str,
    gamma: f64,
    beta: f64,
    decay: f64,
) -> PyResult<(f64, Bound<'py, PyArray1<f64>>)> {
    let xv = view("X", &x)?;
    let yv = view("y", &y)?;
    let net = make_net(
        py,
        xv.ncols(),
        widths,
        yv.ncols(),
        activation,
        sigma_w,
        sigma_b,
        parameterization,
        gamma,
    )?;
    let t = theta_slice(&net, &theta)?;
    check_xy(py, xv, yv)?;
    let (u, g) = run(py, None, |_| {
        let mut g = vec![0.0; t.len()];
        let (u, _, _) =
            net.potential_and_gradient(t, xv, yv, beta, decay, &mut g, ak_core::faer::Par::Seq);
        Ok::<_, Failure>((u, g))
    })?;
    Ok((u, Array1::from(g).into_pyarray(py)))
}

fn check_xy(py: Python<'_>, x: MatRef<'_, f64>, y: MatRef<'_, f64>) -> PyResult<()> {
    ak_core::finite::network::check_data(x, y).map_err(|e| to_pyerr(py, e.into()))
}

/// One unadjusted Langevin step `theta - eta grad U + sqrt(2 eta) xi` at `temperature`.
#[pyfunction]
#[pyo3(signature = (theta, x, y, xi, *, widths, activation, sigma_w, sigma_b, parameterization, gamma, temperature, step_size))]
#[allow(clippy::too_many_arguments)]
fn langevin_step<'py>(
    py: Python<'py>,
    theta: PyReadonlyArray1<'py, f64>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    xi: PyReadonlyArray1<'py, f64>,
    widths: Vec<usize>,
    activation: &str,
    sigma_w: f64,
    sigma_b: f64,
    parameterization: &str,
    gamma: f64,
    temperature: f64,
    step_size: f64,
) -> PyResult<(Bound<'py, PyArray1<f64>>, f64)> {
    let xv = view("X", &x)?;
    let yv = view("y", &y)?;
    let net = make_net(
        py,
        xv.ncols(),
        widths,
        yv.ncols(),
        activation,
        sigma_w,
        sigma_b,
        parameterization,
        gamma,
    )?;
    let t = theta_slice(&net, &theta)?;
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
        let beta = net.loss_scale(temperature);
        let mut g = vec![0.0; t.len()];
        let (u, _, _) =
            net.potential_and_gradient(t, xv, yv, beta, 1.0, &mut g, ak_core::faer::Par::Seq);
        let prop = ak_core::mcmc::mala::langevin_proposal(t, &g, noise, step_size);
        let mut gp = vec![0.0; t.len()];
        let (up, _, _) =
            net.potential_and_gradient(&prop, xv, yv, beta, 1.0, &mut gp, ak_core::faer::Par::Seq);
        let lr = ak_core::mcmc::mala::mala_log_ratio(u, up, t, &prop, &g, &gp, step_size);
        Ok::<_, Failure>((prop, lr))
    })?;
    Ok((Array1::from(prop).into_pyarray(py), log_ratio))
}

/// One gradient-descent step with weight decay.
#[pyfunction]
#[pyo3(signature = (theta, x, y, *, widths, activation, sigma_w, sigma_b, parameterization, gamma, lr, weight_decay))]
#[allow(clippy::too_many_arguments)]
fn gd_step<'py>(
    py: Python<'py>,
    theta: PyReadonlyArray1<'py, f64>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    widths: Vec<usize>,
    activation: &str,
    sigma_w: f64,
    sigma_b: f64,
    parameterization: &str,
    gamma: f64,
    lr: f64,
    weight_decay: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let xv = view("X", &x)?;
    let yv = view("y", &y)?;
    let net = make_net(
        py,
        xv.ncols(),
        widths,
        yv.ncols(),
        activation,
        sigma_w,
        sigma_b,
        parameterization,
        gamma,
    )?;
    let t = theta_slice(&net, &theta)?;
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
        gradient_descent::gd_step(&net, &mut th, xv, yv, &cfg, &mut g);
        Ok::<_, Failure>(th)
    })?;
    Ok(Array1::from(out).into_pyarray(py))
}

/// Outputs (P, C) and per-layer feature kernels of the finite network at `theta`.
#[pyfunction]
#[pyo3(signature = (theta, x, *, n_out, widths, activation, sigma_w, sigma_b, parameterization, gamma))]
#[allow(clippy::too_many_arguments)]
fn finite_forward<'py>(
    py: Python<'py>,
    theta: PyReadonlyArray1<'py, f64>,
    x: PyReadonlyArray2<'py, f64>,
    n_out: usize,
    widths: Vec<usize>,
    activation: &str,
    sigma_w: f64,
    sigma_b: f64,
    parameterization: &str,
    gamma: f64,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Bound<'py, PyList>)> {
    let xv = view("X", &x)?;
    let net = make_net(
        py,
        xv.ncols(),
        widths,
        n_out,
        activation,
        sigma_w,
        sigma_b,
        parameterization,
        gamma,
    )?;
    let t = theta_slice(&net, &theta)?;
    if x.shape()[0] == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "X: must be non-empty",
        ));
    }
    let (f, ks) = run(py, None, |_| {
        let fw = net.forward(t, xv, ak_core::faer::Par::Seq);
        let ks = net.feature_kernels(&fw, ak_core::faer::Par::Seq);
        Ok::<_, Failure>((fw.f, ks))
    })?;
    Ok((mat_to_numpy(py, f.as_ref()), mats_to_list(py, &ks)?))
}

/// Number of parameters of the finite network.
#[pyfunction]
#[pyo3(signature = (*, d, n_out, widths, activation, sigma_w, sigma_b, parameterization, gamma))]
#[allow(clippy::too_many_arguments)]
fn finite_param_count(
    py: Python<'_>,
    d: usize,
    n_out: usize,
    widths: Vec<usize>,
    activation: &str,
    sigma_w: f64,
    sigma_b: f64,
    parameterization: &str,
    gamma: f64,
) -> PyResult<usize> {
    Ok(make_net(
        py,
        d,
        widths,
        n_out,
        activation,
        sigma_w,
        sigma_b,
        parameterization,
        gamma,
    )?
    .layout()
    .len)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sample_posterior, m)?)?;
    m.add_function(wrap_pyfunction!(train_gd, m)?)?;
    m.add_function(wrap_pyfunction!(finite_potential_and_gradient, m)?)?;
    m.add_function(wrap_pyfunction!(langevin_step, m)?)?;
    m.add_function(wrap_pyfunction!(gd_step, m)?)?;
    m.add_function(wrap_pyfunction!(finite_forward, m)?)?;
    m.add_function(wrap_pyfunction!(finite_param_count, m)?)?;
    Ok(())
}
