//! `adaptive_kernels._core`: the thin PyO3 layer over `adaptive-kernels-core`.
//!
//! It converts NumPy arrays to slices/faer views without copying (callers pass C-contiguous
//! float64 arrays; the Python layer ensures that), runs the work with the GIL released on a
//! worker thread while the Python thread polls for Ctrl-C and progress, and maps core errors
//! to Python exceptions. No numerics live here.
use ak_core::kernels::activation::{Activation, ElementwiseFn, Method};
use ak_core::control::Control;
use ak_core::faer::{MatMut, MatRef};
use ak_core::kernels::lazy::lazy_kernels_scaled;
use ak_core::kernels::net::{Mlp, Rows};
use ak_core::threads::with_threads;
use ak_core::kernels::alignment;
use ak_core::{linalg, predictors, AkError};
use numpy::ndarray::{Array1, Array2, Array3};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyFloatingPointError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod bayesian_mean_field;
mod exact_linear;
mod finite_width;
mod kernel_renormalization;

// ---------------------------------------------------------------------------------------
// Errors

/// A core error, possibly carrying the Python exception a user callback raised.
pub(crate) struct Failure {
    pub(crate) err: AkError,
    pub(crate) py_err: Option<PyErr>,
}

impl From<AkError> for Failure {
    fn from(err: AkError) -> Self {
        Failure { err, py_err: None }
    }
}

fn exception_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("adaptive_kernels.exceptions")?.getattr(name)
}

pub(crate) fn to_pyerr(py: Python<'_>, f: Failure) -> PyErr {
    if let Some(e) = f.py_err {
        return e;
    }
    let msg = f.err.to_string();
    let class = match &f.err {
        AkError::InvalidArgument { .. } | AkError::Shape { .. } => {
            return PyValueError::new_err(msg)
        }
        AkError::NonFinite { .. } => return PyFloatingPointError::new_err(msg),
        AkError::Callback(_) => return PyValueError::new_err(msg),
        AkError::Interrupted => {
            return pyo3::exceptions::PyKeyboardInterrupt::new_err("interrupted")
        }
        AkError::NotPositiveDefinite { .. } => "NotPositiveDefiniteError",
        AkError::LinAlg { .. } => "LinAlgError",
    };
    match exception_class(py, class).and_then(|c| c.call1((msg,))) {
        Ok(inst) => PyErr::from_value(inst),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------
// Running work off the Python thread

/// Runs `work` with the GIL released on a worker thread; the calling thread polls for
/// signals (Ctrl-C cancels the work through `Control`) and calls `progress(done, total)`.
/// A panic in the core becomes a `RuntimeError`, never a `PanicException`.
pub(crate) fn run<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    work: impl FnOnce(&Control) -> Result<T, Failure> + Send,
) -> PyResult<T> {
    let (result, signal) = run_inner(py, progress, work);
    if let Some(e) = signal {
        return Err(e);
    }
    result
}

/// Like [`run`], but a Ctrl-C that the work honoured by returning early (partial results)
/// gives `Ok((value, true))` instead of raising `KeyboardInterrupt`.
pub(crate) fn run_interruptible<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    work: impl FnOnce(&Control) -> Result<T, Failure> + Send,
) -> PyResult<(T, bool)> {
    let (result, signal) = run_inner(py, progress, work);
    match (result, signal) {
        (Ok(v), s) => Ok((v, s.is_some())),
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => Err(e),
    }
}

fn run_inner<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    work: impl FnOnce(&Control) -> Result<T, Failure> + Send,
) -> (PyResult<T>, Option<PyErr>) {
    let ctl = Control::new();
    let (result, signal) = py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            let ctl_ref = &ctl;
            let handle = s.spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(ctl_ref)));
                let _ = tx.send(());
                r
            });
            let mut signal: Option<PyErr> = None;
            loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if signal.is_some() {
                            continue;
                        }
                        let polled = Python::attach(|py| -> PyResult<()> {
                            py.check_signals()?;
                            if let Some(cb) = &progress {
                                let (done, total) = ctl_ref.progress();
                                cb.bind(py).call1((done, total))?;
                            }
                            Ok(())
                        });
                        if let Err(e) = polled {
                            ctl_ref.cancel();
                            signal = Some(e);
                        }
                    }
                }
            }
            (handle.join(), signal)
        })
    });
    let result = match result {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(f))) => Err(to_pyerr(py, f)),
        Ok(Err(panic)) | Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in adaptive_kernels core (please report): {what}"
            )))
        }
    };
    (result, signal)
}

