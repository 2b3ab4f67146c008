//! Finite-width networks: the network and its potential, posterior sampling by Langevin
//! dynamics, gradient descent, the exact posterior of one-hidden-layer linear networks, and
//! structured tangent features (Jacobians) of the network.
pub mod empirical_kernels;
pub mod exact_linear;
pub mod gradient_descent;
pub mod network;
pub mod posterior_sampling;
pub mod tangent;
