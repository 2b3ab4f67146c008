//! `adaptive_kernels._core.tangent_features` (see `adaptive_kernels.AdaptiveTangentFeatures`).
use crate::convert::{defaults_dict, mat_to_numpy, mats_to_list, slice1, view, Options};
use crate::errors::{to_pyerr, Failure};
use crate::finite::TangentArg;
use crate::results::SolveReport;
use crate::runtime::{run, threads};
use ak_core::finite::tangent;
use ak_core::theories::tangent_features::{self as atf, layerwise, penalty, Structure};
use ak_core::threads::with_threads;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// The fitted model on the training set (see `ak_core::theories::tangent_features::Solution`),
/// plus the per-layer tangent kernels `layer_kernels`.
#[pyclass(frozen, get_all, module = "adaptive_kernels._core.tangent_features")]
struct Solution {
    alpha: Py<PyArray1<f64>>,
    weights: Vec<f64>,
    norms: Vec<f64>,
    scales: Vec<f64>,
    objective: f64,
    objective_history: Py<PyArray1<f64>>,
    feasibility: f64,
    kernel: Py<PyArray2<f64>>,
    adapted_kernel: Py<PyArray2<f64>>,
    weighted_kernel: Py<PyArray2<f64>>,
    layer_kernels: Py<PyList>,
    report: Py<SolveReport>,
    /// layerwise only: the flat update and per layer `(input_directions, output_directions,
    /// scales, singular_values)`
    update: Option<Py<PyArray1<f64>>>,
    layer_transforms: Py<PyList>,
}

/// The core's default options.
#[pyfunction]
fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = atf::Options::default();
    let structure = d.structure.name();
    defaults_dict(
        py,
        &[
            ("structure", structure.into_pyobject(py)?.into_any()),
            ("reg", d.reg.into_pyobject(py)?.into_any()),
            ("tol", d.tol.into_pyobject(py)?.into_any()),
            ("max_iter", d.max_iter.into_pyobject(py)?.into_any()),
            ("anderson", d.anderson.into_pyobject(py)?.into_any()),
        ],
    )
}

fn options_of(py: Python<'_>, opts: Option<Bound<'_, PyDict>>) -> PyResult<atf::Options> {
    let o = Options::new(opts)?;
    let d = atf::Options::default();
    let structure: String = o.get("structure", "groups".to_string())?;
    let out = atf::Options {
        structure: Structure::from_name(&structure).map_err(|e| to_pyerr(py, e.into()))?,
        reg: o.get("reg", d.reg)?,
        tol: o.get("tol", d.tol)?,
        max_iter: o.get("max_iter", d.max_iter)?,
        anderson: o.get("anderson", d.anderson)?,
    };
    o.finish()?;
    Ok(out)
}

