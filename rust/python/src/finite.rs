//! `adaptive_kernels._core.finite`: the finite-width ground truth: MALA posterior sampling,
//! gradient descent with weight decay, the forward pass, and the exact posterior of a
//! one-hidden-layer linear network.
use crate::convert::{mat_to_numpy, mats_to_list, slice1, view, NetArg, Options};
use crate::errors::Failure;
use crate::runtime::{run, run_interruptible, threads};
use ak_core::faer::MatRef;
use ak_core::finite::exact_linear::{exact_linear_posterior as core_exact, ExactLinearProblem};
use ak_core::finite::network::{FiniteMlp, Parameterization};
use ak_core::finite::gradient_descent::{self, GdConfig};
use ak_core::finite::posterior_sampling::{self, SamplerConfig, TRACE_NAMES};
use ak_core::finite::tangent;
use ak_core::threads::with_threads;
use numpy::ndarray::{Array1, Array2};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

pub(crate) fn parameterization(name: &str, gamma: f64, chi: f64) -> PyResult<Parameterization> {
    match name {
        "standard" => Ok(Parameterization::Standard { chi }),
        "mean_field" if chi != 1.0 => Err(PyValueError::new_err(format!(
            "chi: only parameterization='standard' takes chi (mean field is chi = width * gamma**2), got chi={chi}"
        ))),
        "mean_field" => Ok(Parameterization::MeanField { gamma }),
        other => Err(PyValueError::new_err(format!(
            "parameterization: expected 'standard' or 'mean_field', got {other:?}"
        ))),
    }
}

/// The finite network of `net` (an `adaptive_kernels.MLP` with a built-in activation) with
/// hidden `widths`, `d` inputs and `n_out` outputs.
pub(crate) fn finite_net(
    net: &Bound<'_, PyAny>,
    d: usize,
    n_out: usize,
    widths: Vec<usize>,
    param: &str,
    gamma: f64,
    chi: f64,
) -> PyResult<FiniteMlp> {
    let fnet = FiniteMlp {
        d,
        widths,
        n_out,
        activation: NetArg::builtin(net)?,
        sigma_w: net.getattr("sigma_w")?.extract()?,
        sigma_b: net.getattr("sigma_b")?.extract()?,
        param: parameterization(param, gamma, chi)?,
    };
    fnet.validate().map_err(|e| crate::errors::to_pyerr(net.py(), e.into()))?;
    Ok(fnet)
}

/// Views of the training data and the optional test inputs.
#[allow(clippy::type_complexity)]
fn data<'a>(
    x: &'a PyReadonlyArray2<'_, f64>,
    y: &'a PyReadonlyArray2<'_, f64>,
    x_test: &'a Option<PyReadonlyArray2<'_, f64>>,
) -> PyResult<(MatRef<'a, f64>, MatRef<'a, f64>, Option<MatRef<'a, f64>>)> {
    let xt = match x_test {
        Some(t) => Some(view("X_test", t)?),
        None => None,
    };
    Ok((view("X", x)?, view("y", y)?, xt))
}

/// Posterior averages of a MALA run (see `adaptive_kernels.PosteriorSamples`).
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.finite")]
struct Posterior {
    train_mean: Py<PyArray2<f64>>,
    train_var: Py<PyArray2<f64>>,
    train_se: Py<PyArray2<f64>>,
    test_mean: Py<PyArray2<f64>>,
    test_var: Py<PyArray2<f64>>,
    test_se: Py<PyArray2<f64>>,
    kernels: Py<PyList>,
    readout_spectrum: Py<PyArray1<f64>>,
    input_spectrum: Py<PyArray1<f64>>,
    /// (n_chains, n_traces): each chain's own ESS
    ess: Py<PyArray2<f64>>,
    /// (n_traces,): rank-normalized split R-hat, bulk and tail ESS over all chains, classic split-R-hat
    rhat: Py<PyArray1<f64>>,
    ess_bulk: Py<PyArray1<f64>>,
    ess_tail: Py<PyArray1<f64>>,
    rhat_classic: Py<PyArray1<f64>>,
    trace_names: Vec<String>,
    /// per chain (n_traces, n_kept)
    traces: Py<PyList>,
    acceptance_rate: Py<PyArray1<f64>>,
    step_size: Py<PyArray1<f64>>,
    n_kept: Vec<usize>,
    /// (n_chains, n_params)
    final_theta: Py<PyArray2<f64>>,
    interrupted: bool,
}

