//! The concave one-hidden-layer solver of `adaptive_kernels._core.mean_field`
//! (`solve_concave`, `predict_concave`, `concave_defaults`; registered by [`super::mean_field`])
//! and its test entries `_core._testing.mean_field_concave_objective`, `mean_field_concave_domain_ratio`,
//! `mean_field_concave_domain_bound`.
use crate::convert::{defaults_dict, mat_to_numpy, slice, slice1, view, NetArg, Options};
use crate::results::SolveReport;
use crate::runtime::{run, threads};
use ak_core::control::Control;
use ak_core::faer::{Mat, MatRef, Par};
use ak_core::kernels::net::Rows;
use ak_core::theories::mean_field::concave::{self, predict::Fitted, saa::Saa, samples::Proposal, ConcaveOptions};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Arc;

/// One concave saddle point: `gamma`, `kernel`, `kernel_stderr` (batch standard error per
/// entry), `kernel_rel_err`, `a` (the maximiser = dual coefficients), the batch maximisers
/// `batch_a` and log-normalisers `batch_lse`, `lse`, the final proposal (`proposal_dir`,
/// `proposal_sigma`, `proposal_stage`, `proposal_chunks`, `proposal_a_ref`, `proposal_n_chains`), `kish`, `n_samples`, `rank`, `seed`,
/// `report` (its `stages`: sample numbers of the stages).
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.mean_field")]
pub(crate) struct ConcaveSolution {
    gamma: f64,
    kernel: Py<PyArray2<f64>>,
    kernel_stderr: Py<PyArray2<f64>>,
    kernel_rel_err: f64,
    a: Py<PyArray1<f64>>,
    batch_a: Py<PyArray2<f64>>,
    batch_lse: Py<PyArray1<f64>>,
    lse: f64,
    proposal_dir: Py<PyArray1<f64>>,
    proposal_sigma: f64,
    proposal_stage: u64,
    proposal_chunks: usize,
    proposal_a_ref: Py<PyArray1<f64>>,
    proposal_n_chains: usize,
    kish: f64,
    n_samples: usize,
    rank: usize,
    seed: u64,
    report: Py<SolveReport>,
}

fn options(opts: Option<Bound<'_, PyDict>>) -> PyResult<ConcaveOptions> {
    let o = Options::new(opts)?;
    let d = ConcaveOptions::default();
    let out = ConcaveOptions {
        rtol: o.get("rtol", d.rtol)?,
        n_samples: o.get("n_samples", d.n_samples)?,
        tol: o.get("tol", d.tol)?,
        max_iter: o.get("max_iter", d.max_iter)?,
        min_samples: o.get("min_samples", d.min_samples)?,
        max_samples: o.get("max_samples", d.max_samples)?,
        min_kish: o.get("min_kish", d.min_kish)?,
        min_trial_kish: o.get("min_trial_kish", d.min_trial_kish)?,
        max_stages: o.get("max_stages", d.max_stages)?,
        n_batches: o.get("n_batches", d.n_batches)?,
        seed: o.get("seed", d.seed)?,
        mcmc: match o.get("proposal", "auto".to_string())?.as_str() {
            "auto" => None,
            "mcmc" => Some(true),
            "gaussian" => Some(false),
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "proposal: expected 'auto', 'mcmc' or 'gaussian', got {other:?}"
                )))
            }
        },
        n_chains: o.get("n_chains", d.n_chains)?,
    };
    o.finish()?;
    Ok(out)
}

/// The core's default options of the concave solver.
#[pyfunction]
fn concave_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = ConcaveOptions::default();
    defaults_dict(
        py,
        &[
            ("rtol", d.rtol.into_pyobject(py)?.into_any()),
            ("n_samples", d.n_samples.into_pyobject(py)?.into_any()),
            ("tol", d.tol.into_pyobject(py)?.into_any()),
            ("max_iter", d.max_iter.into_pyobject(py)?.into_any()),
            ("min_samples", d.min_samples.into_pyobject(py)?.into_any()),
            ("max_samples", d.max_samples.into_pyobject(py)?.into_any()),
            ("min_kish", d.min_kish.into_pyobject(py)?.into_any()),
            ("min_trial_kish", d.min_trial_kish.into_pyobject(py)?.into_any()),
            ("max_stages", d.max_stages.into_pyobject(py)?.into_any()),
            ("n_batches", d.n_batches.into_pyobject(py)?.into_any()),
            ("seed", d.seed.into_pyobject(py)?.into_any()),
            ("proposal", "auto".into_pyobject(py)?.into_any()),
            ("n_chains", d.n_chains.into_pyobject(py)?.into_any()),
        ],
    )
}

