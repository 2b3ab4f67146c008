//! Markov chain Monte Carlo: MALA moves, chain diagnostics (ESS, split R-hat, drift), and the
//! sampler of the tilted single-site density of mean-field layers.
pub mod chains;
pub mod mala;
pub mod tilted;