// ---------------------------------------------------------------------------------------
// Array views

pub(crate) fn slice<'a>(
    name: &'static str,
    a: &'a PyReadonlyArray2<'_, f64>,
) -> PyResult<&'a [f64]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name}: must be a C-contiguous float64 array")))
}

pub(crate) fn slice1<'a>(
    name: &'static str,
    a: &'a PyReadonlyArray1<'_, f64>,
) -> PyResult<&'a [f64]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name}: must be a contiguous float64 array")))
}

/// Row-major view of a C-contiguous 2-D array.
pub(crate) fn view<'a>(
    name: &'static str,
    a: &'a PyReadonlyArray2<'_, f64>,
) -> PyResult<MatRef<'a, f64>> {
    let s = a.shape();
    Ok(MatRef::from_row_major_slice(slice(name, a)?, s[0], s[1]))
}

/// Column-major view of a C-contiguous square array holding a *symmetric* matrix or the
/// transpose of a lower factor (our factors are stored as `L^T` in C order, i.e. `L` in
/// Fortran order, which is what faer's kernels prefer).
pub(crate) fn view_t<'a>(
    name: &'static str,
    a: &'a PyReadonlyArray2<'_, f64>,
) -> PyResult<MatRef<'a, f64>> {
    Ok(view(name, a)?.transpose())
}

pub(crate) fn threads(n_threads: Option<usize>) -> usize {
    n_threads.unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Custom activations

/// A NumPy-vectorised Python callable (and optional derivative) as a core `ElementwiseFn`.
struct PyActivation {
    phi: Py<PyAny>,
    dphi: Option<Py<PyAny>>,
    /// The first Python exception raised by a callback, re-raised to the caller.
    error: Arc<Mutex<Option<PyErr>>>,
}

impl PyActivation {
    fn call(&self, f: &Py<PyAny>, what: &str, x: &[f64], out: &mut [f64]) -> Result<(), String> {
        Python::attach(|py| -> PyResult<()> {
            let arr = PyArray1::from_slice(py, x);
            let res = f.bind(py).call1((arr,))?;
            let np = py.import("numpy")?;
            let res = np.call_method1("asarray", (res, "float64"))?;
            let res = res.cast_into::<PyArray1<f64>>().map_err(|_| {
                PyValueError::new_err(format!(
                    "{what}: the callable must return an array of the input's shape"
                ))
            })?;
            let ro = res.readonly();
            let vals = ro
                .as_slice()
                .map_err(|_| PyValueError::new_err(format!("{what}: non-contiguous result")))?;
            if vals.len() != out.len() {
                return Err(PyValueError::new_err(format!(
                    "{what}: the callable returned {} values for {} inputs; it must be elementwise",
                    vals.len(),
                    out.len()
                )));
            }
            out.copy_from_slice(vals);
            Ok(())
        })
        .map_err(|e| {
            let msg = e.to_string();
            let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(e);
            }
            format!("{what}: the callable raised {msg}")
        })
    }
}

impl ElementwiseFn for PyActivation {
    fn eval(&self, x: &[f64], out: &mut [f64]) -> Result<(), String> {
        self.call(&self.phi, "activation", x, out)
    }
    fn eval_derivative(&self, x: &[f64], out: &mut [f64]) -> Result<(), String> {
        match &self.dphi {
            Some(d) => self.call(d, "activation_derivative", x, out),
            None => {
                // Central difference through `eval` (the trait's default).
                let h: Vec<f64> = x.iter().map(|x| 1e-5 * x.abs().max(1.0)).collect();
                let xp: Vec<f64> = x.iter().zip(&h).map(|(x, h)| x + h).collect();
                let xm: Vec<f64> = x.iter().zip(&h).map(|(x, h)| x - h).collect();
                let mut fp = vec![0.0; x.len()];
                self.eval(&xp, &mut fp)?;
                self.eval(&xm, out)?;
                for i in 0..x.len() {
                    out[i] = (fp[i] - out[i]) / (2.0 * h[i]);
                }
                Ok(())
            }
        }
    }
}

