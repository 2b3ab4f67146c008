//! Adaptive-kernel theories: each finds the adapted kernels of a network by a saddle point or a
//! fixed point, built from the layers below (no theory imports another).
pub mod dmft;
pub mod forward_backward;
pub mod kernel_renormalization;
pub mod mean_field;
pub mod multi_scale;
pub mod tangent_features;

#[cfg(test)]
mod tests {
    /// The solvers' defaults (read by Python) are those the theories had before their options
    /// were built from the optimizers' defaults; the sampler's `n_samples` is 1000, the default
    /// `BayesianMeanField` always had (the core's own was 500 before the defaults moved here).
    #[test]
    fn option_defaults_are_unchanged() {
        let kr = super::kernel_renormalization::Options::default();
        assert_eq!((kr.tol, kr.max_iter), (1e-10, 200));
        let lin = super::mean_field::linear::Options::default();
        assert_eq!((lin.tol, lin.max_iter, lin.memory), (1e-10, 5000, 0));
        let s = crate::tilted::Options::default();
        assert_eq!((s.tol, s.max_iter, s.krylov, s.forcing), (1e-8, 50, 30, 1e-2));
        assert_eq!((s.min_kish, s.min_trial_kish, s.max_refresh, s.max_stages), (0.5, 0.1, 8, 40));
        let c = s.sampler;
        assert_eq!(
            (c.n_chains, c.n_samples, c.burn_in, c.thin, c.step_size, c.seed),
            (16, 1000, 300, 2, 0.2, 0)
        );
    }
}
