//! Bayesian mean-field (muP) saddle points of deep networks (Lauditi, Bordelon & Pehlevan 2025):
//! [`linear`] for deep linear networks (closed form and L-BFGS), [`concave`] for one hidden
//! layer; nonlinear networks of any depth use the tilted fixed point below the theories
//! ([`crate::tilted`]: tilted densities sampled by MCMC, Newton-Krylov, gamma continuation),
//! which the multi-scale theory shares.
pub mod concave;
pub mod linear;
