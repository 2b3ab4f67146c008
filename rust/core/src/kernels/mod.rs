//! Kernels of infinitely wide networks: the input kernel, the lazy NNGP / NTK recursion,
//! Gaussian expectations of activations and their quadrature, kernel alignment, and the
//! architecture they describe.
pub mod activation;
pub mod alignment;
pub mod criticality;
pub mod decomposition;
pub mod hermite;
pub mod input;
pub mod lazy;
pub mod lazy_hermite;
pub mod net;
pub mod quadrature;
pub(crate) mod simd;
