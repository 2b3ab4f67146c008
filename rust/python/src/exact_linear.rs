//! Bindings of `ak_core::exact_linear` (filled in by the exact-posterior work).
use pyo3::prelude::*;

pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
