//! Bayesian mean-field (muP) saddle points of deep networks (Lauditi, Bordelon & Pehlevan 2025):
//! [`linear`] for deep linear networks (closed form and L-BFGS), [`sampled`] for nonlinear ones
//! (tilted densities sampled by MCMC, Newton-Krylov on the fixed point, gamma continuation).
pub mod concave;
pub mod linear;
pub mod sampled;
