//! Markov chain Monte Carlo: MALA moves, chain diagnostics (classic ESS and split R-hat in
//! `chains`; the rank-normalized R-hat, bulk and tail ESS of Vehtari et al. 2021 in `rank`, on
//! FFT autocovariances from `autocov`; drift), and the sampler of the tilted single-site
//! density of mean-field layers.
pub mod autocov;
pub mod chains;
pub mod mala;
pub mod rank;
pub mod tilted;
