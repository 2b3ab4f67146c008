//! `adaptive_kernels._core.predictors`: GP / kernel-ridge posterior from a cached Cholesky
//! factor, and the NTK gradient-flow coefficients.
use crate::convert::{slice1, view, view_t};
use crate::runtime::{run, threads};
use ak_core::faer::MatMut;
use ak_core::predictors;
use ak_core::threads::with_threads;
use numpy::ndarray::{Array1, Array2, Array3};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray3, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

/// GP posterior mean (Q, C) and, if `k_test_diag` is given, variance (Q,).
#[pyfunction]
#[pyo3(signature = (u, alpha, k_cross, k_test_diag=None, n_threads=None))]
fn gp_predict<'py>(
    py: Python<'py>,
    u: PyReadonlyArray2<'py, f64>,
    alpha: PyReadonlyArray2<'py, f64>,
    k_cross: PyReadonlyArray2<'py, f64>,
    k_test_diag: Option<PyReadonlyArray1<'py, f64>>,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Option<Bound<'py, PyArray1<f64>>>)> {
    let l = view_t("factor", &u)?;
    let a = view("alpha", &alpha)?;
    let kc = view("K_cross", &k_cross)?;
    let kd = match &k_test_diag {
        Some(d) => Some(slice1("k_test_diag", d)?),
        None => None,
    };
    let q = kc.ncols();
    let c = a.ncols();
    let nt = threads(n_threads);
    let (mean, var) = run(py, None, |_| {
        let mut mean = vec![0.0; q * c];
        let mut var = kd.map(|_| vec![0.0; q]);
        with_threads(nt, |par| {
            predictors::gp_predict(
                l,
                a,
                kc,
                kd,
                MatMut::from_row_major_slice_mut(&mut mean, q, c),
                var.as_deref_mut(),
                par,
            )
        })?;
        Ok((mean, var))
    })?;
    let mean = Array2::from_shape_vec((q, c), mean)
        .unwrap()
        .into_pyarray(py);
    Ok((mean, var.map(|v| Array1::from(v).into_pyarray(py))))
}

/// NTK gradient-flow coefficients, shape (T, P, C), for the eigendecomposition `(w, V)` of
/// `Th + ridge I`; predictions at time `times[k]` are `Th(X, X*)^T coef[k]`.
#[pyfunction]
#[pyo3(signature = (w, v, y, times, lr, n_threads=None))]
fn ntk_flow_coefficients<'py>(
    py: Python<'py>,
    w: PyReadonlyArray1<'py, f64>,
    v: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    times: PyReadonlyArray1<'py, f64>,
    lr: f64,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray3<f64>>> {
    let ws = slice1("eigenvalues", &w)?;
    let vv = view("eigenvectors", &v)?;
    let yv = view("y", &y)?;
    let ts = slice1("time", &times)?;
    let nt = threads(n_threads);
    let coefs = run(py, None, |_| {
        Ok(with_threads(nt, |par| {
            predictors::ntk_flow_coefficients(ws, vv, yv, ts, lr, par)
        })?)
    })?;
    let (p, c) = (yv.nrows(), yv.ncols());
    Ok(Array3::from_shape_fn((ts.len(), p, c), |(k, i, j)| coefs[k][(i, j)]).into_pyarray(py))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gp_predict, m)?)?;
    m.add_function(wrap_pyfunction!(ntk_flow_coefficients, m)?)?;
    Ok(())
}
