//! adaptive-kernels core: the numerics of the `adaptive_kernels` Python package, in pure Rust.
//!
//! Dense linear algebra uses faer; parallel loops run on one Rayon pool per call
//! ([`threads::with_threads`]). Nothing here depends on Python.
pub mod activation;
pub mod alignment;
pub mod bayesian_mean_field;
pub mod bayesian_mean_field_tilted;
pub mod control;
pub mod error;
pub mod exact_linear;
pub mod finite_networks;
pub mod gradient_descent;
pub mod kernel_renormalization;
pub mod lazy_kernels;
pub mod linalg;
pub mod mcmc_diagnostics;
pub mod posterior_sampling;
pub mod predictors;
pub mod quadrature;
pub mod rng;
pub mod threads;
pub mod tilted_density;

pub use error::{AkError, Result};
pub use faer;
