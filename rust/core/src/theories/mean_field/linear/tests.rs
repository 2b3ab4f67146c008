use super::*;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use crate::control::no_control;
use crate::kernels::activation::Activation;
use crate::rng::Rng;

fn data(p: usize, d: usize, c: usize, seed: u64) -> (Vec<f64>, Mat<f64>) {
    let mut rng = Rng::new(seed, 0);
    let x: Vec<f64> = (0..p * d).map(|_| rng.normal()).collect();
    let y = Mat::from_fn(p, c, |i, j| {
        (x[i * d] + 0.5 * x[i * d + 1] * (j as f64 + 1.0)).tanh() + 0.2
    });
    (x, y)
}

fn max_rel(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    let mut num: f64 = 0.0;
    let mut den: f64 = 0.0;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            num = num.max((a[(i, j)] - b[(i, j)]).abs());
            den = den.max(b[(i, j)].abs());
        }
    }
    num / den
}

fn solve(prob: &Problem<'_>, gamma: f64, t: f64, solver: Solver, n_threads: usize) -> Solution {
    let opts = Options {
        solver,
        tol: 1e-11,
        ..Default::default()
    };
    prob.solve_path(
        &[Point {
            gamma,
            temperature: t,
        }],
        None,
        &opts,
        n_threads,
        no_control(),
    )
    .unwrap()
    .solutions
    .remove(0)
}

#[test]
fn bayesian_closed_form_matches_lbfgs() {
    let (x, y) = data(12, 15, 1, 1);
    for (depth, sw, gamma, t) in [(1, 1.0, 1.0, 0.1), (2, 1.3, 1.5, 0.05), (3, 0.8, 1.0, 0.2)] {
        let net = Mlp::new(depth, Activation::Linear, sw, 0.0);
        let prob =
            Problem::new(&net, Rows::new("X", &x, 12, 15).unwrap(), y.as_ref(), 1).unwrap();
        let cf = solve(&prob, gamma, t, Solver::ClosedForm, 1);
        let lb = solve(&prob, gamma, t, Solver::Lbfgs, 1);
        assert_eq!(cf.stationary.len(), 1, "{:?}", cf.stationary);
        assert!(cf.report.converged && cf.report.residual < 1e-11, "{}", cf.report.residual);
        assert!(lb.report.converged, "{} {}", lb.report.residual, lb.report.n_iter);
        for l in 0..depth {
            let e = max_rel(&lb.kernels[l], &cf.kernels[l]);
            assert!(e < 1e-9, "layer {l}: {e}");
            let e = max_rel(&lb.conjugates[l], &cf.conjugates[l]);
            assert!(e < 1e-7, "conjugate {l}: {e}");
        }
        assert!((lb.action - cf.action).abs() < 1e-12 * (1.0 + cf.action.abs()));
    }
}

#[test]
fn bayesian_gradient_matches_finite_differences() {
    let (x, y) = data(7, 9, 2, 2);
    let net = Mlp::new(2, Activation::Linear, 1.2, 0.3);
    let prob = Problem::new(&net, Rows::new("X", &x, 7, 9).unwrap(), y.as_ref(), 1).unwrap();
    let mut rng = Rng::new(5, 0);
    let ks: Vec<Mat<f64>> = (0..2)
        .map(|l| {
            let g = Mat::from_fn(7, 7, |_, _| rng.normal());
            let mut k = Mat::from_fn(7, 7, |i, j| {
                (1.0 + l as f64) * prob.k0[(i, j)]
                    + 0.1 * (0..7).map(|m| g[(i, m)] * g[(j, m)]).sum::<f64>()
            });
            symmetrize(&mut k);
            k
        })
        .collect();
    let views: Vec<MatRef<'_, f64>> = ks.iter().map(|k| k.as_ref()).collect();
    let (_, grads) = prob.objective(1.3, 0.2, &views, 1).unwrap();
    let e = Mat::from_fn(7, 7, |i, j| {
        ((i * 7 + j) as f64).sin() + ((j * 7 + i) as f64).sin()
    });
    for l in 0..2 {
        let h = 1e-6;
        let mut kp = ks.clone();
        let mut km = ks.clone();
        for j in 0..7 {
            for i in 0..7 {
                kp[l][(i, j)] += h * e[(i, j)];
                km[l][(i, j)] -= h * e[(i, j)];
            }
        }
        let f = |k: &Vec<Mat<f64>>| {
            let v: Vec<MatRef<'_, f64>> = k.iter().map(|k| k.as_ref()).collect();
            prob.objective(1.3, 0.2, &v, 1).unwrap().0
        };
        let fd = (f(&kp) - f(&km)) / (2.0 * h);
        let an: f64 = (0..7)
            .flat_map(|i| (0..7).map(move |j| (i, j)))
            .map(|(i, j)| grads[l][(i, j)] * e[(i, j)])
            .sum();
        assert!(
            (fd - an).abs() < 1e-6 * (1.0 + fd.abs()),
            "{l}: {fd} vs {an}"
        );
    }
}