/// One network trained by gradient descent (see `adaptive_kernels.TrainedNetworks`).
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.finite")]
struct Trained {
    theta: Py<PyArray1<f64>>,
    n_steps: usize,
    converged: bool,
    interrupted: bool,
    grad_rms: f64,
    /// (n_records, 3): step, 1/2 sum (f - y)^2, regularized objective
    loss_curve: Py<PyArray2<f64>>,
    train_output: Py<PyArray2<f64>>,
    test_output: Py<PyArray2<f64>>,
    feature_kernels: Py<PyList>,
    gradient_kernels: Py<PyList>,
    ntk: Py<PyArray2<f64>>,
}

/// The exact posterior of a one-hidden-layer linear network (see
/// `adaptive_kernels.ExactLinearPosterior`).
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.finite")]
struct ExactLinear {
    train_mean: Py<PyArray2<f64>>,
    train_var: Py<PyArray2<f64>>,
    test_mean: Option<Py<PyArray2<f64>>>,
    test_var: Option<Py<PyArray2<f64>>>,
    kernel_scale_mean: f64,
    kernel_scale_std: f64,
    log_evidence: f64,
    prior_scale: f64,
    kappa: f64,
    log_u_mode: f64,
    log_u_sd: f64,
    n_grid: usize,
}

fn sampler_config(config: Option<Bound<'_, PyDict>>) -> PyResult<SamplerConfig> {
    let o = Options::new(config)?;
    let d = SamplerConfig::default();
    let out = SamplerConfig {
        temperature: o.get("temperature", d.temperature)?,
        n_chains: o.get("n_chains", d.n_chains)?,
        n_samples: o.get("n_samples", d.n_samples)?,
        burn_in: o.get("burn_in", d.burn_in)?,
        thin: o.get("thin", d.thin)?,
        step_size: o.get("step_size", d.step_size)?,
        metropolis: o.get("metropolis", d.metropolis)?,
        adapt_step_size: o.get("adapt_step_size", d.adapt_step_size)?,
        target_accept: o.get("target_accept", d.target_accept)?,
        seed: o.get("seed", d.seed)?,
        store_kernels: o.get("store_kernels", d.store_kernels)?,
        store_weights: o.get("store_weights", d.store_weights)?,
        train_hidden: o.get("train_hidden", d.train_hidden)?,
    };
    o.finish()?;
    Ok(out)
}

fn gd_config(config: Option<Bound<'_, PyDict>>) -> PyResult<GdConfig> {
    let o = Options::new(config)?;
    let d = GdConfig::default();
    let out = GdConfig {
        weight_decay: o.get("weight_decay", d.weight_decay)?,
        lr: o.get("lr", d.lr)?,
        max_steps: o.get("max_steps", d.max_steps)?,
        tol: o.get("tol", d.tol)?,
        record_every: o.get("record_every", d.record_every)?,
        n_ensemble: o.get("n_ensemble", d.n_ensemble)?,
        seed: o.get("seed", d.seed)?,
    };
    o.finish()?;
    Ok(out)
}

