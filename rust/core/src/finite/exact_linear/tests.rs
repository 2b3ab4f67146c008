use super::*;
use crate::control::no_control;
use faer::linalg::solvers::Solve;

fn data(p: usize, d: usize, seed: u64) -> (Mat<f64>, Mat<f64>, Mat<f64>) {
    // small deterministic pseudo-random data (LCG), teacher y = x.beta + noise
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let x = Mat::from_fn(p, d, |_, _| next());
    let xt = Mat::from_fn(3, d, |_, _| next());
    let beta: Vec<f64> = (0..d).map(|_| next()).collect();
    let y = Mat::from_fn(p, 1, |i, _| {
        (0..d).map(|l| x[(i, l)] * beta[l]).sum::<f64>() + 0.1 * next()
    });
    (x, y, xt)
}

/// GP posterior with kernel u K0 + noise kappa, by a dense solve (the N -> inf limit).
fn gp(x: &Mat<f64>, y: &Mat<f64>, xt: &Mat<f64>, u: f64, kappa: f64) -> (Vec<f64>, Vec<f64>) {
    let d = x.ncols() as f64;
    let p = x.nrows();
    let k = Mat::from_fn(p, p, |i, j| {
        u * (0..x.ncols()).map(|l| x[(i, l)] * x[(j, l)]).sum::<f64>() / d
            + if i == j { kappa } else { 0.0 }
    });
    let kc = Mat::from_fn(xt.nrows(), p, |i, j| {
        u * (0..x.ncols()).map(|l| xt[(i, l)] * x[(j, l)]).sum::<f64>() / d
    });
    let lu = k.partial_piv_lu();
    let alpha = lu.solve(y);
    let kct = kc.transpose().to_owned();
    let sol = lu.solve(&kct);
    let mean = (0..xt.nrows())
        .map(|i| (0..p).map(|j| kc[(i, j)] * alpha[(j, 0)]).sum())
        .collect();
    let var = (0..xt.nrows())
        .map(|i| {
            let kss = u * (0..x.ncols()).map(|l| xt[(i, l)] * xt[(i, l)]).sum::<f64>() / d;
            kss - (0..p).map(|j| kc[(i, j)] * sol[(j, i)]).sum::<f64>()
        })
        .collect();
    (mean, var)
}

#[test]
fn relative_log_density_and_derivatives_are_consistent() {
    let sp = Spectrum {
        lam: vec![2.0, 0.5, 1e-3, 0.0],
        ysq: vec![1.0, 3.0, 0.2, 5.0],
        n_out: 2,
        kappa: 0.01,
        a: 3.5,
        c: 0.7,
    };
    let (mode, d2) = sp.mode().unwrap();
    let anchor = sp.anchor(mode);
    assert!(sp.derivatives(mode).0.abs() < 1e-10 && d2 < 0.0);
    for dd in [-3.0, -0.1, 1e-4, 0.5, 2.0] {
        let direct = sp.log_density(mode + dd) - sp.log_density(mode);
        assert!(
            (sp.log_density_rel(&anchor, dd) - direct).abs() < 1e-11 * (1.0 + direct.abs()),
            "dd = {dd}"
        );
        // central differences of g against (g', g'')
        let h = 1e-4;
        let (d1, d2) = sp.derivatives(mode + dd);
        let g = |x: f64| sp.log_density_rel(&anchor, x);
        assert!(((g(dd + h) - g(dd - h)) / (2.0 * h) - d1).abs() < 1e-6 * (1.0 + d1.abs()));
        assert!(
            ((g(dd + h) - 2.0 * g(dd) + g(dd - h)) / (h * h) - d2).abs()
                < 1e-4 * (1.0 + d2.abs())
        );
    }
}

#[test]
fn stirling_normalization_matches_lgamma() {
    for a in [10.0, 12.5, 50.0, 1e3] {
        let direct = a * f64::ln(a) - a - libm::lgamma(a);
        assert!(
            (gamma_log_norm(a) - direct).abs() < 1e-12 * (1.0 + a),
            "a = {a}"
        );
    }
}

