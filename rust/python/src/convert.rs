//! Conversions between NumPy arrays and core types, and the network argument: the
//! `adaptive_kernels.MLP` object itself, read once into a core `Mlp` ([`NetArg`]).
use crate::errors::{to_pyerr, Failure};
use ak_core::kernels::activation::{Activation, ElementwiseFn, Method};
use ak_core::faer::{Mat, MatRef};
use ak_core::kernels::net::Mlp;
use ak_core::AkError;
use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::sync::{Arc, Mutex};

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

pub(crate) fn mat_to_numpy<'py>(py: Python<'py>, m: MatRef<'_, f64>) -> Bound<'py, PyArray2<f64>> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)]).into_pyarray(py)
}

pub(crate) fn mats_to_list<'py>(py: Python<'py>, ms: &[Mat<f64>]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, ms.iter().map(|m| mat_to_numpy(py, m.as_ref())))
}

/// Row-major views of a list of matrices, each named `name` in errors.
pub(crate) fn views<'a>(
    name: &'static str,
    ms: &'a [PyReadonlyArray2<'_, f64>],
) -> PyResult<Vec<MatRef<'a, f64>>> {
    ms.iter().map(|m| view(name, m)).collect()
}

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

/// The network argument of every kernel and theory function: an `adaptive_kernels.MLP`, read
/// once (depth, activation and its derivative, sigma_w, sigma_b, method, quadrature order) into
/// a core [`Mlp`], with the slot where a failing Python activation leaves its exception.
pub(crate) struct NetArg {
    pub(crate) net: Mlp,
    pub(crate) slot: Arc<Mutex<Option<PyErr>>>,
}

impl NetArg {
    pub(crate) fn new(net: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = net.py();
        let get = |name: &str| {
            net.getattr(name).map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!(
                    "net: expected an adaptive_kernels.MLP (no attribute {name:?})"
                ))
            })
        };
        let activation = get("activation")?;
        let derivative = get("activation_derivative")?;
        let derivative = if derivative.is_none() { None } else { Some(derivative.unbind()) };
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
        let mut mlp = Mlp::new(
            get("depth")?.extract()?,
            act,
            get("sigma_w")?.extract()?,
            get("sigma_b")?.extract()?,
        );
        let method: String = get("method")?.extract()?;
        mlp.method = Method::from_name(&method).map_err(|e| to_pyerr(py, e.into()))?;
        mlp.quadrature_order = get("quadrature_order")?.extract()?;
        Ok(NetArg { net: mlp, slot })
    }

    /// A core error of work that may have called the Python activation: re-raises the
    /// callback's own exception where there is one.
    pub(crate) fn failure(&self, err: AkError) -> Failure {
        crate::errors::callback_failure(err, &self.slot)
    }

    /// The activation's name (built-in activations only; `None` for a callable).
    pub(crate) fn builtin(net: &Bound<'_, PyAny>) -> PyResult<Activation> {
        let a = net.getattr("activation")?;
        let name: String = a.extract().map_err(|_| {
            PyValueError::new_err("net: needs a built-in activation (a string), got a callable")
        })?;
        Activation::from_name(&name).map_err(|e| to_pyerr(net.py(), e.into()))
    }
}

/// A solver's `options` dict: each key read once with the core's default where absent; keys
/// left over are an error naming them (a misspelt option never passes silently).
pub(crate) struct Options<'py> {
    dict: Option<Bound<'py, pyo3::types::PyDict>>,
}

impl<'py> Options<'py> {
    pub(crate) fn new(dict: Option<Bound<'py, pyo3::types::PyDict>>) -> PyResult<Self> {
        Ok(Options { dict: dict.map(|d| d.copy()).transpose()? })
    }

    pub(crate) fn get<T: for<'a> FromPyObject<'a, 'py>>(&self, name: &str, default: T) -> PyResult<T> {
        let Some(d) = &self.dict else { return Ok(default) };
        match d.get_item(name)? {
            None => Ok(default),
            Some(v) => {
                d.del_item(name)?;
                if v.is_none() {
                    return Ok(default);
                }
                v.extract::<T>().map_err(|_| {
                    PyValueError::new_err(format!("{name}: invalid value {v}"))
                })
            }
        }
    }

    /// Errors on keys no `get` asked for.
    pub(crate) fn finish(self) -> PyResult<()> {
        if let Some(d) = self.dict {
            if !d.is_empty() {
                let keys: Vec<String> = d.keys().iter().map(|k| k.to_string()).collect();
                return Err(PyValueError::new_err(format!(
                    "options: unknown option(s) {keys:?}"
                )));
            }
        }
        Ok(())
    }
}

/// A dict of `(name, value)` pairs (the core's defaults, for Python to read).
pub(crate) fn defaults_dict<'py>(
    py: Python<'py>,
    items: &[(&str, Bound<'py, PyAny>)],
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let d = pyo3::types::PyDict::new(py);
    for (k, v) in items {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// `(U, jitter, dual)` of a fitted kernel predictor: `U = L^T` (C order, so `U.T` is the lower
/// factor) of `K + ridge I` with jitter escalation, and `(K + ridge I)^{-1} Y`: the state a
/// kernel predictor keeps so that `predict` never factors the training kernel again.
pub(crate) fn factor_and_solve(
    k: MatRef<'_, f64>,
    ridge: f64,
    y: MatRef<'_, f64>,
    par: ak_core::faer::Par,
) -> ak_core::Result<(Vec<f64>, f64, Mat<f64>)> {
    let n = k.nrows();
    let mut u = vec![0.0; n * n];
    let info = ak_core::linalg::cholesky_with_jitter(
        "K",
        k,
        ridge,
        ak_core::faer::MatMut::from_column_major_slice_mut(&mut u, n, n),
        par,
    )?;
    let l = MatRef::from_column_major_slice(&u, n, n);
    let mut dual = y.to_owned();
    ak_core::predictors::gp_alpha(l, dual.as_mut(), par)?;
    Ok((u, info.jitter, dual))
}

/// A flat row-major `n x n` buffer as a NumPy array.
pub(crate) fn square_to_numpy<'py>(py: Python<'py>, v: Vec<f64>, n: usize) -> Bound<'py, PyArray2<f64>> {
    Array2::from_shape_vec((n, n), v).expect("n x n buffer").into_pyarray(py)
}

/// The fitted readout predictor at a solution: `factor` (`U = L^T` of `Phi^L + T I`),
/// `factor_jitter` and `dual_coef` (`(Phi^L + T I)^{-1} Y`).
pub(crate) fn readout_state(
    kl: &Mat<f64>,
    t: f64,
    y: MatRef<'_, f64>,
    nt: usize,
) -> ak_core::Result<(Vec<f64>, f64, Mat<f64>)> {
    let p = kl.nrows();
    // Row-major copy read column-major, as a C-ordered NumPy array is read by `view_t`.
    let buf: Vec<f64> = (0..p * p).map(|k| kl[(k / p, k % p)]).collect();
    ak_core::threads::with_threads(nt, |par| factor_and_solve(MatRef::from_column_major_slice(&buf, p, p), t, y, par))
}