/// Posterior sampling of the finite network by MALA (`config`: the sampler settings; the
/// core's defaults where left out). Ctrl-C returns the samples drawn so far (`interrupted`).
#[pyfunction]
#[pyo3(signature = (x, y, x_test, net, *, widths, parameterization, gamma, chi=1.0, config=None, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn sample_posterior<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    x_test: Option<PyReadonlyArray2<'py, f64>>,
    net: Bound<'py, PyAny>,
    widths: Vec<usize>,
    parameterization: &str,
    gamma: f64,
    chi: f64,
    config: Option<Bound<'py, PyDict>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Posterior> {
    let (xv, yv, xt) = data(&x, &y, &x_test)?;
    let fnet = finite_net(&net, xv.ncols(), yv.ncols(), widths, parameterization, gamma, chi)?;
    let cfg = sampler_config(config)?;
    let nt = threads(n_threads);
    let (res, interrupted) = run_interruptible(py, progress, |ctl| {
        Ok(with_threads(nt, |_| {
            posterior_sampling::sample_posterior(&fnet, xv, yv, xt, &cfg, ctl)
        })?)
    })?;
    let n_tr = TRACE_NAMES.len();
    let traces = PyList::new(
        py,
        res.chains.iter().map(|c| {
            let n = c.traces[0].len();
            Array2::from_shape_fn((n_tr, n), |(k, i)| c.traces[k][i]).into_pyarray(py)
        }),
    )?;
    let n_params = res.chains.first().map_or(0, |c| c.final_theta.len());
    Ok(Posterior {
        train_mean: mat_to_numpy(py, res.train_mean.as_ref()).unbind(),
        train_var: mat_to_numpy(py, res.train_var.as_ref()).unbind(),
        train_se: mat_to_numpy(py, res.train_se.as_ref()).unbind(),
        test_mean: mat_to_numpy(py, res.test_mean.as_ref()).unbind(),
        test_var: mat_to_numpy(py, res.test_var.as_ref()).unbind(),
        test_se: mat_to_numpy(py, res.test_se.as_ref()).unbind(),
        kernels: mats_to_list(py, &res.kernels)?.unbind(),
        readout_spectrum: Array1::from(res.readout_spectrum.clone()).into_pyarray(py).unbind(),
        input_spectrum: Array1::from(res.input_spectrum.clone()).into_pyarray(py).unbind(),
        ess: Array2::from_shape_fn((res.ess.len(), n_tr), |(c, k)| {
            res.ess[c].get(k).copied().unwrap_or(f64::NAN)
        })
        .into_pyarray(py)
        .unbind(),
        rhat: Array1::from(res.rhat.clone()).into_pyarray(py).unbind(),
        ess_bulk: Array1::from(res.ess_bulk.clone()).into_pyarray(py).unbind(),
        ess_tail: Array1::from(res.ess_tail.clone()).into_pyarray(py).unbind(),
        rhat_classic: Array1::from(res.rhat_classic.clone()).into_pyarray(py).unbind(),
        trace_names: TRACE_NAMES.iter().map(|s| s.to_string()).collect(),
        traces: traces.unbind(),
        acceptance_rate: Array1::from_iter(res.chains.iter().map(|c| {
            if c.proposed > 0 {
                c.accepted as f64 / c.proposed as f64
            } else {
                f64::NAN
            }
        }))
        .into_pyarray(py)
        .unbind(),
        step_size: Array1::from_iter(res.chains.iter().map(|c| c.step_size))
            .into_pyarray(py)
            .unbind(),
        n_kept: res.chains.iter().map(|c| c.n_kept).collect(),
        final_theta: Array2::from_shape_fn((res.chains.len(), n_params), |(c, i)| {
            res.chains[c].final_theta[i]
        })
        .into_pyarray(py)
        .unbind(),
        interrupted: interrupted || res.interrupted,
    })
}