/// The one-hidden-layer saddle point at `gamma` as the maximiser of a concave function (core
/// module `theories::mean_field::concave`).
#[pyfunction]
#[pyo3(signature = (x, y, net, *, gamma, temperature, options=None, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn solve_concave<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    gamma: f64,
    temperature: f64,
    options: Option<Bound<'py, PyDict>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<ConcaveSolution> {
    let arg = NetArg::new(&net)?;
    let opts = self::options(options)?;
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let yv = view("y", &y)?;
    let nt = threads(n_threads);
    let s = run(py, progress, |ctl: &Control| {
        let rows = Rows::new("X", xs, p, d)?;
        concave::solve(&arg.net, &rows, yv, gamma, temperature, &opts, nt, ctl).map_err(|e| arg.failure(e))
    })?;
    Ok(ConcaveSolution {
        gamma: s.gamma,
        kernel: mat_to_numpy(py, s.kernel.as_ref()).unbind(),
        kernel_stderr: mat_to_numpy(py, s.kernel_stderr.as_ref()).unbind(),
        kernel_rel_err: s.kernel_rel_err,
        a: s.a.into_pyarray(py).unbind(),
        batch_a: mat_to_numpy(py, s.batch_a.as_ref()).unbind(),
        batch_lse: s.batch_lse.into_pyarray(py).unbind(),
        lse: s.lse,
        proposal_dir: s.proposal.dir.clone().into_pyarray(py).unbind(),
        proposal_sigma: s.proposal.sigma,
        proposal_stage: s.proposal.stage,
        proposal_chunks: s.proposal.chunks,
        proposal_a_ref: s.proposal.a_ref.clone().into_pyarray(py).unbind(),
        proposal_n_chains: s.proposal.n_chains,
        kish: s.kish,
        n_samples: s.n_samples,
        rank: s.support_rank,
        seed: s.seed,
        report: SolveReport::from_core(py, s.report)?,
    })
}

/// The final draws of a concave solution, held for repeated predictions (opaque; not pickled).
#[pyclass(frozen, module = "adaptive_kernels._core.mean_field")]
pub struct ConcaveDraws {
    inner: Arc<concave::predict::Draws>,
}

#[pymethods]
impl ConcaveDraws {
    /// Bytes held.
    #[getter]
    fn nbytes(&self) -> usize {
        8 * (self.inner.h.nrows() * self.inner.h.ncols() + self.inner.log_r.len())
    }
}

/// Predictive mean (Q,), its Monte-Carlo standard error (Q,), optionally the adapted-kernel
/// variance (Q,) of a concave solution, and the draws used (`ConcaveDraws`): `draws` from an
/// earlier call are reused, otherwise they are regenerated from the stored proposal.
#[pyfunction]
#[pyo3(signature = (x, x_test, net, *, a, kernel, batch_a, batch_lse, lse, proposal_dir, proposal_sigma, proposal_stage, proposal_chunks, proposal_a_ref, proposal_n_chains, seed, gamma, temperature, return_var=false, draws=None, n_threads=None))]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn predict_concave<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    x_test: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    a: PyReadonlyArray1<'py, f64>,
    kernel: PyReadonlyArray2<'py, f64>,
    batch_a: PyReadonlyArray2<'py, f64>,
    batch_lse: PyReadonlyArray1<'py, f64>,
    lse: f64,
    proposal_dir: PyReadonlyArray1<'py, f64>,
    proposal_sigma: f64,
    proposal_stage: u64,
    proposal_chunks: usize,
    proposal_a_ref: PyReadonlyArray1<'py, f64>,
    proposal_n_chains: usize,
    seed: u64,
    gamma: f64,
    temperature: f64,
    return_var: bool,
    draws: Option<Bound<'py, ConcaveDraws>>,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>, Option<Bound<'py, PyArray1<f64>>>, Bound<'py, ConcaveDraws>)> {
    let cached = draws.as_ref().map(|d| d.get().inner.clone());
    let arg = NetArg::new(&net)?;
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let (q, dt) = (x_test.shape()[0], x_test.shape()[1]);
    let xs = slice("X", &x)?;
    let xts = slice("X_test", &x_test)?;
    let (av, kv, bav) = (slice1("a", &a)?, view("kernel", &kernel)?, view("batch_a", &batch_a)?);
    let blv = slice1("batch_lse", &batch_lse)?;
    let prop = Proposal { dir: slice1("proposal_dir", &proposal_dir)?.to_vec(), sigma: proposal_sigma, stage: proposal_stage, chunks: proposal_chunks, a_ref: slice1("proposal_a_ref", &proposal_a_ref)?.to_vec(), n_chains: proposal_n_chains };
    let nt = threads(n_threads);
    let (mean, se, var, used) = run(py, None, |_: &Control| {
        let rows = Rows::new("X", xs, p, d)?;
        let trows = Rows::new("X_test", xts, q, dt)?;
        let fit = Fitted { a: av, kernel: kv, batch_a: bav, batch_lse: blv, lse, proposal: &prop, seed, gamma, temperature };
        concave::predict_rows(&arg.net, &rows, &trows, &fit, return_var, cached, nt).map_err(|e| arg.failure(e))
    })?;
    // reused draws come back as the same object
    let used = match draws {
        Some(d) if Arc::ptr_eq(&d.get().inner, &used) => d,
        _ => Bound::new(py, ConcaveDraws { inner: used })?,
    };
    Ok((mean.into_pyarray(py), se.into_pyarray(py), var.map(|v| v.into_pyarray(py)), used))
}