#[test]
fn bayesian_singular_input_kernel_and_bias() {
    // P > d + 1: K^0 is singular; the solve happens on its support
    let (x, y) = data(14, 3, 1, 3);
    let net = Mlp::new(2, Activation::Linear, 1.1, 0.0);
    let prob = Problem::new(&net, Rows::new("X", &x, 14, 3).unwrap(), y.as_ref(), 1).unwrap();
    assert_eq!(prob.rank(), 3);
    let cf = solve(&prob, 1.0, 0.1, Solver::ClosedForm, 1);
    let lb = solve(&prob, 1.0, 0.1, Solver::Lbfgs, 1);
    assert!(lb.report.converged);
    for l in 0..2 {
        assert!(max_rel(&lb.kernels[l], &cf.kernels[l]) < 1e-9);
    }
    let net = Mlp::new(2, Activation::Linear, 1.1, 0.5);
    let prob = Problem::new(&net, Rows::new("X", &x, 14, 3).unwrap(), y.as_ref(), 1).unwrap();
    assert_eq!(prob.rank(), 4);
    let lb = solve(&prob, 1.0, 0.1, Solver::Auto, 1);
    assert_eq!(lb.report.solver, "lbfgs");
    assert!(lb.report.converged && lb.report.residual < 1e-11);
}

#[test]
fn bayesian_threads_and_predictor() {
    let (x, y) = data(16, 20, 2, 4);
    let net = Mlp::new(2, Activation::Linear, 1.0, 0.2);
    let prob = Problem::new(&net, Rows::new("X", &x, 16, 20).unwrap(), y.as_ref(), 1).unwrap();
    let a = solve(&prob, 0.8, 0.1, Solver::Auto, 1);
    let b = solve(&prob, 0.8, 0.1, Solver::Auto, 2);
    assert_eq!(a.report.n_iter, b.report.n_iter);
    for l in 0..2 {
        assert_eq!(a.kernels[l], b.kernels[l]);
    }
    // the predictor at the training points reproduces Phi^L (Phi^L + T I)^{-1} Y
    let views: Vec<MatRef<'_, f64>> = a.kernels.iter().map(|k| k.as_ref()).collect();
    let (mean, var) = prob
        .predict(
            &views,
            0.1,
            Rows::new("X", &x, 16, 20).unwrap(),
            true,
            1,
            no_control(),
        )
        .unwrap();
    let mut am = a.kernels[1].clone();
    for i in 0..16 {
        am[(i, i)] += 0.1;
    }
    let l = cholesky(am.as_ref()).unwrap();
    let mut z = y.clone();
    solve_lower_triangular_in_place(l.as_ref(), z.as_mut(), Par::Seq);
    solve_upper_triangular_in_place(l.transpose(), z.as_mut(), Par::Seq);
    let want = &a.kernels[1] * &z;
    assert!(max_rel(&mean, &want) < 1e-10);
    // GP variance at the training points: T Phi (Phi + T)^{-1} diagonal
    let var = var.unwrap();
    assert!(var.iter().all(|v| *v >= 0.0 && *v < 0.1));
}