/// Gradient descent with weight decay of an ensemble (`config`: the GD settings; the core's
/// defaults where left out). Returns the members and whether Ctrl-C stopped the run.
#[pyfunction]
#[pyo3(signature = (x, y, x_test, net, *, widths, parameterization, gamma, config=None, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn train_gd<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    x_test: Option<PyReadonlyArray2<'py, f64>>,
    net: Bound<'py, PyAny>,
    widths: Vec<usize>,
    parameterization: &str,
    gamma: f64,
    config: Option<Bound<'py, PyDict>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Vec<Trained>, bool)> {
    let (xv, yv, xt) = data(&x, &y, &x_test)?;
    let fnet = finite_net(&net, xv.ncols(), yv.ncols(), widths, parameterization, gamma, 1.0)?;
    let cfg = gd_config(config)?;
    let nt = threads(n_threads);
    let (res, interrupted) = run_interruptible(py, progress, |ctl| {
        Ok(with_threads(nt, |_| gradient_descent::train_gd(&fnet, xv, yv, xt, &cfg, ctl))?)
    })?;
    let members = res
        .iter()
        .map(|r| {
            let curve = Array2::from_shape_fn((r.loss_curve.len(), 3), |(i, k)| match k {
                0 => r.loss_curve[i].0 as f64,
                1 => r.loss_curve[i].1,
                _ => r.loss_curve[i].2,
            });
            Ok(Trained {
                theta: Array1::from(r.theta.clone()).into_pyarray(py).unbind(),
                n_steps: r.n_steps,
                converged: r.converged,
                interrupted: r.interrupted,
                grad_rms: r.grad_rms,
                loss_curve: curve.into_pyarray(py).unbind(),
                train_output: mat_to_numpy(py, r.train_output.as_ref()).unbind(),
                test_output: mat_to_numpy(py, r.test_output.as_ref()).unbind(),
                feature_kernels: mats_to_list(py, &r.feature_kernels)?.unbind(),
                gradient_kernels: mats_to_list(py, &r.gradient_kernels)?.unbind(),
                ntk: mat_to_numpy(py, r.ntk.as_ref()).unbind(),
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((members, interrupted))
}

pub(crate) fn theta_slice<'a>(
    net: &FiniteMlp,
    theta: &'a PyReadonlyArray1<'_, f64>,
) -> PyResult<&'a [f64]> {
    let t = slice1("theta", theta)?;
    let n = net.layout().len;
    if t.len() != n {
        return Err(PyValueError::new_err(format!(
            "theta: has {} entries, the net (at this width and n_out, with the number of columns of X) has {n} parameters",
            t.len()
        )));
    }
    Ok(t)
}

/// Outputs (P, C) and per-layer feature kernels of the finite network at `theta`.
#[pyfunction]
#[pyo3(signature = (theta, x, net, *, n_out, widths, parameterization, gamma))]
#[allow(clippy::too_many_arguments)]
fn forward<'py>(
    py: Python<'py>,
    theta: PyReadonlyArray1<'py, f64>,
    x: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    n_out: usize,
    widths: Vec<usize>,
    parameterization: &str,
    gamma: f64,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Bound<'py, PyList>)> {
    let xv = view("X", &x)?;
    let fnet = finite_net(&net, xv.ncols(), n_out, widths, parameterization, gamma, 1.0)?;
    let t = theta_slice(&fnet, &theta)?;
    if x.shape()[0] == 0 {
        return Err(PyValueError::new_err("X: must be non-empty"));
    }
    let (f, ks) = run(py, None, |_| {
        let fw = fnet.forward(t, xv, ak_core::faer::Par::Seq);
        let ks = fnet.feature_kernels(&fw, ak_core::faer::Par::Seq);
        Ok::<_, Failure>((fw.f, ks))
    })?;
    Ok((mat_to_numpy(py, f.as_ref()), mats_to_list(py, &ks)?))
}

/// Exact posterior of a one-hidden-layer linear network of width `width` (Gamma scale mixture
/// of GPs).
#[pyfunction]
#[pyo3(signature = (x, y, x_test, *, sigma_w, width, temperature, parameterization, gamma, chi=1.0, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn exact_linear_posterior<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    x_test: Option<PyReadonlyArray2<'py, f64>>,
    sigma_w: f64,
    width: usize,
    temperature: f64,
    parameterization: &str,
    gamma: f64,
    chi: f64,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<ExactLinear> {
    let prob = ExactLinearProblem {
        x: view("X", &x)?,
        y: view("y", &y)?,
        x_test: match &x_test {
            Some(t) => Some(view("X_test", t)?),
            None => None,
        },
        sigma_w,
        width,
        temperature,
        param: self::parameterization(parameterization, gamma, chi)?,
    };
    let nt = threads(n_threads);
    let res = run(py, progress, |ctl| Ok(core_exact(&prob, nt, ctl)?))?;
    Ok(ExactLinear {
        train_mean: mat_to_numpy(py, res.train_mean.as_ref()).unbind(),
        train_var: mat_to_numpy(py, res.train_var.as_ref()).unbind(),
        test_mean: res.test_mean.as_ref().map(|m| mat_to_numpy(py, m.as_ref()).unbind()),
        test_var: res.test_var.as_ref().map(|m| mat_to_numpy(py, m.as_ref()).unbind()),
        kernel_scale_mean: res.kernel_scale_mean,
        kernel_scale_std: res.kernel_scale_std,
        log_evidence: res.log_evidence,
        prior_scale: res.prior_scale,
        kappa: res.kappa,
        log_u_mode: res.log_u_mode,
        log_u_sd: res.log_u_sd,
        n_grid: res.n_grid,
    })
}

