//! `adaptive_kernels._core.linalg`: Cholesky with jitter escalation, triangular solves and the
//! symmetric eigendecomposition of the core (used by the predictors and the theories).
use crate::convert::{mat_to_numpy, view, view_t};
use crate::runtime::{run, threads};
use ak_core::faer::MatMut;
use ak_core::threads::with_threads;
use ak_core::{linalg, predictors};
use numpy::ndarray::Array1;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Cholesky factor of `a + ridge I` with jitter escalation. Returns `(U, jitter, attempts)`
/// with `U = L^T` (so `U.T` is the lower factor, a free view).
#[pyfunction]
#[pyo3(signature = (a, ridge, n_threads=None))]
fn cholesky<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f64>,
    ridge: f64,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, f64, usize)> {
    let av = view_t("K", &a)?;
    let n = a.shape()[0];
    if a.shape()[1] != n {
        return Err(PyValueError::new_err(format!(
            "K: must be square, got {:?}",
            a.shape()
        )));
    }
    ak_core::validate::dense_memory("K", "the Cholesky factor and its work copy", 2.0, n, n, "use fewer points")
        .map_err(|e| crate::errors::to_pyerr(py, e.into()))?;
    let u = PyArray2::<f64>::zeros(py, [n, n], false);
    let info = {
        let mut uw = u.readwrite();
        let ubuf = uw.as_slice_mut().unwrap();
        let nt = threads(n_threads);
        run(py, None, |_| {
            let l = MatMut::from_column_major_slice_mut(ubuf, n, n);
            Ok(with_threads(nt, |par| {
                linalg::cholesky_with_jitter("K", av, ridge, l, par)
            })?)
        })?
    };
    Ok((u, info.jitter, info.attempts))
}

/// Solves `(L L^T) X = Y` given `U = L^T` from `cholesky`; `y` is (P, C).
#[pyfunction]
#[pyo3(signature = (u, y, n_threads=None))]
fn cho_solve<'py>(
    py: Python<'py>,
    u: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray2<'py, f64>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let l = view_t("factor", &u)?;
    let yv = view("y", &y)?;
    let nt = threads(n_threads);
    let out = run(py, None, |_| {
        let mut x = yv.to_owned();
        with_threads(nt, |par| predictors::gp_alpha(l, x.as_mut(), par))?;
        Ok(x)
    })?;
    Ok(mat_to_numpy(py, out.as_ref()))
}

/// Eigendecomposition of a symmetric matrix: `(w ascending, V)` with `A = V diag(w) V^T`.
#[pyfunction]
#[pyo3(signature = (a, n_threads=None))]
fn symmetric_eigen<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f64>,
    n_threads: Option<usize>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray2<f64>>)> {
    let av = view_t("K", &a)?;
    let nt = threads(n_threads);
    let (w, v) = run(py, None, |_| {
        Ok(with_threads(nt, |par| {
            linalg::symmetric_eigen("K", av, par)
        })?)
    })?;
    Ok((
        Array1::from(w).into_pyarray(py),
        mat_to_numpy(py, v.as_ref()),
    ))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cholesky, m)?)?;
    m.add_function(wrap_pyfunction!(cho_solve, m)?)?;
    m.add_function(wrap_pyfunction!(symmetric_eigen, m)?)?;
    Ok(())
}
