//! Adaptive-kernel theories: each finds the adapted kernels of a network by a saddle point or a
//! fixed point, built from the layers below (no theory imports another).
pub mod kernel_renormalization;
pub mod mean_field;