/// Fits the adaptive tangent-feature model to the residual targets `r` (length n C, rows
/// (sample, output)) on the tangent features `tf`.
#[pyfunction]
#[pyo3(signature = (tf, r, *, options=None, init_transforms=None, n_threads=None))]
#[allow(clippy::type_complexity)]
fn solve<'py>(
    py: Python<'py>,
    tf: Bound<'py, PyAny>,
    r: PyReadonlyArray1<'py, f64>,
    options: Option<Bound<'py, PyDict>>,
    init_transforms: Option<Vec<(PyReadonlyArray2<'py, f64>, PyReadonlyArray2<'py, f64>, Vec<f64>)>>,
    n_threads: Option<usize>,
) -> PyResult<Solution> {
    let init: Option<Vec<layerwise::LayerTransform>> = match &init_transforms {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|(u, v, z)| {
                    Ok(layerwise::LayerTransform {
                        input_directions: view("init_transforms", u)?.to_owned(),
                        output_directions: view("init_transforms", v)?.to_owned(),
                        scales: z.clone(),
                        singular_values: vec![0.0; z.len()],
                    })
                })
                .collect::<PyResult<Vec<_>>>()?,
        ),
    };
    let opts = options_of(py, options)?;
    let ta = TangentArg::new("tf", &tf)?;
    let refs = ta.refs()?;
    let rs = slice1("y", &r)?;
    let nt = threads(n_threads);
    if opts.structure == Structure::Layerwise {
        let (s, upd) = run(py, None, |ctl| {
            tangent::check_blocks("tf", &refs, ta.n_params)?;
            atf::Options::validate(&opts)?;
            tangent::check_kernel_memory("tf", &refs, &refs, 4)?;
            ak_core::validate::finite("y", rs)?;
            if rs.len() != refs[0].backprop.nrows() {
                return Err(ak_core::AkError::Shape { name: "y", msg: "needs one target per (sample, output) row".into() }.into());
            }
            // the per-layer kernels come from the solve (it forms the same Gram matrices)
            let s = with_threads(nt, |par| layerwise::solve(&refs, rs, &opts, init.as_deref(), ctl, par))?;
            let upd = layerwise::flatten_updates(&refs, &s.updates, ta.n_params);
            Ok::<_, Failure>((s, upd))
        })?;
        let lt = PyList::empty(py);
        for t in &s.transforms {
            lt.append((
                mat_to_numpy(py, t.input_directions.as_ref()),
                mat_to_numpy(py, t.output_directions.as_ref()),
                t.scales.clone().into_pyarray(py),
                t.singular_values.clone().into_pyarray(py),
            ))?;
        }
        return Ok(Solution {
            alpha: s.alpha.into_pyarray(py).unbind(),
            weights: vec![],
            norms: vec![],
            scales: vec![],
            objective: s.objective,
            objective_history: s.objective_history.into_pyarray(py).unbind(),
            feasibility: s.feasibility,
            kernel: mat_to_numpy(py, s.kernel.as_ref()).unbind(),
            adapted_kernel: mat_to_numpy(py, s.adapted_kernel.as_ref()).unbind(),
            weighted_kernel: mat_to_numpy(py, s.adapted_kernel.as_ref()).unbind(),
            layer_kernels: mats_to_list(py, &s.layer_kernels)?.unbind(),
            report: SolveReport::from_core(py, s.report)?,
            update: Some(upd.into_pyarray(py).unbind()),
            layer_transforms: lt.unbind(),
        });
    }
    let (ks, s) = run(py, None, |ctl| {
        tangent::check_blocks("tf", &refs, ta.n_params)?;
        tangent::check_kernel_memory("tf", &refs, &refs, 6)?;
        let ks = with_threads(nt, |par| tangent::block_kernels(&refs, &refs, par));
        let s = atf::solve(&ks, rs, &opts, ctl)?;
        Ok::<_, Failure>((ks, s))
    })?;
    Ok(Solution {
        alpha: s.alpha.into_pyarray(py).unbind(),
        weights: s.weights,
        norms: s.norms,
        scales: s.scales,
        objective: s.objective,
        objective_history: s.objective_history.into_pyarray(py).unbind(),
        feasibility: s.feasibility,
        kernel: mat_to_numpy(py, s.kernel.as_ref()).unbind(),
        adapted_kernel: mat_to_numpy(py, s.adapted_kernel.as_ref()).unbind(),
        weighted_kernel: mat_to_numpy(py, s.weighted_kernel.as_ref()).unbind(),
        layer_kernels: mats_to_list(py, &ks)?.unbind(),
        report: SolveReport::from_core(py, s.report)?,
        update: None,
        layer_transforms: PyList::empty(py).unbind(),
    })
}

/// One-sided induced penalty `min_z reg (z-1)^2 + v^2/z^2`: `(values, z)` for each `v`.
#[pyfunction]
fn one_sided_penalty(v: Vec<f64>, reg: f64) -> (Vec<f64>, Vec<f64>) {
    v.iter().map(|&x| penalty::one_sided(x, reg)).unzip()
}

/// Two-sided induced penalty `min_z 2 reg (z-1)^2 + s^2/z^4`: `(values, z)` for each `s`.
#[pyfunction]
fn two_sided_penalty(s: Vec<f64>, reg: f64) -> (Vec<f64>, Vec<f64>) {
    s.iter().map(|&x| penalty::two_sided(x, reg)).unzip()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Solution>()?;
    m.add_function(wrap_pyfunction!(defaults, m)?)?;
    m.add_function(wrap_pyfunction!(solve, m)?)?;
    m.add_function(wrap_pyfunction!(one_sided_penalty, m)?)?;
    m.add_function(wrap_pyfunction!(two_sided_penalty, m)?)?;
    Ok(())
}
