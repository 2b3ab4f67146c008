//! Core errors as Python exceptions: `ValueError` naming the argument, `FloatingPointError`,
//! `KeyboardInterrupt`, and the package's own classes (`adaptive_kernels.exceptions`).
use ak_core::AkError;
use pyo3::exceptions::{PyFloatingPointError, PyValueError};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

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
        AkError::OutOfMemory { .. } => "InsufficientMemoryError",
    };
    match exception_class(py, class).and_then(|c| c.call1((msg,))) {
        Ok(inst) => PyErr::from_value(inst),
        Err(e) => e,
    }
}

pub(crate) fn callback_failure(err: AkError, slot: &Arc<Mutex<Option<PyErr>>>) -> Failure {
    let py_err = if matches!(err, AkError::Callback(_)) {
        slot.lock().unwrap_or_else(|p| p.into_inner()).take()
    } else {
        None
    };
    Failure { err, py_err }
}

