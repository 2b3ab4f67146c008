//! `adaptive_kernels._core`: the thin PyO3 layer over `adaptive-kernels-core`.
//!
//! One submodule per Python module (`kernels`, `linalg`, `predictors`, `finite`,
//! `kernel_renormalization`, `mean_field`, `dmft`, `forward_backward`, `multi_scale`, `tangent_features`, `mcmc`, `tilted`), test-only entry points in `_testing`.
//! Arrays cross without copies where possible (callers pass C-contiguous float64 arrays; the
//! Python layer ensures that); the network is read from the `adaptive_kernels.MLP` object
//! itself; solver settings are one `options` dict whose missing keys take the core's
//! `Default` (each module's `defaults()` shows them); results are typed classes. Work runs
//! with the GIL released while the Python thread polls for Ctrl-C and progress. No numerics
//! live here.
use pyo3::prelude::*;

mod convert;
mod dmft;
mod errors;
mod finite;
mod forward_backward;
mod kernel_renormalization;
mod kernels;
mod linalg;
mod mcmc;
mod mean_field;
mod mean_field_concave;
mod multi_scale;
mod predictors;
mod results;
mod runtime;
mod tangent_features;
mod testing;
mod tilted;

/// Threads used when `n_threads` is None: `AK_NUM_THREADS`, else all cores.
#[pyfunction]
fn default_threads() -> usize {
    ak_core::threads::default_threads()
}

extern "C" fn after_fork_child() {
    ak_core::threads::reset_after_fork();
}

/// Adds `_core.<name>` (also importable as `adaptive_kernels._core.<name>`).
fn submodule(
    parent: &Bound<'_, PyModule>,
    name: &str,
    register: fn(&Bound<'_, PyModule>) -> PyResult<()>,
) -> PyResult<()> {
    let py = parent.py();
    let m = PyModule::new(py, name)?;
    register(&m)?;
    parent.add_submodule(&m)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item(format!("adaptive_kernels._core.{name}"), &m)?;
    Ok(())
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // A forked child (multiprocessing, Dask workers) must not reuse the parent's pools.
    unsafe {
        libc::pthread_atfork(None, None, Some(after_fork_child));
    }
    m.add_function(wrap_pyfunction!(default_threads, m)?)?;
    m.add_class::<results::SolveReport>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    submodule(m, "linalg", linalg::register)?;
    submodule(m, "kernels", kernels::register)?;
    submodule(m, "predictors", predictors::register)?;
    submodule(m, "finite", finite::register)?;
    submodule(m, "kernel_renormalization", kernel_renormalization::register)?;
    submodule(m, "mean_field", mean_field::register)?;
    submodule(m, "mcmc", mcmc::register)?;
    submodule(m, "tilted", tilted::register)?;
    submodule(m, "dmft", dmft::register)?;
    submodule(m, "forward_backward", forward_backward::register)?;
    submodule(m, "multi_scale", multi_scale::register)?;
    submodule(m, "tangent_features", tangent_features::register)?;
    submodule(m, "_testing", testing::register)?;
    Ok(())
}