/// The core `Mlp` of `adaptive_kernels.MLP._kernel_args()`, and the slot where a failing
/// Python activation leaves its exception (see [`callback_failure`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_mlp<'py>(
    py: Python<'py>,
    depth: usize,
    activation: Bound<'py, PyAny>,
    derivative: Option<Py<PyAny>>,
    sigma_w: f64,
    sigma_b: f64,
    method: &str,
    quadrature_order: usize,
) -> PyResult<(Mlp, Arc<Mutex<Option<PyErr>>>)> {
    let slot = Arc::new(Mutex::new(None));
    let act = if let Ok(name) = activation.extract::<String>() {
        Activation::from_name(&name).map_err(|e| to_pyerr(py, e.into()))?
    } else if activation.is_callable() {
        Activation::Custom(Arc::new(PyActivation {
            phi: activation.unbind(),
            dphi: derivative,
            error: slot.clone(),
        }))
    } else {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "activation: must be a string or a callable",
        ));
    };
    let mut net = Mlp::new(depth, act, sigma_w, sigma_b);
    net.method = Method::from_name(method).map_err(|e| to_pyerr(py, e.into()))?;
    net.quadrature_order = quadrature_order;
    Ok((net, slot))
}

pub(crate) fn callback_failure(err: AkError, slot: &Arc<Mutex<Option<PyErr>>>) -> Failure {
    let py_err = if matches!(err, AkError::Callback(_)) {
        slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    } else {
        None
    };
    Failure { err, py_err }
}

// ---------------------------------------------------------------------------------------
// Functions

/// NNGP kernel and (optionally) NTK of an MLP; see `adaptive_kernels.nngp_kernel`.
#[pyfunction]
#[pyo3(signature = (x1, x2, *, depth, activation, derivative, sigma_w, sigma_b, method, quadrature_order, ntk, scales=None, n_threads=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn lazy_kernels<'py>(
    py: Python<'py>,
    x1: PyReadonlyArray2<'py, f64>,
    x2: Option<PyReadonlyArray2<'py, f64>>,
    depth: usize,
    activation: Bound<'py, PyAny>,
    derivative: Option<Py<PyAny>>,
    sigma_w: f64,
    sigma_b: f64,
    method: &str,
    quadrature_order: usize,
    ntk: bool,
    scales: Option<Vec<f64>>,
    n_threads: Option<usize>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Option<Bound<'py, PyArray2<f64>>>)> {
    let (net, slot) = make_mlp(
        py,
        depth,
        activation,
        derivative,
        sigma_w,
        sigma_b,
        method,
        quadrature_order,
    )?;
    let s1 = x1.shape();
    let (p1, d1) = (s1[0], s1[1]);
    let p2 = x2.as_ref().map_or(p1, |x| x.shape()[0]);
    let k = PyArray2::<f64>::zeros(py, [p1, p2], false);
    let th = if ntk {
        Some(PyArray2::<f64>::zeros(py, [p1, p2], false))
    } else {
        None
    };
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
            lazy_kernels_scaled(&net, scales.as_deref(), r1, r2, kbuf, thbuf, nt, ctl)
                .map_err(|e| callback_failure(e, &slot))
        })?;
    }
    Ok((k, th))
}

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

pub(crate) fn mat_to_numpy<'py>(py: Python<'py>, m: MatRef<'_, f64>) -> Bound<'py, PyArray2<f64>> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)]).into_pyarray(py)
}

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

/// Threads used when `n_threads` is None: `AK_NUM_THREADS`, else all cores.
#[pyfunction]
fn default_threads() -> usize {
    ak_core::threads::default_threads()
}

extern "C" fn after_fork_child() {
    ak_core::threads::reset_after_fork();
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // A forked child (multiprocessing, Dask workers) must not reuse the parent's pools.
    unsafe {
        libc::pthread_atfork(None, None, Some(after_fork_child));
    }
    m.add_function(wrap_pyfunction!(lazy_kernels, m)?)?;
    m.add_function(wrap_pyfunction!(cholesky, m)?)?;
    m.add_function(wrap_pyfunction!(cho_solve, m)?)?;
    m.add_function(wrap_pyfunction!(gp_predict, m)?)?;
    m.add_function(wrap_pyfunction!(symmetric_eigen, m)?)?;
    m.add_function(wrap_pyfunction!(ntk_flow_coefficients, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_alignment, m)?)?;
    m.add_function(wrap_pyfunction!(cka, m)?)?;
    m.add_function(wrap_pyfunction!(default_threads, m)?)?;
    bayesian_mean_field::register(m)?;
    exact_linear::register(m)?;
    finite_width::register(m)?;
    kernel_renormalization::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
