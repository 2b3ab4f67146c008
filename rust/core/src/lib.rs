//! adaptive-kernels core: the numerics of the `adaptive_kernels` Python package, in pure Rust.
//!
//! Dense linear algebra uses faer; parallel loops run on one Rayon pool per call
//! ([`threads::with_threads`]). Nothing here depends on Python.
//!
//! Layers, dependencies pointing down: `linalg`, `kernels`, `optim`, `solve`, `mcmc`, `tilted` (building
//! blocks) < `finite` (finite-width networks) and `predictors` < `theories` (one module per
//! theory, none importing another); `validate` holds the argument checks shared by all.
pub mod control;
pub mod error;
pub mod finite;
pub mod kernels;
pub mod linalg;
pub mod mcmc;
pub mod optim;
pub mod predictors;
pub mod rng;
pub mod solve;
pub mod theories;
pub mod threads;
pub mod tilted;
pub mod validate;

pub use error::{AkError, Result};
pub use faer;