#[test]
fn huge_width_gives_the_gp_posterior() {
    // Standard scaling: u -> c = s_w^2 and the posterior -> GP(0, s_w^2 K0) with noise T.
    // Mean field: u concentrates at the saddle point r* = u*/c of (8), which at fixed gamma
    // stays O(1) away from 1 (the likelihood is O(N) too): 1 - r + gamma^2 sum_k Y_k lam_k r/(r lam_k + T)^2 = 0,
    // with lam_k the eigenvalues of K0; the posterior -> GP(0, u* K0) with noise kappa.
    let (x, y, xt) = data(8, 3, 1);
    let sw = 1.3;
    for param in [
        Parameterization::Standard { chi: 1.0 },
        Parameterization::MeanField { gamma: 0.7 },
    ] {
        let prob = ExactLinearProblem {
            x: x.as_ref(),
            y: y.as_ref(),
            x_test: Some(xt.as_ref()),
            sigma_w: sw,
            width: 10_000_000,
            temperature: 0.05,
            param,
        };
        let post = exact_linear_posterior(&prob, 2, no_control()).unwrap();
        let (c, kappa) = prob.scales();
        let r = post.kernel_scale_mean / c;
        assert!(post.kernel_scale_std / post.kernel_scale_mean < 1e-3);
        match param {
            Parameterization::Standard { .. } => assert!((r - 1.0).abs() < 1e-5, "{r}"),
            Parameterization::MeanField { gamma } => {
                let d = x.ncols() as f64;
                let k0 = Mat::from_fn(8, 8, |i, j| {
                    sw * sw * (0..3).map(|l| x[(i, l)] * x[(j, l)]).sum::<f64>() / d
                });
                let (lam, v) = symmetric_eigen("K0", k0.as_ref(), Par::Seq).unwrap();
                let res: f64 = 1.0 - r
                    + gamma
                        * gamma
                        * (0..8)
                            .map(|k| {
                                let yk: f64 = (0..8).map(|i| v[(i, k)] * y[(i, 0)]).sum();
                                let l = lam[k].max(0.0);
                                yk * yk * l * r / ((r * l + 0.05) * (r * l + 0.05))
                            })
                            .sum::<f64>();
                assert!(
                    r > 1.1 && res.abs() < 1e-5,
                    "r = {r}, saddle-point residual {res}"
                );
            }
        }
        let (gm, gv) = gp(&x, &y, &xt, post.kernel_scale_mean * sw * sw, kappa);
        let tm = post.test_mean.unwrap();
        let tv = post.test_var.unwrap();
        for i in 0..3 {
            assert!(
                (tm[(i, 0)] - gm[i]).abs() < 1e-6 * (1.0 + gm[i].abs()),
                "{} {}",
                tm[(i, 0)],
                gm[i]
            );
            if matches!(param, Parameterization::Standard { .. }) {
                assert!(
                    (tv[(i, 0)] - gv[i]).abs() < 1e-4 * gv[i],
                    "{} {}",
                    tv[(i, 0)],
                    gv[i]
                );
            } else {
                // the conditional variance and Var_u of the mean are both O(1/N) here
                assert!(
                    tv[(i, 0)] >= gv[i] * (1.0 - 1e-4) && tv[(i, 0)] < 2.0 * gv[i],
                    "{} {}",
                    tv[(i, 0)],
                    gv[i]
                );
            }
        }
    }
}

#[test]
fn train_points_as_test_points_agree() {
    // (6)-(7) through the eigenbasis (train) and through X_test (test) must agree
    let (x, y, _) = data(6, 4, 2);
    let prob = ExactLinearProblem {
        x: x.as_ref(),
        y: y.as_ref(),
        x_test: Some(x.as_ref()),
        sigma_w: 1.0,
        width: 3,
        temperature: 0.01,
        param: Parameterization::Standard { chi: 1.0 },
    };
    let post = exact_linear_posterior(&prob, 1, no_control()).unwrap();
    let (tm, tv) = (post.test_mean.unwrap(), post.test_var.unwrap());
    for i in 0..6 {
        assert!((tm[(i, 0)] - post.train_mean[(i, 0)]).abs() < 1e-10);
        assert!((tv[(i, 0)] - post.train_var[(i, 0)]).abs() < 1e-10 * (1.0 + tv[(i, 0)]));
    }
}