/// `theta_0 ~ N(0, I)` of `train_gd`'s / `sample_posterior`'s member 0 with this `seed` (the
/// same stream, `(seed, 0)`).
#[pyfunction]
#[pyo3(signature = (net, *, d, n_out, widths, parameterization, gamma, seed))]
#[allow(clippy::too_many_arguments)]
fn init_params<'py>(
    py: Python<'py>,
    net: Bound<'py, PyAny>,
    d: usize,
    n_out: usize,
    widths: Vec<usize>,
    parameterization: &str,
    gamma: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let fnet = finite_net(&net, d, n_out, widths, parameterization, gamma, 1.0)?;
    let mut rng = ak_core::rng::Rng::new(seed, 0);
    Ok(posterior_sampling::prior_draw(&fnet, &mut rng).into_pyarray(py))
}

/// Structured tangent features at `theta` on the rows of `x` (the network at `chi`, as
/// `sample_posterior`): `(f0, blocks, n_params)`, each
/// block `(inputs, backprop, bias_scale, w_offset, b_offset)` (see `ak_core::finite::tangent`).
#[pyfunction]
#[pyo3(signature = (theta, x, net, *, n_out, widths, parameterization, gamma, chi=1.0, n_threads=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn tangent_features<'py>(
    py: Python<'py>,
    theta: PyReadonlyArray1<'py, f64>,
    x: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    n_out: usize,
    widths: Vec<usize>,
    parameterization: &str,
    gamma: f64,
    chi: f64,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Bound<'py, PyList>, usize)> {
    let xv = view("X", &x)?;
    let fnet = finite_net(&net, xv.ncols(), n_out, widths, parameterization, gamma, chi)?;
    let t = theta_slice(&fnet, &theta)?;
    if x.shape()[0] == 0 {
        return Err(PyValueError::new_err("X: must be non-empty"));
    }
    let nt = threads(n_threads);
    let tf = run(py, None, |_| {
        ak_core::validate::finite_mat("X", xv)?;
        ak_core::validate::finite("params", t)?;
        Ok::<_, Failure>(with_threads(nt, |par| fnet.tangent_features(t, xv, par)))
    })?;
    let blocks = PyList::empty(py);
    for b in &tf.blocks {
        blocks.append((
            mat_to_numpy(py, b.inputs.as_ref()),
            mat_to_numpy(py, b.backprop.as_ref()),
            b.bias_scale,
            b.w_offset,
            b.b_offset,
        ))?;
    }
    Ok((mat_to_numpy(py, tf.f0.as_ref()), blocks, tf.n_params))
}

/// The blocks of an `adaptive_kernels.TangentFeatures` object (argument `name`), borrowed.
pub(crate) struct TangentArg<'py> {
    inputs: Vec<PyReadonlyArray2<'py, f64>>,
    backprop: Vec<PyReadonlyArray2<'py, f64>>,
    bias: Vec<f64>,
    w_off: Vec<usize>,
    b_off: Vec<Option<usize>>,
    pub(crate) n_params: usize,
    name: &'static str,
}

impl<'py> TangentArg<'py> {
    pub(crate) fn new(name: &'static str, tf: &Bound<'py, PyAny>) -> PyResult<Self> {
        let arg = TangentArg {
            inputs: tf.getattr("inputs")?.extract()?,
            backprop: tf.getattr("backprop")?.extract()?,
            bias: tf.getattr("bias_scales")?.extract()?,
            w_off: tf.getattr("w_offsets")?.extract()?,
            b_off: tf.getattr("b_offsets")?.extract()?,
            n_params: tf.getattr("n_params")?.extract()?,
            name,
        };
        let k = arg.inputs.len();
        if [arg.backprop.len(), arg.bias.len(), arg.w_off.len(), arg.b_off.len()].iter().any(|&l| l != k) {
            return Err(PyValueError::new_err(format!("{name}: inconsistent number of layers")));
        }
        Ok(arg)
    }

    pub(crate) fn refs(&self) -> PyResult<Vec<tangent::BlockRef<'_>>> {
        let mut out = Vec::with_capacity(self.inputs.len());
        for l in 0..self.inputs.len() {
            out.push(tangent::BlockRef {
                inputs: view(self.name, &self.inputs[l])?,
                backprop: view(self.name, &self.backprop[l])?,
                bias_scale: self.bias[l],
                w_offset: self.w_off[l],
                b_offset: self.b_off[l],
            });
        }
        Ok(out)
    }
}

