//! Bindings of the finite-width ground truth (Langevin/MALA sampling, gradient descent).
use pyo3::prelude::*;

pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
