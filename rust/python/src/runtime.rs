//! Running core work off the Python thread: the GIL is released, the calling thread polls for
//! Ctrl-C (which cancels through `Control`) and drives the progress callback; a panic in the
//! core becomes a `RuntimeError`, never a `PanicException`.
use crate::errors::{to_pyerr, Failure};
use ak_core::control::Control;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;
use std::sync::mpsc;
use std::time::Duration;

/// `n_threads=None` means the core's default (`AK_NUM_THREADS`, else all cores).
pub(crate) fn threads(n_threads: Option<usize>) -> usize {
    n_threads.unwrap_or(0)
}

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

/// Like [`run`], but a Ctrl-C (`KeyboardInterrupt`) that the work honoured by returning early
/// (partial results) gives `Ok((value, true))` instead of raising. Any other exception from a
/// signal handler or the progress callback is raised.
pub(crate) fn run_interruptible<T: Send>(
    py: Python<'_>,
    progress: Option<Py<PyAny>>,
    work: impl FnOnce(&Control) -> Result<T, Failure> + Send,
) -> PyResult<(T, bool)> {
    let (result, signal) = run_inner(py, progress, work);
    match (result, signal) {
        (Ok(v), None) => Ok((v, false)),
        (Ok(v), Some(e)) if e.is_instance_of::<PyKeyboardInterrupt>(py) => Ok((v, true)),
        (_, Some(e)) => Err(e),
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
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                        // the bar ends on the final count (work shorter than one poll included)
                        if let (Some(cb), None) = (&progress, &signal) {
                            let (done, total) = ctl_ref.progress();
                            signal = Python::attach(|py| cb.bind(py).call1((done, total)).err());
                        }
                        break;
                    }
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