/// Per-layer tangent kernels between `a` and `b` (both `TangentFeatures`), each
/// `(n_a C, n_b C)`.
#[pyfunction]
#[pyo3(signature = (a, b, *, n_threads=None))]
fn tangent_kernels<'py>(
    py: Python<'py>,
    a: Bound<'py, PyAny>,
    b: Bound<'py, PyAny>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyList>> {
    let (ta, tb) = (TangentArg::new("tf", &a)?, TangentArg::new("other", &b)?);
    let (ra, rb) = (ta.refs()?, tb.refs()?);
    let nt = threads(n_threads);
    let ks = run(py, None, |_| {
        tangent::check_blocks("tf", &ra, ta.n_params)?;
        tangent::check_blocks("other", &rb, tb.n_params)?;
        tangent::check_compatible("other", &rb, &ra)?;
        tangent::check_kernel_memory("tf", &ra, &rb, 1)?;
        Ok::<_, Failure>(with_threads(nt, |par| tangent::block_kernels(&ra, &rb, par)))
    })?;
    mats_to_list(py, &ks)
}

/// Dense Jacobian `(n C, n_params)` of a `TangentFeatures`.
#[pyfunction]
fn tangent_jacobian<'py>(py: Python<'py>, tf: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let ta = TangentArg::new("tf", &tf)?;
    let r = ta.refs()?;
    let j = run(py, None, |_| {
        tangent::check_blocks("tf", &r, ta.n_params)?;
        let rows = r[0].backprop.nrows();
        ak_core::validate::dense_memory("tf", "the dense Jacobian", 1.0, rows, ta.n_params,
                                        "use kernel() / the structured factors instead")?;
        Ok::<_, Failure>(tangent::jacobian(&r, ta.n_params))
    })?;
    Ok(mat_to_numpy(py, j.as_ref()))
}

/// `sum_l weights[l] J_l^T v` (a flat parameter vector) of a `TangentFeatures`.
#[pyfunction]
fn tangent_vjp<'py>(
    py: Python<'py>,
    tf: Bound<'py, PyAny>,
    v: PyReadonlyArray1<'py, f64>,
    weights: Vec<f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let ta = TangentArg::new("tf", &tf)?;
    let r = ta.refs()?;
    let vs = slice1("v", &v)?;
    let out = run(py, None, |_| {
        tangent::check_blocks("tf", &r, ta.n_params)?;
        Ok::<_, Failure>(tangent::vjp(&r, vs, &weights, ta.n_params, ak_core::faer::Par::Seq)?)
    })?;
    Ok(out.into_pyarray(py))
}

/// `J theta` (length n C) of a `TangentFeatures` for a flat parameter vector `theta`.
#[pyfunction]
fn tangent_jvp<'py>(
    py: Python<'py>,
    tf: Bound<'py, PyAny>,
    theta: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let ta = TangentArg::new("tf", &tf)?;
    let r = ta.refs()?;
    let t = slice1("theta", &theta)?;
    let out = run(py, None, |_| {
        tangent::check_blocks("tf", &r, ta.n_params)?;
        Ok::<_, Failure>(tangent::jvp(&r, t, ta.n_params, ak_core::faer::Par::Seq)?)
    })?;
    Ok(out.into_pyarray(py))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tangent_jvp, m)?)?;
    m.add_function(wrap_pyfunction!(init_params, m)?)?;
    m.add_function(wrap_pyfunction!(tangent_features, m)?)?;
    m.add_function(wrap_pyfunction!(tangent_kernels, m)?)?;
    m.add_function(wrap_pyfunction!(tangent_jacobian, m)?)?;
    m.add_function(wrap_pyfunction!(tangent_vjp, m)?)?;
    m.add_class::<Posterior>()?;
    m.add_class::<Trained>()?;
    m.add_class::<ExactLinear>()?;
    m.add_function(wrap_pyfunction!(sample_posterior, m)?)?;
    m.add_function(wrap_pyfunction!(train_gd, m)?)?;
    m.add_function(wrap_pyfunction!(forward, m)?)?;
    m.add_function(wrap_pyfunction!(exact_linear_posterior, m)?)?;
    Ok(())
}
