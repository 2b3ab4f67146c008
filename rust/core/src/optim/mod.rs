//! Optimizers and nonlinear solvers, each `(problem, start, Options) -> (x, SolveReport)`:
//! dense BFGS on a chart ([`bfgs`]), L-BFGS ([`lbfgs`]), Newton-Krylov with GMRES
//! ([`newton_krylov`]).
pub mod bfgs;
pub mod lbfgs;
pub mod newton_krylov;