/// Test entry: the sample-average objective on given draws `phi` (S x P) with log ratios
/// `log_r`: `(g, grad g, Phi(a), -Hess g)`.
#[pyfunction]
#[pyo3(signature = (phi, log_r, a, y, *, temperature, gamma))]
#[allow(clippy::type_complexity)]
fn mean_field_concave_objective<'py>(
    py: Python<'py>,
    phi: PyReadonlyArray2<'py, f64>,
    log_r: PyReadonlyArray1<'py, f64>,
    a: PyReadonlyArray1<'py, f64>,
    y: PyReadonlyArray1<'py, f64>,
    temperature: f64,
    gamma: f64,
) -> PyResult<(f64, Bound<'py, PyArray1<f64>>, Bound<'py, PyArray2<f64>>, Bound<'py, PyArray2<f64>>)> {
    let f: MatRef<f64> = view("phi", &phi)?;
    let (lr, av, yv) = (slice1("log_r", &log_r)?, slice1("a", &a)?, slice1("y", &y)?);
    if lr.len() != f.nrows() || av.len() != f.ncols() || yv.len() != f.ncols() {
        return Err(pyo3::exceptions::PyValueError::new_err("phi: need S x P with S log ratios and P-vectors a, y"));
    }
    let saa = Saa { f, log_r: lr, y: yv, temperature, gamma };
    let e = saa.eval(av, Par::Seq);
    let m = saa.moment(&e, Par::Seq);
    let grad = saa.gradient(av, &m);
    let k: Mat<f64> = ak_core::mcmc::tilted::weighted_gram(f, f, Some(&e.w), Par::Seq);
    let h = saa.neg_hessian(&e, &m, Par::Seq);
    Ok((e.g, grad.into_pyarray(py), mat_to_numpy(py, k.as_ref()), mat_to_numpy(py, h.as_ref())))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ConcaveSolution>()?;
    m.add_class::<ConcaveDraws>()?;
    m.add_function(wrap_pyfunction!(concave_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(solve_concave, m)?)?;
    m.add_function(wrap_pyfunction!(predict_concave, m)?)?;
    Ok(())
}

/// `_core._testing.mean_field_concave_domain_ratio(k0, a, gamma)`: the lower bound of
/// `mcmc::tilted::rank_one_ratio` on `gamma^2 sup_h (a.relu(h))^2 / h^T K0^+ h` (>= 1: not normalizable).
#[pyfunction]
#[pyo3(signature = (k0, a, *, gamma))]
fn mean_field_concave_domain_ratio(k0: PyReadonlyArray2<'_, f64>, a: PyReadonlyArray1<'_, f64>, gamma: f64) -> PyResult<f64> {
    let k: MatRef<f64> = view("k0", &k0)?;
    let av = slice1("a", &a)?;
    if k.nrows() != k.ncols() || k.nrows() != av.len() {
        return Err(pyo3::exceptions::PyValueError::new_err("k0: need a P x P matrix and a P-vector a"));
    }
    Ok(ak_core::mcmc::tilted::rank_one_ratio(k, av, gamma))
}

/// `_core._testing.mean_field_concave_domain_bound(k0, a_rows, gamma)`: the concave solver's
/// domain test `mcmc::tilted::RayBound` (pattern witness and ray ascent) called on the rows of
/// `a_rows` in order, with one cache (as for the trial points of one solve); one lower bound on
/// `rho` per row.
#[pyfunction]
#[pyo3(signature = (k0, a_rows, *, gamma))]
fn mean_field_concave_domain_bound(k0: PyReadonlyArray2<'_, f64>, a_rows: PyReadonlyArray2<'_, f64>, gamma: f64) -> PyResult<Vec<f64>> {
    let k: MatRef<f64> = view("k0", &k0)?;
    let ar: MatRef<f64> = view("a_rows", &a_rows)?;
    if k.nrows() != k.ncols() || k.nrows() != ar.ncols() {
        return Err(pyo3::exceptions::PyValueError::new_err("a_rows: need a P x P matrix k0 and rows of length P"));
    }
    let fac = ak_core::linalg::CovFactor::psd("k0", k, Par::Seq).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    let mut bound = ak_core::mcmc::tilted::RayBound::new(fac.f());
    Ok((0..ar.nrows()).map(|i| {
        let a: Vec<f64> = ar.row(i).iter().cloned().collect();
        bound.ratio(k, &a, gamma)
    }).collect())
}

pub(crate) fn register_testing(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mean_field_concave_domain_bound, m)?)?;
    m.add_function(wrap_pyfunction!(mean_field_concave_objective, m)?)?;
    m.add_function(wrap_pyfunction!(mean_field_concave_domain_ratio, m)?)?;
    Ok(())
}