#[test]
fn no_data_signal_gives_the_prior_and_evidence_integrates() {
    // y = 0 and K0 = 0 direction-free: with X = 0 the likelihood does not depend on u,
    // so E[u|y] = c and Std[u|y] = c sqrt(2/N); the evidence is N(0; 0, kappa I).
    let x = Mat::<f64>::zeros(4, 2);
    let y = Mat::<f64>::zeros(4, 1);
    for width in [1, 2, 7, 1000] {
        let prob = ExactLinearProblem {
            x: x.as_ref(),
            y: y.as_ref(),
            x_test: None,
            sigma_w: 1.0,
            width,
            temperature: 0.3,
            param: Parameterization::Standard { chi: 1.0 },
        };
        let post = exact_linear_posterior(&prob, 1, no_control()).unwrap();
        let n = width as f64;
        assert!(
            (post.kernel_scale_mean - 1.0).abs() < 1e-12,
            "N={width}: {}",
            post.kernel_scale_mean
        );
        assert!(
            (post.kernel_scale_std - (2.0 / n).sqrt()).abs() < 1e-12,
            "N={width}: {}",
            post.kernel_scale_std
        );
        let le = -0.5 * 4.0 * (2.0 * std::f64::consts::PI * 0.3).ln();
        assert!(
            (post.log_evidence - le).abs() < 1e-12,
            "N={width}: {} vs {le}",
            post.log_evidence
        );
    }
}

#[test]
fn thread_count_does_not_change_results() {
    let (x, y, xt) = data(70, 5, 3);
    let prob = ExactLinearProblem {
        x: x.as_ref(),
        y: y.as_ref(),
        x_test: Some(xt.as_ref()),
        sigma_w: 1.0,
        width: 20,
        temperature: 0.01,
        param: Parameterization::MeanField { gamma: 2.0 },
    };
    let a = exact_linear_posterior(&prob, 1, no_control()).unwrap();
    let b = exact_linear_posterior(&prob, 3, no_control()).unwrap();
    assert_eq!(a.train_mean, b.train_mean);
    assert_eq!(a.train_var, b.train_var);
    assert_eq!(a.test_var, b.test_var);
    assert_eq!(a.log_evidence.to_bits(), b.log_evidence.to_bits());
}

#[test]
fn bad_arguments_are_named() {
    let (x, y, xt) = data(5, 2, 4);
    let base = ExactLinearProblem {
        x: x.as_ref(),
        y: y.as_ref(),
        x_test: None,
        sigma_w: 1.0,
        width: 3,
        temperature: 0.1,
        param: Parameterization::Standard { chi: 1.0 },
    };
    let name = |p: ExactLinearProblem<'_>| match exact_linear_posterior(&p, 1, no_control())
        .unwrap_err()
    {
        AkError::InvalidArgument { name, .. } | AkError::Shape { name, .. } => name,
        e => panic!("{e:?}"),
    };
    assert_eq!(name(ExactLinearProblem { width: 0, ..base }), "width");
    assert_eq!(
        name(ExactLinearProblem {
            temperature: 0.0,
            ..base
        }),
        "temperature"
    );
    assert_eq!(
        name(ExactLinearProblem {
            temperature: f64::NAN,
            ..base
        }),
        "temperature"
    );
    assert_eq!(
        name(ExactLinearProblem {
            param: Parameterization::MeanField { gamma: -1.0 },
            ..base
        }),
        "gamma"
    );
    assert_eq!(
        name(ExactLinearProblem {
            sigma_w: 0.0,
            ..base
        }),
        "sigma_w"
    );
    assert_eq!(
        name(ExactLinearProblem {
            y: xt.as_ref().subcols(0, 1),
            ..base
        }),
        "y"
    );
    let xt3 = Mat::<f64>::zeros(2, 3);
    assert_eq!(
        name(ExactLinearProblem {
            x_test: Some(xt3.as_ref()),
            ..base
        }),
        "X_test"
    );
}
