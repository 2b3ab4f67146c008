//! `adaptive_kernels._core.kernels`: the lazy (NNGP, NTK) kernels of an MLP, optionally with
//! per-layer scales (kernel renormalization), and the alignment metrics.
use crate::convert::{slice, view, NetArg};
use crate::runtime::{run, threads};
use ak_core::kernels::alignment;
use ak_core::kernels::lazy::{kernel_diagonal as core_diagonal, lazy_kernels_scaled};
use ak_core::kernels::net::Rows;
use ak_core::threads::with_threads;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// NNGP kernel `K^L(X1, X2)` and, with `ntk`, the NTK `Th^L` of `net` (an
/// `adaptive_kernels.MLP`); `scales` rescales layer l's kernel by `scales[l-1]`.
#[pyfunction]
#[pyo3(signature = (x1, x2, net, *, ntk, scales=None, n_threads=None, progress=None))]
#[allow(clippy::type_complexity)]
fn lazy_kernels<'py>(
    py: Python<'py>,
    x1: PyReadonlyArray2<'py, f64>,
    x2: Option<PyReadonlyArray2<'py, f64>>,
    net: Bound<'py, PyAny>,
    ntk: bool,
    scales: Option<Vec<f64>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Option<Bound<'py, PyArray2<f64>>>)> {
    let arg = NetArg::new(&net)?;
    let s1 = x1.shape();
    let (p1, d1) = (s1[0], s1[1]);
    let p2 = x2.as_ref().map_or(p1, |x| x.shape()[0]);
    ak_core::kernels::lazy::check_memory(&arg.net, p1, p2, if ntk { 2 } else { 1 })
        .map_err(|e| crate::errors::to_pyerr(py, e.into()))?;
    let k = PyArray2::<f64>::zeros(py, [p1, p2], false);
    let th = if ntk { Some(PyArray2::<f64>::zeros(py, [p1, p2], false)) } else { None };
    {
        let x1s = slice("X1", &x1)?;
        let x2s = match &x2 {
            Some(x) => Some((slice("X2", x)?, x.shape()[0], x.shape()[1])),
            None => None,
        };
        let mut kw = k.readwrite();
        let kbuf = kw.as_slice_mut().unwrap();
        let mut thw = th.as_ref().map(|t| t.readwrite());
        let thbuf = thw.as_mut().map(|t| t.as_slice_mut().unwrap());
        let nt = threads(n_threads);
        run(py, progress, |ctl| {
            let r1 = Rows::new("X1", x1s, p1, d1)?;
            let r2 = match x2s {
                Some((s, p, d)) => Some(Rows::new("X2", s, p, d)?),
                None => None,
            };
            lazy_kernels_scaled(&arg.net, scales.as_deref(), r1, r2, kbuf, thbuf, nt, ctl)
                .map_err(|e| arg.failure(e))
        })?;
    }
    Ok((k, th))
}

/// The diagonal of the NNGP kernel (or, with `ntk`, the NTK) of `net` at the rows of `x`, with
/// optional layer `scales`, in O(P) time and memory.
#[pyfunction]
#[pyo3(signature = (x, net, *, ntk, scales=None, n_threads=None))]
fn kernel_diagonal<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    net: Bound<'py, PyAny>,
    ntk: bool,
    scales: Option<Vec<f64>>,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let arg = NetArg::new(&net)?;
    let (p, d) = (x.shape()[0], x.shape()[1]);
    let xs = slice("X", &x)?;
    let nt = threads(n_threads);
    let out = run(py, None, |ctl| {
        let rows = Rows::new("X", xs, p, d)?;
        core_diagonal(&arg.net, scales.as_deref(), rows, ntk, nt, ctl).map_err(|e| arg.failure(e))
    })?;
    Ok(out.into_pyarray(py))
}

/// Kernel-target alignment `<K, YY^T> / (|K| |YY^T|)`.
#[pyfunction]
#[pyo3(signature = (k, y, n_threads=None))]
fn kernel_alignment(
    py: Python<'_>,
    k: PyReadonlyArray2<'_, f64>,
    y: PyReadonlyArray2<'_, f64>,
    n_threads: Option<usize>,
) -> PyResult<f64> {
    let kv = view("K", &k)?;
    let yv = view("y", &y)?;
    let nt = threads(n_threads);
    run(py, None, |_| {
        Ok(with_threads(nt, |_| alignment::kernel_alignment(kv, yv))?)
    })
}

/// Centered kernel alignment of two kernels.
#[pyfunction]
#[pyo3(signature = (k1, k2, n_threads=None))]
fn cka(
    py: Python<'_>,
    k1: PyReadonlyArray2<'_, f64>,
    k2: PyReadonlyArray2<'_, f64>,
    n_threads: Option<usize>,
) -> PyResult<f64> {
    let a = view("K1", &k1)?;
    let b = view("K2", &k2)?;
    let nt = threads(n_threads);
    run(py, None, |_| {
        Ok(with_threads(nt, |_| alignment::cka(a, b))?)
    })
}

/// `K = c0 K0 + c1 Ky + K_rest` (Frobenius least squares): `(c0, c1, K_rest)`.
#[pyfunction]
fn kernel_decomposition<'py>(
    py: Python<'py>,
    k: PyReadonlyArray2<'py, f64>,
    k0: PyReadonlyArray2<'py, f64>,
    ky: PyReadonlyArray2<'py, f64>,
) -> PyResult<(f64, f64, Bound<'py, numpy::PyArray2<f64>>)> {
    let (a, b, c) = (view("K", &k)?, view("K0", &k0)?, view("Ky", &ky)?);
    let d = run(py, None, |_| Ok(ak_core::kernels::decomposition::kernel_decomposition(a, b, c)?))?;
    Ok((d.c0, d.c1, crate::convert::mat_to_numpy(py, d.rest.as_ref())))
}

/// Criticality of the NNGP layer map of `net` (see the core's `kernels::criticality`):
/// `(q_star, chi_1, chi_q, critical_sigma_w, critical_q_star)`, the last two at `net.sigma_b`.
#[pyfunction]
fn criticality(py: Python<'_>, net: Bound<'_, PyAny>) -> PyResult<(f64, f64, f64, f64, f64)> {
    let arg = NetArg::new(&net)?;
    run(py, None, |_| {
        let c = ak_core::kernels::criticality::criticality(&arg.net).map_err(|e| arg.failure(e))?;
        let (sw, q) = ak_core::kernels::criticality::critical_sigma_w(&arg.net).map_err(|e| arg.failure(e))?;
        Ok((c.q_star, c.chi_1, c.chi_q, sw, q))
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(criticality, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_decomposition, m)?)?;
    m.add_function(wrap_pyfunction!(lazy_kernels, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_diagonal, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_alignment, m)?)?;
    m.add_function(wrap_pyfunction!(cka, m)?)?;
    Ok(())
}
