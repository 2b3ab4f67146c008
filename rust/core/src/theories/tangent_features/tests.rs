use super::*;
use crate::control::no_control;

/// Group kernels `Phi_k Phi_k^T` of a fixed random-like feature matrix (6 rows, groups 5, 3, 4).
fn problem() -> (Vec<Mat<f64>>, Vec<f64>) {
    let sizes = [5usize, 3, 4];
    let kernels = sizes
        .iter()
        .enumerate()
        .map(|(g, &s)| {
            let phi = Mat::from_fn(6, s, |i, j| (((1 + i * 7 + j * 3 + g * 11).pow(2)) as f64 * 0.37).sin());
            &phi * phi.transpose()
        })
        .collect();
    let r = (0..6).map(|i| (i as f64 * 1.3).cos() + 0.2).collect();
    (kernels, r)
}

#[test]
fn irls_is_monotone_and_interpolates() {
    let (ks, r) = problem();
    for reg in [0.1, 1.0, 10.0] {
        let s = solve(&ks, &r, &Options { reg, ..Default::default() }, no_control()).unwrap();
        assert!(s.report.converged);
        assert!(s.objective_history.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-14)));
        assert!(s.feasibility < 1e-10);
        // a stationary point: the weights are the optimal scales for the final norms
        for (w, z) in s.weights.iter().zip(&s.scales) {
            assert!((w - z * z).abs() < 1e-5 * w);
        }
    }
}

#[test]
fn full_structure_is_ridgeless_tangent_regression() {
    let (ks, r) = problem();
    let s = solve(&ks, &r, &Options { reg: 0.5, structure: Structure::Full, ..Default::default() }, no_control())
        .unwrap();
    let k0 = weighted(&ks, &[1.0; 3]);
    let fit: Vec<f64> = mat_vec(&k0, &s.alpha).iter().map(|x| x * s.weights[0]).collect();
    for (a, b) in fit.iter().zip(&r) {
        assert!((a - b).abs() < 1e-10);
    }
    assert!(solve(&ks, &r, &Options { reg: -1.0, ..Default::default() }, no_control()).is_err());
}
